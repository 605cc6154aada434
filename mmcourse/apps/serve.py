"""A real HTTP server for the course's models, on the APIs that serving systems use
(``python -m mmcourse serve``, introduced in notebook 10).

- An exported SavedModel folder (``python -m mmcourse export``, a match or qa model) gets
  TensorFlow Serving's REST API: ``GET /v1/models/NAME`` (status), ``GET
  /v1/models/NAME/metadata`` (the signature) and ``POST /v1/models/NAME:predict`` with
  ``{"instances": [{"image": {"b64": ...}, "text": ...}]}``. As TensorFlow Serving does, a
  signature with one output answers bare values (``{"predictions": [0.93, ...]}``), one with
  several a dict per instance.
- Notebook 08's captioner (``docs/results/vlm_llava.keras``, any ``vlm.build_vlm`` model)
  gets the OpenAI-compatible ``POST /v1/chat/completions`` (what vLLM, TGI, LMDeploy and
  Ollama serve): the user message holds an ``image_url`` part (a ``data:image/png;base64,``
  URL) and optionally a text part, the words the caption starts with. ``max_tokens``,
  ``temperature`` (0: greedy; > 0: sampling among the ``top_k`` most likely tokens, all of
  them by default), ``top_k`` (an extension, as in vLLM) and ``seed``; ``"stream": true``
  sends server-sent events, one word each, ending with ``data: [DONE]``. The text equals
  ``vlm.generate`` with ``method="greedy"`` or ``method="top_k"`` and the same settings.
- A KerasHub ``PaliGemmaCausalLM`` preset folder (``HubChatModel``, e.g.
  ``docs/results/tiny_paligemma_pretrained_attributes``) gets the same chat API: the text
  part is PaliGemma's prompt ("caption en"), the text equals KerasHub's ``generate`` with
  the sampler of the settings, and streaming sends the ids after the generation.
- A CLIP model (``docs/results/clip_attributes.keras``) gets ``POST /v1/embeddings`` (texts
  or images to L2-normalised vectors) and, with ``--index FOLDER``, ``POST /v1/search``: the
  top-k images of the folder for a text (cosine similarity, exact).
- Every kind: ``GET /health``; the OpenAI kinds also ``GET /v1/models`` and ``GET
  /v1/models/NAME``.

Concurrent requests are batched (``mmcourse.apps.batching``): predictions and embeddings up to
``max_batch`` instances, generations up to ``max_batch`` requests with the same prompt
length, each row with its own ``max_tokens``, sampling settings and seed, on one KV cache.
A bad request gets a 4xx JSON error that names the field (TensorFlow Serving's ``{"error":
...}`` on its API, OpenAI's ``{"error": {"message", "type", "param"}}`` on the others);
image headers are checked before anything is decoded. The body size and the number of
requests in flight are limited (``Limits``). FastAPI on uvicorn does the HTTP.
"""

import asyncio
import base64
import binascii
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmcourse.apps import batching, deploy
from mmcourse.data import folders, text

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclass
class Limits:
    """What one request may ask: ``max_body_bytes`` of JSON, images of ``max_pixels`` (by
    their header), texts of ``max_text_chars``, ``max_instances`` per call, and at most
    ``max_requests`` requests in flight (beyond them: 503). Introduced in notebook 10."""

    max_body_bytes: int = 8_000_000
    max_pixels: int = 4096 * 4096
    max_text_chars: int = 1000
    max_instances: int = 256
    max_requests: int = 64


