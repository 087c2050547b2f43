"""The built-in compact panoptic network (torch): model, training targets and post-processing.

Architecture (Panoptic-DeepLab style, much smaller): a strided encoder of plain 3x3 conv-BN-ReLU
blocks down to 1/16 of the input (dilated blocks there for context), a light decoder with
skips at 1/8 and 1/4, and three heads:

- semantic logits over the label-space ids ``0..C-1``, refined at 1/2 with the stem features;
- an instance **center heatmap** at 1/4 (regressed, MSE: a Gaussian of sigma 8 input pixels around
  each thing instance's center of mass, values in [0, 1]);
- per-pixel **offsets** at 1/4 from each pixel to its instance center, in 1/4-resolution pixels
  (channel 0 = rows/y, 1 = columns/x).

Input: 4 channels at the network size (default 240 x 320): RGB scaled to [0, 1] then standardised,
and depth as ``depth_m / DEPTH_NORM_M`` with 0 for invalid pixels. The net was trained with depth
dropped (all zeros) on a fraction of the samples, so ``depth = None`` at inference means a zero
channel, with lower accuracy.

Post-processing (:func:`panoptic_postprocess`): centers are heatmap peaks after max-pool NMS above a
threshold; each thing pixel (by the semantic argmax) goes to the nearest center to its own
position + predicted offset; each instance takes the majority thing class of its pixels, and pixels
of its whose argmax class differs get instance 0 (or, with ``relabel_by_vote``, are relabelled to
it), so semantic and instance agree; instances smaller than ``min_area_px`` are dropped (their pixels
keep the class, instance 0).
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["NetConfig", "PanopticNet", "DEPTH_NORM_M", "RGB_MEAN", "RGB_STD", "make_net_input", "panoptic_postprocess_dense",
           "instance_targets", "panoptic_postprocess", "PostprocessConfig"]

DEPTH_NORM_M = 4.0
RGB_MEAN = (0.45, 0.42, 0.40)
RGB_STD = (0.25, 0.25, 0.25)
OUTPUT_STRIDE = 4  # of the center / offset heads


@dataclass(frozen=True)
class NetConfig:
    """Sizes of :class:`PanopticNet` (stored with the weights)."""

    num_classes: int = 21
    in_channels: int = 4
    widths: tuple[int, int, int, int, int] = (16, 32, 64, 96, 32)
    """Channels at 1/2, 1/4, 1/8, 1/16 and of the decoder (at 1/8 and 1/4)."""
    input_hw: tuple[int, int] = (240, 320)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "NetConfig":
        return cls(num_classes=int(d["num_classes"]), in_channels=int(d["in_channels"]),
                   widths=tuple(int(x) for x in d["widths"]), input_hw=tuple(int(x) for x in d["input_hw"]))


def _cbr(cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """Conv -> BatchNorm -> ReLU. Plain (not depthwise) convolutions: with these small channel counts
    they are 2-4x faster than depthwise-separable ones in torch on CPU, training and inference."""
    pad = dilation * (k // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _up_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


class PanopticNet(nn.Module):
    """Semantic + center + offset network.

    Shape: x (B, 4, H, W) with H, W multiples of 16 -> dict with ``semantic`` (B, C, H/2, W/2) logits,
    ``center`` (B, 1, H/4, W/4) heatmap (about [0, 1]), ``offset`` (B, 2, H/4, W/4) in 1/4-res pixels
    (dy, dx).
    """

    def __init__(self, config: NetConfig = NetConfig()) -> None:
        super().__init__()
        self.config = config
        c2, c4, c8, c16, cd = config.widths
        self.stem = _cbr(config.in_channels, c2, 3, stride=2)                                        # 1/2
        self.enc4 = nn.Sequential(_cbr(c2, c4, 3, stride=2), _cbr(c4, c4))                           # 1/4
        self.enc8 = nn.Sequential(_cbr(c4, c8, 3, stride=2), _cbr(c8, c8), _cbr(c8, c8))             # 1/8
        self.enc16 = nn.Sequential(_cbr(c8, c16, 3, stride=2), _cbr(c16, c16, dilation=2),
                                   _cbr(c16, c16, dilation=4))                                       # 1/16
        # image-level context (squeeze-excitation style gate)
        self.context = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c16, c16, 1), nn.Sigmoid())
        self.lat16 = _cbr(c16, cd, 1)
        self.lat8 = _cbr(c8, cd, 1)
        self.fuse8 = _cbr(cd, cd)
        self.lat4 = _cbr(c4, cd, 1)
        self.fuse4 = _cbr(cd, cd)
        self.sem4 = _cbr(cd, cd)
        self.sem_up = _cbr(cd, c2, 1)
        # 1/2-resolution refinement: 1x1 mix of the upsampled semantic features and the stem's edges
        self.sem_out = nn.Conv2d(2 * c2, config.num_classes, 1)
        self.ins4 = _cbr(cd, cd)
        self.ins_out = nn.Conv2d(cd, 3, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f2 = self.stem(x)
        f4 = self.enc4(f2)
        f8 = self.enc8(f4)
        f16 = self.enc16(f8)
        f16 = f16 * self.context(f16)
        d = self.fuse8(_up_to(self.lat16(f16), f8) + self.lat8(f8))
        d = self.fuse4(_up_to(d, f4) + self.lat4(f4))
        s = _up_to(self.sem_up(self.sem4(d)), f2)
        s = self.sem_out(torch.cat([s, f2], 1))
        i = self.ins_out(self.ins4(d))
        return {"semantic": s, "center": i[:, :1], "offset": i[:, 1:]}


@functools.lru_cache(maxsize=8)
def _normalisation(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB mean and std as (1, 3, 1, 1) tensors on ``device``, made once: a per-call host -> device copy
    would be a sync point, and is not allowed inside a CUDA graph capture."""
    return (torch.tensor(RGB_MEAN, device=device).view(1, 3, 1, 1),
            torch.tensor(RGB_STD, device=device).view(1, 3, 1, 1))


