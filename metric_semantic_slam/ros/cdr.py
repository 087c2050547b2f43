"""Plain CDR (XCDR1, little-endian), the bytes rclpy publishes, written directly for messages whose Python objects
are too slow to build and serialize (a mesh's markers, a long path): see :mod:`.markers` and :mod:`.path`."""
from __future__ import annotations

import struct

import numpy as np

__all__ = ["CdrWriter"]


_ENCAPSULATION_CDR_LE = b"\x00\x01\x00\x00"


class CdrWriter:
    """Little-endian XCDR1 (ROS 2's plain CDR): each primitive aligned to its size, counted from the
    first byte after the 4-byte encapsulation header."""

    def __init__(self) -> None:
        self.parts: list[bytes] = [_ENCAPSULATION_CDR_LE]
        self.n = 0

    def align(self, k: int) -> None:
        pad = -self.n % k
        if pad:
            self.parts.append(bytes(pad))
            self.n += pad

    def raw(self, b: bytes) -> None:
        self.parts.append(b)
        self.n += len(b)

    def pack(self, align: int, fmt: str, *values: float | int) -> None:
        self.align(align)
        self.raw(struct.pack("<" + fmt, *values))

    def string(self, text: str) -> None:
        b = text.encode("utf-8") + b"\0"
        self.pack(4, "I", len(b))
        self.raw(b)

    def sequence(self, arr: np.ndarray | None, element_align: int) -> None:
        n = 0 if arr is None else len(arr)
        self.pack(4, "I", n)
        if n:
            self.align(element_align)
            self.raw(arr.tobytes())

    def header(self, sec: int, nanosec: int, frame_id: str) -> None:
        self.pack(4, "iI", sec, nanosec)
        self.string(frame_id)

    def getvalue(self) -> bytes:
        """Everything written so far, the encapsulation header first."""
        return b"".join(self.parts)
