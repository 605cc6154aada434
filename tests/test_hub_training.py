"""Training the tiny KerasHub PaliGemma on the course's captions (mmcourse.train.hub,
notebook 11): the response-only loss weights, a short fit that learns, clear errors."""

import numpy as np
import pytest

from mmcourse.data import scenes as data
from mmcourse.hub import presets as hub_presets
from mmcourse.train import hub as hub_training
from mmcourse.train.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def model():
    tokenizer = train_tokenizer()
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


def test_pretrain_vision_trains_the_models_own_vision_tower_only():
    tokenizer = train_tokenizer()
    model = hub_presets.tiny_paligemma(tokenizer, sequence_length=16, num_layers=1,
                                       vit_num_layers=1)
    backbone = model.backbone
    vit_before = [w.copy() for w in backbone.vit_encoder.get_weights()]
    vit_ids = {id(w) for w in backbone.vit_encoder.weights}
    decoder = [w for w in backbone.weights if id(w) not in vit_ids]
    decoder_before = [np.asarray(w).copy() for w in decoder]
    images, captions, _ = data.load_arrays("retrieval", "attributes", "train")
    history = hub_training.pretrain_vision(model, images[:64], captions[:64], epochs=4,
                                           batch_size=16)
    losses = history.history["loss"]
    # From random logits the bag-of-pieces loss starts near log 2 and falls.
    assert 0.4 < losses[0] and losses[-1] < 0.5 * losses[0]
    assert all(not np.allclose(a, b) for a, b in
               zip(vit_before, backbone.vit_encoder.get_weights(), strict=True)
               if a.size > 1)
    assert all(np.array_equal(a, np.asarray(w)) for a, w in
               zip(decoder_before, decoder, strict=True))


def test_pretrain_vision_reads_the_maximum_of_the_image_tokens():
    # One small object touches a few of the 64 patches; the head must read the strongest
    # token of each feature (a max over tokens), not the mean that drowns the object.
    tokenizer = train_tokenizer()
    model = hub_presets.tiny_paligemma(tokenizer, sequence_length=16, num_layers=1,
                                       vit_num_layers=1)
    images, captions, _ = data.load_arrays("retrieval", "attributes", "train")
    head = hub_training.pretrain_vision(model, images[:16], captions[:16], epochs=1,
                                        batch_size=16).model
    pixels = np.asarray(model.preprocessor.image_converter(images[:4]))
    tokens = np.asarray(model.backbone.vit_encoder(pixels))  # (4, 64, width)
    dense = head.layers[-1]
    by_hand = tokens.max(axis=1) @ np.asarray(dense.kernel) + np.asarray(dense.bias)
    assert np.allclose(head.predict(pixels, verbose=0), by_hand, atol=1e-5)


def test_vision_epochs_must_be_a_non_negative_int():
    with pytest.raises(ValueError, match="vision_epochs must be an int >= 0"):
        hub_training.train_paligemma_captioner(vision_epochs=-1)


def test_caption_pieces_mark_exactly_the_pieces_of_each_caption(model):
    tokenizer = model.preprocessor.tokenizer
    captions = ["a small red circle", "a large red circle"]
    targets = hub_training.caption_pieces(tokenizer, captions)
    assert targets.shape == (2, tokenizer.vocabulary_size())
    for row, caption in enumerate(captions):
        # Every caption word is one piece (notebook 11), looked up by hand.
        pieces = {tokenizer.token_to_id("▁" + word) for word in caption.split()}
        assert set(np.flatnonzero(targets[row]).tolist()) == pieces
    assert targets[0].sum() == targets[1].sum() == 4


def test_train_paligemma_captioner_checks_batch_size_and_vision_epochs_before_data():
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        hub_training.train_paligemma_captioner(batch_size=0, root="no such folder")
    with pytest.raises(ValueError, match="vision_epochs must be an int >= 0, got True"):
        hub_training.train_paligemma_captioner(vision_epochs=True, root="no such folder")


def test_train_paligemma_captioner_is_plain_keras_fits_logged_once_per_epoch(monkeypatch):
    # The reference: the same seed, model and data, fitted by pretrain_vision and
    # fit_captioner directly with the default learning rates (the vision one made 4e-3,
    # to tell the two apart).
    import re

    from mmcourse.seeding import seed_everything

    monkeypatch.setitem(hub_training.HUB_CAPTION_DEFAULTS, "vision_learning_rate", 4e-3)
    lines = []
    result = hub_training.train_paligemma_captioner(
        "attributes", 3, epochs=2, batch_size=16, train_size=32, vision_epochs=1,
        log=lines.append, keep_model=True, num_layers=1, vit_num_layers=1)
    seed_everything(3)
    reference = hub_presets.tiny_paligemma(train_tokenizer(), sequence_length=16, seed=3,
                                           vit_patch_size=8, num_layers=1, vit_num_layers=1)
    images, captions, _ = data.load_arrays("retrieval", "attributes", "train")
    vision = hub_training.pretrain_vision(reference, images[:32], captions[:32], epochs=1,
                                          batch_size=16, learning_rate=4e-3).history
    history = hub_training.fit_captioner(reference, images[:32], captions[:32], epochs=2,
                                         batch_size=16, learning_rate=2e-3).history
    assert all(np.array_equal(a, b) for a, b in zip(
        reference.get_weights(), result["model"].get_weights(), strict=True))
    assert lines[0] == f"[paligemma/attributes vision] epoch 1/1  loss {vision['loss'][0]:.4f}"
    assert re.fullmatch(r"paligemma: vision tower pre-trained 1 epochs in \d+ s, last loss "
                        + f"{vision['loss'][0]:.4f}", lines[1])
    assert lines[2:4] == [f"[paligemma/attributes] epoch {e + 1}/2  accuracy "
                          f"{history['accuracy'][e]:.4f}  loss {history['loss'][e]:.4f}"
                          for e in range(2)]
    assert re.fullmatch(rf"paligemma: 2 epochs in \d+ s, last loss {history['loss'][1]:.3f}",
                        lines[4]) and len(lines) == 5
    assert (result["epochs"], result["vision_epochs"], result["seed"]) == (2, 1, 3)
    assert result["train_examples"] == 32 and result["train_seconds"] > 0
