"""Node parameters from one descriptor table: declare with descriptions, log the resolved values.

Each node keeps a tuple of :class:`ParamSpec` (name, default, description). Names carry their unit as
a suffix (``max_depth_m``, ``period_s``, ``rate_hz``) so a YAML file cannot be misread; a float without
a unit suffix must say ``dimensionless=True``. The same table writes a ROS params file
(:func:`specs_to_params_yaml`) and checks one (:func:`check_params_file`), so configs and code agree.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

__all__ = ["UNIT_SUFFIXES", "ParamSpec", "ParamValues", "validate_specs", "declare_parameters",
           "specs_to_params_yaml", "check_params_file"]

# longest first so "_m_s2" wins over "_s2"/"_m"
UNIT_SUFFIXES: tuple[str, ...] = ("_rad_s", "_m_s2", "_m_s", "_hz", "_rad", "_deg", "_px", "_mm", "_ms",
                                  "_m", "_s")
_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter. ``default`` fixes the type (bool, int, float, str or a non-empty list)."""

    name: str
    default: Any
    description: str
    read_only: bool = False
    dimensionless: bool = False

    @property
    def unit(self) -> str:
        """Unit taken from the name's suffix (``"m"``, ``"s"``, ...), ``""`` when it has none."""
        return next((s[1:] for s in UNIT_SUFFIXES if self.name.endswith(s)), "")


class ParamValues:
    """Resolved parameter values, read as attributes (``p.max_depth_m``) or with ``p["max_depth_m"]``."""

    def __init__(self, values: dict[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)


def validate_specs(specs: Sequence[ParamSpec]) -> None:
    """Raise ValueError for duplicate or badly formed names, empty descriptions, unsupported defaults,
    or a float without a unit suffix that is not marked dimensionless."""
    seen: set[str] = set()
    for s in specs:
        if not _NAME.match(s.name):
            raise ValueError(f"parameter name {s.name!r} must be lower snake_case")
        if s.name in seen:
            raise ValueError(f"parameter {s.name!r} declared twice")
        seen.add(s.name)
        if not s.description.strip():
            raise ValueError(f"parameter {s.name!r} needs a description")
        d = s.default
        if isinstance(d, (list, tuple)):
            if not d:
                raise ValueError(f"parameter {s.name!r}: an empty list default does not fix a type")
        elif not isinstance(d, (bool, int, float, str)):
            raise ValueError(f"parameter {s.name!r}: unsupported default type {type(d).__name__}")
        is_float = isinstance(d, float) or (isinstance(d, (list, tuple)) and isinstance(d[0], float))
        if is_float and not s.unit and not s.dimensionless:
            raise ValueError(f"float parameter {s.name!r} needs a unit suffix {UNIT_SUFFIXES} "
                             "or dimensionless=True")


def declare_parameters(node: Any, specs: Sequence[ParamSpec], log: bool = True) -> ParamValues:
    """Declare every spec on ``node`` (with its description) and return the resolved values.

    Values come from the params file / ``-p`` overrides when given, else the defaults; each is logged
    once as ``name = value [unit]`` so a run's log records its configuration.
    """
    from rcl_interfaces.msg import ParameterDescriptor

    validate_specs(specs)
    values: dict[str, Any] = {}
    for s in specs:
        default = list(s.default) if isinstance(s.default, tuple) else s.default
        desc = ParameterDescriptor(description=s.description + (f" [{s.unit}]" if s.unit else ""),
                                   read_only=s.read_only)
        values[s.name] = node.declare_parameter(s.name, default, desc).value
    if log:
        lines = [f"  {s.name} = {values[s.name]!r}" + (f" [{s.unit}]" if s.unit else "") for s in specs]
        node.get_logger().info("parameters:\n" + "\n".join(lines))
    return ParamValues(values)


def specs_to_params_yaml(node_name: str, specs: Sequence[ParamSpec]) -> str:
    """A ROS 2 params file (``node: {ros__parameters: {...}}``) with every default and its description."""
    import yaml

    validate_specs(specs)
    lines = [f"{node_name}:", "  ros__parameters:"]
    for s in specs:
        value = list(s.default) if isinstance(s.default, tuple) else s.default
        lines.append(f"    # {s.description}")
        text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
        lines.append(f"    {s.name}: {text}")
    return "\n".join(lines) + "\n"


def check_params_file(path: str | Path, node_name: str, specs: Sequence[ParamSpec]) -> list[str]:
    """Problems between a params file's section for ``node_name`` and ``specs`` (empty list: they agree).

    Reports unknown keys (typos a node would silently ignore) and values of the wrong type.
    """
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    section = None
    for key in (node_name, f"/{node_name}", "/**", "**"):
        if key in data:
            section = data[key]
            break
    if section is None:
        return [f"{path}: no section for node {node_name!r}"]
    params = (section or {}).get("ros__parameters", {}) or {}
    by_name = {s.name: s for s in specs}
    problems = []
    for key, value in params.items():
        if key == "use_sim_time":
            continue
        if key not in by_name:
            problems.append(f"{path}: unknown parameter {node_name}.{key}")
            continue
        d = by_name[key].default
        ok = (isinstance(value, bool) == isinstance(d, bool)) and (
            isinstance(value, type(d)) or (isinstance(d, float) and isinstance(value, int))
            or (isinstance(d, (list, tuple)) and isinstance(value, list)))
        if not ok:
            problems.append(f"{path}: {node_name}.{key} = {value!r} is not a {type(d).__name__}")
    return problems
