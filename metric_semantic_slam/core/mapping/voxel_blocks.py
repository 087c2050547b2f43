"""Spatial hashing of voxel blocks in torch (device-agnostic).

A block is a cube of ``R^3`` voxels (``R = block_resolution``, 8 by default) allocated on demand.
Torch has no hash map, so the "hash" is a sorted tensor of packed block keys searched with
``torch.searchsorted``: lookups and insertions stay vectorised and run unchanged on CPU and CUDA.

Convention: block ``(i, j, k)`` covers world points ``[i, i+1) * R * voxel_size`` (per axis);
voxel ``(a, b, c)`` of that block has its centre at ``((i*R + a) + 0.5) * voxel_size`` (per axis).
Local voxel index inside a block is ``a + R*b + R*R*c`` (x fastest).
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["pack_keys", "unpack_keys", "BlockIndex", "BlockStore", "HostStager", "to_numpy"]

_BITS = 21
_OFFSET = 1 << (_BITS - 1)
_MASK = (1 << _BITS) - 1


_FIELD_SCALE: dict[torch.device, torch.Tensor] = {}


def _field_scale(device: torch.device) -> torch.Tensor:
    """``[2^42, 2^21, 1]`` on ``device``, uploaded once per device."""
    t = _FIELD_SCALE.get(device)
    if t is None:
        t = _FIELD_SCALE[device] = torch.tensor([1 << (2 * _BITS), 1 << _BITS, 1], dtype=torch.int64, device=device)
    return t


def pack_keys(coords: torch.Tensor) -> torch.Tensor:
    """Pack integer block coordinates into one int64 key each (order-preserving per axis).

    Shape: coords (N, 3) int64 -> keys (N,) int64. Each coordinate must lie in ``[-2^20, 2^20)``.
    """
    # (x << 42) | (y << 21) | z as one multiply-and-sum: the offset fields never overlap, so + is |.
    return ((coords.to(torch.int64) + _OFFSET) * _field_scale(coords.device)).sum(dim=1)


def unpack_keys(keys: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_keys`. Shape: keys (N,) int64 -> coords (N, 3) int64."""
    x = (keys >> (2 * _BITS)) & _MASK
    y = (keys >> _BITS) & _MASK
    z = keys & _MASK
    return torch.stack([x, y, z], dim=1) - _OFFSET


class BlockIndex:
    """Map from block coordinates to dense slots ``0..n-1`` (slots are reused after removal by compaction).

    ``coords[slot]`` gives the coordinates of a slot. Lookups of missing blocks return -1.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self._sorted_keys = torch.zeros(0, dtype=torch.int64, device=self.device)
        self._sorted_slots = torch.zeros(0, dtype=torch.int64, device=self.device)
        self.coords = torch.zeros((0, 3), dtype=torch.int64, device=self.device)

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    def lookup(self, coords: torch.Tensor) -> torch.Tensor:
        """Slot of each block, -1 when not allocated. Shape: coords (N, 3) -> (N,) int64."""
        return self.lookup_keys(pack_keys(coords))

    def lookup_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """Slot of each packed key, -1 when absent. Shape: keys (N,) -> (N,) int64."""
        n = self._sorted_keys.shape[0]
        if n == 0 or keys.numel() == 0:
            return torch.full(keys.shape, -1, dtype=torch.int64, device=keys.device)
        pos = torch.searchsorted(self._sorted_keys, keys).clamp_(max=n - 1)
        return torch.where(self._sorted_keys[pos] == keys, self._sorted_slots[pos], -1)

    def insert(self, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Allocate the blocks not yet present.

        Returns ``(slots, new_slots)``: the slot of every input block and the slots that were created
        (in increasing order, contiguous from the previous size).
        Shape: coords (N, 3) int64 -> slots (N,), new_slots (K,).
        """
        keys = pack_keys(coords)
        slots = self.lookup_keys(keys)
        missing = keys[slots < 0]
        if missing.numel() == 0:
            return slots, torch.zeros(0, dtype=torch.int64, device=self.device)
        new_slots = self.append_new_keys(torch.unique(missing))  # sorted
        return self.lookup_keys(keys), new_slots

    def append_new_keys(self, new_keys: torch.Tensor) -> torch.Tensor:
        """Allocate blocks for keys known to be absent, unique and ascending (no checks: no host sync).

        Returns their slots, contiguous from the previous size. Shape: new_keys (K,) int64 -> (K,) int64.
        """
        start = len(self)
        new_slots = torch.arange(start, start + new_keys.shape[0], dtype=torch.int64, device=self.device)
        self.coords = torch.cat([self.coords, unpack_keys(new_keys)])
        all_keys = torch.cat([self._sorted_keys, new_keys])
        all_slots = torch.cat([self._sorted_slots, new_slots])
        order = torch.argsort(all_keys)
        self._sorted_keys = all_keys[order]
        self._sorted_slots = all_slots[order]
        return new_slots

    def keep(self, keep_mask: torch.Tensor) -> torch.Tensor:
        """Drop the slots where ``keep_mask`` is False and renumber the rest in order.

        Returns the old slot of each new slot. Shape: keep_mask (n,) bool -> (n_kept,) int64.
        """
        old = torch.nonzero(keep_mask).flatten()
        self.coords = self.coords[old]
        keys = pack_keys(self.coords)
        order = torch.argsort(keys)
        self._sorted_keys = keys[order]
        self._sorted_slots = order
        return old

    def clear(self) -> None:
        """Remove every block."""
        self.__init__(self.device)


