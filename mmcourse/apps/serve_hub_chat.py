"""A KerasHub ``PaliGemmaCausalLM`` preset folder behind the chat completions API of
``python -m mmcourse serve`` (notebook 10): ``load_hub_preset`` and ``HubChatModel``,
whose requests are parsed by the same code as the captioner's (``serve_chat``).
"""

import itertools
import json
from pathlib import Path

import numpy as np

from mmcourse.apps.serve_chat import Generation, parse_chat_message, parse_sampling
from mmcourse.apps.serve_fields import ApiError, Limits


class HubChatModel:
    """A KerasHub ``PaliGemmaCausalLM`` preset folder (notebooks 11 and 12,
    ``docs/results/tiny_paligemma_pretrained_attributes``) behind the chat completions API,
    parsed and checked by the same code as ``ChatModel``. The text part is PaliGemma's task
    prompt ("caption en", "caption zh", ...; "caption en" when there is none; a missing final
    newline is added, as ``python -m mmcourse caption`` does); ``max_tokens`` goes up to the
    preprocessor's ``sequence_length`` less the prompt (and is that by default, as
    ``generate`` without ``max_length``). Images are decoded and resized to the model's size
    by the course's image contract, as ``caption`` does.

    Generation is KerasHub's own ``causal_lm.generate`` with a KerasHub sampler: temperature
    0 ``GreedySampler``, else ``TopKSampler(k=top_k, seed=seed, temperature=...)`` or, without
    ``top_k``, ``RandomSampler(seed=seed, temperature=...)``, so the served text equals
    ``generate`` after ``compile(sampler=...)`` with those settings. Each sampler is built
    once, its seed state and temperature (a variable) set before every call, so that a new
    seed or temperature does not compile the generation again.

    Batching: greedy requests whose prompts have the same number of tokens share one
    ``generate`` call (each row cut to its own ``max_tokens``); a sampled request runs alone,
    as a KerasHub sampler draws one random stream for its whole batch. Streaming: KerasHub's
    ``generate`` runs its whole loop in one compiled call, so the tokens are sent one event
    each *after* the generation, decoded one token further each time: the events arrive
    together and a client that leaves does not stop the generation. Introduced in notebook
    10."""

    kind = "chat"
    #: How many samplers (greedy, random, one per top_k) keep their compiled generation.
    KEEP_SAMPLERS = 8

    def __init__(self, causal_lm):
        from mmcourse.hub import presets as hub_presets

        self.model = causal_lm
        self.preprocessor = causal_lm.preprocessor
        self.tokenizer = self.preprocessor.tokenizer
        self.image_size = int(causal_lm.backbone.image_size)
        self.sequence_length = int(self.preprocessor.sequence_length)
        self.end = int(self.tokenizer.end_token_id)
        self.vocabulary_size = int(self.tokenizer.vocabulary_size())
        self.default_prompt = hub_presets.PROMPTS["en"]
        self._samplers: dict = {}  # (method, top_k) -> (sampler, compiled generate_step)
        self._serial = itertools.count()  # a batch key of its own for each sampled request

    def prompt_ids(self, prompt: str) -> list[int]:
        """The token ids of ``prompt`` (without ``<bos>``)."""
        return [int(i) for i in np.asarray(self.tokenizer.tokenize(prompt)).reshape(-1)]

    def parse(self, body, limits: Limits, name: str) -> tuple[Generation, bool]:
        pixels, prompt, prompt_name = parse_chat_message(body, limits, name, self.image_size)
        prompt = self.default_prompt if prompt is None else prompt
        prompt = prompt if prompt.endswith("\n") else prompt + "\n"
        ids = self.prompt_ids(prompt)
        room = self.sequence_length - 1 - len(ids)  # <bos> and the prompt come first
        if room < 1:
            raise ApiError(400, prompt_name, f"{prompt_name} is {len(ids)} tokens long; at "
                                             f"most {self.sequence_length - 2} fit, with "
                                             f"<bos> and one generated token, in the model's "
                                             f"sequence length of {self.sequence_length}")
        settings = parse_sampling(body, room, room, self.vocabulary_size)
        return Generation(pixels, ids, settings.max_tokens, settings.method, settings.top_k,
                          settings.temperature, settings.seed, prompt=prompt), settings.stream

    def batch_key(self, generation: Generation):
        """Greedy generations batch by prompt length; a sampled one runs alone."""
        if generation.method == "greedy":
            return "greedy", len(generation.prompt_ids)
        return "sampled", next(self._serial)

    def sampler(self, method: str, top_k: int | None):
        """The KerasHub sampler for ``method`` and ``top_k``, installed on the model with its
        compiled generation (built on first use; the least recently used dropped beyond
        ``KEEP_SAMPLERS``)."""
        import keras
        import keras_hub

        key = (method, top_k)
        if key not in self._samplers:
            if method == "greedy":
                sampler = keras_hub.samplers.GreedySampler()
            elif top_k is None:
                sampler = keras_hub.samplers.RandomSampler(seed=0)
            else:
                sampler = keras_hub.samplers.TopKSampler(k=top_k, seed=0)
            if method != "greedy":  # read when the compiled loop runs, not when it is traced
                sampler.temperature = keras.Variable(1.0, dtype="float32", trainable=False,
                                                     name="temperature")
            compiled = self._compile_generation()
            if len(self._samplers) >= self.KEEP_SAMPLERS:
                self._samplers.pop(next(iter(self._samplers)))
            self._samplers[key] = sampler, compiled
        self._samplers[key] = self._samplers.pop(key)  # the most recently used goes last
        sampler, compiled = self._samplers[key]
        self.model.sampler, self.model.generate_function = sampler, compiled
        return sampler

    def _compile_generation(self):
        """The model's ``generate_step`` as one ``tf.function`` for every batch size and
        length (as ``make_generate_function`` compiles it, one trace per new shape would
        take seconds), always stopping at ``<eos>``; traced with the sampler installed then."""
        import tensorflow as tf

        size, end = self.image_size, self.end
        step = tf.function(lambda inputs: self.model.generate_step(inputs, (end,)),
                           input_signature=[{
                               "token_ids": tf.TensorSpec([None, None], tf.int32),
                               "padding_mask": tf.TensorSpec([None, None], tf.bool),
                               "images": tf.TensorSpec([None, size, size, 3], tf.float32)}])

        def generate_function(inputs, stop_token_ids=None):
            if list(stop_token_ids or ()) != [end]:
                raise ValueError(f"stop_token_ids must be [{end}] (<eos>), got "
                                 f"{stop_token_ids!r}")
            return step({key: inputs[key] for key in ("token_ids", "padding_mask", "images")})

        return generate_function

    def run(self, generations: list[Generation]) -> list[list[int]]:
        """One ``generate`` call for the batch (greedy rows with prompts of one length, or
        one sampled row): each row's generated ids, ``<eos>`` included when it came, cut to
        its ``max_tokens``; then ``emit`` gets them one by one."""
        first = generations[0]
        prompt_length = 1 + len(first.prompt_ids)
        if any(g.method != first.method or 1 + len(g.prompt_ids) != prompt_length
               for g in generations) or (first.method != "greedy" and len(generations) > 1):
            raise ValueError("a batch holds greedy generations with prompts of one length, "
                             "or one sampled generation")
        sampler = self.sampler(first.method, first.k)
        if first.method != "greedy":
            sampler.temperature.assign(first.temperature)
            sampler.seed_generator.state.assign([first.seed, 0])  # as a new sampler's
        inputs = self.preprocessor.generate_preprocess(
            {"images": np.stack([g.pixels for g in generations]),
             "prompts": [g.prompt for g in generations]},
            sequence_length=prompt_length + max(g.max_tokens for g in generations))
        # generate without the preprocessor answers token ids, not text
        self.model.preprocessor = None
        try:
            outputs = self.model.generate(inputs, stop_token_ids=[self.end])
        finally:
            self.model.preprocessor = self.preprocessor
        token_ids = np.asarray(outputs["token_ids"])[:, prompt_length:]
        kept = np.asarray(outputs["padding_mask"])[:, prompt_length:]
        try:
            for row, generation in enumerate(generations):
                generation.tokens = [int(t) for t in token_ids[row][kept[row]]][
                    :generation.max_tokens]
                for token in generation.tokens:
                    if generation.emit is not None and not generation.cancelled:
                        generation.emit(token)
        finally:
            for generation in generations:
                if generation.emit is not None:
                    generation.emit(None)
        return [g.tokens for g in generations]

    def text(self, tokens) -> str:
        """The answer of generated ids, as ``generate`` makes it: special tokens dropped,
        the rest detokenized (``generate_postprocess``)."""
        if not len(tokens):
            return ""
        ids = np.asarray([tokens], np.int32)
        return str(np.asarray(self.preprocessor.generate_postprocess(
            {"token_ids": ids, "padding_mask": np.ones_like(ids, bool)})).reshape(-1)[0])

    def stopped(self, tokens) -> bool:
        """Whether the generation ended with ``<eos>``, not at ``max_tokens``."""
        return self.end in tokens

    def warm_up(self) -> None:
        """Trace the greedy and the random sampler's generation for any batch and length."""
        pixels = np.zeros((self.image_size, self.image_size, 3), np.uint8)
        prompt = self.default_prompt
        room = self.sequence_length - 1 - len(self.prompt_ids(prompt))
        for method in ("greedy", "top_k"):
            self.run([Generation(pixels, self.prompt_ids(prompt), room, method, None, 1.0, 0,
                                 prompt=prompt)])


def load_hub_preset(folder: Path):
    """The ``PaliGemmaCausalLM`` of a local KerasHub preset folder (``config.json``,
    ``metadata.json``, ``task.json`` ...); ``ValueError`` for a preset of another task or a
    folder KerasHub cannot load. Introduced in notebook 10."""
    from mmcourse.apps import finetune

    try:
        task = json.loads((folder / "task.json").read_text(encoding="utf-8"))["class_name"]
    except (OSError, ValueError, KeyError, TypeError):
        task = None
    if task != "PaliGemmaCausalLM":
        raise ValueError(f"{folder} is a KerasHub preset folder, but its task.json names "
                         f"{task or 'no task'}; the chat API serves a PaliGemmaCausalLM "
                         f"preset (e.g. docs/results/tiny_paligemma_pretrained_attributes)")
    try:
        return finetune.load_with_adapter(folder)
    except Exception as error:  # noqa: BLE001  (JSON, HDF5 and Keras errors alike)
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise ValueError(f"cannot load the preset {folder} ({type(error).__name__}: "
                         f"{reason})") from None
