#!/usr/bin/env bash
# Trains the NET fusion that ships with mlfem (src/mlfem/resources/nets/efficientnet_lite0-osie.*)
# for EfficientNet-Lite0 with its installed ImageNet weights, on the OSIE training pool only
# (images 1041-1600; the 1001-1040 test sample is never used), with a 90/10 train/val split
# of that pool. Run from anywhere; OSIE_TRAIN overrides the pool's folder, WORK the scratch
# folder (map cache, training state; git-ignored). See docs/training.md.
set -euo pipefail
cd "$(dirname "$0")/.."

OSIE_TRAIN=${OSIE_TRAIN:-../shared/data/osie-train}
WORK=${WORK:-runs/bundled-net}
DEST=src/mlfem/resources/nets/efficientnet_lite0-osie.safetensors

COMMAND=(uv run mlfem train-fusion --model efficientnet_lite0 --weights imagenet
  --dataset osie --root "$OSIE_TRAIN" --split-fractions 0.9,0.1,0 --split-seed 0
  --resolution 64 --epochs 60 --patience 15 --batch-size 32 --lr 1e-3 --seed 0
  --device cpu --out "$WORK" --quiet)

echo "+ ${COMMAND[*]}" >&2
"${COMMAND[@]}"

EXTRA=$(uv run python -c 'import json, sys; print(json.dumps({"command": {"script": "scripts/train_bundled_net.sh", "train_fusion": sys.argv[1]}}))' "${COMMAND[*]}")
uv run python -c 'import sys; from mlfem.training.bundled import main; sys.exit(main())' \
  "$WORK/net.safetensors" "$DEST" . "$EXTRA"