class BlockStore:
    """A :class:`BlockIndex` plus named per-voxel layers stored densely by slot.

    Each layer is a tensor of shape ``(capacity, R^3, *channels)``; capacity grows by doubling so
    appends are amortised O(1). Slots ``>= len(self)`` hold the layer's fill value.
    """

    def __init__(self, block_resolution: int = 8, device: torch.device | str = "cpu") -> None:
        self.R = int(block_resolution)
        self.voxels_per_block = self.R ** 3
        self.device = torch.device(device)
        self.index = BlockIndex(self.device)
        self.layers: dict[str, torch.Tensor] = {}
        self._fills: dict[str, float] = {}
        self.capacity = 0

    def __len__(self) -> int:
        return len(self.index)

    def add_layer(self, name: str, channels: tuple[int, ...], dtype: torch.dtype, fill: float) -> None:
        """Declare a per-voxel layer (before or after blocks exist)."""
        if name in self.layers:
            raise ValueError(f"layer {name!r} already exists")
        self._fills[name] = fill
        self.layers[name] = torch.full((self.capacity, self.voxels_per_block, *channels), fill, dtype=dtype,
                                       device=self.device)

    def reserve(self, blocks: int) -> None:
        """Storage for at least ``blocks`` blocks now, so the appends up to there never copy the layers
        (a growth step copies every layer: tens of ms at a thousand blocks on a CPU)."""
        self._grow(int(blocks), exact=True)

    def _grow(self, needed: int, exact: bool = False) -> None:
        if needed <= self.capacity:
            return
        cap = needed if exact else max(needed, 2 * self.capacity, 64)
        for name, t in self.layers.items():
            extra = torch.full((cap - self.capacity, *t.shape[1:]), self._fills[name], dtype=t.dtype,
                               device=self.device)
            self.layers[name] = torch.cat([t, extra])
        self.capacity = cap

    def insert(self, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Allocate missing blocks; see :meth:`BlockIndex.insert`. Shape: coords (N, 3)."""
        slots, new_slots = self.index.insert(coords)
        self._grow(len(self.index))
        return slots, new_slots

    def append_new_keys(self, new_keys: torch.Tensor) -> torch.Tensor:
        """Allocate blocks for absent, unique, ascending keys; see :meth:`BlockIndex.append_new_keys`."""
        new_slots = self.index.append_new_keys(new_keys)
        self._grow(len(self.index))
        return new_slots

    def keep(self, keep_mask: torch.Tensor) -> torch.Tensor:
        """Drop blocks (compacting every layer); returns the old slot of each kept slot."""
        n_old = len(self.index)
        old = self.index.keep(keep_mask[:n_old])
        n = old.shape[0]
        for name, t in self.layers.items():
            t[:n] = t[old]
            t[n:n_old] = self._fills[name]
        return old

    def clear(self) -> None:
        """Remove every block and release the storage."""
        self.index.clear()
        self.capacity = 0
        for name, t in list(self.layers.items()):
            self.layers[name] = t.new_full((0, *t.shape[1:]), self._fills[name])

    def view(self, name: str) -> torch.Tensor:
        """The layer flattened to one row per voxel. Shape: (capacity * R^3, *channels)."""
        t = self.layers[name]
        return t.view(-1, *t.shape[2:])


def to_numpy(tensors: list[torch.Tensor], pack: bool | None = None) -> list[np.ndarray]:
    """``[t.cpu().numpy() for t in tensors]`` with one device->host copy (one sync) instead of one per tensor.

    ``pack`` (default: off the CPU) sends the tensors' bytes as one buffer; without it, on the CPU, the
    arrays share the tensors' memory, as ``Tensor.numpy`` does.
    """
    if pack is None:
        pack = bool(tensors) and tensors[0].device.type != "cpu"
    if not pack:
        return [t.cpu().numpy() for t in tensors]
    flat = [t.contiguous().view(-1).view(torch.uint8) for t in tensors]
    buf = torch.cat(flat)
    if buf.device.type == "cuda":
        # Into pinned memory (a pageable copy is several times slower); the arrays below keep the
        # pinned tensor alive (numpy views hold their base).
        pinned = torch.empty(buf.numel(), dtype=torch.uint8, pin_memory=True)
        pinned.copy_(buf, non_blocking=True)
        torch.cuda.current_stream(buf.device).synchronize()
        host = pinned.numpy()
    else:
        host = buf.cpu().numpy()
    out, pos = [], 0
    for t, b in zip(tensors, flat):
        n = b.numel()
        out.append(host[pos:pos + n].view(np.dtype(str(t.dtype).replace("torch.", ""))).reshape(tuple(t.shape)))
        pos += n
    return out


class HostStager:
    """Sends a frame's host arrays to the device in one copy through a reused pinned buffer.

    A pageable host->device copy goes through the driver's staging memory in small chunks (slow, and
    it waits for the device first); here the arrays are packed into one pinned buffer and copied with
    one non-blocking transfer. The returned tensors are views of a reused device buffer: valid until
    the next :meth:`upload`, which must come after the device finished with them (the mapper's
    ``integrate`` ends with a sync). On the CPU the arrays are wrapped without a copy.
    """

    _ALIGN = 64

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self._host: torch.Tensor | None = None
        self._dev: torch.Tensor | None = None
        self._copied: "torch.cuda.Event | None" = None

    def upload(self, arrays: list[np.ndarray]) -> list[torch.Tensor]:
        """Shape: each array as it is -> a tensor of the same shape and dtype on the device."""
        arrays = [np.ascontiguousarray(a) for a in arrays]
        if self.device.type != "cuda":
            return [torch.as_tensor(a, device=self.device) for a in arrays]
        offsets, total = [], 0
        for a in arrays:
            offsets.append(total)
            total += -(-a.nbytes // self._ALIGN) * self._ALIGN
        if self._copied is not None:
            self._copied.synchronize()  # the previous copy has left the pinned buffer (normally long ago)
        if self._host is None or self._host.numel() < total:
            size = total + total // 4  # room for a somewhat larger frame
            self._host = torch.empty(size, dtype=torch.uint8, pin_memory=True)
            self._dev = torch.empty(size, dtype=torch.uint8, device=self.device)
        host = self._host.numpy()
        for a, o in zip(arrays, offsets):
            host[o:o + a.nbytes] = a.reshape(-1).view(np.uint8)
        self._dev[:total].copy_(self._host[:total], non_blocking=True)
        self._copied = torch.cuda.Event()
        self._copied.record()
        out = []
        for a, o in zip(arrays, offsets):
            dtype = torch.from_numpy(np.empty(0, dtype=a.dtype)).dtype
            out.append(self._dev[o:o + a.nbytes].view(dtype).view(a.shape))
        return out
