"""Exercises of notebook 06 (attention and relations): attention weights by hand, attention as
a function, the relation network's pairs, and an ablation experiment on the trained model.
"""

from __future__ import annotations

import numpy as np

from mmcourse.exercises import Exercise, ExerciseSet, Prediction, expect_function, expect_value

#: notebook 06 q1: one query, three keys of width 4.
Q1_QUERY = np.array([[1.0, 0.0, 1.0, 0.0]])
Q1_KEYS = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 0.0]])

#: notebook 06 q4: the bounds the ablation's measured accuracies must meet: the types that
#: need the distance fall, the types that do not need it stay.
ABLATION_FALLS = ("nearest colour", "furthest colour")
ABLATION_STAYS = ("shape", "count")
ABLATION_MAX_FALLEN = 0.75
ABLATION_MIN_KEPT = 0.9
#: q4: the checker scores the model on this many test questions (the first ones).
ABLATION_QUESTIONS = 500


def ablation_scores(model) -> dict:
    """q4: ``accuracy_by_type`` of ``model`` on the first ``ABLATION_QUESTIONS`` relations
    test questions."""
    from mmcourse.data.scenes import load_records
    from mmcourse.train.tasks import accuracy_by_type, load_split

    images, ids, labels = load_split("qa", "relations", "test", limit=ABLATION_QUESTIONS)
    kinds = [r["kind"] for r in load_records("qa", "relations", "test")[:ABLATION_QUESTIONS]]
    return accuracy_by_type(model.predict([images / 255, ids], verbose=0), labels, kinds)


def _stored_model(zero=("hop2",), weights=("scale_kernel", "scale_bias")):
    """q4's reference (the stored model with hop2's distance scale zeroed) and wrong answers."""
    from mmcourse import REPO_ROOT
    from mmcourse.matcher.io import load_matcher

    model = load_matcher(REPO_ROOT / "docs" / "results" / "relations_anchored_qa.keras")
    for name in zero:
        for weight in weights:
            variable = getattr(model.get_layer(name), weight)
            variable.assign(np.zeros(variable.shape))
    return model


