"""Approximate-time synchronization of several topics: ``message_filters`` when it imports, else our own.

:class:`ApproximateSynchronizer` is ROS-free and follows ``message_filters.ApproximateTimeSynchronizer``:
one bounded queue per input (``queue_size``; overflow evicts the oldest), and a set is emitted as soon as
every input has a message whose stamps span at most ``slop_s``, the newest message being part of it.
Two deliberate differences: among the candidate sets the one with the smallest spread wins (instead of
the first found), and after a set is emitted the older messages still queued are dropped (and counted),
so sets come out in time order and a stale message never pairs with a fresh one later.

Time resets (a bag played in a loop, a restarted clock): a message stamped more than ``time_reset_s``
before messages already queued starts a new pass. Left alone, the queues, sorted by stamp, would keep the
previous pass's newest messages and evict the fresh ones as the oldest, and sets stop forming (a replay of
the mapper's five inputs over three passes, the fused depth 115 ms behind the rest: 40 of 60 sets; the node
suite mapped 43-46 of 60 frames that way). The builtin synchronizer orders its queues by (pass, stamp): the
previous pass's messages are evicted first and can still complete their sets with partners that arrive late
(the fused depth of a pass's last frames, after the next pass has begun: 5 of 900 frames were lost on a GPU
run when they were dropped at the reset); the current pass's first set drops what is left of the previous one,
so the sets of one synchronizer still come out pass after pass. Each input's passes are told from its own
stream (``io.trajectory.PassTracker``, shared with PoseBuffer: a loop back starts the next pass, a late
message of the previous pass stays in it), so an input that runs seconds behind the others (an overloaded
depth fusion, 2.5 s or 6 s of sensor time: 628 and 237 of 900 sets with one tracker for all inputs) is
still in the previous pass while they are in the new one, and every set forms. Other streams of a node may
have looped already when the last sets of a pass come out: a node keeping state across streams decides a
reset from the stamps of what it processes (vio_node, io.trajectory.PoseBuffer). With ``message_filters``
(its queues are keyed by stamp alone) what was queued is dropped at the reset.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..io.trajectory import PassTracker
from .stamps import stamp_to_ns, stamp_to_seconds

__all__ = ["HAVE_MESSAGE_FILTERS", "ApproximateSynchronizer", "SyncStats", "SyncedSubscriptions"]

try:
    import message_filters  # noqa: F401

    HAVE_MESSAGE_FILTERS = True
except ImportError:
    HAVE_MESSAGE_FILTERS = False


@dataclass
class SyncStats:
    """Counters of a synchronizer; ``dropped[i]`` counts messages of input i that never made a set."""

    emitted: int
    received: list[int]
    dropped: list[int]


class ApproximateSynchronizer:
    """Groups messages from ``n_inputs`` streams whose stamps lie within ``slop_s`` seconds."""

    def __init__(self, n_inputs: int, queue_size: int, slop_s: float, callback: Callable[..., Any],
                 time_reset_s: float = 5.0) -> None:
        if n_inputs < 1:
            raise ValueError(f"need at least one input, got {n_inputs}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if not slop_s >= 0:
            raise ValueError(f"slop must be >= 0 seconds, got {slop_s}")
        # Passes are told apart per input, from its own stream (``_pass_of``): one input may run seconds
        # behind the others (an overloaded depth fusion) and still be in the previous pass after they looped.
        self._passes = [PassTracker(time_reset_s) for _ in range(n_inputs)]
        self._pass_offset: list[int | None] = [None] * n_inputs
        self.n_inputs, self.queue_size, self.slop_s = n_inputs, queue_size, float(slop_s)
        self.callback = callback
        # per input, (pass, stamp, msg) sorted by (pass, stamp)
        self._queues: list[list[tuple[int, float, Any]]] = [[] for _ in range(n_inputs)]
        self._lock = threading.Lock()
        self._emitted = 0
        self._received = [0] * n_inputs
        self._dropped = [0] * n_inputs

    @property
    def stats(self) -> SyncStats:
        with self._lock:
            return SyncStats(self._emitted, list(self._received), list(self._dropped))

    @property
    def time_resets(self) -> int:
        """Time resets seen (new passes begun, by the input furthest ahead)."""
        with self._lock:
            return max((o + t.index for o, t in zip(self._pass_offset, self._passes) if o is not None), default=0)

    def _pass_of(self, index: int, stamp_s: float) -> int:
        """The pass of a message of input ``index``: its own stream's pass (``PassTracker``: a loop back starts
        the next one, a late message of the previous pass stays in it). An input's first message joins the
        busiest other input: the earliest pass in which that input holds a message within the slop of its stamp
        (where its partner waits, however far behind it runs), else the pass that input's rule gives the
        stamp (0 when they start together). Call under the lock."""
        if self._pass_offset[index] is None:
            others = [j for j in range(self.n_inputs) if j != index and self._pass_offset[j] is not None]
            ref = max(others, key=lambda j: self._received[j], default=None)
            if ref is None:
                self._pass_offset[index] = 0
            else:
                near = [run for run, t, _ in self._queues[ref] if abs(t - stamp_s) <= self.slop_s]
                self._pass_offset[index] = min(near) if near else \
                    self._pass_offset[ref] + self._passes[ref].peek(stamp_s)
        return self._pass_offset[index] + self._passes[index].add(stamp_s)

    def add(self, index: int, stamp_s: float, msg: Any) -> bool:
        """Offer ``msg`` of input ``index`` stamped ``stamp_s``; returns True when it completed a set.

        The callback runs outside the lock with one message per input, in input order.
        """
        if not 0 <= index < self.n_inputs:
            raise ValueError(f"input index {index} out of range [0, {self.n_inputs})")
        stamp_s = float(stamp_s)
        with self._lock:
            self._received[index] += 1
            key = (self._pass_of(index, stamp_s), stamp_s)
            q = self._queues[index]
            pos = len(q)
            while pos > 0 and q[pos - 1][:2] > key:
                pos -= 1
            q.insert(pos, (*key, msg))
            if len(q) > self.queue_size:
                evicted = q.pop(0)
                self._dropped[index] += 1
                if evicted[2] is msg:
                    return False
            chosen = self._best_set(index, key)
            if chosen is None:
                return False
            msgs = []
            for i, k in enumerate(chosen):
                queue = self._queues[i]
                msgs.append(queue[k][2])
                self._dropped[i] += k  # older than the emitted set (or of an earlier pass): never emitted in order
                del queue[: k + 1]
            self._emitted += 1
        self.callback(*msgs)
        return True

    def _best_set(self, index: int, key: tuple[int, float]) -> list[int] | None:
        # The pivot is the new message; every other input contributes its message of the same pass nearest
        # to it. A candidate set always contains the pivot, so the nearest choice minimises the spread up to
        # a factor of 2, and exactly when the pivot is the newest or oldest (the live case).
        run, t = key
        picks = []
        for i, queue in enumerate(self._queues):
            if i == index:
                picks.append(next(k for k, item in enumerate(queue) if item[:2] == key))
                continue
            same = [k for k, item in enumerate(queue) if item[0] == run]
            if not same:
                return None
            picks.append(min(same, key=lambda k: abs(queue[k][1] - t)))
        stamps = [self._queues[i][k][1] for i, k in enumerate(picks)]
        if max(stamps) - min(stamps) > self.slop_s:
            return None
        return picks


class SyncedSubscriptions:
    """Subscribes to ``topics`` and calls ``callback(*msgs)`` with approximately synchronized messages.

    ``topics`` is a list of ``(msg_type, topic_name)``; every message needs ``header.stamp``.
    ``backend`` says which implementation runs. ``stats`` counts with either backend: with
    ``message_filters`` received and emitted are counted around it, and ``dropped[i]`` (messages of input i
    that left without making a set: evicted, or replaced by a newer message with the same stamp) is
    ``received - emitted - still queued``, read from the synchronizer's per-input ``queues``.
    """

    def __init__(self, node: Any, topics: Sequence[tuple[type, str]], callback: Callable[..., Any], qos: Any,
                 queue_size: int = 10, slop_s: float = 0.02, force_builtin: bool = False,
                 time_reset_s: float = 5.0) -> None:
        if not topics:
            raise ValueError("need at least one topic to synchronize")
        self.node = node
        if HAVE_MESSAGE_FILTERS and not force_builtin:
            import message_filters as mf

            self._own = None
            self._time_reset_ns = int(round(time_reset_s * 1e9))
            self._lock = threading.Lock()
            self._received = [0] * len(topics)
            self._emitted = 0
            self._subs = [mf.Subscriber(node, t, name, qos_profile=qos) for t, name in topics]
            for i, sub in enumerate(self._subs):  # registered before the synchronizer's: counts every arrival
                sub.registerCallback(self._count, i)
            self._sync = mf.ApproximateTimeSynchronizer(self._subs, queue_size, slop_s)
            self._user_callback = callback
            self._sync.registerCallback(self._emit)
            self.backend = "message_filters"
        else:
            self._own = ApproximateSynchronizer(len(topics), queue_size, slop_s, callback, time_reset_s)
            self._subs = [
                node.create_subscription(t, name, lambda m, i=i: self._own.add(i, stamp_to_seconds(m.header.stamp), m),
                                         qos)
                for i, (t, name) in enumerate(topics)
            ]
            self.backend = "builtin"

    def _count(self, msg: Any, index: int) -> None:
        with self._lock:
            self._received[index] += 1
        # Runs before the synchronizer sees the message: purge what was queued before a time reset. Kilted's
        # Python synchronizer keys each input's dict by the stamp in nanoseconds (others: left alone).
        queues, lock = getattr(self._sync, "queues", None), getattr(self._sync, "lock", None)
        stamp = getattr(getattr(msg, "header", None), "stamp", None)
        if queues is None or lock is None or stamp is None:
            return
        limit_ns = stamp_to_ns(stamp) + self._time_reset_ns
        with lock:
            for q in queues:
                for key in [k for k in q if isinstance(k, int) and k > limit_ns]:
                    del q[key]

    def _emit(self, *msgs: Any) -> None:
        with self._lock:
            self._emitted += 1
        self._user_callback(*msgs)

    @property
    def stats(self) -> SyncStats:
        if self._own is not None:
            return self._own.stats
        queues = getattr(self._sync, "queues", None)  # message_filters' Python synchronizer: one dict per input
        with self._lock:
            received, emitted = list(self._received), self._emitted
        queued = [len(q) for q in queues] if queues is not None else [0] * len(received)
        return SyncStats(emitted, received, [max(0, r - emitted - q) for r, q in zip(received, queued)])
