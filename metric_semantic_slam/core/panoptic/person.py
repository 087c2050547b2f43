"""``person`` panoptic backend: MediaPipe's pretrained selfie-segmentation model, run with torch.

The model (Apache-2.0) ships inside the ``mediapipe==0.10.21`` wheel as
``mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite`` (input 256 x 256, "general") and
``selfie_segmentation_landscape.tflite`` (144 x 256). MediaPipe itself is never imported (it pins
numpy<2): the ``.tflite`` bytes are parsed by :mod:`.tflite_reader` and run by :mod:`.tflite_torch`
(CPU or CUDA, fp16 on CUDA, batched). Nothing is downloaded and no weights are kept in the repository.

Where the model comes from (``model_path``, else the environment variable ``MSSLAM_PERSON_MODEL``,
else an installed ``mediapipe`` package located without importing it):

- a ``.tflite`` file (its input shape says which variant it is);
- a mediapipe wheel ``mediapipe-0.10.21-*.whl``, read in place with ``zipfile``
  (``pip download mediapipe==0.10.21 --no-deps -d DIR`` fetches it, 36 MB, without its dependencies);
- a directory: a mediapipe package dir, a site-packages dir holding one
  (``pip install --no-deps mediapipe==0.10.21``), a folder with the ``.tflite`` files, or the
  ``pip download`` folder holding the wheel.

Output: pixels whose person probability exceeds ``threshold`` get the label space's ``person`` class
(dynamic and private in the bundled space: the mapper never fuses it and it never leaves the node); each
connected component of at least ``min_area_px`` pixels is one instance (touching people merge: the
model gives one foreground mask); every other pixel is 0 (unknown).

Input handling: RGB scaled to [0, 1] and letterboxed to the model's size with black borders (the default;
``resize="stretch"`` squeezes the image to the model size without keeping the aspect ratio, as MediaPipe's
own graph does). ``variant="auto"`` uses the landscape model for images at least 16:9 wide, where its
letterboxed content is as large as the general model's, and the general (more accurate) model otherwise.

Limits (measured on the real sequences in ``../shared/data``): the model was trained for selfies and video
calls. It finds the person sitting behind the desk in TUM fr1/rpy (head and torso fully covered), but in
person-free rooms it also marks some objects (red cloth, a stuffed toy): 0-7 % of the pixels on average per
sequence, up to 17 % of one frame at ``threshold=0.5`` (up to 7 % at 0.9). For privacy that errs on the safe
side; for dynamic masking it removes some static surface from the map. 640 x 480 on one CPU thread: about
26 ms per frame (19 ms of it the 256 x 256 network).
"""
from __future__ import annotations

import importlib.util
import os
import zipfile
from pathlib import Path

import cv2
import numpy as np
import torch

from ..labels import LabelSpace
from .device import inference_device
from .letterbox import Letterbox
from .tflite_reader import parse_tflite
from .tflite_torch import TfliteTorchGraph
from .types import PanopticInput, PanopticResult, validate_input

__all__ = ["PersonBackend", "find_person_model", "MODEL_FILES", "MODEL_ENV_VAR", "INSTALL_HINT"]

MODEL_ENV_VAR = "MSSLAM_PERSON_MODEL"
_PACKAGE_SUBDIR = "mediapipe/modules/selfie_segmentation"
MODEL_FILES: dict[str, str] = {"general": "selfie_segmentation.tflite",
                               "landscape": "selfie_segmentation_landscape.tflite"}
INSTALL_HINT = ("the 'person' backend needs MediaPipe's selfie-segmentation model (Apache-2.0), which ships in "
                "the mediapipe==0.10.21 wheel. Get it without mediapipe's dependencies (it pins numpy<2) with "
                "`pip download mediapipe==0.10.21 --no-deps -d DIR` and pass model_path=DIR/mediapipe-0.10.21-*.whl "
                f"(or set {MODEL_ENV_VAR}), or run `pip install --no-deps mediapipe==0.10.21`; "
                "model_path may also name a selfie_segmentation*.tflite file")


def _read_from_zip(path: Path, variants: tuple[str, ...]) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            return {v: zf.read(f"{_PACKAGE_SUBDIR}/{MODEL_FILES[v]}") for v in variants
                    if f"{_PACKAGE_SUBDIR}/{MODEL_FILES[v]}" in names}
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"could not read the wheel {path}: {e}") from e


