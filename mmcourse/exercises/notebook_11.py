"""Exercises of notebook 11 (real model families): RMSNorm by hand, the KV-cache memory that
grouped-query attention saves, the prefix-LM mask, and an experiment that removes the rotary
embedding from a tiny PaliGemma and measures what the decoder can still tell apart.
"""

from __future__ import annotations

import numpy as np

from mmcourse.exercises import (
    Exercise,
    ExerciseSet,
    Incorrect,
    NotAttempted,
    Prediction,
    contains_placeholder,
    expect_value,
    function_exercise,
)

#: q3: the sequence whose prefix-LM mask is asked for.
Q3_IMAGE_TOKENS, Q3_PROMPT, Q3_RESPONSE = 2, 2, 2
#: q4: the bounds the checker states: with RoPE the gap exceeds the first, without it stays
#: below the second.
Q4_MIN_GAP_WITH, Q4_MAX_GAP_WITHOUT = 1e-3, 1e-6


# q1's reference and solution: Gemma's RMSNorm
def rms_norm(x, scale, epsilon):
    x = np.asarray(x, dtype=np.float64)
    mean_square = np.mean(x ** 2, axis=-1, keepdims=True)
    return x / np.sqrt(mean_square + epsilon) * (1 + scale)


# q2's reference and solution: a key and a value vector per layer, K/V head and position
def kv_cache_bytes(num_layers, num_query_heads, num_key_value_heads, head_dim,
                   sequence_length, bytes_per_value=2):
    values = 2 * num_layers * num_key_value_heads * head_dim * sequence_length
    return values * bytes_per_value


def q3_mask():
    """q3's reference, written out by hand: rows are queries, columns keys."""
    prefix = Q3_IMAGE_TOKENS + Q3_PROMPT
    length = prefix + Q3_RESPONSE
    mask = np.zeros((length, length), bool)
    mask[:, :prefix] = True
    for t in range(prefix, length):
        mask[t, prefix:t + 1] = True
    return mask


def q4_model():
    """q4's fixed model and inputs (cached): a tiny PaliGemma backbone with seed 0, one
    image, and two prompts of 7 tokens that differ only in the order of tokens 1-5."""
    if not _Q4:
        import keras
        import keras_hub

        keras.utils.set_random_seed(0)
        backbone = keras_hub.models.PaliGemmaBackbone(
            vocabulary_size=64, image_size=16, num_layers=2, num_query_heads=4,
            num_key_value_heads=1, hidden_dim=32, intermediate_dim=64, head_dim=8,
            vit_patch_size=8, vit_num_heads=2, vit_hidden_dim=16, vit_num_layers=1,
            vit_intermediate_dim=32)
        images = np.random.default_rng(0).uniform(-1, 1, size=(1, 16, 16, 3))
        first = np.array([[2, 10, 11, 12, 13, 14, 9]], "int32")
        second = np.array([[2, 13, 11, 14, 10, 12, 9]], "int32")
        _Q4.extend([backbone, images.astype("float32"), first, second])
    return tuple(_Q4)


_Q4: list = []


def order_gaps():
    """q4's reference: max |last-position logits(first) - logits(second)|, with RoPE, then
    without, both prompts wholly in the prefix."""
    from mmcourse import hub

    backbone, images, first, second = q4_model()
    gaps = []
    for rotary in (True, False):
        logits = [hub.paligemma_logits_by_hand(backbone, images, ids, np.ones_like(ids),
                                               np.zeros_like(ids), rotary=rotary)[0, -1]
                  for ids in (first, second)]
        gaps.append(float(np.abs(logits[0] - logits[1]).max()))
    return gaps


