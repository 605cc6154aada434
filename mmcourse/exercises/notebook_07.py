"""Exercises of notebook 07 (ViT and CLIP): a ViT's patch arithmetic, the contrastive loss as a
function, recall with repeated captions, and an experiment with the trained model's temperature.
"""

from __future__ import annotations

import numpy as np

from mmcourse.exercises import Exercise, ExerciseSet, Prediction, expect_function

#: notebook 07 q3: four images and their four captions (two read the same).
Q3_CAPTIONS = ("a small red circle", "a small red circle", "a large blue square",
               "a small green triangle")
Q3_SIMILARITY = np.array([[0.2, 0.9, 0.1, 0.3],
                          [0.1, 0.4, 0.8, 0.2],
                          [0.3, 0.1, 0.2, 0.7],
                          [0.0, 0.2, 0.1, 0.6]])

#: notebook 07 q4: the stored model's loss on the first Q4_PAIRS test pairs: with its learned
#: temperature it must be at most Q4_LEARNED_MAX, and with the temperature fixed at 1.0 at
#: least Q4_FIXED_MIN (section 4: even perfectly separated embeddings cannot go lower).
Q4_PAIRS = 64
Q4_LEARNED_MAX = 1.5
Q4_FIXED_MIN = 3.0


def stored_model_losses() -> tuple[float, float]:
    """q4: the contrastive loss of the stored CLIP model on the first ``Q4_PAIRS`` attributes
    test pairs, at its learned temperature and at 1.0."""
    import keras

    from mmcourse import REPO_ROOT, clip
    from mmcourse.data import text
    from mmcourse.data.scenes import load_arrays

    model = keras.saving.load_model(REPO_ROOT / "docs" / "results" / "clip_attributes.keras",
                                    safe_mode=True)
    images, captions, _ = load_arrays("retrieval", "attributes", "test")
    image_embeddings = clip.embed_images(model, images[:Q4_PAIRS])
    text_embeddings = clip.embed_texts(model, text.vectorize(list(captions[:Q4_PAIRS])))
    learned = model.get_layer("logits").temperature
    return tuple(float(clip.contrastive_loss(image_embeddings, text_embeddings, t))
                 for t in (learned, 1.0))


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _log_softmax(z, axis):
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def _clip_loss(image_embeddings, text_embeddings, temperature):
    logits = _unit(image_embeddings) @ _unit(text_embeddings).T / temperature
    rows = -np.diag(_log_softmax(logits, axis=1)).mean()
    columns = -np.diag(_log_softmax(logits, axis=0)).mean()
    return (rows + columns) / 2