def _read_from_dir(path: Path, variants: tuple[str, ...]) -> dict[str, bytes]:
    # a site-packages dir, the mediapipe package dir, or a folder holding the .tflite files
    for base in (path / _PACKAGE_SUBDIR, path / "modules" / "selfie_segmentation", path):
        found = {v: (base / MODEL_FILES[v]).read_bytes() for v in variants if (base / MODEL_FILES[v]).is_file()}
        if found:
            return found
    # a download folder (`pip download mediapipe==0.10.21 --no-deps -d DIR`): a mediapipe wheel in it
    for wheel in sorted(path.glob("mediapipe-*.whl"), reverse=True):
        found = _read_from_zip(wheel, variants)
        if found:
            return found
    return {}


def _installed_mediapipe_dir() -> Path | None:
    """The installed mediapipe package directory, found without importing it (no numpy<2 import)."""
    try:
        spec = importlib.util.find_spec("mediapipe")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def find_person_model(model_path: str | Path | None = None,
                      variants: tuple[str, ...] = ("general", "landscape")) -> tuple[dict[str, bytes], str]:
    """Locate the selfie-segmentation model(s); see the module doc for the search order.

    Returns ``({variant: tflite bytes}, description of the source)``; a ``.tflite`` file is returned
    under the key ``"file"`` (its variant is read from its input shape later). Raises ValueError with
    install instructions when nothing is found, or naming the bad path.
    """
    for v in variants:
        if v not in MODEL_FILES:
            raise ValueError(f"unknown person model variant {v!r}; known: {sorted(MODEL_FILES)}")
    if model_path is None and os.environ.get(MODEL_ENV_VAR):
        model_path = os.environ[MODEL_ENV_VAR]
        origin = f"${MODEL_ENV_VAR}"
    else:
        origin = "model_path"
    if model_path is not None:
        p = Path(model_path).expanduser()
        if p.is_file():
            if p.suffix == ".tflite":  # checked first: a .tflite may end with a zip of associated files
                return {"file": p.read_bytes()}, str(p)
            if zipfile.is_zipfile(p):
                found = _read_from_zip(p, variants)
            else:
                raise ValueError(f"{origin}={p} is neither a .tflite file nor a mediapipe wheel; {INSTALL_HINT}")
        elif p.is_dir():
            found = _read_from_dir(p, variants)
        else:
            raise ValueError(f"{origin}={p} does not exist; {INSTALL_HINT}")
        if not found:
            raise ValueError(f"no selfie_segmentation model in {origin}={p}; {INSTALL_HINT}")
        return found, str(p)
    pkg = _installed_mediapipe_dir()
    if pkg is not None:
        found = _read_from_dir(pkg, variants)
        if found:
            return found, str(pkg)
    raise ValueError(f"no person-segmentation model found (no model_path, no ${MODEL_ENV_VAR}, no installed "
                     f"mediapipe); {INSTALL_HINT}")


