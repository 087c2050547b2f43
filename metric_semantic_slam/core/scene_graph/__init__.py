"""3D scene graph (ROS-free): object and structure layers, relations, incremental updates, queries."""
from .builder import SceneGraphBuilder
from .config import SceneGraphConfig
from .model import (INVERSE_PREDICATES, PREDICATES, SCHEMA_NAME, SCHEMA_VERSION, UPDATE_SCHEMA_NAME, Box,
                    ObjectNode, Plane, Relation, Room, SceneGraph, SceneGraphUpdate, Structure, SupportSurface,
                    gravity_frame)
from .query import QueryMatch, parse_query, run_query
from .schema import load_schema, schema_path, validate_scene_graph_dict

__all__ = [
    "Box", "INVERSE_PREDICATES", "ObjectNode", "PREDICATES", "Plane", "QueryMatch", "Relation", "Room",
    "SCHEMA_NAME", "SCHEMA_VERSION", "SceneGraph", "SceneGraphBuilder", "SceneGraphConfig", "SceneGraphUpdate",
    "Structure", "SupportSurface", "UPDATE_SCHEMA_NAME", "gravity_frame", "load_schema", "parse_query", "run_query", "schema_path",
    "validate_scene_graph_dict",
]
