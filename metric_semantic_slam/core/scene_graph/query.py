"""Queries over a scene graph: classes, attributes and relation chains.

Grammar (tokens separated by spaces; see ``docs/scene_graph.md``)::

    query    := term (predicate term)*  |  "support_surface" filter*
    term     := (CLASS | "class:"CLASS | "*" | "any" | "id:"N) filter*
    filter   := KEY OP VALUE            OP in  = == != >= <= > <
    predicate:= on | supports | under | near | in_front_of | behind | left_of | right_of | inside | in_room

Multi-word predicates are accepted ("in front of", "left of", "right of", "on top of", "next to" = near).
A chain ``A p1 B p2 C`` matches id tuples (a, b, c) with ``a p1 b`` and ``b p2 c``; the match's pose and box
are those of ``a`` (the first term). ``in_room`` takes a room name (``room_0``) or ``room``.
``support_surface`` filters: ``min_area_m2=X`` (free area >= X), ``area_m2``, ``free_area_m2``, ``height_m``,
``class`` (the class of the object the surface belongs to, ``floor`` for the floor), ``object_id``.
Object filter keys: ``confidence``, ``point_count``, ``voxel_count``, ``volume_m3``, ``height_m`` (box
height), ``length_m``, ``width_m``, ``z_m`` (box centre height), ``room_id``, ``first_seen``, ``last_seen``,
``is_dynamic``, ``id``, ``class``. A match's score is the product of the relation scores in the chain.
"""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field

import numpy as np

from .model import PREDICATES, ObjectNode, SceneGraph, SupportSurface

__all__ = ["QueryMatch", "run_query", "parse_query"]

_OPS = {"=": operator.eq, "==": operator.eq, "!=": operator.ne, ">=": operator.ge, "<=": operator.le,
        ">": operator.gt, "<": operator.lt}
_FILTER = re.compile(r"^([a-z_][a-z0-9_]*)(==|!=|>=|<=|=|>|<)(.+)$")
_PHRASES = [("in front of", "in_front_of"), ("on top of", "on"), ("left of", "left_of"), ("right of", "right_of"),
            ("to the left of", "left_of"), ("to the right of", "right_of"), ("next to", "near"),
            ("in room", "in_room"), ("inside of", "inside")]
_ALL_PREDICATES = set(PREDICATES) | {"in_room"}
_OBJECT_KEYS = {"confidence", "point_count", "voxel_count", "volume_m3", "height_m", "length_m", "width_m", "z_m",
                "room_id", "first_seen", "last_seen", "is_dynamic", "id", "class"}
_SURFACE_KEYS = {"area_m2", "free_area_m2", "min_area_m2", "height_m", "class", "object_id", "id"}
_SURFACE_WORDS = ("support_surface", "support_surfaces", "surface")


@dataclass
class QueryMatch:
    """One answer: the ids matched by each term (the first is the answer), their class names, the
    first object's (or surface's) box in the map frame, and a score in [0, 1]."""

    ids: list[int]
    class_names: list[str]
    kind: str
    position_m: list[float]
    box: dict
    score: float = 1.0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"ids": self.ids, "class_names": self.class_names, "kind": self.kind, "position_m": self.position_m,
                "box": self.box, "score": self.score, **({"extra": self.extra} if self.extra else {})}


@dataclass
class _Term:
    selector: str  # class name, "*", or "id:N"
    filters: list[tuple[str, str, str]]


def _normalise(query: str) -> str:
    q = " ".join(query.strip().lower().split())
    for phrase, pred in sorted(_PHRASES, key=lambda p: -len(p[0])):
        q = re.sub(rf"(?<![a-z_]){phrase}(?![a-z_])", pred, q)
    return q


def parse_query(query: str) -> tuple[list[_Term], list[str]]:
    """Split a query into terms and the predicates between them; ValueError on bad syntax."""
    if not isinstance(query, str) or not query.strip():
        raise ValueError("empty query")
    tokens = _normalise(query).split(" ")
    terms: list[_Term] = []
    preds: list[str] = []
    expect_term = True
    for tok in tokens:
        if expect_term:
            if tok in _ALL_PREDICATES or _FILTER.match(tok):
                raise ValueError(f"query {query!r}: expected a class, '*' or 'id:N' where {tok!r} is")
            sel = tok[len("class:"):] if tok.startswith("class:") else tok
            sel = "*" if sel == "any" else sel
            terms.append(_Term(sel, []))
            expect_term = False
        elif tok in _ALL_PREDICATES:
            preds.append(tok)
            expect_term = True
        else:
            m = _FILTER.match(tok)
            if not m:
                raise ValueError(f"query {query!r}: {tok!r} is neither a predicate ({sorted(_ALL_PREDICATES)}) "
                                 f"nor a filter KEY=VALUE")
            key, op, val = m.group(1), m.group(2), m.group(3)
            keys = _SURFACE_KEYS if terms[-1].selector in _SURFACE_WORDS else _OBJECT_KEYS
            if key not in keys:
                raise ValueError(f"query {query!r}: unknown attribute {key!r}; known: {sorted(keys)}")
            if op in (">=", "<=", ">", "<") and not isinstance(_value(val), float):
                raise ValueError(f"query {query!r}: {key}{op}{val} needs a number")
            terms[-1].filters.append((key, op, val))
    if expect_term:
        raise ValueError(f"query {query!r} ends with a predicate")
    return terms, preds


