#!/usr/bin/env bash
# The main job: set up (idempotent), simulate the default sequence, reconstruct it offline and evaluate.
# Outputs land in output/ (override with OUT=...). Extra arguments go to `msslam simulate`.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$REPO/scripts/setup.sh"
cd "$REPO"
OUT="${OUT:-$REPO/output}"
MSSLAM="$REPO/.venv/bin/msslam"
"$MSSLAM" simulate --seed 1 --frames 300 --output "$OUT/sim_seed1" "$@"
# Labels: the simulator's ground truth (an oracle) until the panoptic stage (issue #6) lands.
"$MSSLAM" reconstruct "$OUT/sim_seed1" --output "$OUT/reconstruction" --labels ground_truth
"$MSSLAM" eval --gt "$OUT/sim_seed1/groundtruth.txt" --est "$OUT/reconstruction/trajectory.txt" \
  --mesh "$OUT/reconstruction/mesh.ply" --gt-mesh "$OUT/sim_seed1/scene/mesh.ply" \
  --gt-points "$OUT/sim_seed1/scene/observed_points.ply" --output "$OUT/eval"
echo "demo outputs: $OUT (reconstruction/mesh.ply, reconstruction/mesh.png, reconstruction/trajectory.txt, eval/)"
