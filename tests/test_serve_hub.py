"""``python -m mmcourse serve`` on the tiny KerasHub PaliGemma preset (notebooks 11 and 12):
the OpenAI-compatible chat API over real HTTP, its text equal to KerasHub's own
``causal_lm.generate`` with the same sampler (greedy, ``TopKSampler``, ``RandomSampler``) and
seed; streaming whose events add up to the answer; concurrent greedy requests batched and
equal to one-at-a-time answers; bad requests; a client that leaves mid-stream. One server
process for the module."""

import base64
import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import cv2
import keras_hub
import pytest
import requests

from mmcourse import REPO_ROOT
from mmcourse.apps import finetune, serve, serve_load
from mmcourse.data import scenes as data
from tests.serve_process import Server, assert_error, chat_content, sse_events

PRESET = REPO_ROOT / "docs" / "results" / "tiny_paligemma_pretrained_attributes"
PROMPT = "caption en\n"  # <bos> and two pieces: 3 of the preset's 16 positions


@pytest.fixture(scope="module")
def images(course_data):
    return data.load_arrays("match", "attributes", "test")[0][:8]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("hub") / "server.log"
    server = Server(["--model", PRESET, "--name", "paligemma", "--max-batch", "8",
                     "--batch-timeout-ms", "50"], log)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def model():
    model = finetune.load_with_adapter(PRESET)
    model.compile(sampler="greedy")
    return model


def _generate(model, image, max_tokens=None, temperature=0, top_k=None, seed=0,
              prompt=PROMPT):
    """What a learner writes: KerasHub's generate after ``compile(sampler=...)`` with a new
    sampler of these settings (greedy: the one compiled already, to save a trace)."""
    if temperature != 0:
        model.compile(sampler=keras_hub.samplers.RandomSampler(
            seed=seed, temperature=temperature) if top_k is None else
            keras_hub.samplers.TopKSampler(k=top_k, seed=seed, temperature=temperature))
    elif not isinstance(model.sampler, keras_hub.samplers.GreedySampler):
        model.compile(sampler="greedy")
    max_length = None if max_tokens is None else 3 + max_tokens
    return model.generate({"images": image[None], "prompts": [prompt]}, max_length=max_length,
                          strip_prompt=True)[0]


def _body(image, prompt="caption en", **settings):
    return {"model": "paligemma", **serve_load.chat_body(image, prompt, **settings)}


def _chat(server, image, **options):
    return chat_content(server.post("/v1/chat/completions", json=_body(image, **options)))


def test_health_and_the_models_endpoints(server):
    health = server.get("/health").json()
    assert (health["status"], health["kind"], health["model"]) == ("ok", "chat", "paligemma")
    assert [m["id"] for m in server.get("/v1/models").json()["data"]] == ["paligemma"]
    card = server.get("/v1/models/paligemma").json()
    assert (card["id"], card["object"]) == ("paligemma", "model")
    assert_error(server.get("/v1/models/gpt-4o"), 404, "model", "'gpt-4o'", "serves 'paligemma'")


GREEDY = [{"temperature": 0}, {"temperature": 0, "max_tokens": 2}]


@pytest.mark.parametrize("settings", GREEDY, ids=[json.dumps(s) for s in GREEDY])
def test_greedy_chat_equals_keras_hub_generate(server, model, images, settings):
    for image in images[:3]:
        response = server.post("/v1/chat/completions", json=_body(image, **settings))
        assert chat_content(response) == _generate(model, image, **settings)
    body = response.json()
    assert (body["object"], body["model"]) == ("chat.completion", "paligemma")
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["usage"]["prompt_tokens"] == 3  # <bos>, "caption", "en" (no piece for "\n")
    completion, limit = body["usage"]["completion_tokens"], settings.get("max_tokens", 13)
    finish = body["choices"][0]["finish_reason"]
    assert finish == ("length" if limit == 2 else "stop")  # captions are 4-5 pieces
    # stopped by max_tokens: all of them; by <eos>: the caption's pieces and <eos>
    assert completion == limit if finish == "length" else 3 < completion <= limit


def test_the_prompt_gets_its_newline_and_defaults_to_caption_en(server, model, images):
    """The answers with and without the newline, and without a text part, are the answer to
    "caption en\n". (The tiny preset's tokenizer has no piece for a newline, so leaving it
    out changes nothing here; for a real PaliGemma tokenizer it does.)"""
    expected = _generate(model, images[3])
    for prompt in ("caption en", "caption en\n", None):
        response = server.post("/v1/chat/completions",
                               json=_body(images[3], prompt, temperature=0))
        assert chat_content(response) == expected
        assert response.json()["usage"]["prompt_tokens"] == 3  # <bos> "caption" "en"


