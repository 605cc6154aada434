"""``python -m mmcourse serve`` on notebook 08's stored captioner: the OpenAI-compatible chat
API over real HTTP, its text equal to ``vlm.generate``; streaming by server-sent events;
batched generation of requests with different settings; bad requests; a client that leaves
mid-stream. One server process for the module."""

import base64
import json
from concurrent.futures import ThreadPoolExecutor

import cv2
import keras
import pytest
import requests

from mmcourse import REPO_ROOT, vlm
from mmcourse.apps import serve_load
from mmcourse.data import scenes as data
from tests.serve_process import Server, assert_error, chat_content, sse_events

MODEL = REPO_ROOT / "docs" / "results" / "vlm_llava.keras"


@pytest.fixture(scope="module")
def images(course_data):
    return data.load_arrays("match", "attributes", "test")[0][:6]


@pytest.fixture(scope="module")
def model():
    return keras.saving.load_model(MODEL, safe_mode=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("chat") / "server.log"
    server = Server(["--model", MODEL, "--name", "llava", "--max-batch", "8",
                     "--batch-timeout-ms", "30"], log)
    yield server
    server.stop()


def _body(image, prompt=None, **settings):
    body = serve_load.chat_body(image, prompt, **settings)
    body["messages"].insert(0, {"role": "system", "content": "You caption images."})
    return {"model": "llava", **body}


def _generate(model, image, prompt="", max_tokens=None, temperature=0, top_k=None, seed=0):
    if max_tokens is None:  # the server's default: as many as the decoder's positions allow
        max_tokens = model.get_layer("embedding").max_length - len(prompt.split())
    if temperature == 0:
        return vlm.generate(model, image[None], prompt, max_length=max_tokens)[0]
    k = len(vlm.decoder_vocabulary()) - 3 if top_k is None else top_k
    return vlm.generate(model, image[None], prompt, max_length=max_tokens, method="top_k", k=k,
                        temperature=temperature, seed=seed)[0]


SETTINGS = [
    {"temperature": 0},
    {"temperature": 0, "max_tokens": 2},
    {"temperature": 2.0, "top_k": 5, "seed": 3},
    {"temperature": 1.0, "seed": 11},  # top_k left out: every token may be drawn
    {"temperature": 0.5, "top_k": 3, "seed": 7, "max_tokens": 4},
]


@pytest.mark.parametrize("settings", SETTINGS, ids=[json.dumps(s) for s in SETTINGS])
def test_chat_completion_equals_generate(server, model, images, settings):
    for image in images[:3]:
        response = server.post("/v1/chat/completions", json=_body(image, **settings))
        expected = _generate(model, image, **settings)
        assert chat_content(response) == expected
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == "llava"
    assert body["choices"][0]["message"]["role"] == "assistant"
    words = len(expected.split())
    assert body["usage"]["completion_tokens"] in (words, words + 1)  # + "[END]"
    assert body["choices"][0]["finish_reason"] == (
        "stop" if body["usage"]["completion_tokens"] == words + 1 else "length")


def test_a_text_part_is_the_start_of_the_caption(server, model, images):
    response = server.post("/v1/chat/completions",
                           json=_body(images[0], "there is a", temperature=0, max_tokens=5))
    assert chat_content(response) == _generate(model, images[0], "there is a", max_tokens=5)
    assert response.json()["usage"]["prompt_tokens"] == 4  # [START] and three words


def test_the_same_seed_gives_the_same_text_and_seeds_differ(server, images):
    texts = {seed: {chat_content(server.post("/v1/chat/completions", json=_body(
        image, temperature=3.0, seed=seed))) for image in images[:1] for _ in range(2)}
        for seed in range(6)}
    assert all(len(t) == 1 for t in texts.values())  # one text per seed
    assert len({t.pop() for t in texts.values()}) > 1


@pytest.mark.parametrize("settings", [SETTINGS[0], SETTINGS[2]])
def test_streaming_sends_one_word_per_event_and_ends_with_done(server, model, images,
                                                                settings):
    with server.post("/v1/chat/completions", json=_body(images[1], stream=True, **settings),
                     stream=True) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c["choices"][0]["delta"].get("content", "") for c in chunks[1:]]
    expected = _generate(model, images[1], **settings)
    assert "".join(deltas) == expected
    assert len([d for d in deltas if d]) == len(expected.split())  # one word per event
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_concurrent_requests_with_different_settings_are_batched(server, model, images):
    cases = [(images[i % 6], SETTINGS[i % len(SETTINGS)]) for i in range(16)]
    before = server.get("/health").json()
    with ThreadPoolExecutor(16) as pool:
        texts = list(pool.map(lambda case: chat_content(server.post(
            "/v1/chat/completions", json=_body(case[0], **case[1]))), cases))
    after = server.get("/health").json()
    for (image, settings), got in zip(cases, texts, strict=True):
        assert got == _generate(model, image, **settings)
    assert after["batched_items"] - before["batched_items"] == 16
    assert after["batches"] - before["batches"] < 16  # some generations shared a batch
    assert after["largest_batch"] <= 8


