#!/bin/sh
# Regenerates docs/results/fusion_seeds.jsonl: the attribute-level fusions that notebook 04
# ranks, over several seeds, one JSON object per line as printed by
# `python -m mmcourse train --json` (default 15 epochs, batch 64, Adam 2e-3).
# concat, gated, sum and multiply with seeds 0-4; film, bilinear, lowrank and attention with
# seeds 0-2. Run from the repository root:
#     sh docs/results/make_fusion_seeds.sh
# About 30 minutes on 2 shared CPU cores. Training logs go to
# docs/results/fusion_seeds.log (not committed). Notebook 04 reads the result.
set -e
PY=${PY:-.venv/bin/python}
out=docs/results/fusion_seeds.jsonl
log=docs/results/fusion_seeds.log
: > "$out.tmp"
: > "$log"
run() {  # fusion seed
  "$PY" -m mmcourse train --task match --fusion "$1" --level attributes --seed "$2" \
    --json >> "$out.tmp" 2>> "$log"
}
for seed in 0 1 2 3 4; do
  for fusion in concat gated sum multiply; do
    run "$fusion" "$seed"
  done
done
for seed in 0 1 2; do
  for fusion in film bilinear lowrank attention; do
    run "$fusion" "$seed"
  done
done
mv "$out.tmp" "$out"
