"""Write docs/results/serve_load.json: notebook 08's captioner served over HTTP on 127.0.0.1
with and without dynamic batching, at 1, 8 and 32 concurrent clients, three runs (notebook
10 plots it). Run from the repository root (about 5 minutes on 2 cores):

    python docs/results/make_serve_load.py
"""

import json
import os
import tempfile
from pathlib import Path

from mmcourse.apps import serve_load

OUT = Path(__file__).with_name("serve_load.json")

runs = [serve_load.load_figures() for _ in range(3)]
content = json.dumps({"model": "docs/results/vlm_llava.keras", "max_tokens": 8,
                      "batch_timeout_ms": 5, "runs": runs}, indent=1)
with tempfile.NamedTemporaryFile("w", dir=OUT.parent, delete=False, suffix=".tmp") as handle:
    handle.write(content + "\n")
os.replace(handle.name, OUT)  # atomic: an interrupted run leaves the old file
print(f"wrote {OUT}")
