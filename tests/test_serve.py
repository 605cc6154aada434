"""``python -m mmcourse serve`` on an exported folder: TensorFlow Serving's REST API over real
HTTP (status, metadata, :predict), answers equal to ``python -m mmcourse predict``, dynamic
batching, every bad request a 4xx JSON error that names its field, and SIGTERM finishing the
requests in flight. One server process for the module."""

import base64
import json
import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from mmcourse import REPO_ROOT
from mmcourse.apps import deploy, owndata
from mmcourse.data import scans
from tests.serve_process import ENV, Server, assert_error

TEXTS = ["a small red circle", "一个小的红色圆形", "Ａ LARGE blue square!", "a green, triangle",
         "red", "a large yellow square"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    folder = scans.write_shapes_folder(root / "shapes", count=60, seed=0)
    owndata.train_folder(folder, epochs=1, seed=0, save=root / "m.keras", log=None)
    deploy.export(root / "m.keras", root / "saved")
    images = sorted((folder / "images").glob("*.png"))[:len(TEXTS)]
    return {"root": root, "saved": root / "saved", "images": images}


@pytest.fixture(scope="module")
def server(exported):
    server = Server(["--model", exported["saved"], "--name", "shapes", "--max-batch", "8",
                     "--batch-timeout-ms", "20", "--max-body-mb", "2"],
                    exported["root"] / "server.log")
    yield server
    server.stop()


def _instances(images, texts):
    return [{"image": {"b64": base64.b64encode(p.read_bytes()).decode("ascii")}, "text": t}
            for p, t in zip(images, texts, strict=True)]


def test_health_status_and_metadata(server):
    health = server.get("/health").json()
    assert health["status"] == "ok" and health["kind"] == "tfserving"
    assert health["model"] == "shapes"
    status = server.get("/v1/models/shapes").json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    signature = server.get("/v1/models/shapes/metadata").json()[
        "metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert {k: v["dtype"] for k, v in signature["inputs"].items()} == \
        {"image": "DT_STRING", "text": "DT_STRING"}
    assert {k: v["dtype"] for k, v in signature["outputs"].items()} == \
        {"probability": "DT_FLOAT"}
    assert signature["inputs"]["image"]["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]


def test_predict_equals_the_predict_command(server, exported):
    csv = exported["images"][0].parent.parent / "pairs.csv"
    lines = ["image,text"] + [f"images/{p.name},\"{t}\"" for p, t in zip(exported["images"],
                                                                        TEXTS, strict=True)]
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    completed = subprocess.run([sys.executable, "-m", "mmcourse", "predict", "--model",
                                str(exported["saved"]), "--csv", str(csv), "--json"],
                               capture_output=True, text=True, cwd=REPO_ROOT, env=ENV,
                               timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    expected = [row["probability"] for row in json.loads(completed.stdout)["predictions"]]
    response = server.post("/v1/models/shapes:predict",
                           json={"instances": _instances(exported["images"], TEXTS)})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    # one output: bare values, as TensorFlow Serving answers for a single-output signature
    assert all(isinstance(p, float) for p in predictions)
    np.testing.assert_allclose(predictions, expected, atol=2e-6)  # the command rounds to 6
    assert len(set(np.round(expected, 3))) > 1  # different inputs, different answers


def test_concurrent_requests_are_batched_and_answered_individually(server, exported):
    single = [server.post("/v1/models/shapes:predict", json={
        "instances": _instances([p], [t])}).json()["predictions"][0]
        for p, t in zip(exported["images"], TEXTS, strict=True)]
    before = server.get("/health").json()

    def call(index):
        body = {"instances": _instances([exported["images"][index % 6]], [TEXTS[index % 6]])}
        return index, server.post("/v1/models/shapes:predict", json=body).json()

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(call, range(32)))
    for index, answer in answers:
        assert answer["predictions"] == pytest.approx([single[index % 6]], abs=1e-6)
    after = server.get("/health").json()
    assert after["batched_items"] - before["batched_items"] == 32
    assert after["batches"] - before["batches"] < 32  # some requests shared a batch
    assert after["largest_batch"] <= 8


def _png(width, height, body=b""):
    """A PNG signature and IHDR chunk claiming ``width`` x ``height`` (no pixels follow)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + \
        struct.pack(">I", zlib.crc32(chunk)) + body


def _b64(data):
    return base64.b64encode(data).decode("ascii")


BAD_PREDICT = [
    # (name, body or raw bytes, status, field, words the message holds)
    ("not json", b"{instances: oops", 400, "body", ["not JSON"]),
    ("a list body", [], 400, "body", ["must be a JSON object"]),
    ("no instances", {"inputs": {"image": []}}, 400, "inputs", ["row format"]),
    ("missing instances", {"signature_name": "serving_default"}, 400, "instances",
     ["missing"]),
    ("empty instances", {"instances": []}, 400, "instances", ["1 to 256"]),
    ("missing text", {"instances": [{"image": {"b64": "GOOD"}}]}, 400, "instances[0].text",
     ["missing"]),
    ("missing image", {"instances": [{"text": "a red circle"}]}, 400, "instances[0].image",
     ["missing"]),
    ("image not b64 object", {"instances": [{"image": "abc", "text": "x"}]}, 400,
     "instances[0].image", ["must be dict"]),
    ("bad base64", {"instances": [{"image": {"b64": "%%%"}, "text": "x"}]}, 400,
     "instances[0].image.b64", ["not valid base64"]),
    ("not an image", {"instances": [{"image": {"b64": _b64(b"hello, world")}, "text": "x"}]},
     400, "instances[0].image", ["not a PNG, JPEG"]),
    ("truncated png", {"instances": [{"image": {"b64": "TRUNCATED"}, "text": "x"}]}, 400,
     "instances[0].image", ["cannot decode"]),
    ("huge image", {"instances": [{"image": {"b64": _b64(_png(40000, 40000))}, "text": "x"}]},
     400, "instances[0].image", ["40000x40000", "refused before decoding"]),
    ("empty text", {"instances": [{"image": {"b64": "GOOD"}, "text": "  "}]}, 400,
     "instances[0].text", ["is empty"]),
    ("text not a string", {"instances": [{"image": {"b64": "GOOD"}, "text": 3}]}, 400,
     "instances[0].text", ["must be str"]),
    ("million characters", {"instances": [{"image": {"b64": "GOOD"}, "text": "a" * 10**6}]},
     400, "instances[0].text", ["1,000,000 characters", "limit of 1,000"]),
    ("second instance bad", {"instances": [{"image": {"b64": "GOOD"}, "text": "red"},
                                           {"image": {"b64": "GOOD"}, "text": ""}]}, 400,
     "instances[1].text", ["is empty"]),
    ("wrong signature", {"signature_name": "other", "instances": []}, 400, "signature_name",
     ["'serving_default'"]),
]


@pytest.mark.parametrize(("body", "status", "param", "needles"),
                         [case[1:] for case in BAD_PREDICT], ids=[c[0] for c in BAD_PREDICT])
def test_bad_requests_get_a_4xx_json_error_naming_the_field(server, exported, body, status,
                                                            param, needles):
    good = exported["images"][0].read_bytes()
    if isinstance(body, bytes):
        response = server.post("/v1/models/shapes:predict", data=body,
                               headers={"Content-Type": "application/json"})
    else:
        payload = json.dumps(body).replace("GOOD", _b64(good)).replace(
            "TRUNCATED", _b64(good[:len(good) // 2]))
        response = server.post("/v1/models/shapes:predict", data=payload)
    assert_error(response, status, param, *needles, openai=False)
    # and the server goes on serving
    again = server.post("/v1/models/shapes:predict", json={
        "instances": _instances(exported["images"][:1], TEXTS[:1])})
    assert again.status_code == 200 and len(again.json()["predictions"]) == 1


def test_wrong_model_name_wrong_verb_and_a_body_too_large(server, exported):
    body = {"instances": _instances(exported["images"][:1], TEXTS[:1])}
    assert_error(server.post("/v1/models/other:predict", json=body), 404, "model", "'other'",
                 "serves 'shapes'", openai=False)
    assert_error(server.get("/v1/models/other"), 404, "model", "'other'", openai=False)
    assert_error(server.get("/v1/models/other/metadata"), 404, "model", openai=False)
    assert_error(server.post("/v1/models/shapes:classify", json=body), 404, "url",
                 ":predict", openai=False)
    big = json.dumps({"instances": [], "padding": "x" * 3_000_000})
    assert_error(server.post("/v1/models/shapes:predict", data=big), 413, "body",
                 "over the limit of 2,000,000 bytes", openai=False)
    assert server.post("/v1/models/shapes:predict", json=body).status_code == 200


def test_sigterm_finishes_the_requests_in_flight_then_exits_0(exported):
    server = Server(["--model", exported["saved"], "--max-batch", "64",
                     "--batch-timeout-ms", "1500"], exported["root"] / "sigterm.log")
    body = {"instances": _instances(exported["images"], TEXTS)}
    answers, answered_at = [], []

    def call():
        response = requests.post(f"{server.url}/v1/models/mmcourse:predict", json=body,
                                 timeout=60)
        answered_at.append(time.monotonic())
        answers.append(response)

    try:
        threads = [threading.Thread(target=call) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)  # the requests wait in the batcher for 1.5 s
        signalled_at = time.monotonic()
        status = server.terminate()
        for thread in threads:
            thread.join(60)
    finally:
        server.stop()
    assert status == 0, server.log()
    assert len(answers) == 4 and all(a.status_code == 200 for a in answers)
    assert min(answered_at) > signalled_at  # they were in flight when the signal came
    assert all(len(a.json()["predictions"]) == len(TEXTS) for a in answers)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/health", timeout=5)
