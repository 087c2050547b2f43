"""The suite's rclpy nodes, one module per process (DESIGN.md §2): thin adapters over ``core/``.

Every node module defines ``PARAMS`` (its parameters, the one source of their defaults), ``SUBSCRIBES`` and
``PUBLISHES`` (:class:`~metric_semantic_slam.ros.node_runtime.TopicSpec` tables) and ``main(argv=None)``.
The helpers here read those tables for the params files in ``config/params/`` (generated from and checked
against ``PARAMS``). Importing this package imports no rclpy; :func:`node_module` does.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

__all__ = ["node_module", "node_params", "params_section", "params_file_text", "write_params_files"]


def node_module(name: str) -> ModuleType:
    """The module of graph node ``name`` (e.g. ``"vio"``)."""
    from ..graph import NODES

    if name not in NODES:
        raise ValueError(f"unknown node {name!r}; the graph has {list(NODES)}")
    return importlib.import_module(NODES[name][1].split(":")[0])


def node_params(name: str) -> tuple:
    """Every parameter node ``name`` declares: its ``PARAMS`` plus the runtime's (status period, QoS, ...)."""
    from ..ros.node_runtime import with_runtime_params

    return with_runtime_params(node_module(name).PARAMS)


def params_section(name: str) -> str:
    """The params-file key of node ``name``: ``/**/name`` matches it in any namespace (a bare ``name`` only
    matches a node in the root namespace)."""
    return f"/**/{name}"


def params_file_text(name: str) -> str:
    """A complete params file for node ``name`` with every default and its description."""
    from ..ros.params import specs_to_params_yaml

    header = (f"# Parameters of the {name} node, generated from PARAMS in {node_module(name).__name__}\n"
              "# (python -c 'from metric_semantic_slam.nodes import write_params_files; write_params_files()').\n"
              "# Edit values here; a test checks the names and types against the node.\n")
    return header + specs_to_params_yaml(params_section(name), node_params(name))


def write_params_files(folder: str | Path | None = None, names: list[str] | None = None) -> list[Path]:
    """Write ``config/params/<node>.yaml`` for ``names`` (default: every graph node); returns the paths."""
    from ..graph import NODES

    out = Path(folder) if folder is not None else Path(__file__).resolve().parents[2] / "config" / "params"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names or list(NODES):
        p = out / f"{name}.yaml"
        p.write_text(params_file_text(name))
        paths.append(p)
    return paths