def make_net_input(rgb: torch.Tensor, depth_m: torch.Tensor | None) -> torch.Tensor:
    """Normalise a batch for the net.

    Shape: rgb (B, 3, H, W) uint8 or float in [0, 255]; depth_m (B, 1, H, W) meters (0/NaN invalid) or
    None -> (B, 4, H, W) float32.
    """
    x = rgb.float() / 255.0
    mean, std = _normalisation(x.device)
    x = (x - mean) / std
    if depth_m is None:
        d = torch.zeros_like(x[:, :1])
    else:
        d = depth_m.float()
        d = torch.where(torch.isfinite(d) & (d > 0), d, torch.zeros_like(d)) / DEPTH_NORM_M
    return torch.cat([x, d], 1)


def instance_targets(instance: torch.Tensor, is_thing_pixel: torch.Tensor, sigma_lr: float = 2.0,
                     stride: int = OUTPUT_STRIDE) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Center heatmap, offsets and offset mask at 1/``stride`` resolution from instance labels.

    Centers are the centers of mass of each (image, instance id) at full resolution. A low-res pixel
    (i, j) sits at full-res ``(stride * i + (stride - 1) / 2, ...)`` and takes the label of the full-res
    pixel nearest to it. Shape: instance (B, H, W) int, is_thing_pixel (B, H, W) bool (thing class and
    instance != 0) -> heat (B, 1, h, w) in [0, 1], offset (B, 2, h, w) (dy, dx) in low-res pixels,
    mask (B, 1, h, w) bool (pixels with an offset target).
    """
    B, H, W = instance.shape
    h, w = H // stride, W // stride
    dev = instance.device
    heat = torch.zeros(B * h * w, device=dev)
    offset = torch.zeros(B, 2, h, w, device=dev)
    gid = torch.where(is_thing_pixel, instance.long() + 65536 * torch.arange(B, device=dev).view(B, 1, 1),
                      torch.full_like(instance, -1, dtype=torch.long))
    flat = gid.view(-1)
    valid = flat >= 0
    if not bool(valid.any()):
        return heat.view(B, 1, h, w), offset, torch.zeros(B, 1, h, w, dtype=torch.bool, device=dev)
    uniq, inv = torch.unique(flat[valid], return_inverse=True)
    ys = torch.arange(H, device=dev, dtype=torch.float32).view(1, H, 1).expand(B, H, W).reshape(-1)[valid]
    xs = torch.arange(W, device=dev, dtype=torch.float32).view(1, 1, W).expand(B, H, W).reshape(-1)[valid]
    n = torch.bincount(inv, minlength=len(uniq)).float()
    cy = torch.bincount(inv, weights=ys, minlength=len(uniq)) / n
    cx = torch.bincount(inv, weights=xs, minlength=len(uniq)) / n
    # to low-res pixel coordinates
    half = (stride - 1) / 2.0
    cy_lr, cx_lr = (cy - half) / stride, (cx - half) / stride
    cb = uniq // 65536
    # Gaussian splats (amax) of radius 3 sigma
    r = int(3 * sigma_lr)
    dy, dx = torch.meshgrid(torch.arange(-r, r + 1, device=dev), torch.arange(-r, r + 1, device=dev), indexing="ij")
    py = torch.round(cy_lr).long().view(-1, 1) + dy.reshape(1, -1)
    px = torch.round(cx_lr).long().view(-1, 1) + dx.reshape(1, -1)
    val = torch.exp(-((py - cy_lr.view(-1, 1)) ** 2 + (px - cx_lr.view(-1, 1)) ** 2) / (2 * sigma_lr ** 2))
    ok = (py >= 0) & (py < h) & (px >= 0) & (px < w)
    idx = (cb.view(-1, 1) * h * w + py * w + px)[ok]
    heat.scatter_reduce_(0, idx, val[ok].float(), reduce="amax")
    # offsets on the low-res grid
    off = stride // 2
    g_lr = gid[:, off::stride, off::stride][:, :h, :w]
    m = g_lr >= 0
    pos = torch.searchsorted(uniq, g_lr.clamp(min=0))
    pos = pos.clamp(max=len(uniq) - 1)
    m = m & (uniq[pos] == g_lr)
    gy = torch.arange(h, device=dev, dtype=torch.float32).view(1, h, 1).expand(B, h, w)
    gx = torch.arange(w, device=dev, dtype=torch.float32).view(1, 1, w).expand(B, h, w)
    offset[:, 0] = torch.where(m, cy_lr[pos] - gy, torch.zeros_like(gy))
    offset[:, 1] = torch.where(m, cx_lr[pos] - gx, torch.zeros_like(gx))
    return heat.view(B, 1, h, w), offset, m.unsqueeze(1)


@dataclass(frozen=True)
class PostprocessConfig:
    """Post-processing settings. Defaults chosen after training on the validation seed (1021) only,
    never on the evaluation seeds (``output/panoptic_tune*.log``: threshold 0.2-0.5, NMS 3-7, both
    instance/class modes)."""

    center_threshold: float = 0.4
    nms_kernel: int = 5
    top_k: int = 64
    min_area_px: int = 40
    """At the network resolution (240 x 320)."""
    relabel_by_vote: bool = False
    """True: an instance's pixels all take its majority class. False: the per-pixel argmax is kept
    and pixels whose class differs from their instance's get no instance (better mIoU and PQ)."""


