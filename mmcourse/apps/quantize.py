"""int8 and int4 weights, by hand on one kernel and by Keras on a whole generator (notebook 12).

``quantize_per_channel`` is Keras' int8 scheme for a Dense kernel (``AbsMaxQuantizer(axis=0)``):
each output column j gets the scale s_j = 127 / max_i |W_ij|, and q = round(W s) in
[-127, 127]. Dequantized, q / s differs from W by at most half a step, 0.5 / s_j =
max_i |W_ij| / 254, per column. ``compare_generators`` measures what ``model.quantize("int8")``
does to a KerasHub captioner: weight bytes, seconds per generated token and exact match, the
change given with a 95% confidence interval over paired test captions; ``model.quantize("int4")``
the same, beside it. Keras 3.15's int4 packs two 4-bit weights in a byte and, by default,
quantizes each block of 128 inputs of a column with its own scale and zero point (asymmetric,
-8..7).
"""

from __future__ import annotations

import math
import time

import numpy as np

from mmcourse.apps import finetune
from mmcourse.data import text
from mmcourse.train import hub as hub_training

#: Keras' int8 range: symmetric, -128 unused.
INT8_MAX = 127
#: The modes of ``quantize_weights``, Keras' names.
MODES = ("int8", "int4")


def quantize_per_channel(kernel, epsilon: float = 1e-7) -> tuple[np.ndarray, np.ndarray]:
    """``(q, scale)``: the int8 kernel and the per-output-column scales (d_out,) of a Dense
    ``kernel`` (d_in, d_out), as Keras' ``Dense.quantize("int8")`` makes them:
    scale = 127 / (max |column| + epsilon), q = clip(round(kernel scale), -127, 127).
    Notebook 12."""
    kernel = np.asarray(kernel.numpy() if hasattr(kernel, "numpy") else kernel)
    if kernel.ndim != 2 or kernel.dtype.kind != "f":
        raise ValueError(f"kernel must be a 2-D float array (d_in, d_out), got shape "
                         f"{kernel.shape} and dtype {kernel.dtype}")
    scale = (INT8_MAX / (np.abs(kernel).max(axis=0) + kernel.dtype.type(epsilon))).astype(
        kernel.dtype)
    q = np.clip(np.round(kernel * scale), -INT8_MAX, INT8_MAX).astype(np.int8)
    return q, scale


def dequantize(q, scale) -> np.ndarray:
    """The float kernel int8 ``q`` stands for: q / scale, column by column. Notebook 12."""
    return np.asarray(q, np.float32) / np.asarray(scale, np.float32)


def error_bound(kernel) -> np.ndarray:
    """The most a dequantized weight can be off, per column: half a step, max |column| / 254.
    Notebook 12."""
    return np.abs(np.asarray(kernel)).max(axis=0) / (2 * INT8_MAX)


def quantize_weights(model, mode: str = "int8") -> None:
    """Quantize a KerasHub task's weights, all in its backbone, to ``mode`` ("int8" or
    "int4"): ``model.backbone.quantize(mode)`` (``model.quantize`` would also visit the
    preprocessor's layers, which must be built first), without Keras' warning for each layer
    left in float (norms, the convolution). Notebook 12."""
    import warnings  # noqa: PLC0415

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have a `quantize` method")
        model.backbone.quantize(mode)


def quantize_int8(model) -> None:
    """``quantize_weights(model, "int8")``. Notebook 12."""
    quantize_weights(model, "int8")


def weight_bytes(model) -> int:
    """Bytes of all of ``model``'s weights as stored (int8 weights 1 byte each). Notebook 12."""
    return int(sum(np.prod(w.shape) * np.dtype(w.dtype).itemsize for w in model.weights))


def paired_difference(before, after) -> dict:
    """The change of a 0/1 score from ``before`` to ``after`` on the same examples: ``mean``
    and its 95% interval ``low``/``high`` (normal approximation, mean +- 1.96 sd / sqrt(n),
    sd of the per-example differences), with ``n`` and the counts ``gained`` and ``lost``.
    When no example changed, that interval has zero width; ``changed_upper95`` then bounds
    the fraction of examples that change, 3 / n (the rule of three), and so the change of
    the score to +-3 / n. Notebook 12."""
    before, after = np.asarray(before, float), np.asarray(after, float)
    if before.shape != after.shape or before.ndim != 1 or before.size < 2:
        raise ValueError(f"before and after must be 1-D with the same length >= 2, got "
                         f"{before.shape} and {after.shape}")
    difference = after - before
    mean, sd = float(difference.mean()), float(difference.std(ddof=1))
    half = 1.96 * sd / math.sqrt(difference.size)
    changed = int((difference != 0).sum())
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": int(difference.size),
            "gained": int((difference > 0).sum()), "lost": int((difference < 0).sum()),
            "changed_upper95": 3 / difference.size if changed == 0 else None}


