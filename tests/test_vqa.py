"""VQA by generation (notebook 08): loss weights on the answer only (hand-written, and a
question's target words change nothing in training), the stages' model on precomputed
vision tokens equal to the whole model, patch coordinates by hand, answers that stop at
"[END]", ``vqa_metrics`` against hand-computed accuracies, a quick ``train_vqa`` and a
``.keras`` round trip with ``safe_mode=True``."""

import json

import keras
import numpy as np
import pytest
import tensorflow  # noqa: F401

from mmcourse import clip, stats, vlm
from mmcourse.data import scenes as data
from mmcourse.data import text
from mmcourse.train import vlm as train_vlm
from mmcourse.train.core import TrainConfig
from tests.test_vlm import TINY, TINY_VISION, VOCAB, _decoder, _images, _vision

INDEX = {word: i for i, word in enumerate(VOCAB)}
START, END = len(VOCAB) - 2, len(VOCAB) - 1
QUESTIONS = ["what shape is the red object", "how many circles are there",
             "is the blue object on the left or right", "what shape is the blue object"]
ANSWERS = ["circle", "two", "left", "square"]


def test_encode_answers_weighs_the_answer_and_end_only():
    ids, weights = train_vlm.encode_answers(QUESTIONS[:2], ANSWERS[:2], VOCAB, 10)
    words = "what shape is the red object circle".split()
    assert ids[0].tolist() == [START, *[INDEX[w] for w in words], END, 0]
    # Targets ids[:, 1:]: 6 (then 5) question words, the answer and [END], padding.
    np.testing.assert_array_equal(weights, [[0, 0, 0, 0, 0, 0, 1, 1, 0],
                                            [0, 0, 0, 0, 0, 1, 1, 0, 0]])
    assert weights.dtype == np.float32
    with pytest.raises(ValueError, match="same length, got 2 and 1"):
        train_vlm.encode_answers(QUESTIONS[:2], ANSWERS[:1], VOCAB)
    with pytest.raises(TypeError, match="questions and answers must be lists"):
        train_vlm.encode_answers("how many circles are there", ["two"], VOCAB)


def test_the_question_tokens_get_no_gradient():
    ids, weights = train_vlm.encode_answers(QUESTIONS, ANSWERS, VOCAB, 12)
    inputs, targets = ids[:, :-1], ids[:, 1:]
    other = targets.copy()  # the question's target words replaced by others
    question = (weights == 0) & (targets != 0)
    other[question] = (other[question] - 2 + 7) % (START - 2) + 2
    assert (other[question] != targets[question]).all()

    def trained(stage_targets):
        decoder = _decoder(seed=3)
        names = {layer.name for layer in decoder.layers}
        train_vlm._fit_stage(decoder, names, inputs, stage_targets, weights, TrainConfig(
            epochs=1, batch_size=2, learning_rate=1e-2, seed=0), name="answers", log=None)
        return [np.asarray(w) for w in decoder.weights]

    for mine, theirs in zip(trained(targets), trained(other), strict=True):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("arch", vlm.ARCHS)
def test_the_model_on_vision_tokens_is_the_whole_model(arch):
    vision = _vision()
    model = vlm.build_vlm(_decoder(), vision, arch)
    for layer in model.layers:
        if isinstance(layer, vlm.GatedCrossAttention):
            layer.alpha.assign(0.7)
    pixels = _images(3, seed=4).astype(np.float32) / 255
    ids = np.random.default_rng(4).integers(2, START, size=(3, 6)).astype(np.int32)
    on_tokens = vlm.on_vision_tokens(model)
    assert "vision" not in {layer.name for layer in on_tokens.layers}
    np.testing.assert_allclose(np.asarray(on_tokens([np.asarray(vision(pixels)), ids])),
                               np.asarray(model([pixels, ids])), atol=1e-5)
    with pytest.raises(ValueError, match="model must be a vision-language model"):
        vlm.on_vision_tokens(_decoder())


def test_grid_coordinates_by_hand():
    tokens = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)  # class + 2 x 2 grid
    out = np.asarray(vlm.GridCoordinates(frequencies=1)(tokens))
    np.testing.assert_array_equal(out[..., :3], tokens)
    # x, y, sin(pi x), cos(pi x), sin(pi y), cos(pi y); row-major, top-left first.
    np.testing.assert_allclose(out[1, :, 3:], [[0, 0, 0, 0, 0, 0],
                                               [-0.5, -0.5, -1, 0, -1, 0],
                                               [0.5, -0.5, 1, 0, -1, 0],
                                               [-0.5, 0.5, -1, 0, 1, 0],
                                               [0.5, 0.5, 1, 0, 1, 0]], atol=1e-6)
    with pytest.raises(ValueError, match="square grid of patch tokens"):
        vlm.GridCoordinates()(np.zeros((1, 6, 3), np.float32))


