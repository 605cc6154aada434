"""LoRA by hand (``scratch.lora_dense``) against Keras' ``Dense.enable_lora``, and LoRA on the
tiny KerasHub PaliGemma (notebook 12)."""

import json

import keras
import numpy as np
import pytest

from mmcourse import REPO_ROOT, scratch
from mmcourse.__main__ import main
from mmcourse.apps import finetune
from mmcourse.data import folders, scans


def _lora_layer(d_in, d_out, rank, alpha, use_bias, rng):
    layer = keras.layers.Dense(d_out, use_bias=use_bias)
    layer.build((None, d_in))
    layer.kernel.assign(rng.normal(size=(d_in, d_out)).astype("float32"))
    if use_bias:
        layer.bias.assign(rng.normal(size=(d_out,)).astype("float32"))
    layer.enable_lora(rank, lora_alpha=alpha)
    layer.lora_kernel_b.assign(rng.normal(size=(rank, d_out)).astype("float32"))  # as if trained
    return layer


@pytest.mark.parametrize(("rank", "alpha", "use_bias"),
                         [(1, None, True), (4, 8.0, True), (3, 1.0, False)])
def test_lora_dense_equals_keras_enable_lora(rank, alpha, use_bias):
    rng = np.random.default_rng(rank)
    layer = _lora_layer(6, 5, rank, alpha, use_bias, rng)
    x = rng.normal(size=(2, 3, 6)).astype("float32")
    ours = scratch.lora_dense(x, layer._kernel, layer.bias if use_bias else None,
                              layer.lora_kernel_a, layer.lora_kernel_b,
                              alpha if alpha is not None else rank, rank)
    assert np.allclose(ours, layer(x), atol=1e-4)
    # and Keras' effective kernel is W + (alpha / rank) A B
    merged = layer._kernel.numpy() + (layer.lora_alpha / rank) * (
        layer.lora_kernel_a.numpy() @ layer.lora_kernel_b.numpy())
    assert np.allclose(layer.kernel.numpy(), merged, atol=1e-5)


def test_b_starts_at_zero_so_the_adapted_layer_equals_the_base():
    rng = np.random.default_rng(0)
    layer = keras.layers.Dense(4)
    layer.build((None, 3))
    x = rng.normal(size=(5, 3)).astype("float32")
    before = np.asarray(layer(x))
    layer.enable_lora(2)
    assert np.all(layer.lora_kernel_b.numpy() == 0)
    assert np.any(layer.lora_kernel_a.numpy() != 0)
    assert np.array_equal(np.asarray(layer(x)), before)
    assert np.allclose(scratch.lora_dense(x, layer._kernel, layer.bias, layer.lora_kernel_a,
                                          layer.lora_kernel_b, 2, 2), before, atol=1e-6)
    # the base kernel is frozen; Keras leaves the bias trainable
    assert sorted(w.name for w in layer.trainable_weights) == ["bias", "lora_kernel_a",
                                                               "lora_kernel_b"]


def test_lora_dense_by_hand_value():
    # W = I (2x2), A = [[1], [0]], B = [[0, 2]], alpha 1, rank 1: y = x + x0 * [0, 2] + bias
    y = scratch.lora_dense([[3.0, 4.0]], np.eye(2), [1.0, -1.0], [[1.0], [0.0]], [[0.0, 2.0]],
                           1.0, 1)
    assert np.allclose(y, [[4.0, 9.0]])
    y = scratch.lora_dense([[3.0, 4.0]], np.eye(2), None, [[1.0], [0.0]], [[0.0, 2.0]], 4.0, 1)
    assert np.allclose(y, [[3.0, 28.0]])  # alpha / rank = 4 scales the update


def test_lora_dense_rejects_bad_shapes():
    kernel, a, b = np.zeros((3, 2)), np.zeros((3, 1)), np.zeros((1, 2))
    with pytest.raises(ValueError, match="x has 4 features but kernel expects d_in=3"):
        scratch.lora_dense(np.zeros((1, 4)), kernel, None, a, b, 1, 1)
    with pytest.raises(ValueError, match=r"a must be \(d_in, rank\) = \(3, 2\)"):
        scratch.lora_dense(np.zeros((1, 3)), kernel, None, a, b, 1, 2)
    with pytest.raises(ValueError, match="rank must be an int >= 1"):
        scratch.lora_dense(np.zeros((1, 3)), kernel, None, a, b, 1, 0)
    with pytest.raises(ValueError, match=r"bias must be \(d_out,\)"):
        scratch.lora_dense(np.zeros((1, 3)), kernel, np.zeros(3), a, b, 1, 1)
    with pytest.raises(TypeError, match="kernel must hold real numbers"):
        scratch.lora_dense(np.zeros((1, 3)), np.array([["a", "b"]] * 3), None, a, b, 1, 1)


