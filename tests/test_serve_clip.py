"""``python -m mmcourse serve`` on notebook 07's stored CLIP model: ``/v1/embeddings`` equal to
``clip.embed_texts`` and ``clip.embed_images``, ``/v1/search`` over an index of the test
images equal to a brute-force ranking, and bad requests. One server process for the module."""

import base64
import json

import cv2
import keras
import numpy as np
import pytest

from mmcourse import REPO_ROOT, clip
from mmcourse.data import scenes as data
from mmcourse.data import text
from tests.serve_process import Server, assert_error

MODEL = REPO_ROOT / "docs" / "results" / "clip_attributes.keras"
QUERIES = ["a small red circle", "a large blue square", "a small green triangle",
           "a large yellow circle"]


@pytest.fixture(scope="module")
def index_folder(course_data):
    return data.DATA_DIR / "attributes" / "test" / "images"


@pytest.fixture(scope="module")
def model():
    return keras.saving.load_model(MODEL, safe_mode=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory, index_folder):
    log = tmp_path_factory.mktemp("clip") / "server.log"
    server = Server(["--model", MODEL, "--name", "clip", "--index", index_folder,
                     "--max-batch", "16"], log)
    yield server
    server.stop()


def _url(path):
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _vectors(response):
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    assert [item["index"] for item in body["data"]] == list(range(len(body["data"])))
    return np.array([item["embedding"] for item in body["data"]])


def _text_ids(model, texts):
    return text.vectorize(texts)  # as notebook 07 does


def test_text_embeddings_equal_embed_texts(server, model):
    got = _vectors(server.post("/v1/embeddings", json={"model": "clip", "input": QUERIES}))
    expected = clip.embed_texts(model, _text_ids(model, QUERIES))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    one = _vectors(server.post("/v1/embeddings", json={"input": QUERIES[1]}))
    np.testing.assert_allclose(one, expected[1:2], atol=1e-5)


def test_image_embeddings_equal_embed_images_in_request_order(server, model, index_folder):
    paths = sorted(index_folder.glob("*.png"))[:3]
    inputs = [{"image_url": {"url": _url(paths[0])}}, QUERIES[0],
              {"image_url": {"url": _url(paths[1])}}, {"image_url": {"url": _url(paths[2])}}]
    got = _vectors(server.post("/v1/embeddings", json={"input": inputs}))
    pixels = np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths])
    images = clip.embed_images(model, pixels)
    np.testing.assert_allclose(got[[0, 2, 3]], images, atol=1e-5)
    np.testing.assert_allclose(got[1], clip.embed_texts(model, _text_ids(model, QUERIES[:1]))[0],
                               atol=1e-5)


def test_search_equals_brute_force_over_the_folder(server, model, index_folder):
    paths = sorted(index_folder.glob("*.png"))
    pixels = np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths])
    images = clip.embed_images(model, pixels)
    queries = clip.embed_texts(model, _text_ids(model, QUERIES))
    for query, vector in zip(QUERIES, queries, strict=True):
        response = server.post("/v1/search", json={"model": "clip", "query": query, "top_k": 5})
        assert response.status_code == 200, response.text
        found = response.json()["data"]
        similarity = images @ vector
        best = np.argsort(-similarity, kind="stable")[:5]
        assert [f["rank"] for f in found] == [1, 2, 3, 4, 5]
        np.testing.assert_allclose([f["score"] for f in found], similarity[best], atol=1e-5)
        assert [f["image"] for f in found] == [paths[i].name for i in best]


def test_search_finds_images_whose_caption_is_the_query(server, index_folder):
    records = [json.loads(line) for line in (index_folder.parent / "retrieval.jsonl")
               .read_text().splitlines()]
    caption = {r["image"].removeprefix("images/"): r["text"] for r in records}
    hits = []
    for query in QUERIES:
        found = server.post("/v1/search", json={"query": query, "top_k": 5}).json()["data"]
        hits.append(np.mean([caption[f["image"]] == query for f in found]))
    # chance: about 1 in 24 test captions is any one of the queries
    assert np.mean(hits) >= 0.5, hits


BAD = [
    # (name, path, body, status, param, words)
    ("missing input", "/v1/embeddings", {"model": "clip"}, 400, "input", ["missing"]),
    ("empty input list", "/v1/embeddings", {"input": []}, 400, "input", ["1 to 256"]),
    ("empty text", "/v1/embeddings", {"input": ["a red circle", " "]}, 400, "input[1]",
     ["is empty"]),
    ("million characters", "/v1/embeddings", {"input": "a" * 10**6}, 400, "input",
     ["1,000,000 characters"]),
    ("a number", "/v1/embeddings", {"input": [3]}, 400, "input[0]", ["must be a text or"]),
    ("not an image", "/v1/embeddings", {"input": [{"image_url": {
        "url": "data:image/png;base64," + base64.b64encode(b"plain text").decode()}}]}, 400,
     "input[0].image_url", ["not a PNG, JPEG"]),
    ("wrong model", "/v1/embeddings", {"model": "ada-002", "input": "a"}, 404, "model",
     ["'ada-002'"]),
    ("missing query", "/v1/search", {"top_k": 3}, 400, "query", ["missing"]),
    ("empty query", "/v1/search", {"query": ""}, 400, "query", ["is empty"]),
    ("top_k 0", "/v1/search", {"query": "a red circle", "top_k": 0}, 400, "top_k",
     ["from 1 to 500, got 0"]),
    ("top_k 1e9", "/v1/search", {"query": "a red circle", "top_k": 10**9}, 400, "top_k",
     ["from 1 to 500"]),
    ("wrong model search", "/v1/search", {"model": "x", "query": "a"}, 404, "model", ["'x'"]),
]


@pytest.mark.parametrize(("path", "body", "status", "param", "needles"),
                         [case[1:] for case in BAD], ids=[c[0] for c in BAD])
def test_bad_requests_get_a_4xx_json_error_naming_the_field(server, path, body, status, param,
                                                            needles):
    assert_error(server.post(path, json=body), status, param, *needles)
    assert server.post("/v1/search", json={"query": "a red circle"}).status_code == 200


def test_not_json(server):
    assert_error(server.post("/v1/search", data=b"query=a"), 400, "body", "not JSON")
    assert server.get("/health").json()["kind"] == "clip"