def _captions(model, images, captions, prompt) -> tuple[list, np.ndarray, float]:
    start = time.perf_counter()
    generated = hub_training.generate_captions(model, images, prompt)
    seconds = time.perf_counter() - start
    correct = np.array([text.split_words(g) == text.split_words(c)
                        for g, c in zip(generated, captions, strict=True)])
    tokens = sum(len(np.asarray(model.preprocessor.tokenizer.tokenize(g))) + 1
                 for g in generated)  # + <eos>
    return generated, correct, seconds / max(tokens, 1)


def compare_generators(preset, images, captions, prompt: str = "caption en\n",
                       modes=("int8",)) -> dict:
    """Load ``preset`` once in float32 and once per quantized ``mode`` (``quantize_weights``)
    and caption ``images`` with each: a row per mode ("float32", "int8", "int4") with
    ``weight_bytes``, ``exact_match`` and ``seconds_per_token`` (after a warm-up batch); each
    quantized row also holds the ``change`` of exact match from float32
    (``paired_difference``) and how many captions are identical (``same_captions``). The
    top-level ``change`` and ``same_captions`` are int8's, when int8 is measured. Notebook 12.
    """
    modes = tuple(modes)
    if not modes or any(mode not in MODES for mode in modes) or len(set(modes)) < len(modes):
        raise ValueError(f"modes must be some of {MODES}, each once, got {modes!r}")
    rows, correct, outputs = {}, {}, {}
    for mode in ("float32", *modes):
        model = finetune.load_with_adapter(preset)
        if mode != "float32":
            quantize_weights(model, mode)
        hub_training.generate_captions(model, images[:8], prompt)  # warm-up: tracing
        outputs[mode], correct[mode], per_token = _captions(model, images, captions, prompt)
        rows[mode] = {"weight_bytes": weight_bytes(model),
                      "exact_match": float(correct[mode].mean()),
                      "seconds_per_token": per_token}
        if mode != "float32":
            rows[mode]["change"] = paired_difference(correct["float32"], correct[mode])
            rows[mode]["same_captions"] = int(sum(a == b for a, b in zip(
                outputs["float32"], outputs[mode], strict=True)))
    compatible = {k: rows["int8"][k] for k in ("change", "same_captions")} \
        if "int8" in rows else {}
    return {**rows, **compatible, "captions": len(captions)}


def benchmark():
    """``python -m mmcourse bench quantize``: the tiny PaliGemma preset in float32 and int8
    (``quantize_int8``) generating 16 tokens for 64 random images, side by side, and the
    weight bytes of each. Notebook 12."""
    from mmcourse import REPO_ROOT, bench  # noqa: PLC0415

    preset = REPO_ROOT / "docs" / "results" / "tiny_paligemma_attributes"
    images = np.random.default_rng(0).integers(0, 256, size=(64, 64, 64, 3), dtype=np.uint8)
    prompts = ["caption en\n"] * 64
    candidates, sizes = {}, {}
    for mode in ("float32", "int8"):
        model = finetune.load_with_adapter(preset)
        if mode == "int8":
            quantize_int8(model)
        prompt_length = len(np.asarray(model.preprocessor.tokenizer.tokenize(prompts[0]))) + 1
        model.preprocessor.sequence_length = prompt_length + 16
        name = f"{mode} generate b64 L16"
        candidates[name] = (lambda m=model: m.generate({"images": images, "prompts": prompts},
                                                       stop_token_ids=None))
        sizes[mode] = weight_bytes(model)
    timings = bench.time_candidates(candidates, repeats=3, warmup=1, items=64 * 16)
    return bench.BenchResult(
        "quantize", "the tiny PaliGemma generating in int8 against float32",
        timings=timings,
        ratios=[bench.Ratio("int8 vs float32 generation (speed-up)",
                            bench.speedup(timings, "float32 generate b64 L16",
                                          "int8 generate b64 L16")),
                bench.Ratio("weight bytes, int8 / float32", sizes["int8"] / sizes["float32"],
                            higher_is_better=False)],
        facts={"weight_bytes": sizes})
