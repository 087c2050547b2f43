"""The JSON Schema of scene graphs and updates (``config/schemas/scene_graph.schema.json``)."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

__all__ = ["schema_path", "load_schema", "validate_scene_graph_dict"]


def schema_path() -> Path:
    """Path of the bundled schema (source tree, or the package's ROS share directory)."""
    here = Path(__file__).resolve()
    candidates = [here.parents[3] / "config" / "schemas" / "scene_graph.schema.json"]
    try:
        from ament_index_python.packages import get_package_share_directory  # type: ignore

        candidates.append(Path(get_package_share_directory("metric_semantic_slam")) / "config" / "schemas"
                          / "scene_graph.schema.json")
    except Exception:  # ament index absent or package not installed through colcon
        pass
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"scene_graph.schema.json not found; looked in {[str(c) for c in candidates]}")


@lru_cache(maxsize=1)
def load_schema() -> dict:
    with open(schema_path()) as f:
        return json.load(f)


def validate_scene_graph_dict(d: dict) -> None:
    """Raise ValueError when ``d`` (a full graph or an update) does not follow the schema."""
    import jsonschema

    try:
        jsonschema.validate(d, load_schema())
    except jsonschema.ValidationError as e:
        raise ValueError(f"scene graph JSON does not match the schema: {e.message} at {list(e.absolute_path)}") from None
