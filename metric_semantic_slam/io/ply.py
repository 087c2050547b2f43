"""PLY meshes and point clouds with extra per-vertex / per-face properties (class, instance, ...).

Writes binary little-endian PLY that Open3D, MeshLab and CloudCompare read: vertex colors are the
standard uint8 ``red, green, blue`` properties, normals ``nx, ny, nz``; any other array becomes a
named property (e.g. ``class`` and ``instance`` as uint16). Reads ASCII and binary (either
endianness) files with triangle faces.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["PlyData", "write_ply", "read_ply"]

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_NUMPY_TO_PLY = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int", "u4": "uint",
                 "f4": "float", "f8": "double"}


@dataclass
class PlyData:
    """Contents of a PLY file.

    Shape: vertices (V, 3) float64; faces (F, 3) int64 or None; each vertex prop (V,) and face prop
    (F,) keeps its stored dtype.
    """

    vertices: np.ndarray
    faces: np.ndarray | None = None
    vertex_props: dict[str, np.ndarray] = field(default_factory=dict)
    face_props: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def vertex_colors(self) -> np.ndarray | None:
        """uint8 RGB per vertex when the file has colors. Shape: (V, 3)."""
        if all(k in self.vertex_props for k in ("red", "green", "blue")):
            return np.stack([self.vertex_props[k] for k in ("red", "green", "blue")], axis=-1).astype(np.uint8)
        return None


def _structured(arrays: dict[str, np.ndarray], n: int) -> np.ndarray:
    dtype = []
    for name, a in arrays.items():
        if a.shape != (n,):
            raise ValueError(f"PLY property {name!r} has shape {a.shape}, expected ({n},)")
        code = a.dtype.str.lstrip("<>|=")
        if code not in _NUMPY_TO_PLY:
            raise ValueError(f"PLY property {name!r}: unsupported dtype {a.dtype}")
        dtype.append((name, "<" + code if a.dtype.itemsize > 1 else code))
    out = np.empty(n, dtype=dtype)
    for name, a in arrays.items():
        out[name] = a
    return out


def write_ply(
    path: str | Path,
    vertices: np.ndarray,
    faces: np.ndarray | None = None,
    vertex_props: dict[str, np.ndarray] | None = None,
    face_props: dict[str, np.ndarray] | None = None,
    vertex_colors: np.ndarray | None = None,
) -> Path:
    """Write a binary little-endian PLY.

    Shape: vertices (V, 3) (stored as float32 x, y, z), faces (F, 3) int, vertex_colors (V, 3) uint8,
    each vertex prop (V,), each face prop (F,).
    """
    path = Path(path)
    vertices = np.asarray(vertices)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3), got {vertices.shape}")
    n = len(vertices)
    vprops: dict[str, np.ndarray] = {
        "x": vertices[:, 0].astype(np.float32),
        "y": vertices[:, 1].astype(np.float32),
        "z": vertices[:, 2].astype(np.float32),
    }
    if vertex_colors is not None:
        vc = np.asarray(vertex_colors)
        if vc.shape != (n, 3):
            raise ValueError(f"vertex_colors must be ({n}, 3), got {vc.shape}")
        vc = vc.astype(np.uint8)
        vprops.update(red=vc[:, 0], green=vc[:, 1], blue=vc[:, 2])
    for k, v in (vertex_props or {}).items():
        vprops[k] = np.asarray(v)
    vdata = _structured(vprops, n)

    header = ["ply", "format binary_little_endian 1.0", "comment written by metric_semantic_slam",
              f"element vertex {n}"]
    header += [f"property {_NUMPY_TO_PLY[vdata.dtype[k].str.lstrip('<>|=')]} {k}" for k in vdata.dtype.names]
    fdata = None
    if faces is not None:
        faces = np.asarray(faces)
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"faces must be (F, 3), got {faces.shape}")
        if len(faces) and (faces.min() < 0 or faces.max() >= n):
            raise ValueError("face indices out of range")
        m = len(faces)
        fprops: dict[str, np.ndarray] = {}
        fdtype = [("count", "u1"), ("idx", "<i4", (3,))]
        for k, v in (face_props or {}).items():
            v = np.asarray(v)
            if v.shape != (m,):
                raise ValueError(f"face property {k!r} has shape {v.shape}, expected ({m},)")
            fprops[k] = v
            code = v.dtype.str.lstrip("<>|=")
            fdtype.append((k, "<" + code if v.dtype.itemsize > 1 else code))
        fdata = np.empty(m, dtype=fdtype)
        fdata["count"] = 3
        fdata["idx"] = faces.astype(np.int32)
        for k, v in fprops.items():
            fdata[k] = v
        header.append(f"element face {m}")
        header.append("property list uchar int vertex_indices")
        header += [f"property {_NUMPY_TO_PLY[fdata.dtype[k].str.lstrip('<>|=')]} {k}" for k in fprops]
    elif face_props:
        raise ValueError("face_props given without faces")
    header.append("end_header")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        f.write(vdata.tobytes())
        if fdata is not None:
            f.write(fdata.tobytes())
    return path


@dataclass
class _Element:
    name: str
    count: int
    props: list[tuple[str, str, str | None, str | None]]  # (name, dtype, list count dtype, list item dtype)


def _parse_header(f) -> tuple[str, list[_Element]]:
    if f.readline().strip() != b"ply":
        raise ValueError("not a PLY file (missing 'ply' magic)")
    fmt = None
    elements: list[_Element] = []
    while True:
        line = f.readline()
        if not line:
            raise ValueError("PLY header has no end_header")
        tok = line.decode("ascii", errors="replace").split()
        if not tok or tok[0] in ("comment", "obj_info"):
            continue
        if tok[0] == "format":
            fmt = tok[1]
        elif tok[0] == "element":
            elements.append(_Element(tok[1], int(tok[2]), []))
        elif tok[0] == "property":
            if not elements:
                raise ValueError("PLY property before any element")
            if tok[1] == "list":
                elements[-1].props.append((tok[4], "list", _PLY_TYPES[tok[2]], _PLY_TYPES[tok[3]]))
            else:
                if tok[1] not in _PLY_TYPES:
                    raise ValueError(f"unknown PLY type {tok[1]!r}")
                elements[-1].props.append((tok[2], _PLY_TYPES[tok[1]], None, None))
        elif tok[0] == "end_header":
            break
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise ValueError(f"unsupported PLY format {fmt!r}")
    return fmt, elements


def _read_binary_element(buf: memoryview, offset: int, el: _Element, endian: str) -> tuple[dict, int]:
    has_list = any(p[1] == "list" for p in el.props)
    if not has_list:
        dt = np.dtype([(p[0], endian + p[1]) for p in el.props])
        arr = np.frombuffer(buf, dtype=dt, count=el.count, offset=offset)
        return {p[0]: arr[p[0]].copy() for p in el.props}, offset + dt.itemsize * el.count
    # Fast path: every list has 3 items (triangles), detected from the first row.
    fields = []
    for name, kind, cnt_t, item_t in el.props:
        if kind == "list":
            n_items = int(np.frombuffer(buf, dtype=endian + cnt_t, count=1, offset=offset)[0]) if el.count else 3
            fields.append((name + "__count", endian + cnt_t))
            fields.append((name, endian + item_t, (n_items,)))
        else:
            fields.append((name, endian + kind))
    dt = np.dtype(fields)
    arr = np.frombuffer(buf, dtype=dt, count=el.count, offset=offset)
    for name, kind, _c, _i in el.props:
        if kind == "list" and el.count and not np.all(arr[name + "__count"] == arr[name].shape[1]):
            raise ValueError(f"PLY element {el.name!r}: only uniform list lengths (triangles) are supported")
    out = {p[0]: arr[p[0]].copy() for p in el.props}
    return out, offset + dt.itemsize * el.count


def read_ply(path: str | Path) -> PlyData:
    """Read a PLY file written by :func:`write_ply` or another tool (triangle faces only)."""
    path = Path(path)
    with open(path, "rb") as f:
        fmt, elements = _parse_header(f)
        body = f.read()
    data: dict[str, dict[str, np.ndarray]] = {}
    if fmt == "ascii":
        tokens = body.split()
        pos = 0
        for el in elements:
            cols: dict[str, list] = {p[0]: [] for p in el.props}
            for _ in range(el.count):
                for name, kind, _c, _i in el.props:
                    if kind == "list":
                        k = int(tokens[pos])
                        cols[name].append([int(t) for t in tokens[pos + 1: pos + 1 + k]])
                        pos += 1 + k
                    else:
                        cols[name].append(float(tokens[pos]))
                        pos += 1
            data[el.name] = {
                name: (np.asarray(v, dtype=np.int64) if kind == "list" else np.asarray(v).astype(kind))
                for (name, kind, _c, _i), v in zip(el.props, cols.values())
            }
    else:
        endian = "<" if fmt == "binary_little_endian" else ">"
        buf = memoryview(body)
        offset = 0
        for el in elements:
            data[el.name], offset = _read_binary_element(buf, offset, el, endian)
    if "vertex" not in data:
        raise ValueError(f"{path}: PLY has no vertex element")
    v = data["vertex"]
    vertices = np.stack([v["x"], v["y"], v["z"]], axis=-1).astype(np.float64)
    vertex_props = {k: a for k, a in v.items() if k not in ("x", "y", "z")}
    faces = None
    face_props: dict[str, np.ndarray] = {}
    if "face" in data:
        fd = data["face"]
        key = "vertex_indices" if "vertex_indices" in fd else ("vertex_index" if "vertex_index" in fd else None)
        if key is None:
            raise ValueError(f"{path}: face element has no vertex_indices list")
        faces = np.asarray(fd[key]).astype(np.int64).reshape(-1, 3)
        face_props = {k: a for k, a in fd.items() if k != key}
    return PlyData(vertices=vertices, faces=faces, vertex_props=vertex_props, face_props=face_props)
