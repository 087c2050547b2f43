"""The torch device and precision of a network backend, from its ``device`` / ``fp16`` options."""
from __future__ import annotations

import torch

__all__ = ["inference_device"]


def inference_device(device: str, fp16: bool | None) -> tuple[torch.device, bool]:
    """``(device, use fp16)``: fp16 defaults to on for CUDA and is never used on the CPU.

    Raises ValueError for a device string torch does not parse or a CUDA device on a machine without CUDA.
    """
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"bad device {device!r}: {e}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    return dev, bool(fp16 if fp16 is not None else dev.type == "cuda") and dev.type == "cuda"
