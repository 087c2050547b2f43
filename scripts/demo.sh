#!/usr/bin/env bash
# The main job: set up (idempotent), simulate the default sequence, reconstruct it offline (the reference),
# then run the node suite over real DDS on its bag (`msslam demo`: five processes, bag replay, map saved on
# SIGINT, render, metrics) and print suite vs offline. Outputs land in output/ (override with OUT=...).
# DEMO_RATE sets the playback speed (default 0.2 of the recorded 30 Hz, what 2 CPU cores follow).
# Extra arguments go to `msslam simulate`.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$REPO/scripts/setup.sh"
cd "$REPO"
OUT="${OUT:-$REPO/output}"
MSSLAM="$REPO/.venv/bin/msslam"
# Simulate once; a later run reuses a complete earlier sequence (delete output/sim_seed1 to redo it).
SIM="$OUT/sim_seed1"
if [ -f "$SIM/sim_config.json" ] && [ -f "$SIM/bag/metadata.yaml" ] && [ "$#" -eq 0 ]; then
  echo "[demo] reusing the simulated sequence in $SIM"
else
  rm -rf "$SIM"
  "$MSSLAM" simulate --seed 1 --frames 300 --output "$SIM" "$@"
fi
# The offline reference: ground-truth poses and labels (an oracle), the same core objects as the nodes.
"$MSSLAM" reconstruct "$OUT/sim_seed1" --output "$OUT/reconstruction" --labels ground_truth
"$MSSLAM" eval --gt "$OUT/sim_seed1/groundtruth.txt" --est "$OUT/reconstruction/trajectory.txt" \
  --mesh "$OUT/reconstruction/mesh.ply" --gt-mesh "$OUT/sim_seed1/scene/mesh.ply" \
  --gt-points "$OUT/sim_seed1/scene/observed_points.ply" --output "$OUT/eval"
# The node suite on the same sequence's bag (profile oracle: config/launch/sim_replay.yaml).
"$MSSLAM" demo "$OUT/sim_seed1/bag" --output "$OUT" --rate "${DEMO_RATE:-0.2}" --compare "$OUT/reconstruction"
echo "demo outputs: $OUT (suite/: the node suite's mesh.ply, mesh.png, trajectory.txt, scene_graph.json, metrics.json;"
echo "  reconstruction/: the offline reference; eval/: its evaluation)"
