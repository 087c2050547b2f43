"""``msslam render MAP_OR_PLY --output PNG``: a headless picture of a map for users without RViz.

Reads a mapper map file (``map.npz``, what the mapper node's ``save_map`` writes) or a mesh PLY (vertex
colors, optional ``class`` property) and renders it with :mod:`metric_semantic_slam.eval.render`
(CPU ray casting, no display). ``--color class`` paints vertices with their class colors, ``rgb`` with
their fused colors. ``--output`` is a ``.png`` path or a folder (then ``mesh.png`` /
``mesh_semantic.png`` inside it).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

__all__ = ["add_parser", "run", "load_mesh_arrays", "render_map"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``render`` verb."""
    from ..eval.render import VIEWS

    p = subparsers.add_parser("render", help="render a saved map (map.npz) or mesh PLY to a PNG, headless",
                              description="Render a mapper map file or a mesh PLY to a PNG without a display.")
    p.add_argument("input", type=Path, help="map.npz (mapper save_map / SemanticVoxelMapper.save) or a mesh .ply")
    p.add_argument("--output", type=Path, required=True, help="PNG file, or a folder for mesh[_semantic].png")
    p.add_argument("--color", choices=("rgb", "class"), default="rgb",
                   help="vertex colors: fused RGB (default) or class colors of the label space")
    p.add_argument("--view", choices=VIEWS[:3], default="oblique",
                   help="oblique (z-up maps, default), top (plan view) or principal (maps not gravity-aligned)")
    p.add_argument("--width", type=int, default=960)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--label-space", type=Path, default=None,
                   help="label space YAML for --color class of a PLY (default: the bundled indoor space; a "
                        "map.npz carries its own)")
    return p


def load_mesh_arrays(path: Path, color: str, label_space_path: Path | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices (V, 3), triangles (F, 3), colors (V, 3) uint8) of a map file or a PLY.

    Raises ValueError for unknown files, meshes without triangles, or ``class`` colors of a PLY
    without a ``class`` property.
    """
    from ..core.labels import load_label_space

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist")
    if path.suffix == ".npz":
        from ..core.mapping import SemanticVoxelMapper

        mapper = SemanticVoxelMapper.load(path, device="cpu")
        mesh = mapper.extract_mesh()
        verts, tris = mesh.vertices, mesh.triangles
        colors = mapper.labels.colorize(mesh.classes[None])[0] if color == "class" else mesh.colors
    elif path.suffix == ".ply":
        from ..io.ply import read_ply

        ply = read_ply(path)
        if ply.faces is None:
            raise ValueError(f"{path} has no faces: render needs a mesh")
        verts, tris = ply.vertices, ply.faces
        if color == "class":
            if "class" not in ply.vertex_props:
                raise ValueError(f"{path} has no vertex 'class' property: use --color rgb")
            colors = load_label_space(label_space_path).colorize(ply.vertex_props["class"][None])[0]
        else:
            colors = ply.vertex_colors
            if colors is None:
                colors = np.full((len(verts), 3), 200, np.uint8)
    else:
        raise ValueError(f"{path}: expected a .npz map file or a .ply mesh")
    if len(tris) == 0:
        raise ValueError(f"{path}: the mesh has no triangles (an empty map?)")
    return np.asarray(verts), np.asarray(tris), np.asarray(colors, dtype=np.uint8)


def render_map(path: Path, output: Path, color: str = "rgb", view: str = "oblique", width: int = 960,
               height: int = 720, label_space_path: Path | None = None) -> Path:
    """Render ``path`` to a PNG; returns the PNG path."""
    from ..eval.render import save_mesh_png

    verts, tris, colors = load_mesh_arrays(path, color, label_space_path)
    output = Path(output)
    if output.suffix.lower() != ".png":
        output = output / ("mesh_semantic.png" if color == "class" else "mesh.png")
    return save_mesh_png((verts, tris, colors), output, width=width, height=height, view=view)


def run(args: argparse.Namespace) -> int:
    try:
        out = render_map(args.input, args.output, args.color, args.view, args.width, args.height, args.label_space)
    except ValueError as exc:
        print(f"msslam render: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0
