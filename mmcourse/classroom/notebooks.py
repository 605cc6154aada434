"""For authors: strip TensorFlow's C++ start-up log lines from executed notebooks.

``import tensorflow`` prints lines such as ``I0000 00:00:... port.cc:153] oneDNN custom
operations are on...`` to stderr before its logging is initialised, so neither
``TF_CPP_MIN_LOG_LEVEL`` nor absl's settings silence them. A learner reads them as errors.
``make notebook`` runs ``python -m mmcourse.classroom.notebooks NOTEBOOK ...`` after executing a
notebook: it removes those lines from the stored stderr outputs (and an output left empty),
and keeps everything else. nbval never compares stderr, so nothing it checks changes.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

#: One C++ log line (severity, date, time, thread, file:line]) or absl's pre-init notice.
TF_LOG_LINE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to "
    r"STDERR|[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w.]+:\d+\] .*)$")


def strip_tensorflow_logs(notebook: dict) -> int:
    """Remove TensorFlow's C++ log lines from the stderr outputs of ``notebook`` (the
    parsed JSON), in place; return how many lines went."""
    removed = 0
    for cell in notebook.get("cells", []):
        kept_outputs = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                text = output["text"] if isinstance(output["text"], str) \
                    else "".join(output["text"])
                lines = text.splitlines(keepends=True)
                kept = [line for line in lines if not TF_LOG_LINE.match(line.rstrip("\n"))]
                removed += len(lines) - len(kept)
                if not kept:
                    continue
                output["text"] = kept
            kept_outputs.append(output)
        if "outputs" in cell:
            cell["outputs"] = kept_outputs
    return removed


def main(paths: list[str]) -> int:
    if not paths:
        print("usage: python -m mmcourse.classroom.notebooks NOTEBOOK.ipynb [...]", file=sys.stderr)
        return 2
    for path in map(Path, paths):
        try:
            notebook = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            print(f"error: cannot read notebook {path}: {error}", file=sys.stderr)
            return 1
        removed = strip_tensorflow_logs(notebook)
        if removed:
            path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n",
                            encoding="utf-8")
        print(f"{path}: removed {removed} TensorFlow log lines")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