# --- LoRA on the tiny KerasHub PaliGemma (mmcourse.apps.finetune) ----------------------------------


TINY_PRESET = REPO_ROOT / "docs" / "results" / "tiny_paligemma_attributes"


@pytest.fixture(scope="module")
def zh_folder(tmp_path_factory):
    return scans.write_shapes_folder(tmp_path_factory.mktemp("zh") / "own", count=24, seed=3,
                                     language="zh")


@pytest.fixture(scope="module")
def zh_data(zh_folder):
    return finetune.load_caption_folder(zh_folder, 64)


def _snapshot(folder):
    return {p.relative_to(folder): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def _hidden(model, images, captions):
    """The backbone's output on the tokenized (image, prompt, caption) inputs."""
    inputs, _, _ = finetune.hub_training.caption_inputs(model, images, captions, "caption zh\n")
    return np.asarray(model.backbone(inputs))


def test_lora_model_starts_equal_to_the_base_and_trains_only_the_adapter(zh_data):
    model = finetune.load_with_adapter(TINY_PRESET)
    images, captions = zh_data["test"]
    base_hidden = _hidden(model, images, captions)
    total = model.count_params()
    finetune.adapt(model, 4)
    assert np.array_equal(_hidden(model, images, captions), base_hidden)
    # the tiny PaliGemma's LoRA layers (query and value): 2 ViT blocks of width 64, and 2
    # decoder blocks with 4 query heads and 1 KV head of 16 dims, width 64
    vit = 2 * 2 * (64 * 4 + 4 * 64)
    decoder = 2 * ((4 * 64 * 4 + 4 * 16) + (1 * 64 * 4 + 4 * 16))
    assert finetune.trainable_count(model) == vit + decoder
    assert model.count_params() == total + vit + decoder
    assert all("lora_kernel" in w.path for w in model.trainable_weights)


def test_frozen_and_full_settings():
    model = finetune.load_with_adapter(TINY_PRESET)
    finetune.adapt(model, "frozen")
    assert finetune.trainable_count(model) == 0
    finetune.adapt(model, "full")
    assert finetune.trainable_count(model) == model.count_params() == 203_712
    with pytest.raises(ValueError, match="setting must be 'frozen', 'full' or a LoRA rank"):
        finetune.adapt(model, 0)


def test_caption_folder_split_by_image(zh_folder):
    data = finetune.load_caption_folder(zh_folder, 32)
    assert data["train"][0].shape[1:] == (32, 32, 3) and data["train"][0].dtype == np.uint8
    assert len(data["train"][1]) + len(data["test"][1]) == 24
    assert 1 <= len(data["test"][1]) < 6
    assert all(c.startswith("一个") for c in data["train"][1])


def test_exact_match_by_hand(monkeypatch):
    monkeypatch.setattr(finetune.hub_training, "generate_captions",
                        lambda model, images, prompt: ["a Red  circle", "一个小的红色圆形", "x"])
    assert finetune.exact_match(None, np.zeros((3, 2, 2, 3)),
                                ["a red circle", "一个小的红色方形", "x"]) == pytest.approx(2 / 3)


def test_finetune_command_and_adapter_round_trip(zh_folder, zh_data, tmp_path, capsys):
    before = _snapshot(zh_folder)
    out = tmp_path / "adapters" / "zh.lora.h5"
    assert main(["finetune", "--model", str(TINY_PRESET), "--data-dir", str(zh_folder),
                 "--lora", "2", "--save", str(out), "--epochs", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert _snapshot(zh_folder) == before  # the data folder is never written
    assert [p.name for p in out.parent.iterdir()] == ["zh.lora.h5"]  # no partial file left
    assert result["adapter_bytes"] == out.stat().st_size
    assert out.stat().st_size < 0.2 * (TINY_PRESET / "model.weights.h5").stat().st_size
    for key in ("trainable_params", "total_params", "exact_match_before", "exact_match_after"):
        assert key in result
    assert result["trainable_params"] < 0.1 * result["total_params"]
    assert result["prompt"] == "caption zh\n" and len(result["loss"]) == 2
    assert finetune.prompt_for(["a red circle", "一个圆形", "a square"]) == "caption en\n"
    # the adapter on top of the base preset: B moved off zero, and the reloaded model is the
    # trained one, not the base
    reloaded = finetune.load_with_adapter(TINY_PRESET, out)
    assert any(np.any(w.numpy() != 0) for w in reloaded.weights if "lora_kernel_b" in w.path)
    images, captions = zh_data["test"]
    base = finetune.load_with_adapter(TINY_PRESET)
    assert not np.allclose(_hidden(base, images, captions), _hidden(reloaded, images, captions),
                           atol=1e-5)


def test_adapter_round_trip_keeps_every_trained_number(zh_data, tmp_path):
    model = finetune.load_with_adapter(TINY_PRESET)
    finetune.adapt(model, 3)
    rng = np.random.default_rng(0)
    for weight in model.trainable_weights:  # as if trained
        weight.assign(rng.normal(scale=0.1, size=weight.shape).astype("float32"))
    path = finetune.save_adapter(model, tmp_path / "x.lora.h5")
    reloaded = finetune.load_with_adapter(TINY_PRESET, path)
    images, captions = zh_data["test"]
    assert np.allclose(_hidden(reloaded, images, captions), _hidden(model, images, captions),
                       atol=1e-5)
    with pytest.raises(ValueError, match="must end in '.lora.h5'"):
        finetune.save_adapter(model, tmp_path / "zh.h5")


def test_finetune_command_bad_folder_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad"
    (bad / "images").mkdir(parents=True)
    (bad / folders.CAPTIONS).write_text("image,text\nimages/missing.png,一个圆形\n",
                                        encoding="utf-8")
    assert main(["finetune", "--model", str(TINY_PRESET), "--data-dir", str(bad), "--lora",
                 "1", "--save", str(tmp_path / "a.lora.h5")]) == 1
    err = capsys.readouterr().err
    assert "argument --data-dir" in err and "missing.png" in err


def test_finetune_is_the_same_fit_as_plain_keras_from_the_same_seed(zh_data):
    lines = []
    model = finetune.load_with_adapter(TINY_PRESET)
    result = finetune.finetune(model, zh_data, 2, epochs=2, batch_size=8, learning_rate=1e-2,
                               seed=1, prompt="caption zh\n", log=lines.append)
    # the reference: the same seed and adapter, then Keras' own compile and fit on the
    # preprocessed training pairs (in order, batches of 8, Adam at 1e-2)
    reference = finetune.load_with_adapter(TINY_PRESET)
    keras.utils.set_random_seed(1)
    finetune.adapt(reference, 2)
    inputs, labels, weights = reference.preprocessor(
        {"images": zh_data["train"][0], "prompts": ["caption zh\n"] * len(zh_data["train"][1]),
         "responses": list(zh_data["train"][1])})
    reference.compile(optimizer=keras.optimizers.Adam(1e-2),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      weighted_metrics=[keras.metrics.SparseCategoricalAccuracy("accuracy")])
    reference.preprocessor = None
    history = reference.fit(inputs, labels, sample_weight=weights, epochs=2, batch_size=8,
                            shuffle=False, verbose=0).history
    assert len(model.weights) == len(reference.weights)
    assert all(np.array_equal(w.numpy(), r.numpy())
               for w, r in zip(model.weights, reference.weights, strict=True))
    assert result["loss"] == history["loss"] and result["epochs"] == 2
    assert sorted(history) == ["accuracy", "loss"]
    assert lines == ["[finetune/2] epoch {}/2  {}".format(epoch + 1, "  ".join(
        f"{metric} {values[epoch]:.4f}" for metric, values in history.items()))
        for epoch in range(2)]


def test_finetune_options_default_to_the_tiny_paligemma_rate_and_are_checked(zh_data,
                                                                             monkeypatch):
    calls = []

    def fake_fit(model, images, captions, **options):
        calls.append(options)
        return keras.callbacks.History()

    monkeypatch.setattr(finetune.hub_training, "generate_captions",
                        lambda model, images, prompt: ["x"] * len(images))
    monkeypatch.setattr(finetune.hub_training, "fit_captioner", fake_fit)
    model = finetune.load_with_adapter(TINY_PRESET)
    with pytest.raises(KeyError):  # the fake fit's empty history, after it was called
        finetune.finetune(model, zh_data, 1, batch_size=5)
    # notebook 11's tiny PaliGemma rate: 10 epochs, Adam at 2e-3; batch_size as given
    assert calls[0]["epochs"] == 10 and calls[0]["batch_size"] == 5
    assert calls[0]["learning_rate"] == 2e-3 and calls[0]["prompt"] == "caption en\n"
    for bad, message in (({"epochs": 0}, "epochs must be a positive int, got 0"),
                         ({"batch_size": True}, "batch_size must be a positive int"),
                         ({"learning_rate": -1.0}, "learning_rate must be a positive number"),
                         ({"seed": 1.5}, "seed must be an int")):
        with pytest.raises(ValueError, match=message):
            finetune.finetune(model, zh_data, 1, **bad)
    assert len(calls) == 1  # a bad option fails before any training
