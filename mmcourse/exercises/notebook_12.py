"""Exercises of notebook 12 (fitting real models): the numbers LoRA adds to a Dense layer, the
int8 round trip of a kernel with per-column scales, and an experiment that adapts the tiny
PaliGemma to Chinese captions with LoRA at rank 1 and rank 16 and lets the checker measure
what the rank buys.
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
    function_exercise,
)

#: q3: training and held-out scenes (Chinese captions, generated in memory), their seed,
#: the training the prompt asks for, and the gap of held-out loss the checker demands.
Q3_TRAIN, Q3_TEST, Q3_SEED = 128, 64, 12
Q3_EPOCHS, Q3_LEARNING_RATE = 2, 1e-2
Q3_MIN_GAP = 0.3
_Q3: dict = {}


# q1's reference and solution: A is (d_in, rank), B is (rank, d_out)
def lora_parameters(d_in, d_out, rank):
    return rank * (d_in + d_out)


# q2's reference and solution: per output column, scale = 127 / max |column|, round, clip
# to [-127, 127], divide by the scale again (Keras' epsilon 1e-7 included); float32 kernels
def int8_round_trip(kernel):
    scale = np.float32(127) / (np.abs(kernel).max(axis=0) + np.float32(1e-7))
    return np.clip(np.round(kernel * scale), -127, 127) / scale


def _q2_kernels():
    rng = np.random.default_rng(12)
    wide = rng.normal(size=(8, 5)).astype(np.float32) * np.float32([0.01, 0.1, 1, 10, 100])
    return [(wide,), (rng.normal(size=(16, 3)).astype(np.float32),),
            (rng.uniform(-1, 1, size=(1, 7)).astype(np.float32),)]


def q3_data() -> dict:
    """q3's scenes (cached): ``{"train": (images, captions), "test": (images, captions)}``,
    one shape each with its Chinese caption ("一个小的红色圆形"), drawn with seed
    ``Q3_SEED``; the tiny PaliGemma preset learned English captions only."""
    if not _Q3:
        from mmcourse.data import draw, statements
        from mmcourse.data import scenes as data

        rng = np.random.default_rng(Q3_SEED)
        for split, count in (("train", Q3_TRAIN), ("test", Q3_TEST)):
            scenes = [data.random_scene(rng, "attributes") for _ in range(count)]
            _Q3[split] = (np.stack([draw.render_scene(s) for s in scenes]),
                          [statements.statement_text({"kind": "attribute", **s[0]}, "zh")
                           for s in scenes])
    return _Q3


def q3_base():
    """The tiny PaliGemma preset of notebook 11 (English captions), freshly loaded."""
    from mmcourse import REPO_ROOT
    from mmcourse.apps import finetune

    return finetune.load_with_adapter(
        REPO_ROOT / "docs" / "results" / "tiny_paligemma_attributes")


def train_lora(rank: int):
    """q3's reference: the base preset with LoRA of ``rank`` (``finetune.adapt``), trained
    ``Q3_EPOCHS`` epochs on q3's training captions at ``Q3_LEARNING_RATE``, seed 0."""
    import keras

    from mmcourse.apps import finetune
    from mmcourse.hub import presets as hub_presets
    from mmcourse.train import hub as hub_training

    model = q3_base()
    keras.utils.set_random_seed(0)
    finetune.adapt(model, rank)
    hub_training.fit_captioner(model, *q3_data()["train"], epochs=Q3_EPOCHS,
                               learning_rate=Q3_LEARNING_RATE, prompt=hub_presets.PROMPTS["zh"])
    return model


def heldout_loss(model) -> float:
    """The cross-entropy of ``model``'s next-token predictions on q3's held-out captions,
    averaged over the caption tokens (the response, ``<eos>`` included)."""
    import keras

    from mmcourse.hub import presets as hub_presets
    from mmcourse.train import hub as hub_training

    images, captions = q3_data()["test"]
    inputs, labels, weights = hub_training.caption_inputs(model, images, captions,
                                                          hub_presets.PROMPTS["zh"])
    backbone = model.backbone
    logits = backbone.token_embedding(backbone(inputs), reverse=True)
    logits = logits[:, -labels.shape[1]:]  # the text positions, after the image tokens
    losses = keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(
        labels, logits, from_logits=True))
    return float((losses * weights).sum() / weights.sum())