@pytest.fixture(scope="module")
def answerer():
    """A tiny LLaVA-style model that has learned four questions about two images."""
    keras.utils.set_random_seed(0)
    vision = vlm.vision_tokens(clip.build_image_encoder(**TINY_VISION), coordinates=True)
    model = vlm.build_vlm(vlm.build_decoder(len(VOCAB), max_length=14, **TINY), vision)
    images = _images(2, seed=5)
    copies = 150  # one epoch of 150 steps: cheaper than 150 epochs
    rows = np.tile(np.array([0, 0, 1, 1], np.int32), copies)
    ids, weights = train_vlm.encode_answers(QUESTIONS * copies, ANSWERS * copies, VOCAB)
    tokens = np.asarray(vision(images / 255.0))
    names = {layer.name for layer in model.layers} - {"vision"}
    train_vlm._fit_stage(vlm.on_vision_tokens(model), names, (rows, ids[:, :-1]), ids[:, 1:],
                         weights, TrainConfig(epochs=1, batch_size=4, learning_rate=1e-2, seed=0),
                         name="answerer", log=None, tokens=tokens)
    return model, images[rows[:4]]


def test_answers_are_generated_and_stop_at_end(answerer):
    model, images = answerer
    kinds = ["shape", "count", "side", "shape"]
    metrics = train_vlm.vqa_metrics(model, images, QUESTIONS, ANSWERS, kinds, VOCAB)
    assert metrics["generated"] == ANSWERS and metrics["accuracy"] == 1.0
    # Room for 4 more tokens after the answer, yet decoding stops at [END].
    ids = vlm.decode_ids(model, images[:1], [[INDEX[w] for w in QUESTIONS[0].split()]],
                         max_length=6)
    assert ids.tolist() == [[INDEX["circle"], END, 0, 0, 0, 0]]


def test_vqa_model_saves_and_loads_with_safe_mode(answerer, tmp_path):
    model, images = answerer
    model.save(tmp_path / "vqa.keras")
    loaded = keras.saving.load_model(tmp_path / "vqa.keras", safe_mode=True)
    kinds = ["shape", "count", "side", "shape"]
    assert train_vlm.vqa_metrics(loaded, images, QUESTIONS, ANSWERS, kinds, VOCAB)["generated"] \
        == ANSWERS


def test_vqa_metrics_against_hand_computed_accuracies(monkeypatch):
    questions = ["how many circles are there", "what colour is the object nearest to the red "
                 "object", "what colour is the object nearest to the blue object",
                 "what shape is the red object", "is the red object on the left or right",
                 "is the blue object on the left or right"]
    answers = ["two", "green", "cyan", "square", "left", "right"]
    kinds = ["count", "nearest colour", "nearest colour", "shape", "side", "side"]
    written = {questions[0]: "Two.", questions[1]: "green", questions[2]: "blue",
               questions[3]: "square", questions[4]: "right", questions[5]: "right"}
    calls = []

    def fake_generate(model, images, prompt, max_length, vocabulary):
        assert len({len(text.split_words(p)) for p in prompt}) == 1  # one length per call
        calls.append((len(prompt), max_length))
        return [written[p] for p in prompt]

    monkeypatch.setattr(train_vlm, "generate", fake_generate)
    metrics = train_vlm.vqa_metrics(None, _images(6), questions, answers, kinds, VOCAB,
                                    batch_size=1)
    # Correct: "Two." (standardised), green, square, right; wrong: blue, the first "right".
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["accuracy_by_type"] == pytest.approx({
        "relational": 2 / 3, "non_relational": 2 / 3, "count": 1.0, "nearest colour": 0.5,
        "shape": 1.0, "side": 0.5})
    assert list(metrics["accuracy_by_type"])[:2] == ["relational", "non_relational"]
    assert metrics["generated"] == [written[q] for q in questions]
    # Every question alone (batch_size=1), the room left in 13 tokens after [START] and it.
    assert sorted(calls) == sorted((1, 12 - len(q.split())) for q in questions)
    with pytest.raises(ValueError, match="same length, got 6, 6, 5 and 6"):
        train_vlm.vqa_metrics(None, _images(6), questions, answers[:5], kinds, VOCAB)


