"""The node graph: the one definition of the suite's nodes, read by setup.py, launch files and tests.

Pure data (no imports beyond the standard library) so ``setup.py`` can read it before install.
"""
from __future__ import annotations

PACKAGE = "metric_semantic_slam"

# name -> (executable, "module:function"). Executables are console scripts installed by setup.py
# into lib/<package>/ (where ros2 run / launch look) and onto PATH.
NODES: dict[str, tuple[str, str]] = {
    "depth_fusion": ("depth_fusion_node", "metric_semantic_slam.nodes.depth_fusion_node:main"),
    "vio": ("vio_node", "metric_semantic_slam.nodes.vio_node:main"),
    "panoptic": ("panoptic_node", "metric_semantic_slam.nodes.panoptic_node:main"),
    "mapper": ("mapper_node", "metric_semantic_slam.nodes.mapper_node:main"),
    "scene_graph": ("scene_graph_node", "metric_semantic_slam.nodes.scene_graph_node:main"),
}

CLI = ("msslam", "metric_semantic_slam.cli.main:main")


def console_scripts() -> list[str]:
    """``setup.py`` entry points: every node plus the ``msslam`` command."""
    scripts = [f"{exe} = {target}" for exe, target in NODES.values()]
    scripts.append(f"{CLI[0]} = {CLI[1]}")
    return scripts