def panoptic_postprocess(sem_logits: torch.Tensor, center: torch.Tensor, offset: torch.Tensor,
                         thing_lut: torch.Tensor, cfg: PostprocessConfig = PostprocessConfig(),
                         out_hw: tuple[int, int] | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int, float]]]:
    """Semantic + instance labels of ONE image from the network outputs.

    Shape: sem_logits (C, h2, w2) (any resolution; bilinearly resized to the output); center (1, h, w) heatmap; offset (2, h, w) (dy, dx) in low-res pixels;
    thing_lut (C,) bool -> semantic (H, W) long, instance (H, W) long (0 = none), and a list of
    (instance id, class id, score) — at ``out_hw`` (default 4 h, 4 w), the network input size.
    """
    C = sem_logits.shape[0]
    h, w = center.shape[-2:]
    H, W = out_hw if out_hw is not None else (h * OUTPUT_STRIDE, w * OUTPUT_STRIDE)
    if tuple(sem_logits.shape[-2:]) != (H, W):
        sem_logits = F.interpolate(sem_logits[None].float(), size=(H, W), mode="bilinear", align_corners=False)[0]
    sem = sem_logits.argmax(0)
    heat = center.float().clamp(0.0, 1.0)
    # a tiny ramp breaks exact ties (a center halfway between two pixels) so NMS keeps one peak
    heat = heat + 1e-3 * torch.arange(h * w, device=heat.device, dtype=heat.dtype).view(1, h, w) / (h * w)
    pooled = F.max_pool2d(heat[None], cfg.nms_kernel, stride=1, padding=cfg.nms_kernel // 2)[0]
    peaks = (heat == pooled) & (heat > cfg.center_threshold)
    scores = heat[peaks]
    coords = torch.nonzero(peaks[0]).float()  # (K, 2) low-res (y, x)
    if len(scores) > cfg.top_k:
        top = torch.topk(scores, cfg.top_k).indices
        scores, coords = scores[top], coords[top]
    instance = torch.zeros((H, W), dtype=torch.long, device=sem.device)
    thing = thing_lut[sem]
    if len(scores) == 0 or not bool(thing.any()):
        return sem, instance, []
    sy, sx = H / h, W / w
    # predicted center of every thing pixel, in full-res coordinates
    off = F.interpolate(offset[None].float(), size=(H, W), mode="bilinear", align_corners=False)[0]
    ty, tx = torch.nonzero(thing, as_tuple=True)
    py = (ty.float() + off[0, ty, tx] * sy)
    px = (tx.float() + off[1, ty, tx] * sx)
    cy = coords[:, 0] * sy + (sy - 1) / 2
    cx = coords[:, 1] * sx + (sx - 1) / 2
    d2 = (py[:, None] - cy[None]) ** 2 + (px[:, None] - cx[None]) ** 2
    k = d2.argmin(1)
    K = len(scores)
    votes = torch.bincount(k * C + sem[ty, tx], minlength=K * C).view(K, C)
    votes[:, ~thing_lut] = 0
    cls = votes.argmax(1)
    area = votes.sum(1)
    min_area = cfg.min_area_px * (H * W) / (240 * 320)
    keep = area >= max(1.0, min_area)
    new_id = torch.zeros(K, dtype=torch.long, device=sem.device)
    new_id[keep] = torch.arange(1, int(keep.sum()) + 1, device=sem.device)
    if cfg.relabel_by_vote:
        instance[ty, tx] = new_id[k]
        sem[ty, tx] = torch.where(new_id[k] > 0, cls[k], sem[ty, tx])
    else:  # keep the per-pixel argmax; pixels of another class than their instance's get no instance
        instance[ty, tx] = torch.where(cls[k] == sem[ty, tx], new_id[k], torch.zeros_like(k))
    meta = [(int(new_id[j]), int(cls[j]), float(scores[j])) for j in torch.nonzero(keep)[:, 0].tolist()]
    return sem, instance, meta


def panoptic_postprocess_dense(sem_logits: torch.Tensor, center: torch.Tensor, offset: torch.Tensor,
                               thing_lut: torch.Tensor, cfg: PostprocessConfig = PostprocessConfig(),
                               out_hw: tuple[int, int] | None = None
                               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`panoptic_postprocess` with fixed shapes and no host synchronisation (for CUDA graphs).

    Instead of gathering the detected peaks and the thing pixels (data-dependent sizes, each a device ->
    host sync), it always takes the ``top_k`` highest heat-map cells (cells that are no peak get
    score -1 and are marked invalid) and assigns every pixel, masking the non-thing ones. Valid peaks are
    kept in raster order, so when there are at most ``top_k`` of them the labels equal
    :func:`panoptic_postprocess`'s exactly; with more, the same ``top_k`` centres are kept and only
    the instance numbering may differ.
    Shape: as :func:`panoptic_postprocess` -> semantic (H, W) long, instance (H, W) long, and a table
    (3, top_k) float32 of (instance id, class id, score) per candidate; id 0 = not an instance.
    """
    C = sem_logits.shape[0]
    h, w = center.shape[-2:]
    H, W = out_hw if out_hw is not None else (h * OUTPUT_STRIDE, w * OUTPUT_STRIDE)
    if tuple(sem_logits.shape[-2:]) != (H, W):
        sem_logits = F.interpolate(sem_logits[None].float(), size=(H, W), mode="bilinear", align_corners=False)[0]
    dev = sem_logits.device
    sem = sem_logits.argmax(0)
    heat = center.float().clamp(0.0, 1.0)
    heat = heat + 1e-3 * torch.arange(h * w, device=dev, dtype=heat.dtype).view(1, h, w) / (h * w)
    pooled = F.max_pool2d(heat[None], cfg.nms_kernel, stride=1, padding=cfg.nms_kernel // 2)[0]
    peaks = (heat == pooled) & (heat > cfg.center_threshold)
    flat = torch.where(peaks, heat, torch.full_like(heat, -1.0)).view(-1)
    K = min(cfg.top_k, h * w)
    scores, idx = torch.topk(flat, K)
    valid = scores >= 0
    order = torch.argsort(torch.where(valid, idx, idx + h * w))  # valid peaks first, in raster order
    scores, idx, valid = scores[order], idx[order], valid[order]
    sy, sx = H / h, W / w
    cy = torch.div(idx, w, rounding_mode="floor").float() * sy + (sy - 1) / 2
    cx = (idx % w).float() * sx + (sx - 1) / 2
    thing = thing_lut[sem]
    off = F.interpolate(offset[None].float(), size=(H, W), mode="bilinear", align_corners=False)[0]
    gy = torch.arange(H, device=dev, dtype=torch.float32).view(H, 1)
    gx = torch.arange(W, device=dev, dtype=torch.float32).view(1, W)
    py = (gy + off[0] * sy).view(-1, 1)
    px = (gx + off[1] * sx).view(-1, 1)
    d2 = (py - cy[None]) ** 2 + (px - cx[None]) ** 2
    d2 = torch.where(valid[None], d2, torch.full_like(d2, float("inf")))
    k = d2.argmin(1)  # (H * W,)
    sem_flat, thing_flat = sem.view(-1), thing.view(-1)
    votes = torch.zeros(K * C, dtype=torch.long, device=dev)
    votes.scatter_add_(0, k * C + sem_flat, thing_flat.long())
    votes = votes.view(K, C) * thing_lut.long()[None]
    cls = votes.argmax(1)
    area = votes.sum(1)
    min_area = max(1.0, cfg.min_area_px * (H * W) / (240 * 320))
    keep = (area >= min_area) & valid
    new_id = torch.cumsum(keep.long(), 0) * keep.long()
    if cfg.relabel_by_vote:
        inst_flat = torch.where(thing_flat, new_id[k], torch.zeros_like(k))
        sem_flat = torch.where(thing_flat & (inst_flat > 0), cls[k], sem_flat)
    else:
        inst_flat = torch.where(thing_flat & (cls[k] == sem_flat), new_id[k], torch.zeros_like(k))
    table = torch.stack([new_id.float(), cls.float(), scores.float()])
    return sem_flat.view(H, W), inst_flat.view(H, W), table
