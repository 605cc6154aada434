"""Training the tiny KerasHub PaliGemma on the course's captions (mmcourse.hub_training,
notebook 11): the response-only loss weights, a short fit that learns, clear errors."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
keras_hub = pytest.importorskip("keras_hub")

from mmcourse import data, hub_presets, hub_training  # noqa: E402


@pytest.fixture(scope="module")
def model():
    tokenizer = hub_presets.train_tokenizer()
    return hub_presets.tiny_paligemma(tokenizer, sequence_length=16, num_layers=1,
                                      vit_num_layers=1)


def test_caption_inputs_weight_exactly_the_response(model):
    images, captions, _ = data.load_arrays("retrieval", "attributes", "train")
    inputs, labels, weights = hub_training.caption_inputs(model, images[:4], captions[:4])
    tokenizer = model.preprocessor.tokenizer
    prompt = [2, *np.asarray(tokenizer.tokenize(hub_presets.PROMPTS["en"])).tolist()]
    for row, caption in enumerate(captions[:4]):
        response = [*np.asarray(tokenizer.tokenize(caption)).tolist(), 1]  # then <eos>
        weighted = labels[row][weights[row] > 0].tolist()
        assert weighted == response
        # Position t predicts token t + 1: the first weighted label follows the prompt.
        assert inputs["token_ids"][row, :len(prompt)].tolist() == prompt
        assert np.flatnonzero(weights[row])[0] == len(prompt) - 1


def test_a_short_fit_learns_and_keeps_the_preprocessor(model):
    images, captions, _ = data.load_arrays("retrieval", "attributes", "train")
    history = hub_training.fit_captioner(model, images[:64], captions[:64], epochs=4,
                                         batch_size=16)
    losses = history.history["loss"]
    assert losses[-1] < 0.7 * losses[0]
    assert model.preprocessor is not None
    generated = hub_training.generate_captions(model, images[:2])
    assert len(generated) == 2 and all(isinstance(g, str) for g in generated)
    assert not any(g.startswith("caption") for g in generated)  # the prompt is stripped


def test_train_paligemma_captioner_checks_its_arguments():
    with pytest.raises(ValueError, match="level must be one of"):
        hub_training.train_paligemma_captioner("shapes")
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        hub_training.train_paligemma_captioner(epochs=0)