def notebook_07() -> ExerciseSet:
    """Exercises of notebook 07 (ViT and CLIP)."""
    from mmcourse.exercises import Incorrect, expect_value

    def check_patches(answer):
        reasons = {(197, 768): "197 counts the class token; patchify gives the patches alone.",
                   (196, 256): "each patch has 3 colour channels: 16 x 16 x 3 numbers.",
                   (14, 768): "14 is the side of the grid; the tokens are 14 x 14.",
                   (768, 196): "the other way round: (number of patches, length of each)."}
        if isinstance(answer, (tuple, list)) and len(answer) == 2 and \
                tuple(int(a) for a in answer) in reasons:
            raise Incorrect(f"{tuple(answer)}: {reasons[tuple(int(a) for a in answer)]}")
        if not isinstance(answer, (tuple, list)) or len(answer) != 2:
            raise Incorrect(f"give a pair (number of patches, length of a patch), got "
                            f"{answer!r}.")
        expect_value((196, 768))(tuple(answer))

    rng = np.random.default_rng(7)
    loss_cases = [(rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), 0.07),
                  (rng.normal(size=(6, 5)), rng.normal(size=(6, 5)), 1.0),
                  (3 * rng.normal(size=(2, 8)), rng.normal(size=(2, 8)), 0.5)]

    names = {caption: index for index, caption in enumerate(sorted(set(Q3_CAPTIONS)))}
    ids = np.array([names[c] for c in Q3_CAPTIONS])
    recall = float((ids[Q3_SIMILARITY.argmax(axis=1)] == ids).mean())  # 2 of 4
    diagonal = float((Q3_SIMILARITY.argmax(axis=1) == np.arange(4)).mean())  # 1 of 4

    def check_recall(answer):
        if isinstance(answer, (int, float, np.floating)) and np.isclose(answer, diagonal):
            raise Incorrect("that counts a hit only when the top caption has the image's own "
                            "index; image 0's top caption, text 1, reads the same as its own.")
        if isinstance(answer, (int, np.integer)) and answer == 2:
            raise Incorrect("2 is the number of hits; recall is a fraction of the 4 images.")
        expect_value(recall)(answer)

    measured = {}

    def check_losses(answer):
        if isinstance(answer, (tuple, list)):  # scalar tensors (clip.contrastive_loss) will do
            answer = [a.numpy() if hasattr(a, "numpy") else a for a in answer]
        if not isinstance(answer, (tuple, list)) or len(answer) != 2 or not all(
                isinstance(a, (int, float, np.floating, np.ndarray)) and np.ndim(a) == 0
                and not isinstance(a, bool) for a in answer):
            raise Incorrect(f"pass the pair of numbers (loss at the learned temperature, loss "
                            f"at temperature 1.0), got {answer!r}.")
        answer = [float(a) for a in answer]
        if "losses" not in measured:
            measured["losses"] = stored_model_losses()
        learned, fixed = measured["losses"]
        if learned > Q4_LEARNED_MAX or fixed < Q4_FIXED_MIN:  # the experiment's stated bounds
            raise Incorrect(f"the stored model measures {learned:.3f} and {fixed:.3f}, outside "
                            f"the bounds; is docs/results/clip_attributes.keras intact?")
        if np.allclose(answer, (fixed, learned), atol=1e-3):
            raise Incorrect("the other way round: the learned temperature's loss first.")
        for name, value, expected in (("the learned temperature's", answer[0], learned),
                                      ("temperature 1.0's", answer[1], fixed)):
            if abs(value - expected) > 1e-3:
                raise Incorrect(f"{name} loss is {value:.4f}; the checker measures "
                                f"{expected:.4f} on the first {Q4_PAIRS} test pairs. Divide by "
                                f"the temperature, and pass no caption_ids.")
        return fixed

    return ExerciseSet("notebook_07", [
        Exercise(
            name="q1",
            prompt="ViT-B/16 reads a 224 x 224 RGB image in 16 x 16 patches. Give the pair "
                   "(number of patches, length of one flattened patch) that patchify returns "
                   "per image.",
            checker=check_patches,
            hints=["224 / 16 = 14 patches along each side.",
                   "A patch holds 16 x 16 pixels of 3 channels each."],
            solution_code="side = 224 // 16\n"
                          "patches = (side * side, 16 * 16 * 3)\n"
                          "ex.q1.check(patches)",
            reference=lambda: (196, 768),
            wrong=lambda: [(197, 768), (196, 256), (14, 768), (768, 196), (196, 769), 196,
                           None, "196, 768"],
        ),
        Exercise(
            name="q2",
            prompt="Write my_clip_loss(image_embeddings, text_embeddings, temperature) in "
                   "NumPy: L2-normalise the rows of both (N, d) arrays, form the logits "
                   "I T^T / temperature, and return the mean of the two cross-entropies with "
                   "the diagonal as targets: over the rows (image to text) and over the "
                   "columns (text to image).",
            checker=expect_function(_clip_loss, loss_cases, atol=1e-6, rtol=1e-6),
            hints=["Row i's cross-entropy is -log softmax(logits[i])[i]; column j's is "
                   "-log softmax(logits[:, j])[j].",
                   "A stable log-softmax: z - z.max() - log(sum(exp(z - z.max())))."],
            solution_code="def my_clip_loss(image_embeddings, text_embeddings, temperature):\n"
                          "    i = image_embeddings / np.linalg.norm(image_embeddings, axis=1, "
                          "keepdims=True)\n"
                          "    t = text_embeddings / np.linalg.norm(text_embeddings, axis=1, "
                          "keepdims=True)\n"
                          "    logits = i @ t.T / temperature\n"
                          "    rows = logits - np.log(np.exp(logits).sum(axis=1, "
                          "keepdims=True))\n"
                          "    columns = logits - np.log(np.exp(logits).sum(axis=0, "
                          "keepdims=True))\n"
                          "    return -(np.diag(rows).mean() + np.diag(columns).mean()) / 2\n"
                          "\n"
                          "ex.q2.check(my_clip_loss)",
            reference=lambda: _clip_loss,
            wrong=lambda: [
                lambda i, t, tau: -np.diag(_log_softmax(  # rows only
                    _unit(i) @ _unit(t).T / tau, axis=1)).mean(),
                lambda i, t, tau: (-np.diag(_log_softmax(i @ t.T / tau, 1)).mean()  # unnormalised
                                   - np.diag(_log_softmax(i @ t.T / tau, 0)).mean()) / 2,
                lambda i, t, tau: _clip_loss(i, t, 1 / tau),  # times the temperature
                lambda i, t, tau: None],
        ),
        Exercise(
            name="q3",
            prompt="Four images have the captions ('a small red circle', 'a small red circle', "
                   "'a large blue square', 'a small green triangle'), and Q3_SIMILARITY "
                   "(rows: images, columns: their four captions in the same order) scores "
                   "them. What is the image-to-text recall@1, when a retrieved caption counts "
                   "as a hit if it reads the same as the image's own?",
            checker=check_recall,
            hints=["Find each row's largest entry: the retrieved caption.",
                   "Image 0 retrieves caption 1, which reads the same as its own: a hit."],
            solution_code="top = Q3_SIMILARITY.argmax(axis=1)\n"
                          "hits = [Q3_CAPTIONS[t] == Q3_CAPTIONS[i] for i, t in "
                          "enumerate(top)]\n"
                          "ex.q3.check(np.mean(hits))",
            reference=lambda: recall,
            wrong=lambda: [diagonal, 2, 1.0, 0.75, None, "0.5"],
        ),
        Exercise(
            name="q4",
            prompt="Experiment. Predict first: the stored model learned its temperature. What "
                   "happens to its loss if you set the temperature to 1.0, keeping every "
                   f"embedding? Embed the first {Q4_PAIRS} attributes test pairs with the stored "
                   "model (STORED_MODEL; clip.embed_images, clip.embed_texts), measure "
                   "clip.contrastive_loss at the learned temperature "
                   "(model.get_layer('logits').temperature) and at 1.0, and pass the pair "
                   "(learned, fixed). The checker measures both itself and states the bounds: "
                   f"learned at most {Q4_LEARNED_MAX}, fixed at least {Q4_FIXED_MIN}, the floor "
                   "that section 4 found for perfectly separated embeddings.",
            checker=check_losses,
            hints=["images, captions, _ = load_arrays('retrieval', 'attributes', 'test'); "
                   "token ids: text.vectorize(list(captions[:64])).",
                   "At temperature 1 the logits are cosines in [-1, 1]: however well the model "
                   "separates the pairs, the softmax cannot be confident."],
            prediction=Prediction(
                f"what loss do the first {Q4_PAIRS} test pairs give at temperature 1.0? (ln "
                f"{Q4_PAIRS} = {np.log(Q4_PAIRS):.2f} is chance)"),
            solution_code="ex.q4.predict(2.0)\n" +
            "stored = keras.saving.load_model(REPO_ROOT / 'docs' / 'results' / "
                          "'clip_attributes.keras', safe_mode=True)\n"
                          "images, captions, _ = load_arrays('retrieval', 'attributes', 'test')\n"
                          "image_embeddings = clip.embed_images(stored, images[:64])\n"
                          "text_embeddings = clip.embed_texts(stored, "
                          "text.vectorize(list(captions[:64])))\n"
                          "learned = stored.get_layer('logits').temperature\n"
                          "losses = [float(clip.contrastive_loss(image_embeddings, "
                          "text_embeddings, t))\n"
                          "          for t in (learned, 1.0)]\n"
                          "print(np.round(losses, 3))\n"
                          "ex.q4.check(losses)",
            reference=lambda: stored_model_losses(),
            wrong=lambda: [
                stored_model_losses()[::-1],  # swapped
                (stored_model_losses()[0], 1.0),  # a guess for the fixed one
                (1.04, 3.3),  # rounded by hand: not a measurement
                3.34, None, "1.04, 3.34"],
        ),
    ])