class ApiError(Exception):
    """A request the server refuses: HTTP ``status``, the ``param`` (field) at fault and a
    message that says what was expected. Introduced in notebook 10."""

    def __init__(self, status: int, param: str | None, message: str,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.param, self.message, self.kind = status, param, message, kind


# --- checking request fields ------------------------------------------------------------------


def _field(container, key, where: str, kinds, required: bool = True, default=None):
    if not isinstance(container, dict):
        raise ApiError(400, where or "body", f"{where or 'body'} must be a JSON object, got "
                                             f"{type(container).__name__}")
    name = f"{where}.{key}" if where else key
    if key not in container or container[key] is None:
        if required:
            raise ApiError(400, name, f"{name} is missing")
        return default
    value, kinds = container[key], kinds if isinstance(kinds, tuple) else (kinds,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ApiError(400, name, f"{name} must be {names}, got {type(value).__name__}")
    return value


def check_text(value, name: str, limits: Limits) -> str:
    """A non-empty text of at most ``limits.max_text_chars`` characters."""
    if not isinstance(value, str):
        raise ApiError(400, name, f"{name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ApiError(400, name, f"{name} is empty; give a text")
    if len(value) > limits.max_text_chars:
        raise ApiError(400, name, f"{name} has {len(value):,} characters, over the limit of "
                                  f"{limits.max_text_chars:,}")
    return value


def check_image(data: bytes, name: str, limits: Limits, size: int | None = None) -> np.ndarray:
    """The image bytes decoded to RGB uint8 (resized to ``size``), after the header's
    width x height is checked against ``limits.max_pixels`` (before any decoding)."""
    if not data:
        raise ApiError(400, name, f"{name} is empty; give the bytes of a PNG or JPEG image")
    dimensions = folders.image_dimensions(data)
    if dimensions is None:
        raise ApiError(400, name, f"{name} is not a PNG, JPEG, GIF or BMP image (its header "
                                  f"says so)")
    width, height = dimensions
    if width * height > limits.max_pixels or width == 0 or height == 0:
        raise ApiError(400, name, f"{name} is {width}x{height} pixels by its header, outside "
                                  f"1 to {limits.max_pixels:,} pixels; refused before "
                                  f"decoding")
    try:
        return folders.decode_image(data, name, size)
    except folders.DataError as error:
        raise ApiError(400, name, str(error)) from None


def b64_bytes(value, name: str) -> bytes:
    """The bytes of a base64 string (``name`` says where it came from)."""
    if not isinstance(value, str):
        raise ApiError(400, name, f"{name} must be a base64 string, got "
                                  f"{type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, name, f"{name} is not valid base64") from None


def data_url_bytes(url, name: str) -> bytes:
    """The bytes of a ``data:image/...;base64,...`` URL; other URLs are refused (the server
    never fetches anything)."""
    if not isinstance(url, str):
        raise ApiError(400, name, f"{name} must be a string, got {type(url).__name__}")
    head, comma, payload = url.partition(",")
    if not (head.startswith("data:image/") and head.endswith(";base64") and comma):
        raise ApiError(400, name, f"{name} must be a data URL, data:image/png;base64,... (the "
                                  f"server fetches nothing), got {url[:40]!r}")
    return b64_bytes(payload, name)


def _positive_int_field(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ApiError(400, name, f"{name} must be a whole number from {low} to {high}, got "
                                  f"{value!r}")
    if not low <= value <= high:
        raise ApiError(400, name, f"{name} must be from {low} to {high}, got {value!r}")
    return int(value)


# --- the models ---------------------------------------------------------------------------


class PredictModel:
    """An exported SavedModel folder behind TensorFlow Serving's REST API."""

    kind = "tfserving"

    def __init__(self, path):
        self.predictor = deploy.SavedModelPredictor(path)
        self.signature = self.predictor.signature
        self.task = self.predictor.task
        self.output_names = sorted(self.signature.structured_outputs)

    def parse(self, body, limits: Limits) -> list[tuple[bytes, str]]:
        signature_name = _field(body, "signature_name", "", str, required=False,
                                default=deploy.SIGNATURE)
        if signature_name != deploy.SIGNATURE:
            raise ApiError(400, "signature_name", f"signature_name must be "
                                                  f"{deploy.SIGNATURE!r}, got {signature_name!r}")
        if isinstance(body, dict) and "inputs" in body and "instances" not in body:
            raise ApiError(400, "inputs", "inputs (the columnar format) is not served; this "
                                          "server takes the row format: "
                                          "{\"instances\": [{\"image\": {\"b64\": ...}, "
                                          "\"text\": ...}]}")
        instances = _field(body, "instances", "", list)
        if not 1 <= len(instances) <= limits.max_instances:
            raise ApiError(400, "instances", f"instances must hold 1 to "
                                             f"{limits.max_instances} instances, got "
                                             f"{len(instances)}")
        rows = []
        for index, instance in enumerate(instances):
            where = f"instances[{index}]"
            image = _field(instance, "image", where, dict)
            data = b64_bytes(_field(image, "b64", f"{where}.image", str), f"{where}.image.b64")
            check_image(data, f"{where}.image", limits)
            rows.append((data, check_text(_field(instance, "text", where, str),
                                          f"{where}.text", limits)))
        return rows

    def run(self, requests: list[list[tuple[bytes, str]]]) -> list[list]:
        """One signature call for the instances of every request; each its predictions."""
        import tensorflow as tf

        images = [image for rows in requests for image, _ in rows]
        texts = [caption.encode("utf-8") for rows in requests for _, caption in rows]
        outputs = self.signature(image=tf.constant(images), text=tf.constant(texts))
        columns = {name: [value.decode("utf-8") if isinstance(value, bytes) else value
                          for value in tensor.numpy().tolist()]
                   for name, tensor in outputs.items()}
        rows = [columns[self.output_names[0]][i] if len(columns) == 1 else
                {name: columns[name][i] for name in self.output_names}
                for i in range(len(images))]
        answers, start = [], 0
        for request in requests:
            answers.append(rows[start:start + len(request)])
            start += len(request)
        return answers

    def metadata(self, name: str) -> dict:
        """The signature as TensorFlow Serving's ``/metadata`` describes it."""
        from tensorflow.core.framework import types_pb2

        def tensor(spec, tensor_name):
            dims = [{"size": str(-1 if d is None else d), "name": ""} for d in spec.shape]
            return {"dtype": types_pb2.DataType.Name(spec.dtype.as_datatype_enum),
                    "tensor_shape": {
                "dim": dims, "unknown_rank": False}, "name": tensor_name}

        inputs = self.signature.structured_input_signature[1]
        outputs = self.signature.structured_outputs
        return {"model_spec": {"name": name, "signature_name": "", "version": "1"},
                "metadata": {"signature_def": {"signature_def": {deploy.SIGNATURE: {
                    "inputs": {key: tensor(spec, f"{deploy.SIGNATURE}_{key}:0")
                               for key, spec in inputs.items()},
                    "outputs": {key: tensor(spec, f"StatefulPartitionedCall:{i}")
                                for i, (key, spec) in enumerate(sorted(outputs.items()))},
                    "method_name": "tensorflow/serving/predict"}}}}}


def parse_chat_message(body, limits: Limits, name: str, image_size: int):
    """``(pixels, prompt, prompt_name)`` of a chat completions request: the model name checked
    against ``name``, the last user message's ``image_url`` part decoded to RGB uint8 of
    ``image_size`` (required) and its text part (None when there is none); ``prompt_name``
    is the field to blame for a prompt the model refuses. Shared by ``ChatModel`` and
    ``HubChatModel``. Introduced in notebook 10."""
    model = _field(body, "model", "", str, required=False, default=name)
    if model != name:
        raise ApiError(404, "model", f"model {model!r} is not served here; this server "
                                     f"serves {name!r}", "not_found_error")
    messages = _field(body, "messages", "", list)
    users = [i for i, m in enumerate(messages) if isinstance(m, dict)
             and m.get("role") == "user"]
    if not users:
        raise ApiError(400, "messages", "messages must hold a message with role 'user'")
    where = f"messages[{users[-1]}].content"
    content = _field(messages[users[-1]], "content", f"messages[{users[-1]}]", (list, str))
    if isinstance(content, str):
        raise ApiError(400, where, f"{where} must be a list of parts, with an image_url "
                                   f"part (the image as a data URL)")
    pixels, prompt, prompt_name = None, None, f"{where}[].text"
    for index, part in enumerate(content):
        part_name = f"{where}[{index}]"
        kind = _field(part, "type", part_name, str)
        if kind == "image_url":
            url = _field(_field(part, "image_url", part_name, dict), "url",
                         f"{part_name}.image_url", str)
            pixels = check_image(data_url_bytes(url, f"{part_name}.image_url.url"),
                                 f"{part_name}.image_url", limits, image_size)
        elif kind == "text":
            prompt = check_text(_field(part, "text", part_name, str), f"{part_name}.text",
                                limits)
            prompt_name = f"{part_name}.text"
        else:
            raise ApiError(400, f"{part_name}.type", f"{part_name}.type must be 'text' or "
                                                     f"'image_url', got {kind!r}")
    if pixels is None:
        raise ApiError(400, where, f"{where} has no image_url part; this model captions "
                                   f"an image")
    return pixels, prompt, prompt_name


@dataclass
class Sampling:
    """A chat request's generation settings (``parse_sampling``): ``method`` "greedy"
    (temperature 0) or "top_k" (sampling), ``top_k`` None when every token may be drawn."""

    max_tokens: int
    method: str
    top_k: int | None
    temperature: float
    seed: int
    stream: bool


def parse_sampling(body, room: int, default_max_tokens: int, vocabulary: int) -> Sampling:
    """The settings of a chat completions request: ``max_tokens`` (or
    ``max_completion_tokens``) from 1 to ``room``, ``temperature`` from 0 to 100 (0: greedy),
    ``top_k`` from 1 to ``vocabulary`` (-1 or left out: all), ``seed`` (a random one when
    left out), ``stream``; ``top_p`` other than 1 and ``n`` other than 1 are refused. Shared
    by ``ChatModel`` and ``HubChatModel``. Introduced in notebook 10."""
    max_tokens = _field(body, "max_tokens", "", (int, float), required=False)
    if max_tokens is None:
        max_tokens = _field(body, "max_completion_tokens", "", (int, float),
                            required=False, default=default_max_tokens)
    max_tokens = _positive_int_field(max_tokens, "max_tokens", 1, room)
    temperature = _field(body, "temperature", "", (int, float), required=False,
                         default=1.0)
    if not 0 <= temperature <= 100:
        raise ApiError(400, "temperature", f"temperature must be from 0 to 100, got "
                                           f"{temperature}")
    top_k = _field(body, "top_k", "", (int, float), required=False, default=-1)
    top_k = None if top_k == -1 else _positive_int_field(top_k, "top_k", 1, vocabulary)
    seed = _field(body, "seed", "", (int, float), required=False)
    seed = secrets.randbits(32) if seed is None else \
        _positive_int_field(seed, "seed", 0, 2 ** 63 - 1)
    top_p = _field(body, "top_p", "", (int, float), required=False, default=1)
    if top_p != 1:
        raise ApiError(400, "top_p", "top_p is not supported; use top_k")
    n = _field(body, "n", "", (int, float), required=False, default=1)
    if n != 1:
        raise ApiError(400, "n", f"n must be 1, got {n}")
    stream = _field(body, "stream", "", bool, required=False, default=False)
    return Sampling(max_tokens, "greedy" if temperature == 0 else "top_k", top_k,
                    float(temperature) or 1.0, seed, stream)


@dataclass
class Generation:
    """One chat request's generation: its image, prompt ids and settings; ``emit`` is called
    (from the worker thread) with each new token id, then with None at the end; ``cancelled``
    stops it early (a client gone); ``prompt`` is the prompt's text (``HubChatModel``)."""

    pixels: np.ndarray
    prompt_ids: list
    max_tokens: int
    method: str
    k: int
    temperature: float
    seed: int
    emit: object = None
    cancelled: bool = False
    tokens: list = field(default_factory=list)
    prompt: str = ""


class ChatModel:
    """A vision-language model (``vlm.build_vlm``) behind the chat completions API."""

    kind = "chat"

    def __init__(self, model, vocabulary=None):
        from mmcourse import vlm

        self.model = model
        self.parts = vlm._parts(model)
        if self.parts["vision"] is None:
            raise ValueError("model is a text decoder without a vision encoder; serve a "
                             "vision-language model (vlm.build_vlm)")
        self.vocabulary = vlm.decoder_vocabulary() if vocabulary is None else list(vocabulary)
        if len(self.vocabulary) != self.parts["head"].units:
            raise ValueError(f"the vocabulary has {len(self.vocabulary)} tokens but the model "
                             f"predicts {self.parts['head'].units}")
        self.word_ids = {w: i for i, w in enumerate(self.vocabulary[:-2]) if i >= 2}
        self.image_size = int(self.parts["vision"].inputs[0].shape[1])
        self.positions = int(self.parts["embedding"].max_length)
        self.end = len(self.vocabulary) - 1
        self.allowed = len(self.vocabulary) - 3  # every token but padding, [UNK], [START]

    def parse(self, body, limits: Limits, name: str) -> tuple[Generation, bool]:
        pixels, prompt, prompt_name = parse_chat_message(body, limits, name, self.image_size)
        words = text.split_words(prompt or "")
        unknown = [w for w in words if w not in self.word_ids]
        if unknown:
            raise ApiError(400, prompt_name, f"{prompt_name}: this captioner continues the "
                                             f"words you give, and knows only the course's "
                                             f"words; unknown: {unknown[:5]}. Leave the text "
                                             f"part out to caption the image")
        room = self.positions - len(words)  # [START], the prompt and all but the last token
        if room < 1:
            raise ApiError(400, prompt_name, f"{prompt_name} has {len(words)} words; at most "
                                             f"{self.positions - 1} fit")
        settings = parse_sampling(body, room, min(16, room), self.allowed)
        return Generation(pixels, [self.word_ids[w] for w in words], settings.max_tokens,
                          settings.method, self.allowed if settings.top_k is None
                          else settings.top_k, settings.temperature, settings.seed), \
            settings.stream

    def batch_key(self, generation: Generation):
        """Generations batch together when their prompts have the same length."""
        return len(generation.prompt_ids)

    def text(self, tokens) -> str:
        """The answer of generated ids: their words up to "[END]", spaced."""
        return " ".join(self.words(tokens))

    def stopped(self, tokens) -> bool:
        """Whether the generation ended by itself ("[END]"), not at ``max_tokens``."""
        return self.end in tokens

    def run(self, generations: list[Generation]) -> list[list[int]]:
        """Generate for every request at once (same prompt length), on one KV cache: each
        row stops at its "[END]", its own ``max_tokens`` or when cancelled; its sampling
        uses its own ``numpy.random.default_rng(seed)``, as ``vlm.decode_ids`` does for a
        batch of one, so each row's text equals ``vlm.generate`` of that request alone."""
        from keras import ops

        from mmcourse import vlm

        decoder = vlm._decoder_of(self.model)
        start, end = len(self.vocabulary) - 2, self.end
        banned = [0, 1, start]
        pixels = np.stack([g.pixels for g in generations]).astype(np.float32) / 255.0
        visual = decoder.visual(ops.convert_to_tensor(pixels))
        token_ids = np.array([[start, *g.prompt_ids] for g in generations], np.int32)
        logits, caches, image_caches = decoder.prefill(visual, ops.convert_to_tensor(token_ids))
        position = token_ids.shape[1]
        rngs = [np.random.default_rng(g.seed) for g in generations]
        finished = np.zeros(len(generations), bool)
        try:
            for _ in range(max(g.max_tokens for g in generations)):
                scores = np.array(ops.convert_to_numpy(logits), dtype=np.float64)
                scores[:, banned] = -np.inf
                chosen = np.full(len(generations), end, np.int32)
                for row, generation in enumerate(generations):
                    if finished[row]:
                        continue
                    chosen[row] = vlm._choose(scores[row:row + 1], generation.method,
                                              generation.k, generation.temperature,
                                              rngs[row])[0]
                    generation.tokens.append(int(chosen[row]))
                    if generation.emit is not None:
                        generation.emit(int(chosen[row]))
                    finished[row] = chosen[row] == end or generation.cancelled or \
                        len(generation.tokens) >= generation.max_tokens
                if finished.all():
                    break
                logits, caches = decoder.step(ops.convert_to_tensor(chosen[:, None]),
                                              ops.convert_to_tensor(position, "int32"),
                                              caches, image_caches)
                position += 1
        finally:
            for generation in generations:
                if generation.emit is not None:
                    generation.emit(None)
        return [g.tokens for g in generations]

    def words(self, tokens) -> list[str]:
        """The words of generated ids, up to "[END]"."""
        words = []
        for token in tokens:
            if token == self.end:
                break
            words.append(self.vocabulary[token])
        return words


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


class ImageIndex:
    """L2-normalised image embeddings (N, d) and their file names in a faiss
    ``IndexFlatIP``: exact inner-product search, so cosine similarity, the same ranking as
    brute force. ``python -m mmcourse bench search`` measures it against NumPy brute force
    and an approximate HNSW graph: at the course's 500 images every method answers in well
    under a millisecond, less than embedding the query costs; from about 10,000 images the
    flat index stays fast while a NumPy product and sort do not, and an approximate graph
    only pays at 10^5 and more, at the price of recall. Introduced in notebook 10."""

    def __init__(self, embeddings, names):
        import faiss

        self.embeddings = np.ascontiguousarray(embeddings, np.float32)
        self.names = list(names)
        if self.embeddings.ndim != 2 or len(self.embeddings) != len(self.names):
            raise ValueError(f"embeddings must be (N, d) with one name each, got "
                             f"{self.embeddings.shape} and {len(self.names)} names")
        faiss.omp_set_num_threads(1)  # one query at a time: threads only add contention
        self.index = faiss.IndexFlatIP(self.embeddings.shape[1])
        self.index.add(self.embeddings)

    def search(self, vectors, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores (Q, k), indices (Q, k)), best first."""
        vectors = np.ascontiguousarray(np.atleast_2d(vectors), np.float32)
        return self.index.search(vectors, min(k, len(self.names)))


def _search_candidates(size, vectors, probes, flat, graph, k) -> dict:
    """The three searches of ``search_benchmark``, each taking the next probe."""
    state = {"i": 0}

    def probe():
        state["i"] = (state["i"] + 1) % len(probes)
        return probes[state["i"]:state["i"] + 1]

    def brute():
        scores = probe() @ vectors.T
        top = np.argpartition(-scores[0], k)[:k]
        return top[np.argsort(-scores[0, top])]

    return {f"numpy N={size}": brute, f"faiss flat N={size}": lambda: flat.search(probe(), k),
            f"faiss hnsw N={size}": lambda: graph.search(probe(), k)}


def search_benchmark(sizes=(500, 10_000, 100_000), dimension: int = 64, k: int = 5,
                     queries: int = 20):
    """The ``search`` benchmark: top-``k`` of one query among N random unit vectors with
    NumPy brute force (a product, then ``argpartition``), faiss ``IndexFlatIP`` (exact, what
    ``ImageIndex`` uses) and faiss HNSW (approximate; its recall@k is reported). Introduced
    in notebook 10."""
    import faiss

    from mmcourse.bench import BenchResult, Ratio, speedup, time_candidates

    faiss.omp_set_num_threads(1)  # as ImageIndex runs it
    rng = np.random.default_rng(0)
    result = BenchResult("search", f"top-{k} search of one query, d={dimension}: NumPy brute "
                                   f"force vs faiss flat (exact) vs faiss HNSW (approximate)")
    for size in sizes:
        vectors = rng.normal(size=(size, dimension)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        probes = vectors[rng.choice(size, queries, replace=False)] + \
            rng.normal(scale=0.3, size=(queries, dimension)).astype(np.float32)
        flat = faiss.IndexFlatIP(dimension)
        flat.add(vectors)
        graph = faiss.IndexHNSWFlat(dimension, 32, faiss.METRIC_INNER_PRODUCT)
        graph.add(vectors)
        timings = time_candidates(_search_candidates(size, vectors, probes, flat, graph, k),
                                  repeats=50, warmup=3)
        result.timings.extend(timings)
        exact = flat.search(probes, k)[1]
        approximate = graph.search(probes, k)[1]
        truth = np.argsort(-(probes @ vectors.T), axis=1)[:, :k]
        result.facts[f"flat = brute force, N={size}"] = bool((exact == truth).all())
        result.facts[f"hnsw recall@{k}, N={size}"] = round(float(np.mean(
            [len(set(a) & set(t)) / k for a, t in zip(approximate, truth, strict=True)])), 3)
        result.ratios.append(Ratio(f"flat vs numpy N={size}", speedup(
            timings, f"numpy N={size}", f"faiss flat N={size}")))
    return result


class ClipModel:
    """A CLIP model (``clip.build_clip``) behind ``/v1/embeddings`` and ``/v1/search``."""

    kind = "clip"

    def __init__(self, model, index_folder=None, limits: Limits | None = None):
        self.model = model
        self.vocabulary = text.load_vocabulary()
        length = model.get_layer("text_encoder").inputs[0].shape[1]  # None: any length
        self.sequence_length = int(length or text.saved_sequence_length())
        self.image_size = int(model.get_layer("image_encoder").inputs[0].shape[1])
        self.index, self.index_folder = None, None
        if index_folder is not None:
            self.index_folder = Path(index_folder)
            self.index = self.build_index(self.index_folder, limits or Limits())

    def build_index(self, folder: Path, limits: Limits) -> ImageIndex:
        """Every image file under ``folder`` (sorted paths), embedded."""
        paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise ValueError(f"index folder {folder} holds no image files "
                             f"({', '.join(IMAGE_SUFFIXES)})")
        pixels = [folders.read_image(p, size=self.image_size) for p in paths]
        vectors = self.embed([("image", p) for p in pixels])
        return ImageIndex(vectors, [p.relative_to(folder).as_posix() for p in paths])

    def embed(self, items: list[tuple[str, object]]) -> np.ndarray:
        """Normalised embeddings of ("text", str) and ("image", RGB uint8) items, in order."""
        from mmcourse import clip

        vectors = [None] * len(items)
        texts = [(i, value) for i, (kind, value) in enumerate(items) if kind == "text"]
        images = [(i, value) for i, (kind, value) in enumerate(items) if kind == "image"]
        if texts:
            ids = text.vectorize([t for _, t in texts], vocabulary=self.vocabulary,
                                 sequence_length=self.sequence_length, warn=False)
            for (i, _), vector in zip(texts, clip.embed_texts(self.model, ids), strict=True):
                vectors[i] = vector
        if images:
            for (i, _), vector in zip(images, clip.embed_images(
                    self.model, np.stack([p for _, p in images])), strict=True):
                vectors[i] = vector
        return np.stack(vectors).astype(np.float32)

    def run(self, requests: list[list[tuple[str, object]]]) -> list[np.ndarray]:
        vectors = self.embed([item for request in requests for item in request])
        answers, start = [], 0
        for request in requests:
            answers.append(vectors[start:start + len(request)])
            start += len(request)
        return answers

    def parse_embeddings(self, body, limits: Limits, name: str) -> list[tuple[str, object]]:
        model = _field(body, "model", "", str, required=False, default=name)
        if model != name:
            raise ApiError(404, "model", f"model {model!r} is not served here; this server "
                                         f"serves {name!r}", "not_found_error")
        given = _field(body, "input", "", (str, list))
        entries = [given] if isinstance(given, str) else given
        if not 1 <= len(entries) <= limits.max_instances:
            raise ApiError(400, "input", f"input must hold 1 to {limits.max_instances} items, "
                                         f"got {len(entries)}")
        items = []
        for index, entry in enumerate(entries):
            where = "input" if isinstance(given, str) else f"input[{index}]"
            if isinstance(entry, str):
                items.append(("text", check_text(entry, where, limits)))
            elif isinstance(entry, dict) and "image_url" in entry:
                url = _field(_field(entry, "image_url", where, dict), "url",
                             f"{where}.image_url", str)
                items.append(("image", check_image(data_url_bytes(url, f"{where}.image_url.url"),
                                                   f"{where}.image_url", limits,
                                                   self.image_size)))
            else:
                raise ApiError(400, where, f"{where} must be a text or {{\"image_url\": "
                                           f"{{\"url\": \"data:image/png;base64,...\"}}}}")
        return items


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


def load_model(path, index=None, limits: Limits | None = None):
    """The served model for ``path``: a SavedModel folder (``PredictModel``), a KerasHub
    ``PaliGemmaCausalLM`` preset folder (``HubChatModel``), or a ``.keras`` file of a
    vision-language model (``ChatModel``) or a CLIP model (``ClipModel``, with ``index`` a
    folder of images to search). ``ValueError`` with what to give instead. Introduced in
    notebook 10."""
    path = Path(path)
    if path.is_dir() and (path / "config.json").is_file() and (path / "metadata.json").is_file():
        if index is not None:
            raise ValueError("--index is for a CLIP model; a PaliGemma preset answers "
                             "/v1/chat/completions")
        return HubChatModel(load_hub_preset(path))
    if path.is_dir():
        deploy.model_kind(path)  # a ValueError unless it holds saved_model.pb
        if index is not None:
            raise ValueError("--index is for a CLIP model; an exported folder answers :predict")
        return PredictModel(path)
    if not path.is_file():
        raise ValueError(f"model not found: {path}")
    if path.suffix != ".keras":
        raise ValueError(f"{path} is neither an exported SavedModel folder nor a .keras file "
                         f"of a captioner or a CLIP model")
    import keras

    import mmcourse.clip  # noqa: F401  (registers CLIP's layers)
    import mmcourse.vlm  # noqa: F401  (registers the decoder's layers)
    from mmcourse.apps import owndata

    owndata.register_keras_objects()
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # noqa: BLE001  (zip, JSON and Keras errors alike)
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise ValueError(f"cannot load {path} ({type(error).__name__}: {reason})") from None
    names = {layer.name for layer in model.layers}
    if {"image_encoder", "text_encoder"} <= names:
        return ClipModel(model, index, limits)
    if index is not None:
        raise ValueError("--index is for a CLIP model, not this one")
    if {"embedding", "block1", "final_norm", "logits", "vision"} <= names:
        return ChatModel(model)
    raise ValueError(f"{path} is not a captioner (vlm.build_vlm) or a CLIP model; a match "
                     f"or qa model is served from its exported folder: `python -m mmcourse "
                     f"export --model {path} --out DIR`, then serve DIR")


# --- the HTTP application -----------------------------------------------------------------


def _openai_error(error: ApiError):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": {"message": error.message, "type": error.kind,
                                   "param": error.param, "code": None}}, error.status)


def _tfserving_error(error: ApiError):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": error.message, "field": error.param}, error.status)


async def read_json(request, limits: Limits):
    """The request's JSON body, refused with 413 over ``limits.max_body_bytes`` (by its
    Content-Length, then while it arrives) and 400 when it is not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise ApiError(413, "body", f"body of {int(declared):,} bytes is over the limit of "
                                    f"{limits.max_body_bytes:,} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise ApiError(413, "body", f"body is over the limit of {limits.max_body_bytes:,} "
                                        f"bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (UnicodeDecodeError, ValueError) as error:
        raise ApiError(400, "body", f"body is not JSON ({error})") from None


def build_app(served, name: str = "mmcourse", max_batch: int = 32,
              batch_timeout_ms: float = 5.0, limits: Limits | None = None):
    """The FastAPI application for a model of ``load_model``. Introduced in notebook 10."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse

    limits = limits or Limits()
    app = FastAPI(title=f"mmcourse serve: {name}", docs_url=None, redoc_url=None)
    batcher = batching.DynamicBatcher(served.run, max_batch, batch_timeout_ms)
    app.state.batcher, app.state.served = batcher, served
    in_flight = {"count": 0}

    @app.middleware("http")
    async def limit_requests(request, call_next):
        if in_flight["count"] >= limits.max_requests:
            return JSONResponse({"error": {"message": f"{limits.max_requests} requests are in "
                                                      f"flight, the limit; retry shortly",
                                           "type": "server_busy", "param": None, "code": None}},
                                503, headers={"Retry-After": "1"})
        in_flight["count"] += 1
        try:
            return await call_next(request)
        finally:
            in_flight["count"] -= 1

    @app.get("/health")
    async def health():
        stats = batcher.stats
        return {"status": "ok", "model": name, "kind": served.kind, "max_batch": max_batch,
                "batches": stats.batches, "batched_items": stats.items,
                "mean_batch": round(stats.mean_size, 3), "largest_batch": stats.largest}

    if served.kind != "tfserving":
        card = {"id": name, "object": "model", "created": int(time.time()),
                "owned_by": "mmcourse"}

        @app.get("/v1/models")
        async def models():
            return {"object": "list", "data": [card]}

        @app.get("/v1/models/{model_name}")
        async def model_card(model_name: str):
            if model_name != name:
                return _openai_error(ApiError(404, "model", f"model {model_name!r} is not "
                                                            f"served here; this server serves "
                                                            f"{name!r}", "not_found_error"))
            return card

    if served.kind == "tfserving":
        def check_name(model_name):
            if model_name != name:
                raise ApiError(404, "model", f"model {model_name!r} is not served here; this "
                                             f"server serves {name!r}")

        @app.get("/v1/models/{model_name}")
        async def status(model_name: str):
            try:
                check_name(model_name)
            except ApiError as error:
                return _tfserving_error(error)
            return {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {
                "error_code": "OK", "error_message": ""}}]}

        @app.get("/v1/models/{model_name}/metadata")
        async def metadata(model_name: str):
            try:
                check_name(model_name)
            except ApiError as error:
                return _tfserving_error(error)
            return served.metadata(name)

        @app.post("/v1/models/{model_name_and_verb}")
        async def predict(model_name_and_verb: str, request: Request):
            try:
                model_name, _, verb = model_name_and_verb.rpartition(":")
                if verb != "predict":
                    raise ApiError(404, "url", f"POST /v1/models/{name}:predict is the one "
                                               f"verb served, got {model_name_and_verb!r}")
                check_name(model_name)
                rows = served.parse(await read_json(request, limits), limits)
            except ApiError as error:
                return _tfserving_error(error)
            return {"predictions": await batcher.submit(rows, size=len(rows))}

    if served.kind == "chat":
        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            try:
                generation, stream = served.parse(await read_json(request, limits), limits,
                                                  name)
            except ApiError as error:
                return _openai_error(error)
            loop = asyncio.get_running_loop()
            tokens: asyncio.Queue = asyncio.Queue()
            generation.emit = lambda token: loop.call_soon_threadsafe(tokens.put_nowait, token)
            job = asyncio.ensure_future(batcher.submit(generation,
                                                       key=served.batch_key(generation)))
            identity, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())
            usage_prompt = len(generation.prompt_ids) + 1
            if not stream:
                generated = await job
                finish = "stop" if served.stopped(generated) else "length"
                return {"id": identity, "object": "chat.completion", "created": created,
                        "model": name, "system_fingerprint": f"seed-{generation.seed}",
                        "choices": [{"index": 0, "message": {"role": "assistant",
                                                             "content": served.text(
                                                                 generated)},
                                     "logprobs": None, "finish_reason": finish}],
                        "usage": {"prompt_tokens": usage_prompt,
                                  "completion_tokens": len(generated),
                                  "total_tokens": usage_prompt + len(generated)}}

            def chunk(delta, finish=None):
                body = {"id": identity, "object": "chat.completion.chunk", "created": created,
                        "model": name, "system_fingerprint": f"seed-{generation.seed}",
                        "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                     "finish_reason": finish}]}
                return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

            async def events():
                received, sent = [], ""
                try:
                    yield chunk({"role": "assistant", "content": ""})
                    while (token := await tokens.get()) is not None:
                        received.append(token)
                        # the text so far, less what was sent: one event per token that adds
                        # text (an end token adds none; a piece of a character waits)
                        so_far = served.text(received)
                        if len(so_far) > len(sent) and so_far.startswith(sent) \
                                and not so_far.endswith("\ufffd"):
                            yield chunk({"content": so_far[len(sent):]})
                            sent = so_far
                    await job
                    if (rest := served.text(received)) != sent and rest.startswith(sent):
                        yield chunk({"content": rest[len(sent):]})
                    yield chunk({}, "stop" if served.stopped(received) else "length")
                    yield "data: [DONE]\n\n"
                finally:
                    generation.cancelled = True  # a client gone: its row stops

            return StreamingResponse(events(), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})

    if served.kind == "clip":
        @app.post("/v1/embeddings")
        async def embeddings(request: Request):
            try:
                items = served.parse_embeddings(await read_json(request, limits), limits, name)
            except ApiError as error:
                return _openai_error(error)
            vectors = await batcher.submit(items, key="embed", size=len(items))
            tokens = sum(len(text.split_words(v)) for k, v in items if k == "text")
            return {"object": "list", "model": name,
                    "data": [{"object": "embedding", "index": i, "embedding": v.tolist()}
                             for i, v in enumerate(vectors)],
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

        @app.post("/v1/search")
        async def search(request: Request):
            try:
                if served.index is None:
                    raise ApiError(400, "index", "no index: start the server with --index "
                                                 "FOLDER (a folder of images)")
                body = await read_json(request, limits)
                model = _field(body, "model", "", str, required=False, default=name)
                if model != name:
                    raise ApiError(404, "model", f"model {model!r} is not served here; this "
                                                 f"server serves {name!r}", "not_found_error")
                query = check_text(_field(body, "query", "", str), "query", limits)
                top_k = _positive_int_field(_field(body, "top_k", "", (int, float),
                                                   required=False, default=5), "top_k", 1,
                                            len(served.index.names))
            except ApiError as error:
                return _openai_error(error)
            vector = await batcher.submit([("text", query)], key="embed")
            scores, indices = served.index.search(vector, top_k)
            return {"object": "list", "model": name, "query": query,
                    "data": [{"rank": r + 1, "image": served.index.names[i],
                              "score": float(s)}
                             for r, (s, i) in enumerate(zip(scores[0], indices[0],
                                                            strict=True))]}

    return app


def warm_up(served) -> None:
    """One call of each compiled path, so the first request does not pay for tracing."""
    if isinstance(served, HubChatModel):
        served.warm_up()
    elif served.kind == "chat":
        pixels = np.zeros((served.image_size, served.image_size, 3), np.uint8)
        for size in (1, 2):
            served.run([Generation(pixels, [], 2, "greedy", 1, 1.0, 0) for _ in range(size)])
    elif served.kind == "clip":
        served.embed([("text", "a red circle"), ("image", np.zeros(
            (served.image_size, served.image_size, 3), np.uint8))])