class PersonBackend:
    """MediaPipe selfie segmentation as a :class:`PanopticBackend` (class ``person`` + unknown).

    Options: ``model_path`` (see :func:`find_person_model`), ``threshold`` (person probability in (0, 1),
    default 0.5), ``variant`` ("auto", "general", "landscape"), ``resize`` ("letterbox" or "stretch"),
    ``min_area_px`` (smaller components are dropped, default 64), ``device`` ("cpu", "cuda", ...),
    ``fp16`` (default: True on CUDA), ``batch_size``, ``return_probabilities`` (default False: a
    (C, H, W) map with the person probability at the person id and the rest at id 0),
    ``person_class`` (label name, default "person").
    """

    name = "person"

    def __init__(self, label_space: LabelSpace, model_path: str | Path | None = None, threshold: float = 0.5,
                 variant: str = "auto", resize: str = "letterbox", min_area_px: int = 64, device: str = "cpu",
                 fp16: bool | None = None, batch_size: int = 8, return_probabilities: bool = False,
                 person_class: str = "person") -> None:
        self.label_space = label_space
        try:
            self.person_id = int(label_space.id_of(person_class))
        except KeyError as e:
            raise ValueError(f"label space {label_space.name!r} has no class {person_class!r}") from e
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        if variant not in ("auto", *MODEL_FILES):
            raise ValueError(f"variant must be 'auto', 'general' or 'landscape', got {variant!r}")
        if resize not in ("letterbox", "stretch"):
            raise ValueError(f"resize must be 'letterbox' or 'stretch', got {resize!r}")
        if int(min_area_px) < 0 or int(batch_size) < 1:
            raise ValueError(f"need min_area_px >= 0 and batch_size >= 1, got {min_area_px}, {batch_size}")
        self.device, self.fp16 = inference_device(device, fp16)
        self.threshold = float(threshold)
        self.variant = variant
        self.resize = resize
        self.min_area_px = int(min_area_px)
        self.batch_size = int(batch_size)
        self.return_probabilities = bool(return_probabilities)

        wanted = tuple(MODEL_FILES) if variant == "auto" else (variant,)
        blobs, self.model_source = find_person_model(model_path, wanted)
        self.graphs: dict[str, TfliteTorchGraph] = {}
        self.input_hw: dict[str, tuple[int, int]] = {}
        for key, blob in blobs.items():
            try:
                graph = TfliteTorchGraph(parse_tflite(blob))
            except ValueError as e:
                raise ValueError(f"could not load the person model from {self.model_source}: {e}") from e
            _, h, w, c = graph.input_shape
            if c != 3:
                raise ValueError(f"person model from {self.model_source} takes {c} channels, expected 3 (RGB)")
            kind = key if key != "file" else ("general" if h == w else "landscape")
            if variant != "auto" and kind != variant:
                raise ValueError(f"{self.model_source} is the {kind} model ({h}x{w}), variant={variant!r} asked")
            graph = graph.to(self.device).eval()
            self.graphs[kind] = graph.half() if self.fp16 else graph
            self.input_hw[kind] = (int(h), int(w))

    def variant_for(self, hw: tuple[int, int]) -> str:
        """Which model variant an (H, W) image uses (see the module doc for "auto")."""
        if len(self.graphs) == 1:
            return next(iter(self.graphs))
        if self.variant != "auto":
            return self.variant
        return "landscape" if hw[1] * 9 >= hw[0] * 16 else "general"

    def predict(self, inp: PanopticInput) -> PanopticResult:
        """Person labels of one frame. Raises ValueError on bad input (see ``validate_input``)."""
        return self.predict_batch([inp])[0]

    @torch.no_grad()
    def person_probability(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Person probability per pixel. Shape: list of (H, W, 3) uint8 RGB -> list of (H, W) float32."""
        out: list[np.ndarray | None] = [None] * len(images)
        groups: dict[str, list[int]] = {}
        for k, img in enumerate(images):
            groups.setdefault(self.variant_for(img.shape[:2]), []).append(k)
        for kind, idx in groups.items():
            net_hw = self.input_hw[kind]
            for a in range(0, len(idx), self.batch_size):
                chunk = idx[a:a + self.batch_size]
                boxes, batch = [], []
                for k in chunk:
                    if self.resize == "letterbox":
                        lb = Letterbox.fit(images[k].shape[:2], net_hw)
                        batch.append(lb.apply(images[k]))
                    else:
                        lb = None
                        batch.append(cv2.resize(images[k], (net_hw[1], net_hw[0]), interpolation=cv2.INTER_AREA))
                    boxes.append(lb)
                x = torch.from_numpy(np.stack(batch)).to(self.device)
                x = x.to(torch.float16 if self.fp16 else torch.float32) / 255.0
                prob = self.graphs[kind](x)[0][..., 0].float().clamp_(0.0, 1.0).cpu().numpy()
                for j, (k, lb) in enumerate(zip(chunk, boxes)):
                    H, W = images[k].shape[:2]
                    if lb is not None:
                        out[k] = lb.invert(prob[j])
                    else:
                        out[k] = cv2.resize(prob[j], (W, H), interpolation=cv2.INTER_LINEAR)
        return [np.ascontiguousarray(p, dtype=np.float32) for p in out]

    def predict_batch(self, inputs: list[PanopticInput]) -> list[PanopticResult]:
        """Person labels of many frames (any sizes), ``batch_size`` per forward pass per variant."""
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"predict_batch takes a list of PanopticInput, got {type(inputs).__name__}")
        for inp in inputs:
            validate_input(inp)
        probs = self.person_probability([inp.color for inp in inputs])
        return [self._result(p) for p in probs]

    def _result(self, prob: np.ndarray) -> PanopticResult:
        mask = (prob > self.threshold).astype(np.uint8)
        n, comp, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        keep = stats[:, cv2.CC_STAT_AREA] >= self.min_area_px
        keep[0] = False  # component 0 is the background
        new_id = np.zeros(n, np.int64)
        new_id[keep] = np.arange(1, int(keep.sum()) + 1)
        instance = new_id[comp].astype(np.uint16)
        semantic = np.where(instance > 0, self.person_id, 0).astype(np.uint16)
        prob_sum = np.bincount(comp.ravel(), weights=prob.ravel(), minlength=n)
        classes = {int(new_id[c]): self.person_id for c in np.flatnonzero(keep)}
        scores = {int(new_id[c]): float(prob_sum[c] / stats[c, cv2.CC_STAT_AREA]) for c in np.flatnonzero(keep)}
        probabilities = None
        if self.return_probabilities:
            probabilities = np.zeros((self.label_space.max_id + 1,) + prob.shape, np.float32)
            probabilities[self.person_id] = prob
            probabilities[0] = 1.0 - prob
        return PanopticResult(semantic, instance, probabilities, classes, scores)
