"""Fixed network input size by letterboxing, and the exact inverse back to the image size.

The image is scaled by one factor ``s = min(W_net / W, H_net / H)`` (aspect ratio kept), placed at
the center of a ``(H_net, W_net)`` canvas and the rest padded. :meth:`Letterbox.invert` crops the
valid region out of a network output and resizes it back to ``(H, W)``; for an image that already has
the network size this is the identity.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Letterbox", "letterbox"]


@dataclass(frozen=True)
class Letterbox:
    """Geometry of one letterbox: source ``(H, W)``, network ``(H_net, W_net)``, the scaled content
    size ``(h, w)`` and its top-left offset ``(top, left)`` in the network image."""

    src_hw: tuple[int, int]
    net_hw: tuple[int, int]
    content_hw: tuple[int, int]
    top: int
    left: int

    @classmethod
    def fit(cls, src_hw: tuple[int, int], net_hw: tuple[int, int]) -> "Letterbox":
        H, W = int(src_hw[0]), int(src_hw[1])
        Hn, Wn = int(net_hw[0]), int(net_hw[1])
        if H <= 0 or W <= 0 or Hn <= 0 or Wn <= 0:
            raise ValueError(f"letterbox sizes must be positive, got source {src_hw}, network {net_hw}")
        s = min(Wn / W, Hn / H)
        h = min(Hn, max(1, int(round(H * s))))
        w = min(Wn, max(1, int(round(W * s))))
        return cls((H, W), (Hn, Wn), (h, w), (Hn - h) // 2, (Wn - w) // 2)

    @property
    def is_identity(self) -> bool:
        return self.src_hw == self.net_hw

    def apply(self, image: np.ndarray, pad_value: float = 0.0, nearest: bool = False) -> np.ndarray:
        """Letterbox a channel-last image. Shape: (H, W[, C]) -> (H_net, W_net[, C]), same dtype."""
        if image.shape[:2] != self.src_hw:
            raise ValueError(f"image {image.shape[:2]} does not match letterbox source {self.src_hw}")
        if self.is_identity:
            return image.copy()
        h, w = self.content_hw
        interp = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA if h < self.src_hw[0] else cv2.INTER_LINEAR
        resized = cv2.resize(image, (w, h), interpolation=interp)
        if resized.ndim < image.ndim:  # cv2 drops a trailing channel of size 1
            resized = resized[..., None]
        out = np.full(self.net_hw + image.shape[2:], pad_value, dtype=image.dtype)
        out[self.top:self.top + h, self.left:self.left + w] = resized
        return out

    def valid_mask(self) -> np.ndarray:
        """True where the network image holds content (not padding). Shape: (H_net, W_net) bool."""
        m = np.zeros(self.net_hw, dtype=bool)
        h, w = self.content_hw
        m[self.top:self.top + h, self.left:self.left + w] = True
        return m

    def invert(self, output: np.ndarray, nearest: bool = False, channels_first: bool = False) -> np.ndarray:
        """Map a network-size output back to the source size.

        Shape: (H_net, W_net[, C]) -> (H, W[, C]), or with ``channels_first`` (C, H_net, W_net) ->
        (C, H, W). ``nearest`` for label images, bilinear otherwise (logits, probabilities).
        """
        arr = np.moveaxis(output, 0, -1) if channels_first else output
        if arr.shape[:2] != self.net_hw:
            raise ValueError(f"output {arr.shape[:2]} does not match letterbox network size {self.net_hw}")
        h, w = self.content_hw
        crop = arr[self.top:self.top + h, self.left:self.left + w]
        H, W = self.src_hw
        if (h, w) != (H, W):
            interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
            work = crop
            if work.dtype == np.uint16 or work.dtype == np.uint8 or np.issubdtype(work.dtype, np.floating):
                pass
            else:  # cv2 resizes only some dtypes; labels go through int32 (nearest keeps values exact)
                work = work.astype(np.int32 if nearest else np.float32)
            # cv2 handles at most 512 channels; split wider outputs
            if work.ndim == 3 and work.shape[2] > 512:
                parts = [cv2.resize(np.ascontiguousarray(work[..., i:i + 512]), (W, H), interpolation=interp)
                         for i in range(0, work.shape[2], 512)]
                parts = [p[..., None] if p.ndim == 2 else p for p in parts]
                resized = np.concatenate(parts, axis=2)
            else:
                resized = cv2.resize(np.ascontiguousarray(work), (W, H), interpolation=interp)
                if resized.ndim < work.ndim:
                    resized = resized[..., None]
            crop = resized.astype(arr.dtype, copy=False)
        else:
            crop = crop.copy()
        return np.moveaxis(crop, -1, 0) if channels_first else crop


def letterbox(image: np.ndarray, net_hw: tuple[int, int], pad_value: float = 0.0,
              nearest: bool = False) -> tuple[np.ndarray, Letterbox]:
    """Letterbox ``image`` (H, W[, C]) to ``net_hw``; returns the network image and its geometry."""
    lb = Letterbox.fit(image.shape[:2], net_hw)
    return lb.apply(image, pad_value=pad_value, nearest=nearest), lb