SAMPLED = [{"temperature": 2.0, "top_k": 5, "seed": 3},
           {"temperature": 1.5, "seed": 4}]  # no top_k: RandomSampler, every token


@pytest.mark.parametrize("settings", SAMPLED, ids=[json.dumps(s) for s in SAMPLED])
def test_sampled_chat_equals_generate_with_that_sampler_and_seed(server, model, images,
                                                                  settings):
    texts = [[_chat(server, image, **settings) for _ in range(2)] for image in images[:3]]
    assert all(first == second for first, second in texts)  # the seed decides, not history
    assert texts[0][0] == _generate(model, images[0], **settings)  # (a new sampler: a trace)


def test_seeds_and_temperatures_change_the_sample(server, images):
    hot = {seed: _chat(server, images[0], temperature=5.0, top_k=5, seed=seed)
           for seed in range(4)}
    assert len(set(hot.values())) > 1
    cold = _chat(server, images[0], temperature=0.01, top_k=5, seed=0)
    assert cold == _chat(server, images[0], temperature=0)  # ~greedy when nearly cold


@pytest.mark.parametrize("settings", [GREEDY[0], SAMPLED[0]])
def test_streamed_events_add_up_to_the_answer(server, images, settings):
    answer = server.post("/v1/chat/completions", json=_body(images[4], **settings)).json()
    with server.post("/v1/chat/completions", json=_body(images[4], stream=True, **settings),
                     stream=True) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c["choices"][0]["delta"].get("content", "") for c in chunks[1:]]
    assert "".join(deltas) == answer["choices"][0]["message"]["content"]
    finish = answer["choices"][0]["finish_reason"]
    assert chunks[-1]["choices"][0]["finish_reason"] == finish
    pieces = answer["usage"]["completion_tokens"] - (finish == "stop")  # <eos> adds no text
    assert len([d for d in deltas if d]) == pieces  # one event per token


def test_concurrent_requests_are_batched_and_equal_one_at_a_time(server, images):
    """Greedy requests share generate calls (each cut to its own max_tokens); sampled ones
    run alone, so each still equals its answer alone."""
    cases = [(images[i % 8], {"temperature": 0, "max_tokens": [13, 2, 5, 8][i % 4]})
             for i in range(16)]
    cases += [(images[i], {"temperature": 2.0, "top_k": 5, "seed": i}) for i in range(4)]
    alone = [_chat(server, image, **settings) for image, settings in cases]
    before = server.get("/health").json()
    with ThreadPoolExecutor(len(cases)) as pool:
        texts = list(pool.map(lambda case: _chat(server, case[0], **case[1]), cases))
    after = server.get("/health").json()
    assert texts == alone
    assert after["batched_items"] - before["batched_items"] == len(cases)
    assert after["batches"] - before["batches"] < len(cases)  # some shared a generate call
    assert after["largest_batch"] <= 8


def _png_header(width, height):
    import struct
    import zlib

    chunk = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + \
        struct.pack(">I", zlib.crc32(chunk))


def _data(raw):
    return "data:image/png;base64," + base64.b64encode(raw).decode("ascii")


def _bad_body(kind, image):
    good = _body(image)
    if kind == "TRUNCATED":
        png = cv2.imencode(".png", image)[1].tobytes()
        return _with_url(_data(png[:len(png) // 2]))
    if kind == "NOT_IMAGE":
        return _with_url(_data(b"just some text"))
    if kind == "HUGE":
        return _with_url(_data(_png_header(40000, 40000)))
    if kind == "HTTP":
        return _with_url("http://example.com/cat.png")
    text = {"EMPTY_TEXT": "  ", "LONG_TEXT": "a " * 500_000,
            "LONG_PROMPT": "caption " * 20}
    if kind in text:
        return _body(image, text[kind])
    settings = {"WRONG_MODEL": {"model": "gpt-4o"}, "MAX_TOKENS_0": {"max_tokens": 0},
                "MAX_TOKENS_HUGE": {"max_tokens": 10**9}, "MAX_TOKENS_14": {"max_tokens": 14},
                "TOP_K_0": {"top_k": 0}, "TOP_K_BIG": {"top_k": 193},
                "TOP_P": {"top_p": 0.9}, "STREAM_YES": {"stream": "yes"}, "SEED": {"seed": -5},
                "HOT": {"temperature": 101}}
    return {**good, **settings[kind]}


def _with_url(url):
    return {"model": "paligemma", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "caption en"}, {"type": "image_url", "image_url": {"url": url}}]}]}