def _softmax(z):
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def notebook_06() -> ExerciseSet:
    """Exercises of notebook 06 (attention and relational reasoning)."""
    from mmcourse.exercises import Incorrect

    weights = _softmax(Q1_QUERY @ Q1_KEYS.T / 2.0)[0]  # sqrt(d) = sqrt(4) = 2

    def check_weights(answer):
        if answer is None or isinstance(answer, (str, dict)):
            raise Incorrect(f"give the 3 weights as an array or a list, got {answer!r}.")
        array = np.asarray(answer, dtype=float).reshape(-1)
        if array.shape != (3,):
            raise Incorrect(f"one weight per key: expected 3 numbers, got shape "
                            f"{np.asarray(answer).shape}.")
        if np.allclose(array, _softmax(Q1_QUERY @ Q1_KEYS.T)[0], atol=1e-4):
            raise Incorrect("those are softmax(q k) without the 1/sqrt(d) scaling.")
        if np.allclose(array, (Q1_QUERY @ Q1_KEYS.T / 2.0)[0], atol=1e-4):
            raise Incorrect("those are the scaled scores: apply the softmax to them.")
        expect_value(weights, atol=1e-4, rtol=1e-4)(array)

    def attention_reference(q, k, v):
        return _softmax(q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])) @ v

    rng = np.random.default_rng(6)
    attention_cases = [(rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4)),
                        rng.normal(size=(2, 5, 2))),
                       (rng.normal(size=(1, 1, 8)), rng.normal(size=(1, 4, 8)),
                        rng.normal(size=(1, 4, 3)))]

    def check_pairs(answer):
        reasons = {36: "that is the number of cells n; the module runs g on pairs of cells.",
                   630: "that counts unordered pairs of different cells; the relation network "
                        "sums g over all ordered pairs (i, j), i = j included.",
                   1260: "almost: Santoro et al. sum over all (i, j), including i = j.",
                   144: "n^2 for a 6x6 grid needs n = 36 cells first."}
        if isinstance(answer, (int, np.integer)) and int(answer) in reasons:
            raise Incorrect(f"{int(answer)}: {reasons[int(answer)]}")
        expect_value(36 * 36)(answer)

    def check_ablation(model):
        if not (hasattr(model, "get_layer") and hasattr(model, "predict")):
            raise Incorrect(f"pass the ablated Keras model itself (the checker scores it), got "
                            f"{type(model).__name__}.")
        try:
            hop = model.get_layer("hop2")
        except ValueError:
            raise Incorrect("the model has no layer named 'hop2': load the stored model with "
                            "load_matcher(STORED_MODEL).") from None
        left = [w.name for w in (hop.scale_kernel, hop.scale_bias) if np.any(np.asarray(w))]
        if left:
            raise Incorrect(f"hop2's {' and '.join(left)} still hold non-zero values: assign "
                            f"zeros to both scale_kernel and scale_bias of the layer 'hop2'.")
        scores = ablation_scores(model)
        kept = min(scores[k] for k in ABLATION_STAYS)
        fallen = float(np.mean([scores[k] for k in ABLATION_FALLS]))
        if kept < ABLATION_MIN_KEPT:
            raise Incorrect(f"shape or count fell to {kept:.3f}: they do not use the distance, "
                            f"so zero only hop2's scale_kernel and scale_bias, nothing else.")
        if fallen > ABLATION_MAX_FALLEN:
            raise Incorrect(f"nearest/furthest colour is still {fallen:.3f}: zero the scale "
                            f"weights of the stored model's layer 'hop2'.")
        return fallen

    return ExerciseSet("notebook_06", [
        Exercise(
            name="q1",
            prompt="One query q = [1, 0, 1, 0] attends to three keys k1 = [1, 0, 1, 0], "
                   "k2 = [0, 1, 0, 1] and k3 = [1, 1, 0, 0]. Compute the three attention "
                   "weights softmax(q . k / sqrt(d)) as an array (a list of the 3 numbers is "
                   "fine too).",
            checker=check_weights,
            hints=["The scores are q . k = 2, 0 and 1; d = 4, so divide them by 2.",
                   "softmax(s)_i = exp(s_i) / sum_j exp(s_j)."],
            solution_code="scores = np.array([2.0, 0.0, 1.0]) / np.sqrt(4)\n"
                          "attention_weights = np.exp(scores) / np.exp(scores).sum()\n"
                          "ex.q1.check(attention_weights)",
            reference=lambda: weights,
            wrong=lambda: [_softmax(Q1_QUERY @ Q1_KEYS.T)[0],  # unscaled
                           (Q1_QUERY @ Q1_KEYS.T / 2.0)[0],  # no softmax
                           np.full(3, 1 / 3), weights[::-1], weights[:2], None, "0.5"],
        ),
        Exercise(
            name="q2",
            prompt="Write my_attention(q, k, v) returning softmax(q k^T / sqrt(d)) v for "
                   "q (N, Tq, d), k (N, Tk, d) and v (N, Tk, dv), with NumPy.",
            checker=expect_function(attention_reference, attention_cases),
            hints=["np.swapaxes(k, 1, 2) turns k into (N, d, Tk); q @ it is (N, Tq, Tk).",
                   "The softmax runs over the keys, the last axis; subtract the row's "
                   "maximum before np.exp for stability."],
            solution_code="def my_attention(q, k, v):\n"
                          "    scores = q @ np.swapaxes(k, 1, 2) / np.sqrt(q.shape[-1])\n"
                          "    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))\n"
                          "    weights /= weights.sum(axis=-1, keepdims=True)\n"
                          "    return weights @ v\n\n"
                          "ex.q2.check(my_attention)",
            reference=lambda: attention_reference,
            wrong=lambda: [
                lambda q, k, v: _softmax(q @ np.swapaxes(k, 1, 2)) @ v,  # unscaled
                lambda q, k, v: np.swapaxes(_softmax(np.swapaxes(  # softmax over the queries
                    q @ np.swapaxes(k, 1, 2) / np.sqrt(q.shape[-1]), 1, 2)), 1, 2) @ v,
                lambda q, k, v: (q @ np.swapaxes(k, 1, 2) / np.sqrt(q.shape[-1])) @ v,
                lambda q, k, v: None],
        ),
        Exercise(
            name="q3",
            prompt="A relation network runs g on every ordered pair (i, j) of the CNN's cells. "
                   "How many pairs is that for a 6 x 6 grid?",
            checker=check_pairs,
            hints=["A 6 x 6 grid has n = 36 cells.",
                   "Every i with every j, i = j included: n times n."],
            solution_code="cells = 6 * 6\n"
                          "pairs = cells * cells\n"
                          "ex.q3.check(pairs)",
            reference=lambda: 1296,
            wrong=lambda: [36, 630, 1260, 144, 1297, None, "1296"],
        ),
        Exercise(
            name="q4",
            prompt="Experiment. Predict first: if the trained transformer could no longer "
                   "use distances, which question types would fail, and how far? Record the "
                   "mean accuracy you expect on the nearest- and furthest-colour questions "
                   "with ex.q4.predict(...). Then load the stored "
                   "model, set the weights scale_kernel and scale_bias of its layer 'hop2' "
                   "to zero, and pass the ablated model: the checker scores it on the first "
                   f"{ABLATION_QUESTIONS} relations test questions with accuracy_by_type. It "
                   f"wants nearest and furthest colour at most {ABLATION_MAX_FALLEN} on "
                   f"average, and shape and count each at least {ABLATION_MIN_KEPT}. Score it "
                   "yourself too, and look at side and height: were you right about them?",
            checker=check_ablation,
            hints=["hop = ablated.get_layer('hop2'); hop.scale_kernel.assign(np.zeros("
                   "hop.scale_kernel.shape)); the same for hop.scale_bias.",
                   "To see the scores: predict on images / 255 and ids of load_split('qa', "
                   "'relations', 'test', limit=500), then accuracy_by_type(probabilities, "
                   "labels, kinds)."],
            prediction=Prediction(
                "without distances, what accuracy do the nearest- and furthest-colour questions "
                "fall to (their mean)?"),
            solution_code="ex.q4.predict(0.5)\n" +
            "ablated = load_matcher(REPO_ROOT / 'docs' / 'results' / "
                          "'relations_anchored_qa.keras')\n"
                          "hop = ablated.get_layer('hop2')\n"
                          "for weight in (hop.scale_kernel, hop.scale_bias):\n"
                          "    weight.assign(np.zeros(weight.shape))\n"
                          "images, ids, labels = load_split('qa', 'relations', 'test', "
                          "limit=500)\n"
                          "kinds = [r['kind'] for r in load_records('qa', 'relations', "
                          "'test')[:500]]\n"
                          "probabilities = ablated.predict([images / 255, ids], verbose=0)\n"
                          "print({kind: round(accuracy, 2) for kind, accuracy in "
                          "accuracy_by_type(probabilities, labels, kinds).items()})\n"
                          "ex.q4.check(ablated)",
            reference=_stored_model,
            wrong=lambda: [
                _stored_model(zero=()),  # not ablated
                _stored_model(weights=("scale_kernel",)),  # the bias left
                {"shape": 0.98, "count": 0.98, "nearest colour": 0.56,  # numbers typed in
                 "furthest colour": 0.39},
                None],
        ),
    ])