def lora_ranks(model) -> set:
    """The LoRA ranks of ``model``'s layers (an empty set when LoRA is off everywhere)."""
    return {int(layer.lora_rank) for layer in model.backbone._flatten_layers(include_self=False)
            if getattr(layer, "lora_enabled", False)}


def measure_ranks(models) -> dict:
    """Check ``{1: model, 16: model}`` (LoRA at those ranks, base weights untouched) and
    measure each one's ``heldout_loss``; ``Incorrect`` says what is wrong."""
    if contains_placeholder(models):
        raise NotAttempted
    if not isinstance(models, dict) or set(models) != {1, 16}:
        raise Incorrect("pass a dict {1: model_rank_1, 16: model_rank_16}, got "
                        f"{type(models).__name__}"
                        + (f" with keys {sorted(models)}" if isinstance(models, dict) else ""))
    base = q3_base().backbone
    losses = {}
    for rank, model in models.items():
        if not hasattr(model, "backbone"):
            raise Incorrect(f"models[{rank}] is a {type(model).__name__}, not a "
                            "PaliGemmaCausalLM.")
        ranks = lora_ranks(model)
        if ranks != {rank}:
            raise Incorrect(f"models[{rank}] has LoRA ranks {sorted(ranks) or 'none'}; expected "
                            f"{rank} on its LoRA layers (finetune.adapt(model, {rank})).")
        base_weights = {w.path: w for w in base.weights}
        frozen = [(w, base_weights[w.path]) for w in model.backbone.weights
                  if w.path in base_weights and "lora" not in w.path and "bias" not in w.path]
        if any(not np.array_equal(np.asarray(w), np.asarray(b)) for w, b in frozen):
            raise Incorrect(f"models[{rank}] changed weights of the base model: LoRA trains only "
                            "its A and B matrices; start each model from q3_base().")
        losses[rank] = heldout_loss(model)
    return losses


