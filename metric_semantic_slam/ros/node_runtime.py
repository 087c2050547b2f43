"""The runtime every suite node stands on: :class:`StageNode` and :func:`run_node`.

A node is a thin adapter (DESIGN.md §2). The runtime gives each one the same skeleton, so nodes differ
only in what they convert and which core object they call:

- parameters declared from one :class:`~.params.ParamSpec` table (the node's ``PARAMS``) plus the
  runtime's own :data:`RUNTIME_PARAMS`, resolved into ``self.params``; ``use_sim_time`` is rclpy's;
- subscription callbacks only convert and enqueue into bounded drop-oldest queues
  (:meth:`StageNode.make_queue`); a worker thread (:meth:`StageNode.start_worker`) does the work, so a
  slow stage works on the newest frame instead of building up latency, and an exception in it is logged
  and counted, never fatal;
- bad input is dropped through :meth:`StageNode.drop` (throttled log + a count per reason);
- per-stage wall and thread-CPU time (:meth:`StageNode.timed`), sensor-stamp-to-output latency
  (:meth:`StageNode.record_latency`), queue sizes, high-water marks and drops, and the process's resident
  memory (``memory_mb``: now and at its peak) go out as JSON on ``~/status`` (std_msgs/String, latched) every
  ``status_period_s`` and into the log at shutdown;
- :func:`run_node` spins a single-threaded executor (STYLE.md: the MultiThreadedExecutor is slow in
  Python; parameter ``executor``, rclpy's C++ EventsExecutor optional), turns SIGINT/SIGTERM into an
  orderly stop (workers finish their item, then :meth:`StageNode.on_shutdown` — where the mapper saves —
  then a time-bounded middleware teardown) and exits with a code.

Each node module also lists its topics in ``SUBSCRIBES`` / ``PUBLISHES`` tables of :class:`TopicSpec`
(one source for the RViz check and the docs). :class:`NodeProcess` starts a node as its own process
(tests, benchmarks).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from ..eval.machine import process_memory_mb
from .params import ParamSpec, declare_parameters, validate_specs
from .qos import PROFILE_NAMES, qos_profile
from .queues import DropOldestQueue

__all__ = ["RUNTIME_PARAMS", "EXECUTORS", "TopicSpec", "StageStats", "StageNode", "run_node", "with_runtime_params",
           "CameraInfoCache", "NodeProcess", "STATUS_TOPIC", "matrix_param", "call_with_timeout", "TEARDOWN_TIMEOUT_S",
           "STOP_WITH_PARENT_ENV"]

STATUS_TOPIC = "~/status"

EXECUTORS: tuple[str, ...] = ("events", "single")

RUNTIME_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("status_period_s", 2.0, "period of the JSON status on ~/status (0 disables it)"),
    ParamSpec("drop_log_period_s", 5.0, "at most one log line per drop reason in this period"),
    ParamSpec("input_qos", "reliable", f"QoS profile of the sensor inputs, one of {list(PROFILE_NAMES)} "
              "('reliable' for large images across processes, 'sensor' for best-effort drivers)"),
    ParamSpec("cpu_threads", 1, "threads torch and OpenCV may use inside this node (0 = the libraries' "
              "default). 1 by default: the suite runs several processes side by side, where intra-op thread "
              "pools on small tensors spend more CPU waiting than they save"),
    ParamSpec("time_reset_jump_s", 5.0, "an input stamp this far behind the previous one is a time reset "
              "(a bag loop) rather than a late message: it is accepted and on_time_reset() runs"),
    ParamSpec("executor", "single", f"rclpy executor spinning the callbacks, one of {list(EXECUTORS)}: 'single' "
              "(SingleThreadedExecutor) or 'events' (rclpy's experimental C++ EventsExecutor, Jazzy and later: about "
              "a quarter of the CPU per message, but in this project's tests it starved the node's Python threads "
              "(status, workers) for seconds at a time; falls back to 'single' where rclpy lacks it)"),
)

_WINDOW = 500  # samples kept per statistic (mean/p95 over the recent past, counts over all time)
_LATENCY_CLOCK_MISMATCH_S = 3600.0  # stamp further than this from the node clock: another clock


def _limit_cpu_threads(n: int) -> None:
    """Cap torch's and OpenCV's thread pools at ``n`` (0: leave the defaults)."""
    if n < 0:
        raise ValueError(f"cpu_threads must be >= 0, got {n}")
    if n == 0:
        return
    import cv2
    import torch

    torch.set_num_threads(n)
    cv2.setNumThreads(n)


def grid_slot(stamp_s: float, rate_hz: float) -> int:
    """The slot of the ``1 / rate_hz`` grid of sensor time that ``stamp_s`` falls in (see ``on_rate_grid``)."""
    return math.floor(stamp_s * rate_hz + 1e-6)  # the epsilon keeps k/rate stamps in slot k despite rounding


def with_runtime_params(specs: Sequence[ParamSpec]) -> tuple[ParamSpec, ...]:
    """``specs`` followed by every runtime parameter they do not already declare (a node's full table)."""
    names = {s.name for s in specs}
    return tuple(specs) + tuple(s for s in RUNTIME_PARAMS if s.name not in names)


@dataclass(frozen=True)
class TopicSpec:
    """One topic of a node: relative name, type as ``pkg/msg/Type``, QoS profile name, what it carries."""

    name: str
    msg_type: str
    qos: str
    description: str


class StageStats:
    """Rolling statistics of one stage: wall and thread-CPU milliseconds, completion times for a rate."""

    def __init__(self) -> None:
        self.count = 0
        self.wall_ms: deque[float] = deque(maxlen=_WINDOW)
        self.cpu_ms: deque[float] = deque(maxlen=_WINDOW)
        self.done_at: deque[float] = deque(maxlen=_WINDOW)  # monotonic seconds

    def add(self, wall_ms: float, cpu_ms: float, now: float) -> None:
        self.count += 1
        self.wall_ms.append(wall_ms)
        self.cpu_ms.append(cpu_ms)
        self.done_at.append(now)

    def summary(self, now: float) -> dict[str, float]:
        wall = np.asarray(self.wall_ms, dtype=np.float64)
        cpu = np.asarray(self.cpu_ms, dtype=np.float64)
        return {"count": self.count,
                "mean_ms": _round(wall.mean()) if wall.size else None,
                "p95_ms": _round(np.percentile(wall, 95)) if wall.size else None,
                "max_ms": _round(wall.max()) if wall.size else None,
                "cpu_mean_ms": _round(cpu.mean()) if cpu.size else None,
                "rate_hz": _rate(self.done_at, now)}


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 3)