def test_rows_batched_together_each_sample_with_their_own_seed(model, images):
    """One batch of generations, as the batcher hands it to ``ChatModel.run``: each row
    draws from ``default_rng`` of its own seed, so each text equals ``vlm.generate`` of that
    request alone (a batch sharing the first row's generator fails this)."""
    from mmcourse.apps.serve_chat import ChatModel, Generation

    served = ChatModel(model)
    seeds, images_used = [5, 6, 7, 8], [images[0], images[0], images[3], images[4]]
    generations = [Generation(image, [], 8, "top_k", served.allowed, 3.0, seed)
                   for image, seed in zip(images_used, seeds, strict=True)]
    got = [" ".join(served.words(tokens)) for tokens in served.run(generations)]
    expected = [_generate(model, image, max_tokens=8, temperature=3.0, seed=seed)
                for image, seed in zip(images_used, seeds, strict=True)]
    assert got == expected
    assert got[0] != got[1]  # the same image: only the seeds differ, and so do the texts


def _png_header(width, height):
    import struct
    import zlib

    chunk = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + \
        struct.pack(">I", zlib.crc32(chunk))


def _with_image_url(url):
    return {"model": "llava", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}]}]}


def _data(raw):
    return "data:image/png;base64," + base64.b64encode(raw).decode("ascii")


BAD_CHAT = [
    # (name, body, status, param, words of the message)
    ("missing messages", {"model": "llava"}, 400, "messages", ["missing"]),
    ("no user message", {"messages": [{"role": "system", "content": "hi"}]}, 400, "messages",
     ["role 'user'"]),
    ("content a string", {"messages": [{"role": "user", "content": "describe"}]}, 400,
     "messages[0].content", ["image_url part"]),
    ("no image", {"messages": [{"role": "user", "content": [{"type": "text",
                                                             "text": "a"}]}]}, 400,
     "messages[0].content", ["no image_url part"]),
    ("an http url", _with_image_url("http://example.com/cat.png"), 400,
     "messages[0].content[0].image_url.url", ["data URL", "fetches nothing"]),
    ("not an image", _with_image_url(_data(b"just some text")), 400,
     "messages[0].content[0].image_url", ["not a PNG, JPEG"]),
    ("truncated png", "TRUNCATED", 400, "messages[0].content[0].image_url", ["cannot decode"]),
    ("huge image", _with_image_url(_data(_png_header(40000, 40000))), 400,
     "messages[0].content[0].image_url", ["40000x40000", "refused before decoding"]),
    ("unknown part", {"messages": [{"role": "user", "content": [{"type": "audio"}]}]}, 400,
     "messages[0].content[0].type", ["'text' or 'image_url'"]),
    ("empty text", "EMPTY_TEXT", 400, "messages[0].content[0].text", ["is empty"]),
    ("million characters", "LONG_TEXT", 400, "messages[0].content[0].text",
     ["1,000,000 characters"]),
    ("unknown words", "UNKNOWN_WORDS", 400, "messages[0].content[0].text",
     ["unknown: ['describe', 'this', 'picture']", "Leave the text part out"]),
    ("wrong model", "WRONG_MODEL", 404, "model", ["'gpt-4o'", "serves 'llava'"]),
    ("max_tokens 0", "MAX_TOKENS_0", 400, "max_tokens", ["from 1 to 8, got 0"]),
    ("max_tokens 1e9", "MAX_TOKENS_HUGE", 400, "max_tokens", ["from 1 to 8, got 1000000000"]),
    ("max_tokens 2.5", "MAX_TOKENS_FRACTION", 400, "max_tokens", ["whole number"]),
    ("negative temperature", "COLD", 400, "temperature", ["from 0 to 100"]),
    ("top_k 0", "TOP_K_0", 400, "top_k", ["from 1 to"]),
    ("top_p", "TOP_P", 400, "top_p", ["not supported; use top_k"]),
    ("stream not a bool", "STREAM_YES", 400, "stream", ["must be bool"]),
    ("negative seed", "SEED", 400, "seed", ["from 0"]),
]


