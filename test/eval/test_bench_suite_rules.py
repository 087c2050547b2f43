"""benchmarks/bench_suite.py's full-rate rule (the GPU profile's target): which losses fail it."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("yaml")

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_suite.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_suite_under_test", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(node, queue=0, skipped=0, drops=None, integrated=None):
    latency = {} if integrated is None else {"integrated": {"count": integrated}}
    return {"node": node, "missing": False, "queue_dropped": queue, "rate_skipped": skipped,
            "drops": drops or {}, "latency": latency}


def test_full_rate_passes_only_when_no_node_lost_a_frame_and_the_mapper_took_them_all(bench):
    rows = [_row("depth_fusion"), _row("vio"), _row("panoptic"), _row("mapper", integrated=900),
            {"node": "scene_graph", "missing": True}]
    assert bench.full_rate_failures(rows, 900) == []
    rows[1] = _row("vio", queue=2)
    rows[3] = _row("mapper", drops={"no_pose": 3}, integrated=895)
    failures = bench.full_rate_failures(rows, 900)
    assert failures == ["vio dropped frames: {'queue': 2}", "mapper dropped frames: {'no_pose': 3}",
                        "the mapper integrated 895 of 900 frames"]
    rows[1] = _row("vio", drops={"imu_gap": 2})  # tracked without IMU: no frame lost
    assert bench.full_rate_failures(rows, 900) == ["mapper dropped frames: {'no_pose': 3}",
                                                   "the mapper integrated 895 of 900 frames"]
    rows = [_row("panoptic", skipped=280), _row("mapper", integrated=900)]  # a slot profile is not full rate
    assert bench.full_rate_failures(rows, 900) == ["panoptic dropped frames: {'skipped': 280}"]
