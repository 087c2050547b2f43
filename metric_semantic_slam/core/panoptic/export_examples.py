"""Documented example: a torchvision DeepLabV3 or Mask R-CNN with YOUR weights file -> TorchScript + adapter.

Nothing is downloaded: the architecture is built with ``weights=None, weights_backbone=None`` and the
state dict comes from a file you supply (e.g. one you trained, or torchvision's published checkpoint that
you fetched yourself). Needs ``torchvision`` matching the installed torch (not a project requirement).

    python -m metric_semantic_slam.core.panoptic.export_examples deeplab --weights deeplab.pth --output out/
    python -m metric_semantic_slam.core.panoptic.export_examples maskrcnn --weights maskrcnn.pth --output out/
    msslam reconstruct SEQ -o REC --labels torchscript \\
        --panoptic-model out/deeplab.ts --panoptic-adapter out/deeplab.adapter.yaml

Status: the adapter mechanics (dict / tuple outputs, remaps, letterbox, fusion) are tested with small
models in ``test/core/test_panoptic_models.py``; this torchvision export itself could not be run in the
development environment (torchvision's compiled ops did not load there), so treat it as a recipe.

- **DeepLabV3** (``deeplabv3_resnet50`` / ``deeplabv3_mobilenet_v3_large``, 21 Pascal VOC classes):
  semantic logits only (output dict key ``out``), ImageNet normalisation, remap ``voc21``.
- **Mask R-CNN** (``maskrcnn_resnet50_fpn``, COCO 91-way labels): instance head only (boxes, labels,
  scores, masks for one image); the model normalises internally (mean 0, std 1, scale 255);
  remap ``coco_panoptic``; pixels no instance claims stay unknown (0).
"""
from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["DEEPLAB_ADAPTER", "MASKRCNN_ADAPTER", "export_deeplab", "export_maskrcnn"]

DEEPLAB_ADAPTER = """\
description: torchvision DeepLabV3 (Pascal VOC 21 classes), exported by export_examples.py
input:
  size: [480, 640]
  channels: rgb
  scale: 255.0
  mean: [0.485, 0.456, 0.406]
  std: [0.229, 0.224, 0.225]
outputs:
  semantic_logits: out
remap: voc21
fusion: {min_stuff_area_px: 64}
probabilities: true
"""

MASKRCNN_ADAPTER = """\
description: torchvision Mask R-CNN (COCO category ids), exported by export_examples.py
input:
  size: [480, 640]
  channels: rgb
  scale: 255.0
  mean: [0.0, 0.0, 0.0]
  std: [1.0, 1.0, 1.0]
outputs:
  instance_boxes: 0
  instance_classes: 1
  instance_scores: 2
  instance_masks: 3
remap: coco_panoptic
fusion: {score_threshold: 0.5, mask_threshold: 0.5, overlap_threshold: 0.5, min_instance_area_px: 64,
         min_stuff_area_px: 0}
probabilities: false
"""


def _load_state(model, weights: Path) -> None:
    import torch

    state = torch.load(str(weights), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing:
        raise ValueError(f"weights file {weights} lacks {len(missing)} parameters, e.g. {missing[:3]}")
    if unexpected:
        print(f"note: ignoring {len(unexpected)} unexpected entries, e.g. {unexpected[:3]}")


def export_deeplab(weights: str | Path, output_dir: str | Path, arch: str = "deeplabv3_resnet50",
                   size_hw: tuple[int, int] = (480, 640)) -> tuple[Path, Path]:
    """Trace DeepLabV3 with the user's weights; writes ``deeplab.ts`` and ``deeplab.adapter.yaml``."""
    import torch
    from torchvision.models import segmentation

    model = getattr(segmentation, arch)(weights=None, weights_backbone=None, num_classes=21, aux_loss=None).eval()
    _load_state(model, Path(weights))
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    example = torch.rand(1, 3, *size_hw)
    with torch.inference_mode():
        traced = torch.jit.trace(model, example, strict=False)  # dict output {"out": logits}
    ts = out / "deeplab.ts"
    traced.save(str(ts))
    adapter = out / "deeplab.adapter.yaml"
    adapter.write_text(DEEPLAB_ADAPTER.replace("[480, 640]", f"[{size_hw[0]}, {size_hw[1]}]"))
    return ts, adapter


def export_maskrcnn(weights: str | Path, output_dir: str | Path, size_hw: tuple[int, int] = (480, 640)
                    ) -> tuple[Path, Path]:
    """Script Mask R-CNN behind a wrapper returning flat tensors; writes ``maskrcnn.ts`` + adapter."""
    import torch
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91).eval()
    _load_state(model, Path(weights))

    class FlatMaskRCNN(torch.nn.Module):
        """(1, 3, H, W) in [0, 1] -> boxes (K, 4), labels (K,), scores (K,), masks (K, 1, H, W)."""

        def __init__(self, m) -> None:
            super().__init__()
            self.m = m

        def forward(self, x: torch.Tensor):
            _, detections = self.m([x[0]])  # a scripted detection model returns (losses, detections)
            d = detections[0]
            return d["boxes"], d["labels"], d["scores"], d["masks"]

    scripted = torch.jit.script(FlatMaskRCNN(model))
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ts = out / "maskrcnn.ts"
    scripted.save(str(ts))
    adapter = out / "maskrcnn.adapter.yaml"
    adapter.write_text(MASKRCNN_ADAPTER.replace("[480, 640]", f"[{size_hw[0]}, {size_hw[1]}]"))
    return ts, adapter


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", choices=["deeplab", "maskrcnn"])
    ap.add_argument("--weights", required=True, help="your state-dict file (.pth); never downloaded")
    ap.add_argument("--output", required=True, help="folder for the .ts model and its adapter YAML")
    ap.add_argument("--arch", default="deeplabv3_resnet50", help="DeepLab variant (torchvision builder name)")
    ap.add_argument("--size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"))
    args = ap.parse_args(argv)
    if args.model == "deeplab":
        ts, ad = export_deeplab(args.weights, args.output, args.arch, tuple(args.size))
    else:
        ts, ad = export_maskrcnn(args.weights, args.output, tuple(args.size))
    print(f"model -> {ts}\nadapter -> {ad}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
