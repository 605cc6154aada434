#!/bin/sh
# Regenerates docs/results/fusion_table.jsonl: every fusion method on both levels of the
# match task, seed 0, default epochs (15 on each level), one JSON object per
# line as printed by `python -m mmcourse train --json`. Run from the repository root:
#     sh docs/results/make_fusion_table.sh
# Takes about 15 minutes on 2 CPU cores. Notebook 04 reads the result.
set -e
PY=${PY:-.venv/bin/python}
out=docs/results/fusion_table.jsonl
: > "$out.tmp"
for level in attributes relations; do
  for fusion in image text concat multiply sum gated film bilinear lowrank attention; do
    "$PY" -m mmcourse train --task match --fusion "$fusion" --level "$level" --seed 0 \
      --json >> "$out.tmp"
  done
done
mv "$out.tmp" "$out"