def _rate(times: deque[float], now: float) -> float | None:
    # events per second over the window, ending now (a stalled stage decays towards 0)
    if len(times) < 2:
        return None
    span = now - times[0]
    return _round((len(times) - 1) / span) if span > 0 else None


class StageNode(Node):
    """Base of every suite node: parameters from one ParamSpec table, a worker thread fed by bounded
    drop-oldest queues (callbacks only convert + enqueue), per-stage timing, a status topic, clean shutdown.

    Subclasses take ``**node_kwargs`` (run_node passes ``context``) and forward them here, build their
    subscriptions/publishers after ``super().__init__`` and call :meth:`start_worker` last. Override
    :meth:`on_shutdown` (save state) and :meth:`on_time_reset`.
    """

    def __init__(self, node_name: str, specs: Sequence[ParamSpec], **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        full = with_runtime_params(specs)
        validate_specs(full)
        self.param_specs = full
        self.params = declare_parameters(self, full)
        _limit_cpu_threads(int(self.params.cpu_threads))
        if self.params.input_qos not in PROFILE_NAMES:
            raise ValueError(f"input_qos must be one of {list(PROFILE_NAMES)}, got {self.params.input_qos!r}")
        if self.params.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {list(EXECUTORS)}, got {self.params.executor!r}")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._queues: dict[str, DropOldestQueue] = {}
        self._queue_marks: dict[str, tuple[float, int]] = {}
        self._stages: dict[str, StageStats] = {}
        self._latency: dict[str, deque[float]] = {}
        self._latency_count: dict[str, int] = {}
        self._latency_mismatch: dict[str, int] = {}
        self._drops: dict[str, int] = {}
        self._drop_logged_at: dict[str, float] = {}
        self._last_stamp: dict[str, float] = {}
        self._errors = 0
        self._grid_slot: dict[str, int] = {}
        self._grid_skipped = 0
        self._status_sources: dict[str, Callable[[], Any]] = {}
        self._workers: list[threading.Thread] = []
        self._started = time.monotonic()
        self._shutdown_done = False
        self._status_pub = None
        self._status_thread = None
        if self.params.status_period_s > 0:
            from std_msgs.msg import String

            self._status_pub = self.create_publisher(String, STATUS_TOPIC, qos_profile("latched"))
            # a thread on the steady clock: an rclpy timer on a sim-time clock stops while /clock is silent
            self._status_thread = threading.Thread(target=self._status_loop, name=f"{node_name}-status",
                                                   daemon=True)
            self._status_thread.start()

    # ----------------------------------------------------------------- building blocks for subclasses
    @property
    def stopping(self) -> bool:
        """True once shutdown has begun (workers should return soon)."""
        return self._stop.is_set()

    def input_qos(self, depth: int | None = None):
        """The QoS profile the ``input_qos`` parameter names, for sensor subscriptions."""
        return qos_profile(self.params.input_qos, depth)

    def make_queue(self, name: str, maxsize: int) -> DropOldestQueue:
        """A bounded drop-oldest queue reported in the status under ``name``."""
        if name in self._queues:
            raise ValueError(f"queue {name!r} exists already")
        q: DropOldestQueue = DropOldestQueue(maxsize)
        self._queues[name] = q
        return q

    def add_status_source(self, key: str, fn: Callable[[], Any]) -> None:
        """Add ``fn()`` (JSON-serializable) to every status under ``key`` (e.g. synchronizer counts)."""
        self._status_sources[key] = fn

    def add_sync_status(self, key: str, synced: Any) -> None:
        """Report a :class:`~.sync.SyncedSubscriptions`' counts (emitted sets, per-input received/dropped)."""
        def stats() -> dict:
            s = synced.stats
            return {"emitted": s.emitted, "received": s.received, "dropped": s.dropped}

        self.add_status_source(key, stats)

    def start_worker(self, fn: Callable[[], None], name: str = "worker") -> None:
        """Call ``fn()`` in a loop in a daemon thread until shutdown.

        ``fn`` should block briefly on an input (``queue.get(timeout=0.1)``) so the loop does not spin.
        An exception in ``fn`` is logged with its traceback (throttled per exception type), counted as
        a drop with reason ``exception:<Type>`` and the loop continues.
        """
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    fn()
                except Exception as exc:  # one bad message never ends the node
                    with self._lock:
                        self._errors += 1
                    self.drop(f"exception:{type(exc).__name__}", f"{exc}\n{traceback.format_exc()}")

        thread = threading.Thread(target=loop, name=f"{self.get_name()}-{name}", daemon=True)
        self._workers.append(thread)
        thread.start()

    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """``with self.timed("integrate"): ...`` records wall and thread-CPU time of the block (even when it raises)."""
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            wall_ms = (time.perf_counter() - t0) * 1e3
            cpu_ms = (time.thread_time() - c0) * 1e3
            with self._lock:
                self._stages.setdefault(stage, StageStats()).add(wall_ms, cpu_ms, time.monotonic())

    def now_s(self) -> float:
        """The node clock in seconds (sim time from /clock under ``use_sim_time``)."""
        return self.get_clock().now().nanoseconds * 1e-9

    def record_latency(self, stamp_s: float, name: str = "output") -> None:
        """Record ``now - stamp_s`` (node clock, so sim time under ``use_sim_time``) under ``name``.

        Skipped while the clock reads 0 (use_sim_time before the first /clock message). A stamp more than
        an hour away from the node clock (another clock: e.g. a bag replayed without ``use_sim_time``) is
        counted but kept out of the percentiles, and counted again under ``latency_clock_mismatch``: a
        number that large says nothing about the pipeline.
        """
        now = self.now_s()
        if now <= 0.0 or not math.isfinite(stamp_s):
            return
        with self._lock:
            self._latency_count[name] = self._latency_count.get(name, 0) + 1
            window = self._latency.setdefault(name, deque(maxlen=_WINDOW))
            if abs(now - stamp_s) > _LATENCY_CLOCK_MISMATCH_S:
                self._latency_mismatch[name] = self._latency_mismatch.get(name, 0) + 1
            else:
                window.append((now - stamp_s) * 1e3)

    def drop(self, reason: str, detail: str) -> None:
        """Count a dropped message under ``reason`` and log it (one line per reason per ``drop_log_period_s``)."""
        now = time.monotonic()
        with self._lock:
            n = self._drops.get(reason, 0) + 1
            self._drops[reason] = n
            last = self._drop_logged_at.get(reason)
            log = last is None or now - last >= self.params.drop_log_period_s
            if log:
                self._drop_logged_at[reason] = now
        if log:
            self.get_logger().warning(f"dropped input ({reason}, {n} so far): {detail}")

    def accept_stamp(self, stream: str, stamp_s: float) -> bool:
        """False (and a ``stamp_backwards`` drop) when ``stamp_s`` is not after the last accepted stamp of ``stream``.

        A jump back of more than ``time_reset_jump_s`` is a time reset (a looping bag): accepted, and
        :meth:`on_time_reset` runs once for it.
        """
        if not math.isfinite(stamp_s):
            self.drop("bad_stamp", f"{stream}: stamp {stamp_s}")
            return False
        with self._lock:
            last = self._last_stamp.get(stream)
            if last is not None and stamp_s <= last:
                reset = last - stamp_s > self.params.time_reset_jump_s
                if not reset:
                    back = last - stamp_s
                    ok = False
                else:
                    self._last_stamp.clear()
                    self._last_stamp[stream] = stamp_s
                    ok = True
            else:
                self._last_stamp[stream] = stamp_s
                reset, ok = False, True
        if reset:
            self.get_logger().warning(f"{stream}: time jumped back {last - stamp_s:.3f} s: treating it as a reset")
            self.on_time_reset()
        elif not ok:
            self.drop("stamp_backwards", f"{stream}: stamp {stamp_s:.6f} is {back * 1e3:.3f} ms before the "
                      f"previous one")
        return ok

    def on_rate_grid(self, stream: str, stamp_s: float, rate_hz: float) -> bool:
        """True for the first frame of ``stream`` in each ``1 / rate_hz`` slot of sensor time (always True when
        ``rate_hz`` <= 0); the others are counted under ``rate_skipped`` in the status.

        The slots are fixed in sensor time (slot = floor(stamp * rate)), so nodes that see the same stamps pick
        the same frames without talking to each other: depth_fusion and panoptic label and fuse the same
        frames, the ones the mapper can integrate, and each works in parallel instead of one after the other.
        """
        if rate_hz <= 0:
            return True
        slot = grid_slot(stamp_s, rate_hz)
        with self._lock:
            if self._grid_slot.get(stream) == slot:
                self._grid_skipped += 1
                return False
            self._grid_slot[stream] = slot
        return True

    def count_rate_skipped(self) -> None:
        """Count one input skipped because of the rate grid, decided by the node itself (see ``rate_skipped``)."""
        with self._lock:
            self._grid_skipped += 1

    def on_time_reset(self) -> None:
        """Called when input time jumps back by more than ``time_reset_jump_s`` (override to reset state)."""

    def on_shutdown(self) -> None:
        """Called once at shutdown after the workers stopped (override: save state here)."""

    # ------------------------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        """Everything ``~/status`` publishes, as a dict."""
        now = time.monotonic()
        with self._lock:
            stages = {k: v.summary(now) for k, v in self._stages.items()}
            latency = {}
            for k, v in self._latency.items():
                a = np.asarray(v, dtype=np.float64)
                p50, p95, top = (np.percentile(a, 50), np.percentile(a, 95), a.max()) if len(a) else (None,) * 3
                latency[k] = {"count": self._latency_count[k], "p50_ms": _round(p50), "p95_ms": _round(p95),
                              "max_ms": _round(top)}
            drops = dict(self._drops)
            errors = self._errors
            mismatch = dict(self._latency_mismatch)
        queues = {}
        for k, q in list(self._queues.items()):  # a subclass may still be adding queues (start-up race)
            # input rate since the previous status (or since start)
            t_prev, n_prev = self._queue_marks.get(k, (self._started, 0))
            rate = (q.received - n_prev) / (now - t_prev) if now > t_prev else None
            self._queue_marks[k] = (now, q.received)
            queues[k] = {"size": len(q), "maxsize": q.maxsize, "high_water": q.high_water, "received": q.received,
                         "dropped": q.dropped, "rate_hz": None if rate is None else _round(rate)}
        st = {"node": self.get_fully_qualified_name(), "uptime_s": _round(now - self._started),
              "stages": stages, "queues": queues, "drops": drops, "errors": errors, "latency": latency,
              "rate_skipped": self._grid_skipped, "latency_clock_mismatch": mismatch,
              "memory_mb": process_memory_mb()}
        for key, fn in list(self._status_sources.items()):
            try:
                st[key] = fn()
            except Exception as exc:  # a status source must never break the status
                st[key] = f"error: {exc}"
        return st

    def publish_status(self) -> dict[str, Any]:
        """Publish the status now (also done every ``status_period_s``); returns it."""
        st = self.status()
        if self._status_pub is not None:
            from std_msgs.msg import String

            try:
                self._status_pub.publish(String(data=json.dumps(st)))
            except Exception as exc:  # context already shut down: the status is logged at exit anyway
                self.get_logger().debug(f"status not published: {exc}")
        return st

    def _status_loop(self) -> None:
        period = float(self.params.status_period_s)
        while not self._stop.wait(period):
            try:
                self.publish_status()
            except Exception:  # one bad status must not end the status thread for the node's lifetime
                self.get_logger().error("status failed:\n" + traceback.format_exc())

    # ---------------------------------------------------------------------------------- shutdown
    def stop_workers(self, timeout_s: float = 30.0) -> bool:
        """Ask the workers to stop and wait for them; False when one is still busy after ``timeout_s``."""
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        ok = True
        for t in self._workers:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
            ok = ok and not t.is_alive()
        if self._status_thread is not None:
            self._status_thread.join(timeout=1.0)
        return ok

    def shutdown(self) -> None:
        """Stop the workers, run :meth:`on_shutdown` once, log the final status. Idempotent."""
        if self._shutdown_done:
            return
        self._shutdown_done = True
        if not self.stop_workers():
            self.get_logger().warning("a worker is still busy at shutdown; continuing without it")
        try:
            self.on_shutdown()
        except Exception:
            self.get_logger().error(f"on_shutdown failed:\n{traceback.format_exc()}")
        st = self.publish_status()
        self.get_logger().info("final status: " + json.dumps(st, indent=1))


#: Seconds the DDS teardown (executor, node, context) may take after the node's state is saved.
TEARDOWN_TIMEOUT_S = 10.0
#: Set to "1" by ``msslam launch`` for its children: a node whose launcher died (even by SIGKILL) stops in
#: order (the mapper saves) instead of running on as an orphan.
STOP_WITH_PARENT_ENV = "MSSLAM_STOP_WITH_PARENT"


def run_node(node_cls: type[StageNode], argv: list[str] | None = None, exit_process: bool = True) -> int:
    """Run one node in this process until SIGINT/SIGTERM; returns (or exits with) the exit code.

    0 after a clean shutdown, 1 when the node could not be built (bad parameters, missing dependency:
    the error is printed), 2 when the executor failed.

    After :meth:`StageNode.shutdown` (state saved, final status logged) the middleware is torn down in
    a helper thread with :data:`TEARDOWN_TIMEOUT_S`: Fast DDS 3.2 has been seen to deadlock in participant
    destruction on a loaded machine, and a node must not hang its launcher over that. With
    ``exit_process`` (the executables' way) the process then ends with ``os._exit`` once the streams are
    flushed, so a DDS thread left behind cannot stall interpreter finalization either.
    """
    args = list(sys.argv if argv is None else argv)
    # our own signal handlers: rclpy's would shut the context down before on_shutdown could run
    context = rclpy.Context()
    rclpy.init(args=args, context=context, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():
            _write_stderr(f"signal {signum} during shutdown: still shutting down\n")
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    node = None
    executor = None
    code = 0
    try:
        node = node_cls(context=context)
    except Exception as exc:
        sys.stderr.write(f"{node_cls.__name__}: could not start: {type(exc).__name__}: {exc}\n"
                         f"{traceback.format_exc()}")
        code = 1
    if node is not None:
        executor = _make_executor(str(node.params.executor), context, node)
        executor.add_node(node)
        node.get_logger().info("ready")
        try:
            parent = os.getppid() if os.environ.get(STOP_WITH_PARENT_ENV) == "1" else None
            while not stop.is_set() and context.ok():
                executor.spin_once(timeout_sec=0.1)
                if parent is not None and os.getppid() != parent:
                    node.get_logger().warning("the launcher that started this node is gone: stopping")
                    break
        except Exception:
            node.get_logger().error(f"executor failed:\n{traceback.format_exc()}")
            code = 2
        node.get_logger().info("shutting down")
        node.shutdown()
    finished = call_with_timeout(lambda: _teardown(executor, node, context), TEARDOWN_TIMEOUT_S)
    if not finished:
        _write_stderr(f"{node_cls.__name__}: middleware teardown still blocked after {TEARDOWN_TIMEOUT_S:.0f} s "
                      "(DDS shutdown deadlock); the node's state was saved before it, exiting without it\n")
    for s, h in previous.items():
        signal.signal(s, h)
    if exit_process or not finished:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # the reader is gone (a killed launcher's pipe)
                pass
        os._exit(code)
    return code


def _write_stderr(text: str) -> None:
    try:
        sys.stderr.write(text)
    except (OSError, ValueError):  # the reader is gone (a killed launcher's pipe): the text is lost, not the exit
        pass


def _teardown(executor: Any, node: StageNode | None, context: Any) -> None:
    """Remove and destroy what :func:`run_node` built, then shut the context down."""
    if executor is not None:
        executor.remove_node(node)
        executor.shutdown(timeout_sec=1.0)
    if node is not None:
        node.destroy_node()
    context.try_shutdown()


def call_with_timeout(fn: Callable[[], None], timeout_s: float) -> bool:
    """Run ``fn`` in a daemon thread; False when it has not returned after ``timeout_s`` (it is left running:
    a DDS teardown stuck in native code cannot be cancelled, only not waited for)."""
    def guarded() -> None:
        try:
            fn()
        except Exception:
            _write_stderr(f"teardown failed:\n{traceback.format_exc()}")

    t = threading.Thread(target=guarded, name="teardown", daemon=True)
    t.start()
    t.join(timeout_s)
    return not t.is_alive()


def _make_executor(kind: str, context: Any, node: StageNode) -> Any:
    """The executor the ``executor`` parameter names; 'events' falls back to 'single' (logged) where rclpy lacks it."""
    if kind == "events":
        try:
            from rclpy.experimental import EventsExecutor
        except ImportError:
            node.get_logger().warning("rclpy has no EventsExecutor (before Jazzy): using the SingleThreadedExecutor")
        else:
            return EventsExecutor(context=context)
    from rclpy.executors import SingleThreadedExecutor

    return SingleThreadedExecutor(context=context)


class CameraInfoCache:
    """Keeps the latest valid ``CameraInfo`` of a topic as a :class:`PinholeCamera` (bad ones are dropped).

    ``camera`` is None until a valid message came; ``msg`` is that message (for ``P``, frame id).
    """

    def __init__(self, node: StageNode, topic: str, qos: Any, from_projection: bool = False) -> None:
        from sensor_msgs.msg import CameraInfo

        self.node, self.topic, self.from_projection = node, topic, from_projection
        self.camera = None
        self.msg = None
        self.sub = node.create_subscription(CameraInfo, topic, self._on_msg, qos)

    def _on_msg(self, msg: Any) -> None:
        from .camera_info import camera_info_to_camera

        try:
            cam = camera_info_to_camera(msg, from_projection=self.from_projection)
        except ValueError as exc:
            self.node.drop("bad_camera_info", f"{self.topic}: {exc}")
            return
        self.camera, self.msg = cam, msg

    @property
    def frame_id(self) -> str:
        return "" if self.msg is None else str(self.msg.header.frame_id)


def matrix_param(values: Sequence[float], name: str) -> np.ndarray:
    """A 4x4 transform from a 16-float row-major parameter; ValueError when it is not a rigid transform."""
    T = np.asarray(list(values), dtype=np.float64)
    if T.size != 16 or not np.all(np.isfinite(T)):
        raise ValueError(f"parameter {name} needs 16 finite numbers (row-major 4x4), got {len(T)}")
    T = T.reshape(4, 4)
    R = T[:3, :3]
    if not (np.allclose(R @ R.T, np.eye(3), atol=1e-4) and np.allclose(T[3], [0, 0, 0, 1])):
        raise ValueError(f"parameter {name} is not a rigid transform: {T.tolist()}")
    return T


# ------------------------------------------------------------------------ processes (tests, benchmarks)
class NodeProcess:
    """A suite node started as its own process with ``--ros-args`` (tests and benchmarks).

    ``module`` is e.g. ``"metric_semantic_slam.nodes.vio_node"`` (its ``main`` runs); output goes to
    ``log_path`` (read it with :meth:`log`). Use as a context manager; :meth:`stop` sends SIGINT and
    returns the exit code.
    """

    def __init__(self, module: str, name: str, env: dict[str, str], parameters: dict[str, Any] | None = None,
                 remappings: dict[str, str] | None = None, namespace: str = "", log_path: str | Path | None = None,
                 params_files: Sequence[str | Path] = ()) -> None:
        import tempfile

        import yaml

        cmd = [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())",
               "--ros-args", "-r", f"__node:={name}"]
        if namespace:
            cmd += ["-r", f"__ns:=/{namespace.strip('/')}"]
        for f in params_files:
            cmd += ["--params-file", str(f)]
        for k, v in (parameters or {}).items():
            text = yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()
            cmd += ["-p", f"{k}:={text}"]
        for src, dst in (remappings or {}).items():
            cmd += ["-r", f"{src}:={dst}"]
        self.name, self.command = name, cmd
        if log_path is None:
            fd, log_path = tempfile.mkstemp(prefix=f"{name}-", suffix=".log")
            os.close(fd)
        self.log_path = Path(log_path)
        self._log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)

    def log(self) -> str:
        """Everything the node wrote so far."""
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for_log(self, text: str, timeout_s: float) -> bool:
        """Wait until ``text`` appears in the log (False on timeout or when the process ended first)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            if not self.alive():
                return text in self.log()
            time.sleep(0.05)
        return False

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGINT, then SIGKILL after ``timeout_s``; returns the exit code (-9 when killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()
        return self.proc.returncode

    def __enter__(self) -> "NodeProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
