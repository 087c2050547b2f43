"""A bounded FIFO that drops its oldest item when full, counting drops (node input queues).

A node whose processing falls behind must work on the newest frame, not build up latency: so ``put``
never blocks and never refuses, it evicts. ``high_water`` tells a benchmark the queue stayed bounded.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

__all__ = ["DropOldestQueue"]

T = TypeVar("T")


class DropOldestQueue(Generic[T]):
    """Thread-safe bounded queue; ``put`` evicts the oldest item when full."""

    def __init__(self, maxsize: int) -> None:
        if int(maxsize) < 1:
            raise ValueError(f"queue size must be >= 1, got {maxsize}")
        self.maxsize = int(maxsize)
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self.dropped = 0
        self.received = 0
        self.high_water = 0

    def put(self, item: T) -> T | None:
        """Append ``item``; returns the evicted oldest item when the queue was full, else None."""
        with self._cond:
            evicted = None
            if len(self._items) >= self.maxsize:
                evicted = self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.received += 1
            self.high_water = max(self.high_water, len(self._items))
            self._cond.notify()
            return evicted

    def get(self, timeout: float | None = None) -> T | None:
        """Oldest item, waiting up to ``timeout`` seconds (None: forever); None when nothing came."""
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._items), timeout=timeout):
                return None
            return self._items.popleft()

    def get_nowait(self) -> T | None:
        """Oldest item or None when empty."""
        with self._cond:
            return self._items.popleft() if self._items else None

    def clear(self) -> int:
        """Empty the queue (not counted as drops); returns how many items it held."""
        with self._cond:
            n = len(self._items)
            self._items.clear()
            return n

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