BAD = [
    # (name, body, status, param, words of the message)
    ("missing messages", {"model": "paligemma"}, 400, "messages", ["missing"]),
    ("content a string", {"messages": [{"role": "user", "content": "caption en"}]}, 400,
     "messages[0].content", ["image_url part"]),
    ("no image", {"messages": [{"role": "user", "content": [{"type": "text",
                                                             "text": "caption en"}]}]}, 400,
     "messages[0].content", ["no image_url part"]),
    ("an http url", "HTTP", 400, "messages[0].content[1].image_url.url", ["fetches nothing"]),
    ("not an image", "NOT_IMAGE", 400, "messages[0].content[1].image_url", ["not a PNG, JPEG"]),
    ("truncated png", "TRUNCATED", 400, "messages[0].content[1].image_url", ["cannot decode"]),
    ("huge image", "HUGE", 400, "messages[0].content[1].image_url",
     ["40000x40000", "refused before decoding"]),
    ("empty text", "EMPTY_TEXT", 400, "messages[0].content[0].text", ["is empty"]),
    ("million characters", "LONG_TEXT", 400, "messages[0].content[0].text",
     ["1,000,000 characters"]),
    ("prompt over the sequence", "LONG_PROMPT", 400, "messages[0].content[0].text",
     ["tokens long", "at most 14 fit", "sequence length of 16"]),
    ("wrong model", "WRONG_MODEL", 404, "model", ["'gpt-4o'", "serves 'paligemma'"]),
    ("max_tokens 0", "MAX_TOKENS_0", 400, "max_tokens", ["from 1 to 13, got 0"]),
    ("max_tokens 1e9", "MAX_TOKENS_HUGE", 400, "max_tokens", ["from 1 to 13, got 1000000000"]),
    ("max_tokens past the sequence", "MAX_TOKENS_14", 400, "max_tokens", ["from 1 to 13"]),
    ("top_k 0", "TOP_K_0", 400, "top_k", ["from 1 to 192"]),
    ("top_k over the vocabulary", "TOP_K_BIG", 400, "top_k", ["from 1 to 192, got 193"]),
    ("top_p", "TOP_P", 400, "top_p", ["not supported; use top_k"]),
    ("stream not a bool", "STREAM_YES", 400, "stream", ["must be bool"]),
    ("negative seed", "SEED", 400, "seed", ["from 0"]),
    ("temperature 101", "HOT", 400, "temperature", ["from 0 to 100"]),
]


@pytest.mark.parametrize(("body", "status", "param", "needles"),
                         [case[1:] for case in BAD], ids=[c[0] for c in BAD])
def test_bad_requests_get_a_4xx_json_error_naming_the_field(server, images, body, status,
                                                            param, needles):
    body = body if isinstance(body, dict) else _bad_body(body, images[0])
    assert_error(server.post("/v1/chat/completions", json=body), status, param, *needles)
    assert _chat(server, images[0], temperature=0)


def test_not_json(server, images):
    assert_error(server.post("/v1/chat/completions", data=b"\xff\xfe not json"), 400, "body",
                 "not JSON")
    assert _chat(server, images[0], temperature=0)


def test_a_client_that_leaves_mid_stream_does_not_stop_the_server(server, model, images):
    for _ in range(3):
        response = requests.post(server.url + "/v1/chat/completions", stream=True, timeout=60,
                                 json=_body(images[5], stream=True, temperature=0))
        assert next(response.iter_lines()).startswith(b"data: ")
        response.close()  # gone after the first event
    assert _chat(server, images[5], temperature=0) == _generate(model, images[5])
    assert server.process.poll() is None


def test_load_model_takes_a_paligemma_preset_folder_only(tmp_path):
    other = tmp_path / "other"
    shutil.copytree(PRESET, other)
    task = json.loads((other / "task.json").read_text())
    task["class_name"] = "GemmaCausalLM"
    (other / "task.json").write_text(json.dumps(task))
    with pytest.raises(ValueError, match="task.json names GemmaCausalLM.*PaliGemmaCausalLM"):
        serve.load_served(other)
    (other / "task.json").unlink()
    with pytest.raises(ValueError, match="names no task"):
        serve.load_served(other)
    with pytest.raises(ValueError, match="--index is for a CLIP model"):
        serve.load_served(PRESET, index=tmp_path)