def notebook_12() -> ExerciseSet:
    """Exercises of notebook 12 (fitting real models)."""
    q1_cases = [(2048, 2048, 4), (64, 64, 1), (1152, 4304, 16), (64, 256, 8), (3, 5, 2)]

    def check_ranks(answer):
        losses = measure_ranks(answer)
        if not losses[16] < losses[1] - Q3_MIN_GAP:
            raise Incorrect(f"held-out loss {losses[1]:.3f} at rank 1 and {losses[16]:.3f} at "
                            f"rank 16: train each for {Q3_EPOCHS} epochs at learning rate "
                            f"{Q3_LEARNING_RATE:g} on q3_data()['train'].")
        return losses[1] - losses[16]

    return ExerciseSet("notebook_12", [
        function_exercise(
            name="q1",
            prompt="Write lora_parameters(d_in, d_out, rank): how many numbers LoRA of rank "
                   "`rank` trains in a Dense layer with a (d_in, d_out) kernel.",
            function=lora_parameters,
            cases=q1_cases,
            hints=["The update is A @ B: what are the shapes of A and B?",
                   "A is (d_in, rank) and B is (rank, d_out); the kernel itself is frozen."],
            wrong=lambda: [
                lambda d_in, d_out, rank: d_in * d_out,  # the kernel
                lambda d_in, d_out, rank: rank * d_in * d_out,
                lambda d_in, d_out, rank: rank * d_in,  # A only
                lambda d_in, d_out, rank: rank * (d_in + d_out) + d_out,  # the bias too
                lambda d_in, d_out, rank: 2 * rank * max(d_in, d_out),
                lambda d_in, d_out, rank: None],
        ),
        function_exercise(
            name="q2",
            prompt="Write int8_round_trip(kernel): a Dense kernel (d_in, d_out) stored in int8 "
                   "with one scale per output column, as Keras' Dense.quantize('int8') stores "
                   "it, and read back as float32: scale = 127 / (max |column| + 1e-7), q = "
                   "round(kernel * scale) clipped to [-127, 127], then q / scale.",
            function=int8_round_trip,
            cases=_q2_kernels(),
            hints=["np.abs(kernel).max(axis=0) is one maximum per output column.",
                   "np.round, then np.clip(..., -127, 127), then divide by the same scale."],
            wrong=lambda: [
                lambda k: k,  # nothing lost: not stored in int8
                lambda k: np.round(k * (127 / np.abs(k).max())) / (127 / np.abs(k).max()),
                lambda k: (np.round(k * (127 / np.abs(k).max(axis=1, keepdims=True)))
                           / (127 / np.abs(k).max(axis=1, keepdims=True))),  # per input row
                lambda k: np.floor(k * (127 / np.abs(k).max(axis=0))) / (127 / np.abs(k).max(
                    axis=0)),  # truncated, not rounded
                lambda k: np.round(k * (127 / np.abs(k).max(axis=0))),  # still in int8 units
                lambda k: None],
        ),
        Exercise(
            name="q3",
            prompt="Experiment. Predict first: after the same short training, how much lower is "
                   "the held-out loss of LoRA at rank 16 than at rank 1? Write "
                   "train_lora(rank): start from q3_base() (the tiny PaliGemma preset, trained "
                   "on English captions), call keras.utils.set_random_seed(0) and "
                   "finetune.adapt(model, rank), and fit it with hub_training.fit_captioner on "
                   f"q3_data()['train'] (Chinese captions) for {Q3_EPOCHS} epochs at learning "
                   f"rate {Q3_LEARNING_RATE:g} with prompt hub_presets.PROMPTS['zh']. Pass "
                   "{1: train_lora(1), 16: train_lora(16)}. The checker checks each model's "
                   "LoRA rank and that its base weights are unchanged, and measures the "
                   f"cross-entropy of each on the {Q3_TEST} held-out captions: rank 16's must be "
                   f"at least {Q3_MIN_GAP} below rank 1's.",
            checker=check_ranks,
            hints=["model = q3_base(); keras.utils.set_random_seed(0); "
                   "finetune.adapt(model, rank)",
                   "hub_training.fit_captioner(model, *q3_data()['train'], epochs=2, "
                   "learning_rate=1e-2, prompt=hub_presets.PROMPTS['zh']); return model"],
            prediction=Prediction("how much lower is the held-out loss at rank 16 than at rank 1?"),
            solution_code="ex.q3.predict(0.5)\n" + (
                "def train_lora(rank):\n"
                "    model = q3_base()\n"
                "    keras.utils.set_random_seed(0)\n"
                "    finetune.adapt(model, rank)\n"
                "    hub_training.fit_captioner(model, *q3_data()[\"train\"], epochs=2,\n"
                "                               learning_rate=1e-2, "
                "prompt=hub_presets.PROMPTS[\"zh\"])\n"
                "    return model\n\n\n"
                "from mmcourse.exercises.notebook_12 import measure_ranks\n\n"
                "models = {1: train_lora(1), 16: train_lora(16)}\n"
                "print({rank: round(loss, 1) for rank, loss in "
                "measure_ranks(models).items()})\n"
                "ex.q3.check(models)"),
            reference=lambda: {1: _trained_copy(1), 16: _trained_copy(16)},  # train_lora's
            wrong=lambda: [
                {1: q3_base(), 16: q3_base()},  # no LoRA
                {1: _untrained(1), 16: _untrained(16)},  # adapters at zero: no gap
                {1: _untrained(16), 16: _untrained(1)},  # ranks swapped
                {1: _untrained(1, shift=0.1), 16: _untrained(16)},  # base weights changed
                {1: _trained_copy(1, shift=1e-3), 16: _trained_copy(16)},  # the same, trained
                {1: _untrained(1)},  # one model
                [_untrained(1), _untrained(16)],  # a list
                None]),
    ])


def _untrained(rank, shift=0.0):
    """The base with LoRA of ``rank`` added, not trained; ``shift`` is added to its token
    embedding (a base weight, as full fine-tuning would change it)."""
    from mmcourse.apps import finetune

    model = q3_base()
    finetune.adapt(model, rank)
    if shift:
        embeddings = model.backbone.token_embedding.embeddings
        embeddings.assign(embeddings + shift)
    return model


_TRAINED: dict = {}


def _trained_copy(rank, shift=0.0):
    """A copy of ``train_lora(rank)`` (trained once, then cached), with ``shift`` added to its
    token embedding: right ranks and a real gap, but a base weight changed."""
    from mmcourse.apps import finetune

    if rank not in _TRAINED:
        _TRAINED[rank] = train_lora(rank).get_weights()
    model = q3_base()
    finetune.adapt(model, rank)
    model.set_weights(_TRAINED[rank])
    if shift:
        embeddings = model.backbone.token_embedding.embeddings
        embeddings.assign(embeddings + shift)
    return model
