"""Regenerates docs/results/quantize_table.json: the tiny PaliGemma preset of notebook 11
(docs/results/tiny_paligemma_attributes) in float32 and after ``model.quantize("int8")``
and ``model.quantize("int4")`` (Keras' default int4: blocks of 128 inputs, a scale and a
zero point each), captioning the 500 test scenes of the attributes level
(``quantize.compare_generators``): weight bytes, seconds per generated token (CPU, one
batch of 500 after a warm-up; noisy on a shared machine) and exact match, with the change
of exact match and its 95% confidence interval over the paired captions, for each
quantized mode (in its row; the top-level ``change`` is int8's).

Run from the repository root (a few minutes on 2 CPU cores):
    nice -n 19 .venv/bin/python docs/results/make_quantize_table.py
"""

import json
import os
from pathlib import Path

from mmcourse.apps import quantize
from mmcourse.data import scenes as data

HERE = Path(__file__).parent
TABLE = HERE / "quantize_table.json"
PRESET = HERE / "tiny_paligemma_attributes"


def main():
    images, captions, _ = data.load_arrays("retrieval", "attributes", "test")
    result = quantize.compare_generators(PRESET, images, captions, modes=quantize.MODES)
    result["preset"] = str(PRESET.relative_to(HERE.parent.parent))
    partial = TABLE.with_suffix(".partial")  # atomic: a stop keeps the old table
    partial.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(partial, TABLE)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
