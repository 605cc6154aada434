#!/bin/sh
# Regenerates docs/results/relations_table.jsonl: relational models and a fusion baseline on
# the relations level, scored per question type, one JSON object per line as printed by
# `python -m mmcourse train --json` (with `history` and `accuracy_by_type`).
# Run from the repository root:
#     sh docs/results/make_relations_table.sh
# qa: the anchored transformer, the paper's baseline (cnn_mlp), concat (notebook 04's
# default) and the relation network, with seeds 0, 1 and 2. match: the anchored transformer
# and cnn_mlp with seed 0. About 80 minutes on 2 CPU cores. (The transformer taught
# where the objects are has its own table: make_transformer_table.py.) It keeps the seed-0
# anchored qa model as docs/results/relations_anchored_qa.keras, which notebook 06 loads; training
# logs go to docs/results/relations_table.log (not committed).
set -e
PY=${PY:-.venv/bin/python}
out=docs/results/relations_table.jsonl
log=docs/results/relations_table.log
runs=$(mktemp -d)
: > "$out.tmp"
: > "$log"
run() {  # task fusion seed
  "$PY" -m mmcourse train --task "$1" --fusion "$2" --level relations --seed "$3" \
    --run-dir "$runs/$1-$2-$3" --json >> "$out.tmp" 2>> "$log"
}
for seed in 0 1 2; do
  run qa anchored "$seed"
  run qa cnn_mlp "$seed"
done
for seed in 0 1 2; do
  run qa concat "$seed"
  run qa relation_network "$seed"
done
run match anchored 0
run match cnn_mlp 0
cp "$runs/qa-anchored-0/model.keras" docs/results/relations_anchored_qa.keras
mv "$out.tmp" "$out"
rm -rf "$runs"
