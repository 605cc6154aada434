"""The chat completions request of ``python -m mmcourse serve`` (OpenAI's API, notebook 10)
and notebook 08's captioner behind it: ``parse_chat_message`` (the image and the prompt of
the last user message), ``parse_sampling`` (``max_tokens``, ``temperature``, ``top_k``,
``seed``, ``stream``), ``Generation`` (one request's generation) and ``ChatModel`` (a
``vlm.build_vlm`` model that generates a batch of requests on one KV cache).
``HubChatModel`` (``serve_hub_chat``) serves a KerasHub preset with the same request.
"""

import secrets
from dataclasses import dataclass, field

import numpy as np

from mmcourse.apps.serve_fields import (
    ApiError,
    Limits,
    bounded_int,
    check_image,
    check_text,
    data_url_bytes,
    request_field,
)
from mmcourse.data import text


def parse_chat_message(body, limits: Limits, name: str, image_size: int):
    """``(pixels, prompt, prompt_name)`` of a chat completions request: the model name checked
    against ``name``, the last user message's ``image_url`` part decoded to RGB uint8 of
    ``image_size`` (required) and its text part (None when there is none); ``prompt_name``
    is the field to blame for a prompt the model refuses. Shared by ``ChatModel`` and
    ``HubChatModel``. Introduced in notebook 10."""
    model = request_field(body, "model", "", str, required=False, default=name)
    if model != name:
        raise ApiError(404, "model", f"model {model!r} is not served here; this server "
                                     f"serves {name!r}", "not_found_error")
    messages = request_field(body, "messages", "", list)
    users = [i for i, m in enumerate(messages) if isinstance(m, dict)
             and m.get("role") == "user"]
    if not users:
        raise ApiError(400, "messages", "messages must hold a message with role 'user'")
    where = f"messages[{users[-1]}].content"
    content = request_field(messages[users[-1]], "content", f"messages[{users[-1]}]", (list, str))
    if isinstance(content, str):
        raise ApiError(400, where, f"{where} must be a list of parts, with an image_url "
                                   f"part (the image as a data URL)")
    pixels, prompt, prompt_name = None, None, f"{where}[].text"
    for index, part in enumerate(content):
        part_name = f"{where}[{index}]"
        kind = request_field(part, "type", part_name, str)
        if kind == "image_url":
            url = request_field(request_field(part, "image_url", part_name, dict), "url",
                         f"{part_name}.image_url", str)
            pixels = check_image(data_url_bytes(url, f"{part_name}.image_url.url"),
                                 f"{part_name}.image_url", limits, image_size)
        elif kind == "text":
            prompt = check_text(request_field(part, "text", part_name, str), f"{part_name}.text",
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
    max_tokens = request_field(body, "max_tokens", "", (int, float), required=False)
    if max_tokens is None:
        max_tokens = request_field(body, "max_completion_tokens", "", (int, float),
                            required=False, default=default_max_tokens)
    max_tokens = bounded_int(max_tokens, "max_tokens", 1, room)
    temperature = request_field(body, "temperature", "", (int, float), required=False,
                         default=1.0)
    if not 0 <= temperature <= 100:
        raise ApiError(400, "temperature", f"temperature must be from 0 to 100, got "
                                           f"{temperature}")
    top_k = request_field(body, "top_k", "", (int, float), required=False, default=-1)
    top_k = None if top_k == -1 else bounded_int(top_k, "top_k", 1, vocabulary)
    seed = request_field(body, "seed", "", (int, float), required=False)
    seed = secrets.randbits(32) if seed is None else \
        bounded_int(seed, "seed", 0, 2 ** 63 - 1)
    top_p = request_field(body, "top_p", "", (int, float), required=False, default=1)
    if top_p != 1:
        raise ApiError(400, "top_p", "top_p is not supported; use top_k")
    n = request_field(body, "n", "", (int, float), required=False, default=1)
    if n != 1:
        raise ApiError(400, "n", f"n must be 1, got {n}")
    stream = request_field(body, "stream", "", bool, required=False, default=False)
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
        from mmcourse.vlm.model import model_parts

        self.model = model
        self.parts = model_parts(model)
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

        from mmcourse.vlm.decode import cached_decoder, choose_tokens

        decoder = cached_decoder(self.model)
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
                    chosen[row] = choose_tokens(scores[row:row + 1], generation.method,
                                                generation.k, generation.temperature, rngs[row])[0]
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
