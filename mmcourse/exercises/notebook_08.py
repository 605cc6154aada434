"""Exercises of notebook 08 (multimodal language models): the causal mask as a function, the
size of LLaVA-1.5's projector, the work a KV cache saves, and an experiment that closes
Flamingo's gates.
"""

from __future__ import annotations

import numpy as np

from mmcourse.exercises import Exercise, ExerciseSet, Prediction, expect_function, solution_from

#: notebook 08 q3: visual tokens plus "[START]" read before the first generated token, and
#: the number of tokens generated.
Q3_PREFIX, Q3_TOKENS = 66, 32
#: notebook 08 q4: how many test images, and the most a blind captioner may get right.
Q4_IMAGES, Q4_MAX_CORRECT = 50, 0.2


def causal_mask(length):
    return np.tril(np.ones((length, length), dtype=bool))


def notebook_08() -> ExerciseSet:
    """Exercises of notebook 08 (multimodal language models)."""
    from mmcourse.exercises import Incorrect, expect_value

    same_values = expect_function(causal_mask, [(1,), (4,), (7,)])
    right_dtype = expect_function(causal_mask, [(1,), (4,), (7,)], dtype=bool)

    def check_mask(answer):
        if callable(answer):
            try:
                four = np.asarray(answer(4))
            except Exception:  # reported by expect_function below
                four = None
            if four is not None and four.shape == (4, 4):
                if np.array_equal(four.astype(bool), causal_mask(4).T):
                    raise Incorrect("that is the transpose: row i is the query (position i), "
                                    "column j the key it may look at, so row 0 sees only "
                                    "column 0.")
                if np.array_equal(four.astype(bool), np.tril(np.ones((4, 4), bool), -1)):
                    raise Incorrect("the diagonal is missing: a position may attend to itself "
                                    "(row 0 would otherwise see nothing at all).")
        same_values(answer)
        right_dtype(answer)

    width, hidden = 1024, 4096  # CLIP ViT-L/14-336 tokens -> Vicuna-7B's width
    projector_params = (width * hidden + hidden) + (hidden * hidden + hidden)

    def check_projector(answer):
        reasons = {(width * hidden) + hidden * hidden: "that leaves out the two bias vectors.",
                   width * hidden + hidden: "that is the first layer only; the MLP has two.",
                   hidden * hidden + hidden: "that is the second layer only; the MLP has two.",
                   projector_params * 576: "the same weights serve all 576 tokens: count them "
                                           "once."}
        if isinstance(answer, (int, np.integer)) and int(answer) in reasons:
            raise Incorrect(f"{int(answer):,}: {reasons[int(answer)]}")
        expect_value(projector_params)(answer)

    recompute = sum(Q3_PREFIX + step for step in range(Q3_TOKENS))  # 66 + 67 + ... + 97
    cached = Q3_PREFIX + (Q3_TOKENS - 1)

    def check_positions(answer):
        if not isinstance(answer, (tuple, list)) or len(answer) != 2:
            raise Incorrect(f"give a pair (positions without the cache, positions with it), "
                            f"got {answer!r}.")
        if tuple(answer) == (cached, recompute):
            raise Incorrect("the other way round: recomputation reads more positions.")
        if answer[1] == Q3_TOKENS - 1 or answer[1] == Q3_TOKENS:
            raise Incorrect("with the cache the first pass still reads the whole prefix of "
                            f"{Q3_PREFIX} positions; only the later passes read one each.")
        if tuple(answer) in ((recompute + Q3_PREFIX + Q3_TOKENS, cached + 1),
                             (recompute - Q3_PREFIX, cached - 1)):
            raise Incorrect("count the forward passes again: one per generated token, the "
                            "first on the prefix; the last token needs no pass after it.")
        expect_value((recompute, cached))(tuple(int(a) for a in answer))

    def check_closed_gates(answer):
        from mmcourse import vlm
        from mmcourse.data import scenes as data  # noqa: PLC0415

        if isinstance(answer, str) or not isinstance(answer, (list, tuple)) or \
                not all(isinstance(caption, str) for caption in answer):
            raise Incorrect(f"pass the list of captions that vlm.generate returned, got "
                            f"{type(answer).__name__}.")
        if len(answer) != Q4_IMAGES:
            raise Incorrect(f"caption the first {Q4_IMAGES} test images, got {len(answer)} "
                            f"captions.")
        scenes = data.load_records("scenes", "attributes", "test")[:Q4_IMAGES]
        correct = vlm.correct_statements(answer, scenes)
        if correct > Q4_MAX_CORRECT:
            raise Incorrect(f"{correct:.0%} of these captions are true of their image: the "
                            f"model still sees the images. Set alpha and alpha_ff of every "
                            f"GatedCrossAttention layer to 0 before generating.")
        if len(set(answer)) != 1:
            raise Incorrect(f"{len(set(answer))} different captions: with every gate closed "
                            f"the model cannot tell the images apart; close every gate of "
                            f"every GatedCrossAttention layer, and decode greedily.")
        return correct

    return ExerciseSet("notebook_08", [
        Exercise(
            name="q1",
            prompt="Write causal_mask(length): a NumPy array of dtype bool and shape "
                   "(length, length) whose entry [i, j] is True when position i (the query) "
                   "may attend to position j (the key) in a causal decoder.",
            checker=check_mask,
            hints=["Position i may look at positions 0, 1, ..., i: itself and the past.",
                   "np.tril keeps the lower triangle, the diagonal included."],
            solution_code=solution_from(causal_mask, "ex.q1.check(causal_mask)"),
            reference=lambda: causal_mask,
            wrong=lambda: [
                lambda n: causal_mask(n).T,                                # transposed
                lambda n: np.tril(np.ones((n, n), bool), -1),               # no diagonal
                lambda n: np.tril(np.ones((n, n))),                         # float, not bool
                lambda n: np.tril(np.ones((n, n), bool)).tolist(),          # a list
                lambda n: np.tril(np.ones((n + 1, n + 1), bool)),           # off by one
                lambda n: None,
                causal_mask(4)],
        ),
        Exercise(
            name="q2",
            prompt="LLaVA-1.5 (7B) projects each of CLIP ViT-L/14-336's 576 patch tokens, of "
                   "width 1024, into Vicuna-7B's width 4096 with a two-layer MLP: Dense(4096, "
                   "gelu), then Dense(4096), both with biases. How many parameters does the "
                   "projector have?",
            checker=check_projector,
            hints=["A Dense layer from n to m inputs has n * m weights and m biases.",
                   "The same MLP is applied to every token: the 576 tokens share its weights."],
            solution_code="projector_params = (1024 * 4096 + 4096) + (4096 * 4096 + 4096)\n"
                          "ex.q2.check(projector_params)",
            reference=lambda: projector_params,
            wrong=lambda: [width * hidden + hidden * hidden, width * hidden + hidden,
                           hidden * hidden + hidden, projector_params * 576, None,
                           "20979712"],
        ),
        Exercise(
            name="q3",
            prompt="A LLaVA-style model generates 32 tokens after a prefix of 66 positions "
                   "(65 visual tokens and [START]). Each generated token costs one forward "
                   "pass: the first pass reads the prefix; without a cache every later pass "
                   "reads the whole sequence so far, with a KV cache only the newest token. "
                   "Give the pair (positions read in all, without the cache; with the cache).",
            checker=check_positions,
            hints=["Without the cache the passes read 66, 67, ... positions: one pass per "
                   "generated token.",
                   "With the cache: 66 positions once, then one position for each of the "
                   "other 31 tokens."],
            solution_code="without_cache = sum(66 + step for step in range(32))\n"
                          "with_cache = 66 + 31\n"
                          "ex.q3.check((without_cache, with_cache))",
            reference=lambda: (recompute, cached),
            wrong=lambda: [(cached, recompute), (recompute, Q3_TOKENS - 1),
                           (recompute + Q3_PREFIX + Q3_TOKENS, cached + 1),
                           (Q3_PREFIX * Q3_TOKENS, cached), recompute, None],
        ),
        Exercise(
            name="q4",
            prompt="Experiment. Predict first: what does the stored Flamingo captioner write "
                   "when its gates are closed? Load docs/results/vlm_flamingo.keras (safe_mode"
                   "=True), set alpha and alpha_ff of every GatedCrossAttention layer to 0, "
                   "caption the first 50 attributes-level test images with vlm.generate "
                   "(greedy, max_length=8) and check the list of captions. The checker "
                   "scores them against the scenes.",
            checker=check_closed_gates,
            hints=["[layer for layer in model.layers if isinstance(layer, "
                   "vlm.GatedCrossAttention)]; layer.alpha.assign(0.0).",
                   "Section 4 showed what the layer is with tanh(0) = 0 in front of both "
                   "branches."],
            prediction=Prediction(
                f"what share of the {Q4_IMAGES} captions is still true of its image?"),
            solution_code="ex.q4.predict(0.1)\n" + "flamingo = keras.saving.load_model(\n"
                          "    REPO_ROOT / 'docs' / 'results' / 'vlm_flamingo.keras', "
                          "safe_mode=True)\n"
                          "for layer in flamingo.layers:\n"
                          "    if isinstance(layer, vlm.GatedCrossAttention):\n"
                          "        layer.alpha.assign(0.0)\n"
                          "        layer.alpha_ff.assign(0.0)\n"
                          "images, _, _ = load_arrays('retrieval', 'attributes', 'test')\n"
                          "closed = vlm.generate(flamingo, images[:50], max_length=8)\n"
                          "ex.q4.check(closed)",
            reference=lambda: ["a small red circle"] * Q4_IMAGES,
            wrong=lambda: [
                [str(f"a {s['objects'][0]['size']} {s['objects'][0]['colour']} "
                     f"{s['objects'][0]['shape']}") for s in _first_scenes()],  # gates open
                ["a small red circle"] * 49 + ["a large blue square"],
                ["a small red circle"] * 10, "a small red circle", None],
        ),
    ])


def _first_scenes():
    from mmcourse.data import scenes as data  # noqa: PLC0415

    return data.load_records("scenes", "attributes", "test")[:Q4_IMAGES]
