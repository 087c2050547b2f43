"""Choose a panoptic backend by name; backends are imported lazily.

A backend whose dependency is missing (e.g. onnxruntime for ``onnx``) raises a clear error only when it
is chosen. Options are plain keyword arguments forwarded to the backend's constructor, e.g.
``make_backend("onnx", model_path=..., adapter_path=...)``,
``make_backend("oracle", noise_fraction=0.1, seed=0)``, ``make_backend("builtin", device="cuda")``.
``device="auto"`` is resolved here (CUDA when available, else CPU) before the backend sees it.
"""
from __future__ import annotations

import importlib
from typing import Any

from ..labels import LabelSpace, load_label_space
from .types import PanopticBackend

__all__ = ["BACKENDS", "make_backend"]

BACKENDS: tuple[str, ...] = ("oracle", "geometric", "builtin", "torchscript", "onnx", "person")

# name -> (module relative to this package, class name)
_IMPLEMENTATIONS: dict[str, tuple[str, str]] = {
    "oracle": (".oracle", "OracleBackend"),
    "geometric": (".geometric", "GeometricBackend"),
    "builtin": (".builtin", "BuiltinBackend"),
    "torchscript": (".model", "TorchScriptBackend"),
    "onnx": (".model", "OnnxBackend"),
    "person": (".person", "PersonBackend"),
}


def make_backend(name: str, label_space: LabelSpace | None = None, **options: Any) -> PanopticBackend:
    """Build the panoptic backend ``name`` (one of :data:`BACKENDS`) in ``label_space``.

    ``label_space`` None loads the bundled indoor space. Raises ValueError for an unknown name or bad
    options, ImportError (with the missing package named) when the backend's dependency is absent.
    """
    if name not in _IMPLEMENTATIONS:
        raise ValueError(f"unknown panoptic backend {name!r}; available: {BACKENDS}")
    module_name, class_name = _IMPLEMENTATIONS[name]
    try:
        module = importlib.import_module(module_name, __package__)
    except ModuleNotFoundError as e:
        raise ImportError(f"panoptic backend {name!r} needs the package {e.name!r}, which is not installed") from e
    cls = getattr(module, class_name)
    space = label_space if label_space is not None else load_label_space()
    if options.get("device") == "auto":  # one meaning for every backend: CUDA when present
        import torch

        options["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    return cls(label_space=space, **options)