def test_train_vqa_quick_run():
    encoder = clip.build_image_encoder(**TINY_VISION)
    steps = {"pretrain": 1, "stage1": 1, "stage2": 1}
    lines = []
    result = train_vlm.train_vqa("relations", "flamingo", epochs=steps, train_size=64,
                                 test_size=60, batch_size=32, clip_model=encoder,
                                 keep_model=True, log=lines.append)
    # one line per epoch of each step (train.core.fit_logged); a stage's last is its train_loss
    epoch_lines = [line for line in lines if " epoch " in line]
    assert [line.split("  ")[0] for line in epoch_lines] == [
        "[vqa/relations pretrain] epoch 1/1", "[vqa/relations/flamingo stage1] epoch 1/1",
        "[vqa/relations/flamingo stage2] epoch 1/1"]
    for line, stage in zip(epoch_lines[1:], ("stage1", "stage2"), strict=True):
        assert line.endswith(f"  loss {result['stages'][stage]['train_loss']:.4f}")
    model = result.pop("model")
    assert result["task"] == "vqa" and result["arch"] == "flamingo"
    assert result["train_examples"] == 64 and result["test_examples"] == 60
    assert set(result["seconds"]) == {"pretrain", "stage1", "stage2"}  # CLIP given
    # the scores (float32), recomputed from the trained model one question at a time: the first 60
    # test questions, each about its own scene's image, greedy answers compared as words
    images = data.load_arrays("retrieval", "relations", "test")[0]
    records = data.load_records("qa", "relations", "test")[:60]
    vocabulary = vlm.decoder_vocabulary()
    right = {}
    for record in records:
        room = train_vlm.VQA_LENGTH - 1 - len(text.split_words(record["text"]))
        answer = vlm.generate(model, images[[record["scene"]]], [record["text"]],
                              max_length=room, vocabulary=vocabulary)[0]
        right.setdefault(record["kind"], []).append(
            text.split_words(answer) == text.split_words(record["answer"]))
    assert result["accuracy"] == pytest.approx(np.mean(sum(right.values(), [])), abs=1e-6)
    by_type = result["accuracy_by_type"]
    for kind, hits in right.items():
        assert by_type[kind] == pytest.approx(np.mean(hits), abs=1e-6), kind
    relational = sum((hits for kind, hits in right.items() if kind in stats.RELATIONAL_KINDS),
                     [])
    assert by_type["relational"] == pytest.approx(np.mean(relational), abs=1e-6)
    assert {"relational", "non_relational"} <= set(by_type)
    assert [s["kind"] for s in result["samples"]] == sorted(set(by_type) - {
        "relational", "non_relational"})
    assert {"question", "answer", "generated"} <= set(result["samples"][0])
    assert result["stages"]["stage2"]["trainable_params"] < result["params"]
    with pytest.raises(ValueError, match="unknown step 'stage3'"):
        train_vlm.train_vqa(epochs={"stage3": 1})
    with pytest.raises(ValueError, match="test_size must be"):
        train_vlm.train_vqa(test_size=0)


