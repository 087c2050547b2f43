"""Panoptic segmentation stage (ROS-free): one interface, several backends.

``make_backend(name, label_space, **options)`` returns a backend with ``predict(PanopticInput) ->
PanopticResult``. Backends: ``oracle`` (ground truth + controlled noise), ``geometric`` (model-free
planes + connected components from depth), ``builtin`` (the project's trained compact network),
``torchscript`` / ``onnx`` (a user's model with an adapter YAML) and ``person`` (MediaPipe's
selfie-segmentation model read from the mediapipe wheel and run with torch; see ``person.py``).
See ``types.py`` for the contract.
"""
from .registry import BACKENDS, make_backend
from .types import PanopticBackend, PanopticInput, PanopticResult, empty_result, validate_input, validate_result

__all__ = ["BACKENDS", "make_backend", "PanopticBackend", "PanopticInput", "PanopticResult",
           "validate_input", "validate_result", "empty_result"]
