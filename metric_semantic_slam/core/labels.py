"""Label spaces as data: classes with colors and roles, loaded from YAML.

A label space file (see ``config/label_spaces/indoor.yaml``) lists ``labels`` with
``id, name, color, is_thing, is_dynamic, is_private`` and optionally a ``remap`` table from another
model's class ids to ours. Id 0 is reserved for "unknown".
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

__all__ = ["Label", "LabelSpace", "default_label_space_path", "load_label_space", "LabelRemap", "remap_path",
           "load_remap"]


@dataclass(frozen=True)
class Label:
    id: int
    name: str
    color: tuple[int, int, int]
    is_thing: bool
    is_dynamic: bool
    is_private: bool


class LabelSpace:
    """An ordered set of labels with lookup by id and name, and role masks."""

    def __init__(self, labels: list[Label], name: str = "", version: int = 1) -> None:
        ids = [lab.id for lab in labels]
        if len(set(ids)) != len(ids):
            raise ValueError("label ids must be unique")
        names = [lab.name for lab in labels]
        if len(set(names)) != len(names):
            raise ValueError("label names must be unique")
        if 0 not in ids:
            raise ValueError("label id 0 ('unknown') must be defined")
        self.name = name
        self.version = version
        self.labels = sorted(labels, key=lambda lab: lab.id)
        self._by_id = {lab.id: lab for lab in self.labels}
        self._by_name = {lab.name: lab for lab in self.labels}

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, label_id: int) -> bool:
        return int(label_id) in self._by_id

    @property
    def max_id(self) -> int:
        return self.labels[-1].id

    def by_id(self, label_id: int) -> Label:
        return self._by_id[int(label_id)]

    def id_of(self, name: str) -> int:
        """Id of a class name; raises KeyError naming the known classes."""
        try:
            return self._by_name[name].id
        except KeyError:
            raise KeyError(f"unknown class {name!r}; known: {sorted(self._by_name)}") from None

    def names(self) -> list[str]:
        return [lab.name for lab in self.labels]

    def _mask(self, attr: str) -> np.ndarray:
        m = np.zeros(self.max_id + 1, dtype=bool)
        for lab in self.labels:
            m[lab.id] = getattr(lab, attr)
        return m

    @property
    def thing_mask(self) -> np.ndarray:
        """Boolean lookup table indexed by class id. Shape: (max_id + 1,)."""
        return self._mask("is_thing")

    @property
    def dynamic_mask(self) -> np.ndarray:
        return self._mask("is_dynamic")

    @property
    def private_mask(self) -> np.ndarray:
        return self._mask("is_private")

    def color_table(self) -> np.ndarray:
        """RGB color per class id (unused ids black). Shape: (max_id + 1, 3) uint8."""
        lut = np.zeros((self.max_id + 1, 3), dtype=np.uint8)
        for lab in self.labels:
            lut[lab.id] = lab.color
        return lut

    def colorize(self, class_image: np.ndarray) -> np.ndarray:
        """RGB picture of a class-id image; ids outside the space are drawn black.

        Shape: (H, W) integer -> (H, W, 3) uint8.
        """
        lut = self.color_table()
        ids = np.asarray(class_image).astype(np.int64)
        ok = (ids >= 0) & (ids <= self.max_id)
        return np.where(ok[..., None], lut[np.clip(ids, 0, self.max_id)], 0).astype(np.uint8)

    @classmethod
    def from_dict(cls, d: dict) -> "LabelSpace":
        labels = [
            Label(
                id=int(e["id"]),
                name=str(e["name"]),
                color=tuple(int(c) for c in e["color"]),
                is_thing=bool(e.get("is_thing", False)),
                is_dynamic=bool(e.get("is_dynamic", False)),
                is_private=bool(e.get("is_private", False)),
            )
            for e in d["labels"]
        ]
        return cls(labels, name=str(d.get("name", "")), version=int(d.get("version", 1)))

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "name": self.name,
            "labels": [
                {"id": lab.id, "name": lab.name, "color": list(lab.color), "is_thing": lab.is_thing,
                 "is_dynamic": lab.is_dynamic, "is_private": lab.is_private}
                for lab in self.labels
            ],
        }


def config_candidates(relative: str) -> list[Path]:
    """Places a bundled config file may live: source tree, the colcon share/ directory (ament index), then
    ``<prefix>/share/metric_semantic_slam`` where ``pip install .`` puts setup.py's data files."""
    import sys

    here = Path(__file__).resolve()
    candidates = [here.parents[2] / "config" / relative]
    try:
        from ament_index_python.packages import get_package_share_directory  # type: ignore

        candidates.append(Path(get_package_share_directory("metric_semantic_slam")) / "config" / relative)
    except Exception:  # ament index absent or package not installed through colcon
        pass
    candidates.append(Path(sys.prefix) / "share" / "metric_semantic_slam" / "config" / relative)
    return candidates