def _bad_body(kind, image):
    good = _body(image)
    if isinstance(kind, dict):
        return kind
    if kind == "TRUNCATED":
        png = cv2.imencode(".png", image)[1].tobytes()
        return _with_image_url(_data(png[:len(png) // 2]))
    text = {"EMPTY_TEXT": "", "LONG_TEXT": "a " * 500_000, "UNKNOWN_WORDS": "Describe this "
            "picture"}
    if kind in text:
        return {"messages": [{"role": "user", "content": [{"type": "text", "text": text[kind]},
                                                          *good["messages"][1]["content"]]}]}
    settings = {"WRONG_MODEL": {"model": "gpt-4o"}, "MAX_TOKENS_0": {"max_tokens": 0},
                "MAX_TOKENS_HUGE": {"max_tokens": 10**9}, "MAX_TOKENS_FRACTION": {
                    "max_tokens": 2.5}, "COLD": {"temperature": -1}, "TOP_K_0": {"top_k": 0},
                "TOP_P": {"top_p": 0.9}, "STREAM_YES": {"stream": "yes"}, "SEED": {"seed": -5}}
    return {**good, **settings[kind]}


@pytest.mark.parametrize(("body", "status", "param", "needles"),
                         [case[1:] for case in BAD_CHAT], ids=[c[0] for c in BAD_CHAT])
def test_bad_requests_get_a_4xx_json_error_naming_the_field(server, images, body, status,
                                                            param, needles):
    assert_error(server.post("/v1/chat/completions", json=_bad_body(body, images[0])), status,
                 param, *needles)
    assert chat_content(server.post("/v1/chat/completions", json=_body(images[0], temperature=0)))


def test_not_json_and_a_wrong_path(server, images):
    assert_error(server.post("/v1/chat/completions", data=b"\xff\xfe not json"), 400, "body",
                 "not JSON")
    assert server.post("/v1/completions", json={}).status_code == 404
    assert chat_content(server.post("/v1/chat/completions", json=_body(images[0], temperature=0)))


def test_a_client_that_leaves_mid_stream_does_not_stop_the_server(server, model, images):
    for _ in range(3):
        response = requests.post(server.url + "/v1/chat/completions", stream=True, timeout=60,
                                 json=_body(images[2], stream=True, temperature=0))
        first = next(response.iter_lines())
        assert first.startswith(b"data: ")
        response.close()  # gone after the first event
    assert chat_content(server.post("/v1/chat/completions", json=_body(images[2], temperature=0))) \
        == _generate(model, images[2])
    assert server.process.poll() is None