def test_the_command_prints_what_train_vqa_returns(monkeypatch, capsys):
    from mmcourse.__main__ import main

    seen = {}

    def fake_train_vqa(level, arch, seed, root, keep_model, log):
        seen.update(level=level, arch=arch, seed=seed, keep_model=keep_model)
        return {"task": "vqa", "level": level, "arch": arch, "accuracy": 0.75,
                "accuracy_by_type": {"relational": 0.5, "non_relational": 1.0, "count": 0.5,
                                     "shape": 1.0},
                "params": 1234, "trainable_params": 567, "train_seconds": 8.0, "seed": seed,
                "samples": [{"kind": "count", "question": "how many circles are there",
                             "answer": "two", "generated": "one"}]}

    monkeypatch.setattr(train_vlm, "train_vqa", fake_train_vqa)
    assert main(["train", "--task", "vqa", "--level", "relations", "--arch", "flamingo",
                 "--seed", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy_by_type"]["relational"] == 0.5
    assert seen == {"level": "relations", "arch": "flamingo", "seed": 3, "keep_model": False}
    assert main(["train", "--task", "vqa", "--level", "relations"]) == 0
    out = capsys.readouterr().out
    assert seen["arch"] == "llava"  # the default
    assert "vqa/llava on relations: accuracy 0.750; 1,234 parameters (567 trainable" in out
    assert "relational 0.500, non_relational 1.000, count 0.500, shape 1.000" in out
    assert "'how many circles are there' -> 'one' (reference 'two')" in out


def test_question_only_accuracy_answers_each_question_with_its_commonest_training_answer():
    def record(text_, answer, kind):
        return {"text": text_, "answer": answer, "kind": kind}

    train = [record("how many circles are there", "two", "count"),
             record("how many circles are there", "one", "count"),
             record("how many circles are there", "two", "count"),
             record("what shape is the red object", "square", "shape"),   # a tie: the
             record("what shape is the red object", "circle", "shape")]   # first seen wins
    test = [record("how many circles are there", "two", "count"),        # right
            record("how many circles are there", "two", "count"),        # right
            record("what shape is the red object", "square", "shape"),   # right (tie)
            record("what shape is the blue object", "square", "shape")]  # unseen: wrong
    by_type = train_vlm.question_only_accuracy(train, test)
    # count is relational, shape is not (stats.RELATIONAL_KINDS): by hand, 2/2 and 1/2
    assert by_type["count"] == 1.0 and by_type["shape"] == 0.5
    assert by_type["relational"] == 1.0 and by_type["non_relational"] == 0.5


# --- train_vqa's wiring, with the training replaced (mutation audit, issue 28, section 7) ---


def test_train_vqa_feeds_question_answer_texts_and_scores_the_test_split(monkeypatch):
    """``train_vqa`` with ``_backbone`` and ``_train_stages`` replaced (nothing trains,
    about a second): the stages get "[START] question answer [END]" encoded by hand from the
    course data read here, loss weights on the answer and "[END]" only, each question's
    scene as its image row; ``evaluate`` asks the test questions about their own images; the
    default epochs are those of the published table (docs/results/vqa_table.jsonl)."""
    from mmcourse import REPO_ROOT
    from mmcourse.data import store

    root = store.ensure_data(None)
    vocabulary = train_vlm.decoder_vocabulary(root)
    index = {word: i for i, word in enumerate(vocabulary)}
    start, end = len(vocabulary) - 2, len(vocabulary) - 1
    train = data.load_records("qa", "relations", "train", root=root)[:8]
    test = data.load_records("qa", "relations", "test", root=root)[:6]
    train_images = data.load_arrays("retrieval", "relations", "train", root=root)[0]
    test_images = data.load_arrays("retrieval", "relations", "test", root=root)[0]
    recorded, asked = {}, []

    class Model:
        def count_params(self):
            return 123

    def fake_backbone(task, level, seed, root, **options):
        recorded["backbone"] = (task, level, seed, options)
        return {"epochs": {k: options["epochs"][k] for k in ("clip", "pretrain")}}

    def fake_stages(task, backbone, arch, seed, *, images, rows, ids, weights, evaluate,
                    **options):
        recorded["stages"] = {"images": images, "rows": list(rows), "ids": ids,
                              "weights": weights}
        stage = {**evaluate(Model()), "trainable_params": 45}
        return Model(), {"stage1": 1.0, "stage2": 2.0}, {"stage1": stage, "stage2": stage}

    def fake_generate(model, images, prompt, max_length, vocabulary):
        asked.extend(zip(np.asarray(images), prompt, strict=True))
        return ["yes"] * len(prompt)

    monkeypatch.setattr(train_vlm, "_backbone", fake_backbone)
    monkeypatch.setattr(train_vlm, "_train_stages", fake_stages)
    monkeypatch.setattr(train_vlm, "generate", fake_generate)
    result = train_vlm.train_vqa("relations", "llava", train_size=8, test_size=6)

    ids, weights = recorded["stages"]["ids"], recorded["stages"]["weights"]
    for row, record in enumerate(train):
        words = [index[w] for w in f"{record['text']} {record['answer']}".split()]
        assert ids[row].tolist() == [start, *words, end] + [0] * (11 - len(words))
        answer_at = len(record["text"].split())  # the answer's target, then [END]'s
        assert np.flatnonzero(weights[row]).tolist() == [answer_at, answer_at + 1]
    rows = [record["scene"] for record in train]
    assert recorded["stages"]["rows"] == rows
    np.testing.assert_array_equal(recorded["stages"]["images"], train_images[:max(rows) + 1])
    assert sorted(q for _, q in asked) == sorted(r["text"] for r in test)
    for image, question in asked:
        scenes = [r["scene"] for r in test if r["text"] == question]
        assert any(np.array_equal(image, test_images[s]) for s in scenes), question
    assert result["accuracy"] == pytest.approx(np.mean([r["answer"] == "yes" for r in test]))
    published = json.loads((REPO_ROOT / "docs" / "results" / "vqa_table.jsonl").read_text(
        encoding="utf-8").splitlines()[0])["epochs"]
    assert result["epochs"] == published == {"clip": 25, "pretrain": 3, "stage1": 2,
                                             "stage2": 10}
    assert (result["params"], result["trainable_params"], result["train_seconds"]) == \
        (123, 45, 3.0)
    assert result["train_examples"] == 8 and result["test_examples"] == 6


def test_grid_coordinates_declare_the_shape_they_return():
    """(batch, 1 + H W, d) -> (batch, 1 + H W, d + 2 + 4 f), as the docstring says: with
    f = 3 frequencies and d = 12, 12 + 2 + 12 = 26 (mutation audit, issue 28, section 7)."""
    layer = vlm.GridCoordinates(frequencies=3)
    tokens = np.zeros((2, 17, 12), np.float32)  # a class token and a 4 x 4 grid
    assert tuple(layer(tokens).shape) == (2, 17, 26)
    assert tuple(layer.compute_output_shape((None, 17, 12))) == (None, 17, 26)
    assert tuple(vlm.GridCoordinates(frequencies=0).compute_output_shape((5, 10, 8))) == \
        (5, 10, 10)
