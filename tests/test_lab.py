"""`make lab` serves JupyterLab on notebooks/: the server starts and lists every notebook.

Runs the same command as the Makefile's `lab` target (tests/lab_server.py), rooted at
notebooks/, on a free loopback port with a random token, and talks to it over HTTP.
"""

import json

import pytest

from mmcourse.paths import NOTEBOOKS_DIR
from tests.lab_server import request, running_lab


@pytest.fixture
def lab_server(tmp_path):
    with running_lab(NOTEBOOKS_DIR, tmp_path) as (base, token):
        yield base, token


def test_lab_serves_and_lists_every_notebook(lab_server):
    base, token = lab_server
    status, body = request(f"{base}/api/contents", token)
    assert status == 200
    listed = {item["name"] for item in json.loads(body)["content"] if item["type"] == "notebook"}
    expected = {path.name for path in NOTEBOOKS_DIR.glob("*.ipynb")}
    assert expected, "no notebooks in notebooks/"
    assert expected <= listed

    status, page = request(f"{base}/lab?token={token}", token)
    assert status == 200 and b"JupyterLab" in page
