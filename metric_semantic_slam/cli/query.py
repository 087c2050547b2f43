"""``msslam query GRAPH.json "cup on table"``: answer a scene-graph query from a saved graph.

Reads a full scene graph JSON (``msslam_scene_graph``) or a full update (``msslam_scene_graph_update``
with ``full: true``) and prints one line per match: ids, classes, position and box; ``--json`` prints
the matches as JSON instead. Grammar: ``docs/scene_graph.md``. Exit status 1 when nothing matches
(``--allow-empty`` makes that 0), 2 on a bad query or file.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``query`` verb."""
    p = subparsers.add_parser(
        "query", help="query a saved scene graph (e.g. \"cup on table\", \"chair in_front_of tv\")",
        description="Find objects by class, attributes and relation chains, or free support surfaces, in a "
        "scene graph JSON file. Examples: 'cup on table', 'chair in_front_of tv', 'class:chair', "
        "'chair confidence>=0.8', 'support_surface min_area_m2=0.3'.")
    p.add_argument("graph", type=Path, help="scene graph JSON (msslam_scene_graph, or a full update)")
    p.add_argument("query", nargs="+", help="the query (quote it, or give its words as separate arguments)")
    p.add_argument("--json", action="store_true", help="print the matches as a JSON list")
    p.add_argument("--allow-empty", action="store_true", help="exit 0 also when nothing matches")
    return p


def run(args: argparse.Namespace) -> int:
    from metric_semantic_slam.core.scene_graph import UPDATE_SCHEMA_NAME, SceneGraph, run_query

    try:
        d = json.loads(Path(args.graph).read_text())
        if isinstance(d, dict) and d.get("schema") == UPDATE_SCHEMA_NAME:
            if not d.get("full"):
                raise ValueError("an incremental update holds only changed objects; give a full graph or full update")
            g = SceneGraph()
            g.apply_update(d)
        else:
            g = SceneGraph.from_dict(d)
        matches = run_query(g, " ".join(args.query))
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"msslam query: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([m.to_dict() for m in matches], indent=1))
    else:
        print(f"{len(matches)} match(es) for {' '.join(args.query)!r} in {args.graph} (sequence {g.sequence})")
        for m in matches:
            b = m.box
            ext = " x ".join(f"{v:.2f}" for v in b["extents_m"])
            chain = " -> ".join(f"{i}:{c}" for i, c in zip(m.ids, m.class_names))
            extra = ""
            if m.kind == "support_surface":
                extra = f"  area {m.extra['area_m2']:.2f} m^2, free {m.extra['free_area_m2']:.2f} m^2"
            print(f"  {chain}  at ({m.position_m[0]:.2f}, {m.position_m[1]:.2f}, {m.position_m[2]:.2f}) m  "
                  f"box {ext} m yaw {b['yaw_rad']:.2f} rad  score {m.score:.2f}{extra}")
    return 0 if matches or args.allow_empty else 1