def default_label_space_path() -> Path:
    """Path of the bundled indoor label space (:func:`config_candidates`, then the package's data/ copy)."""
    candidates = [*config_candidates("label_spaces/indoor.yaml"),
                  Path(__file__).resolve().parent.parent / "data" / "indoor.yaml"]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"bundled label space not found; looked in {[str(c) for c in candidates]}")


def load_label_space(path: str | Path | None = None) -> LabelSpace:
    """Load a label space YAML; ``None`` loads the bundled indoor space."""
    p = Path(path) if path is not None else default_label_space_path()
    with open(p) as f:
        return LabelSpace.from_dict(yaml.safe_load(f))


class LabelRemap:
    """Lookup from a model's class ids to a label space's ids.

    ``lut[source_id] = target_id``; source ids outside the table (or negative) map to ``default``.
    Loaded from a remap YAML (``config/label_spaces/remaps/*.yaml``)::

        source: <the model's label set>     # free text
        default: unknown                    # target class name for source ids not listed
        classes:
          - {id: 1, source: person, target: person}
    """

    def __init__(self, lut: np.ndarray, default: int = 0, name: str = "") -> None:
        self.lut = np.asarray(lut, dtype=np.int64).reshape(-1)
        self.default = int(default)
        self.name = name

    def __call__(self, source_ids: np.ndarray) -> np.ndarray:
        """Map source ids (any integer shape) to target ids, same shape, int64."""
        ids = np.asarray(source_ids).astype(np.int64)
        ok = (ids >= 0) & (ids < len(self.lut))
        return np.where(ok, self.lut[np.clip(ids, 0, max(len(self.lut) - 1, 0))], self.default)

    @classmethod
    def identity(cls, num_classes: int) -> "LabelRemap":
        return cls(np.arange(num_classes), default=0, name="identity")

    @classmethod
    def from_dict(cls, d: dict, label_space: LabelSpace) -> "LabelRemap":
        """Build from a parsed remap YAML; raises ValueError naming an unknown target class or a bad entry."""
        def target_id(name) -> int:
            if isinstance(name, int):
                if name not in label_space:
                    raise ValueError(f"remap target id {name} is not in label space {label_space.name!r}")
                return name
            try:
                return label_space.id_of(str(name))
            except KeyError as e:
                raise ValueError(f"remap target {name!r}: {e.args[0]}") from None

        entries = d.get("classes")
        if not isinstance(entries, list):
            raise ValueError("a remap file needs a 'classes' list of {id, source, target} entries")
        default = target_id(d.get("default", 0))
        ids = []
        for e in entries:
            if not isinstance(e, dict) or "id" not in e or "target" not in e:
                raise ValueError(f"bad remap entry {e!r}: needs 'id' and 'target'")
            if int(e["id"]) < 0:
                raise ValueError(f"bad remap entry {e!r}: negative source id")
            ids.append(int(e["id"]))
        if len(set(ids)) != len(ids):
            raise ValueError("remap source ids must be unique")
        lut = np.full(max(ids, default=-1) + 1, default, dtype=np.int64)
        for e in entries:
            lut[int(e["id"])] = target_id(e["target"])
        return cls(lut, default=default, name=str(d.get("name", "")))


def remap_path(name_or_path: str | Path) -> Path:
    """Path of a remap file: an existing path, or the name of a bundled one (``coco_panoptic``, ``nyu40``...)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    stem = p.name if p.suffix == ".yaml" else p.name + ".yaml"
    candidates = config_candidates(f"label_spaces/remaps/{stem}")
    for c in candidates:
        if c.is_file():
            return c
    raise ValueError(f"remap {str(name_or_path)!r} not found (not a file; looked in {[str(c) for c in candidates]})")


def load_remap(name_or_path: str | Path, label_space: LabelSpace | None = None) -> LabelRemap:
    """Load a remap YAML (a path or a bundled name) into a :class:`LabelRemap` for ``label_space``
    (None: the bundled indoor space)."""
    space = label_space if label_space is not None else load_label_space()
    with open(remap_path(name_or_path)) as f:
        d = yaml.safe_load(f)
    if not isinstance(d, dict):
        raise ValueError(f"remap file {name_or_path} is not a YAML mapping")
    return LabelRemap.from_dict(d, space)