def notebook_11() -> ExerciseSet:
    """Exercises of notebook 11 (real model families)."""

    rng = np.random.default_rng(11)
    q1_cases = [(rng.normal(size=(2, 6)), rng.normal(size=6), 1e-6),
                (1e-3 * rng.normal(size=(3, 4)), rng.normal(size=4), 1e-6),  # epsilon matters
                (np.array([[3.0, 4.0]]), np.zeros(2), 0.5)]
    q2_cases = [(18, 8, 1, 256, 8192, 2),  # Gemma 2B: one K/V head
                (28, 16, 16, 256, 8192, 2),  # Gemma 7B: as many K/V heads as query heads
                (2, 4, 1, 16, 40, 4),  # this notebook's tiny PaliGemma in float32
                (1, 6, 2, 8, 10, 1)]

    def check_gaps(answer):
        if contains_placeholder(answer):
            raise NotAttempted
        if isinstance(answer, (int, float, np.floating)) or not hasattr(answer, "__len__") \
                or len(answer) != 2:
            raise Incorrect("pass the two measured gaps, (with RoPE, without RoPE).")
        try:
            with_rope, without_rope = (float(a) for a in answer)
        except (TypeError, ValueError):
            raise Incorrect("the two gaps must be numbers.") from None
        measured = order_gaps()
        if without_rope > with_rope and with_rope < Q4_MAX_GAP_WITHOUT:
            raise Incorrect("the other way round: (with RoPE, without RoPE).")
        if not np.allclose([with_rope, without_rope], measured, rtol=1e-3, atol=1e-7):
            raise Incorrect(f"the checker measures other gaps than ({with_rope:.3g}, "
                            f"{without_rope:.3g}): compare the last position's logits of "
                            "Q4's two prompts, with rotary=True and rotary=False.")
        if not (measured[0] > Q4_MIN_GAP_WITH and measured[1] < Q4_MAX_GAP_WITHOUT):
            raise Incorrect(f"measured {measured}: outside the stated bounds.")
        return "yes" if measured[1] >= Q4_MAX_GAP_WITHOUT else "no"

    return ExerciseSet("notebook_11", [
        function_exercise(
            name="q1",
            prompt="Write rms_norm(x, scale, epsilon) as Gemma computes it, over the last axis "
                   "of x: no mean subtracted, and the gain stored as scale around 0.",
            function=rms_norm,
            cases=q1_cases,
            hints=["x / sqrt(mean(x**2) + epsilon), then times (1 + scale).",
                   "Keep the last axis for the mean: np.mean(..., axis=-1, keepdims=True)."],
            wrong=lambda: [
                lambda x, s, e: (x - x.mean(-1, keepdims=True))  # LayerNorm's centring
                / np.sqrt(x.var(-1, keepdims=True) + e) * (1 + s),
                lambda x, s, e: x / np.sqrt(np.mean(x ** 2, -1, keepdims=True)) * (1 + s),
                lambda x, s, e: x / np.sqrt(np.mean(x ** 2, -1, keepdims=True) + e) * s,
                lambda x, s, e: x / (np.mean(x ** 2, -1, keepdims=True) + e) * (1 + s),
                lambda x, s, e: x / np.sqrt(np.mean(x ** 2) + e) * (1 + s),  # over everything
                lambda x, s, e: None],
        ),
        function_exercise(
            name="q2",
            prompt="Write kv_cache_bytes(num_layers, num_query_heads, num_key_value_heads, "
                   "head_dim, sequence_length, bytes_per_value=2): the bytes of the KV cache "
                   "of one sequence.",
            function=kv_cache_bytes,
            cases=q2_cases,
            hints=["Each layer keeps a key and a value vector of head_dim numbers per K/V "
                   "head and per position.",
                   "The query heads take no cache: 2 * layers * kv_heads * head_dim * length "
                   "* bytes."],
            wrong=lambda: [
                lambda n, q, k, h, t, b=2: n * k * h * t * b,  # keys only
                lambda n, q, k, h, t, b=2: 2 * n * q * h * t * b,  # the query heads
                lambda n, q, k, h, t, b=2: 2 * n * k * h * t,  # values, not bytes
                lambda n, q, k, h, t, b=2: 2 * k * h * t * b,  # one layer
                lambda n, q, k, h, t, b=2: None],
        ),
        Exercise(
            name="q3",
            prompt=f"Write the prefix-LM attention mask (a boolean (T, T) array, rows are "
                   f"queries, columns keys) of a sequence of {Q3_IMAGE_TOKENS} image tokens, a "
                   f"prompt of {Q3_PROMPT} tokens and a response of {Q3_RESPONSE} tokens, with "
                   "no padding.",
            checker=expect_value(q3_mask()),
            hints=["Image and prompt are the prefix: every token sees all of it, in both "
                   "directions.",
                   "A response token sees the prefix and the response tokens up to itself."],
            solution_code=("mask = scratch.prefix_lm_mask([[1, 1, 1, 1]], [[0, 0, 1, 1]], "
                           "image_tokens=2)[0]\n"
                           "ex.q3.check(mask)"),
            reference=q3_mask,
            wrong=lambda: [
                np.tril(np.ones((6, 6), bool)),  # fully causal
                np.ones((6, 6), bool),  # fully bidirectional
                q3_mask().T,  # keys and queries swapped
                np.tril(np.ones((6, 6), bool)) | np.eye(6, k=1, dtype=bool),
                None]),
        Exercise(
            name="q4",
            prompt="Experiment. Predict first: without the rotary embedding, can the tiny "
                   "PaliGemma's decoder tell two prompts apart that hold the same tokens in "
                   "another order? Take q4_model()'s backbone, image and two prompts (all "
                   "prefix: padding_mask ones, response_mask zeros), compute the last "
                   "position's logits of each with hub.paligemma_logits_by_hand, with "
                   "rotary=True and rotary=False, and pass the two gaps max|difference|, "
                   f"(with RoPE, without). The checker measures them itself; with RoPE the gap "
                   f"must exceed {Q4_MIN_GAP_WITH}, without it stay below {Q4_MAX_GAP_WITHOUT}.",
            checker=check_gaps,
            hints=["backbone, images, first, second = q4_model(); logits[0, -1] is the last "
                   "position.",
                   "gap = np.abs(logits_first - logits_second).max(), once per rotary value."],
            prediction=Prediction(
                "without the rotary embedding, can the decoder tell the two prompts apart?",
                choices=("yes", "no")),
            solution_code="ex.q4.predict('no')\n" + (
                "from mmcourse.exercises.notebook_11 import q4_model\n\n"
                "backbone, images, first, second = q4_model()\n"
                "gaps = []\n"
                "for rotary in (True, False):\n"
                "    last = [hub.paligemma_logits_by_hand(backbone, images, ids, "
                "np.ones_like(ids),\n"
                "                                         np.zeros_like(ids), "
                "rotary=rotary)[0, -1]\n"
                "            for ids in (first, second)]\n"
                "    gaps.append(float(np.abs(last[0] - last[1]).max()))\n"
                "print(f\"gap with RoPE {gaps[0]:.3g}, without {gaps[1]:.1g}\")\n"
                "ex.q4.check(gaps)"),
            reference=order_gaps,
            wrong=lambda: [
                order_gaps()[::-1],  # swapped
                [0.0, 0.0],  # "nothing changes"
                [1.0, 1.0],  # "both change"
                order_gaps()[0],  # one number
                None]),
    ])
