"""torchscript / onnx backends: export small random models, run them through an adapter (issue #6)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from metric_semantic_slam.core.labels import load_label_space
from metric_semantic_slam.core.panoptic import PanopticInput, make_backend, validate_result


class TinySeg(torch.nn.Module):
    """Random-initialised semantic net: (N, 3, H, W) -> logits (N, C, H/2, W/2)."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, classes, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class KnownLogits(torch.nn.Module):
    """Logits that depend on position only: the left half says class 1, the right half class 3 (model ids)."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.classes = classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        out = torch.zeros(n, self.classes, h, w) + 0.0 * x[:, :1]
        out[:, 1, :, : w // 2] = 5.0
        out[:, 3, :, w // 2:] = 5.0
        return out


class KnownInstances(torch.nn.Module):
    """Semantic logits (all model class 0) plus two overlapping square instance masks."""

    def forward(self, x: torch.Tensor):
        n, _, h, w = x.shape
        sem = torch.zeros(n, 4, h, w) + 0.0 * x[:, :1]
        sem[:, 0] = 3.0
        masks = torch.zeros(2, 1, h, w)
        masks[0, 0, 10:30, 10:30] = 0.9
        masks[1, 0, 20:40, 20:40] = 0.8
        boxes = torch.tensor([[10.0, 10.0, 30.0, 30.0], [20.0, 20.0, 40.0, 40.0]])
        classes = torch.tensor([2, 3])
        scores = torch.tensor([0.95, 0.7])
        return sem, masks, boxes, classes, scores


def _export(model: torch.nn.Module, fmt: str, path, hw=(48, 64), outputs=("logits",)):
    x = torch.rand(1, 3, *hw)
    if fmt == "torchscript":
        torch.jit.save(torch.jit.trace(model.eval(), x), str(path))
    else:
        torch.onnx.export(model.eval(), (x,), str(path), dynamo=False, input_names=["image"],
                          output_names=list(outputs), dynamic_axes={"image": {0: "n"}} if len(outputs) == 1 else None)
    return path


def _adapter(tmp_path, d: dict, name: str = "adapter.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(d))
    return p


@pytest.fixture(scope="module")
def space():
    return load_label_space()


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_random_model_shapes_and_probabilities(tmp_path, space, fmt):
    torch.manual_seed(0)
    model_path = _export(TinySeg(7), fmt, tmp_path / f"m.{fmt}")
    ad = _adapter(tmp_path, {"input": {"size": [48, 64], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
                             "outputs": {"semantic_logits": 0}})
    be = make_backend(fmt, space, model_path=str(model_path), adapter_path=str(ad))
    rng = np.random.default_rng(1)
    inputs = [PanopticInput(color=rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)),
              PanopticInput(color=rng.integers(0, 255, (60, 100, 3), dtype=np.uint8))]
    results = be.predict_batch(inputs)
    C = space.max_id + 1
    for inp, res in zip(inputs, results):
        validate_result(res, inp.shape, C)
        assert res.probabilities is not None
        np.testing.assert_allclose(res.probabilities.sum(axis=0), 1.0, atol=1e-4)
        # no remap: model ids 0..6 are label ids; nothing can land on ids >= 7
        assert res.probabilities[7:].max() == 0.0
        assert res.semantic.max() < 7
        assert not res.instance.any()


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_known_logits_remap_and_letterbox(tmp_path, space, fmt):
    model_path = _export(KnownLogits(), fmt, tmp_path / f"k.{fmt}", hw=(40, 40))
    remap = tmp_path / "remap.yaml"
    remap.write_text(yaml.safe_dump({"default": "unknown", "classes": [
        {"id": 1, "source": "a", "target": "floor"}, {"id": 3, "source": "b", "target": "chair"}]}))
    ad = _adapter(tmp_path, {"input": {"size": [40, 40]}, "outputs": {"semantic_logits": 0},
                             "remap": "remap.yaml", "fusion": {"min_stuff_area_px": 0}})
    be = make_backend(fmt, space, model_path=str(model_path), adapter_path=str(ad))
    # a 20 x 40 image is letterboxed into the middle of the 40 x 40 input: the left/right split survives
    res = be.predict(PanopticInput(color=np.zeros((20, 40, 3), np.uint8)))
    assert res.semantic.shape == (20, 40)
    assert (res.semantic[:, :18] == space.id_of("floor")).all()
    assert (res.semantic[:, 22:] == space.id_of("chair")).all()
    # the model's classes 0, 2, 4 map to unknown: their probability mass lands on id 0
    assert res.probabilities[0].max() < 0.05 and res.probabilities[space.id_of("floor"), 0, 0] > 0.9


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_instance_head_fusion(tmp_path, space, fmt):
    names = ("sem", "masks", "boxes", "classes", "scores")
    model_path = _export(KnownInstances(), fmt, tmp_path / f"i.{fmt}", hw=(48, 64), outputs=names)
    remap = tmp_path / "r.yaml"
    remap.write_text(yaml.safe_dump({"default": "unknown", "classes": [
        {"id": 0, "target": "wall"}, {"id": 2, "target": "chair"}, {"id": 3, "target": "box"}]}))
    outputs = {"semantic_logits": "sem", "instance_masks": "masks", "instance_boxes": "boxes",
               "instance_classes": "classes", "instance_scores": "scores"}
    if fmt == "torchscript":  # a traced tuple has no names: use indices
        outputs = {k: i for i, k in enumerate(["semantic_logits", "instance_masks", "instance_boxes",
                                               "instance_classes", "instance_scores"])}
    ad = _adapter(tmp_path, {"input": {"size": [48, 64]}, "outputs": outputs, "remap": str(remap),
                             "fusion": {"overlap_threshold": 0.5, "min_instance_area_px": 4}})
    be = make_backend(fmt, space, model_path=str(model_path), adapter_path=str(ad))
    res = be.predict(PanopticInput(color=np.zeros((48, 64, 3), np.uint8)))
    validate_result(res, (48, 64), space.max_id + 1)
    assert sorted(res.instance_classes.values()) == [space.id_of("chair"), space.id_of("box")]
    first = res.instance[15, 15]
    assert res.instance_classes[first] == space.id_of("chair")
    # the overlap goes to the better-scored chair; the box keeps only its own part
    assert res.instance[25, 25] == first
    assert res.semantic[35, 35] == space.id_of("box")
    assert res.semantic[45, 60] == space.id_of("wall")
    assert res.instance_scores[first] == pytest.approx(0.95)


def test_bad_model_file_and_adapter(tmp_path, space):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a model")
    ad = _adapter(tmp_path, {"outputs": {"semantic_logits": 0}})
    with pytest.raises(ValueError, match="cannot load TorchScript"):
        make_backend("torchscript", space, model_path=str(bad), adapter_path=str(ad))
    with pytest.raises(ValueError, match="cannot load ONNX"):
        make_backend("onnx", space, model_path=str(bad), adapter_path=str(ad))
    with pytest.raises(ValueError, match="not found"):
        make_backend("onnx", space, model_path=str(tmp_path / "missing.onnx"), adapter_path=str(ad))
    model_path = _export(TinySeg(3), "torchscript", tmp_path / "ok.ts")
    with pytest.raises(ValueError, match="semantic_logits or the instance"):
        make_backend("torchscript", space, model_path=str(model_path),
                     adapter_path=str(_adapter(tmp_path, {"outputs": {}}, "empty.yaml")))
    with pytest.raises(ValueError, match="needs model_path"):
        make_backend("torchscript", space)
    be = make_backend("torchscript", space, model_path=str(model_path), adapter_path=str(ad))
    for color in (np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8), np.zeros((10, 10, 3), np.float32),
                  np.zeros((0, 10, 3), np.uint8)):
        with pytest.raises(ValueError):
            be.predict(PanopticInput(color=color))


class DictOut(torch.nn.Module):
    """DeepLab-style dict output {"out": logits, "aux": ...}."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 21, 1)

    def forward(self, x: torch.Tensor):
        return {"out": self.conv(x), "aux": x}


