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
import json
import secrets
import time
from pathlib import Path

import numpy as np

from mmcourse.apps import batching
from mmcourse.apps.predictors import model_kind
from mmcourse.apps.serve_chat import ChatModel, Generation
from mmcourse.apps.serve_clip import ClipModel
from mmcourse.apps.serve_fields import ApiError, Limits, bounded_int, check_text, request_field
from mmcourse.apps.serve_hub_chat import HubChatModel, load_hub_preset
from mmcourse.apps.serve_tfserving import PredictModel
from mmcourse.data import text


def load_served(path, index=None, limits: Limits | None = None):
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
        model_kind(path)  # a ValueError unless it holds saved_model.pb
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
    from mmcourse.apps import raw_model

    raw_model.register_keras_objects()
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
    """The FastAPI application for a model of ``load_served``. Introduced in notebook 10."""
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
                model = request_field(body, "model", "", str, required=False, default=name)
                if model != name:
                    raise ApiError(404, "model", f"model {model!r} is not served here; this "
                                                 f"server serves {name!r}", "not_found_error")
                query = check_text(request_field(body, "query", "", str), "query", limits)
                top_k = bounded_int(request_field(body, "top_k", "", (int, float),
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