def _value(v: str):
    if v in ("true", "false"):
        return v == "true"
    try:
        return float(v)
    except ValueError:
        return v


def _object_attr(o: ObjectNode, key: str):
    e = o.box.extents_m
    table = {"confidence": o.confidence, "point_count": o.point_count, "voxel_count": o.voxel_count,
             "volume_m3": float(np.prod(e)), "height_m": float(e[2]), "length_m": float(e[0]), "width_m": float(e[1]),
             "z_m": float(o.box.center_m[2]), "room_id": -1 if o.room_id is None else o.room_id,
             "first_seen": o.first_seen, "last_seen": o.last_seen, "is_dynamic": o.is_dynamic, "id": o.id,
             "class": o.class_name}
    if key not in table:
        raise ValueError(f"unknown object attribute {key!r}; known: {sorted(table)}")
    return table[key]


def _passes(getter, item, filters) -> bool:
    for key, op, raw in filters:
        have = getter(item, key)
        want = _value(raw)
        if isinstance(have, str) or isinstance(want, str):
            if op not in ("=", "==", "!="):
                raise ValueError(f"{key}: only = and != apply to names")
            have, want = str(have), str(want)
        elif isinstance(have, (bool, np.bool_)):
            want = bool(want)
        if not _OPS[op](have, want):
            return False
    return True


def _select(graph: SceneGraph, term: _Term) -> list[int]:
    out = []
    for oid in sorted(graph.objects):
        o = graph.objects[oid]
        if term.selector.startswith("id:"):
            if str(oid) != term.selector[3:]:
                continue
        elif term.selector != "*" and o.class_name != term.selector:
            continue
        if _passes(_object_attr, o, term.filters):
            out.append(oid)
    return out


def _surface_attr(s: SupportSurface, key: str):
    table = {"area_m2": s.area_m2, "free_area_m2": s.free_area_m2, "min_area_m2": s.free_area_m2,
             "height_m": s.height_m, "class": s.class_name, "object_id": -1 if s.object_id is None else s.object_id,
             "id": s.id}
    if key not in table:
        raise ValueError(f"unknown support_surface attribute {key!r}; known: {sorted(table)}")
    return table[key]


def _surface_query(graph: SceneGraph, term: _Term) -> list[QueryMatch]:
    # min_area_m2=X means "at least X m^2 free", whatever operator is written.
    filters = [(k, ">=" if k == "min_area_m2" else op, v) for k, op, v in term.filters]
    R = graph.R_world_gravity
    out = []
    for s in graph.structure.support_surfaces:
        if _passes(_surface_attr, s, filters):
            out.append(QueryMatch(ids=[s.id], class_names=[s.class_name], kind="support_surface",
                                  position_m=[float(x) for x in s.box.center_m], box=s.box.to_dict(R), score=1.0,
                                  extra={"object_id": s.object_id, "area_m2": s.area_m2,
                                         "free_area_m2": s.free_area_m2, "height_m": s.height_m,
                                         "occupied_by": list(s.occupied_by)}))
    out.sort(key=lambda m: (-m.extra["free_area_m2"], m.ids))
    return out


def run_query(graph: SceneGraph, query: str) -> list[QueryMatch]:
    """Answer a query (grammar in the module docstring); ValueError on bad syntax or unknown keys.

    Returns matches sorted by score (highest first), then by ids.
    """
    terms, preds = parse_query(query)
    if terms[0].selector in _SURFACE_WORDS:
        if preds:
            raise ValueError("support_surface queries take filters only, no relations")
        return _surface_query(graph, terms[0])
    rel = {}
    for r in graph.relations:
        rel.setdefault(r.predicate, {})[(r.subject_id, r.object_id)] = r.score
    rooms = {room.name: room for room in graph.structure.rooms}
    # Chains as (ids, score), extended term by term.
    chains = [([i], 1.0) for i in _select(graph, terms[0])]
    for pred, term in zip(preds, terms[1:]):
        if pred == "in_room":
            names = list(rooms) if term.selector in ("room", "*") else [term.selector]
            ok = {oid for n in names if n in rooms for oid in rooms[n].object_ids}
            chains = [(ids, s) for ids, s in chains if ids[-1] in ok]
            continue
        cand = set(_select(graph, term))
        pairs = rel.get(pred, {})
        chains = [(ids + [b], s * pairs[(ids[-1], b)]) for ids, s in chains for b in sorted(cand)
                  if (ids[-1], b) in pairs]
    R = graph.R_world_gravity
    out = []
    for ids, s in chains:
        o = graph.objects[ids[0]]
        out.append(QueryMatch(ids=[int(i) for i in ids], class_names=[graph.objects[i].class_name for i in ids],
                              kind="object", position_m=[float(x) for x in o.box.center_m], box=o.box.to_dict(R),
                              score=float(s)))
    out.sort(key=lambda m: (-m.score, m.ids))
    return out