def test_dict_output_and_example_adapters(tmp_path, space):
    from metric_semantic_slam.core.panoptic.export_examples import DEEPLAB_ADAPTER, MASKRCNN_ADAPTER
    from metric_semantic_slam.core.panoptic.model import ModelAdapter

    deeplab = ModelAdapter.from_dict(yaml.safe_load(DEEPLAB_ADAPTER))
    assert deeplab.outputs["semantic_logits"] == "out" and deeplab.remap == "voc21"
    mrcnn = ModelAdapter.from_dict(yaml.safe_load(MASKRCNN_ADAPTER))
    assert mrcnn.has_instances and mrcnn.remap == "coco_panoptic"
    path = tmp_path / "dict.ts"
    torch.jit.trace(DictOut().eval(), torch.rand(1, 3, 24, 32), strict=False).save(str(path))
    ad = tmp_path / "deeplab.yaml"
    ad.write_text(DEEPLAB_ADAPTER.replace("[480, 640]", "[24, 32]"))
    res = make_backend("torchscript", space, model_path=str(path), adapter_path=str(ad)).predict(
        PanopticInput(color=np.full((48, 64, 3), 100, np.uint8)))
    validate_result(res, (48, 64), space.max_id + 1)
    # VOC ids map into {unknown, object, chair, table, person, plant, sofa, monitor} only
    allowed = {0} | {space.id_of(n) for n in ("object", "chair", "table", "person", "plant", "sofa", "monitor")}
    assert set(np.unique(res.semantic).tolist()) <= allowed
