"""colcon/ament_python consistency: package.xml, setup.py, data files, entry points and the node graph agree."""
import ast
import importlib
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from metric_semantic_slam import graph

REPO = Path(__file__).resolve().parents[1]
PKG = "metric_semantic_slam"


def _setup_kwargs() -> dict:
    """Run setup.py with setuptools.setup patched to capture its arguments (no build)."""
    code = (
        "import json, setuptools, sys\n"
        "captured = {}\n"
        "setuptools.setup = lambda **kw: captured.update(kw)\n"
        f"sys.argv = ['setup.py']\n"
        f"exec(compile(open({str(REPO / 'setup.py')!r}).read(), 'setup.py', 'exec'), {{'__file__': {str(REPO / 'setup.py')!r}, '__name__': '__main__'}})\n"
        "print(json.dumps({k: captured[k] for k in ('name', 'version', 'packages', 'data_files', 'entry_points')}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    import json

    return json.loads(out.stdout.strip().splitlines()[-1])


def test_package_xml_is_format3_ament_python_with_runtime_deps():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.tag == "package" and root.attrib["format"] == "3"
    assert root.findtext("name") == PKG
    assert root.find("export/build_type").text == "ament_python"
    deps = {e.text for e in root.findall("exec_depend")}
    for d in ["rclpy", "sensor_msgs", "geometry_msgs", "nav_msgs", "visualization_msgs", "std_msgs", "std_srvs",
              "python3-numpy", "python3-opencv", "python3-yaml"]:
        assert d in deps, d


def test_setup_matches_package_xml_and_tree():
    kw = _setup_kwargs()
    root = ET.parse(REPO / "package.xml").getroot()
    assert kw["name"] == root.findtext("name")
    assert kw["version"] == root.findtext("version")
    assert PKG in kw["packages"] and f"{PKG}.core" in kw["packages"]
    # every python package directory is packaged
    pkg_dirs = {str(p.parent.relative_to(REPO)).replace("/", ".") for p in (REPO / PKG).rglob("__init__.py")}
    assert pkg_dirs <= set(kw["packages"])
    installed = {}
    for dest, files in kw["data_files"]:
        for f in files:
            installed[f] = dest
    assert installed["resource/" + PKG] == "share/ament_index/resource_index/packages"
    assert (REPO / "resource" / PKG).is_file()
    assert installed["package.xml"] == f"share/{PKG}"
    for folder in ("launch", "config", "rviz"):
        files = [p for p in (REPO / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        assert files, f"{folder}/ is empty"
        for p in files:
            rel = str(p.relative_to(REPO))
            assert rel in installed, f"{rel} is not installed by setup.py"
            assert installed[rel] == f"share/{PKG}/{p.parent.relative_to(REPO)}"


def test_entry_points_come_from_the_node_graph_and_import():
    kw = _setup_kwargs()
    scripts = kw["entry_points"]["console_scripts"]
    assert scripts == graph.console_scripts()
    names = {s.split("=")[0].strip() for s in scripts}
    assert names == {exe for exe, _ in graph.NODES.values()} | {"msslam"}
    for s in scripts:
        target = s.split("=")[1].strip()
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), target


def test_setup_cfg_installs_scripts_where_ros2_run_looks():
    text = (REPO / "setup.cfg").read_text()
    assert f"install_scripts=$base/lib/{PKG}" in text and f"script_dir=$base/lib/{PKG}" in text


def test_launch_file_uses_the_node_graph():
    src = (REPO / "launch" / "msslam.launch.py").read_text()
    tree = ast.parse(src)
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    assert "from metric_semantic_slam.graph import NODES" in src


@pytest.mark.parametrize("subpackage", ["core", "io", "sim", "eval", "pipeline"])
def test_core_layers_never_import_ros(subpackage):
    pattern = re.compile(r"^\s*(import|from)\s+(rclpy|sensor_msgs|geometry_msgs|std_msgs|nav_msgs|"
                         r"visualization_msgs|tf2_ros|cv_bridge|message_filters)\b", re.M)
    for p in (REPO / PKG / subpackage).rglob("*.py"):
        assert not pattern.search(p.read_text()), f"{p} imports ROS"


MY_LAUNCH_CONFIGS = ("sim_replay.yaml", "sim_replay_vio.yaml", "sim_replay_realtime.yaml", "sim_replay_gpu.yaml",
                     "sim_replay_vio_realtime.yaml", "realsense_d435i.yaml")


def test_every_node_has_a_params_file_that_matches_its_params():
    from metric_semantic_slam.nodes import node_params, params_section
    from metric_semantic_slam.ros.params import check_params_file

    for name in graph.NODES:
        path = REPO / "config" / "params" / f"{name}.yaml"
        assert path.is_file(), f"{path} is missing"
        specs = node_params(name)
        assert check_params_file(path, params_section(name), specs) == [], name
        import yaml

        data = yaml.safe_load(path.read_text())
        # complete: every declared parameter is in the file (so the file documents the node)
        assert set(data[params_section(name)]["ros__parameters"]) >= {s.name for s in specs}, name


def test_params_file_sections_match_namespaced_nodes():
    # a bare "name:" key only matches a node in the root namespace; the files use "/**/name"
    from metric_semantic_slam.nodes import params_section

    for name in graph.NODES:
        text = (REPO / "config" / "params" / f"{name}.yaml").read_text()
        assert f"\n{params_section(name)}:\n" in "\n" + text, name


def test_node_modules_declare_topic_tables_with_importable_types():
    pytest.importorskip("rclpy")
    from metric_semantic_slam.nodes import node_module
    from metric_semantic_slam.ros.node_runtime import TopicSpec
    from metric_semantic_slam.ros.qos import PROFILE_NAMES

    for name in ("depth_fusion", "vio", "panoptic"):
        mod = node_module(name)
        assert callable(mod.main)
        for t in (*mod.SUBSCRIBES, *mod.PUBLISHES):
            assert isinstance(t, TopicSpec) and not t.name.startswith("/"), t  # relative names (DESIGN §4)
            pkg, kind, typ = t.msg_type.split("/")
            assert hasattr(importlib.import_module(f"{pkg}.{kind}"), typ), t
            assert t.qos in (*PROFILE_NAMES, "input_qos"), t


@pytest.mark.parametrize("config", MY_LAUNCH_CONFIGS)
def test_launch_configs_load_and_use_the_graph_and_params_files(config):
    from metric_semantic_slam.cli.launch import load_config

    cfg = load_config(REPO / "config" / "launch" / config)
    assert [n.name for n in cfg.nodes] == list(graph.NODES)
    for n in cfg.nodes:
        assert [p.name for p in n.params_files] == [f"{n.name}.yaml"]
        for src in n.remappings:  # relative node topics remapped to the sensor's absolute names
            assert not src.startswith("/") and n.remappings[src].startswith("/"), src
    assert cfg.use_sim_time == config.startswith("sim_")
    from metric_semantic_slam.nodes import node_params

    for n in cfg.nodes:  # a misspelt parameter would only show up as a warning at run time
        known = {spec.name for spec in node_params(n.name)}
        assert set(n.parameters) <= known, (n.name, set(n.parameters) - known)


# The launch files themselves (same nodes as `msslam launch`, the DDS transport, the replay's player) are
# checked against the Kilted-faithful stand-ins in test/ros/test_ros_extras_launch.py.


_COLLECT_STATUSES = """
import json, sys
from std_msgs.msg import String
from metric_semantic_slam.ros.testing import TopicCollector
domain, timeout_s, names = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
topics = {f"/pkg/{n}/status": String for n in names}
with TopicCollector(domain, topics) as col:
    col.spin_until(lambda: all(col.count(t) > 0 for t in topics), timeout_s=timeout_s)
    print(json.dumps({n: json.loads(col.messages[f"/pkg/{n}/status"][-1][1].data)
                      for n in names if col.count(f"/pkg/{n}/status")}))
"""


def test_every_node_starts_and_answers(tmp_path):
    """Each graph node runs as its own process with its params file, publishes its status and stops
    cleanly on SIGINT (exit 0)."""
    pytest.importorskip("rclpy")
    import json

    from metric_semantic_slam.nodes import node_module
    from metric_semantic_slam.ros.node_runtime import NodeProcess
    from metric_semantic_slam.ros.testing import ros_env

    domain = 75
    overrides = {"mapper": {"save_on_shutdown": False, "output_dir": str(tmp_path / "mapper")}}
    procs = {name: NodeProcess(node_module(name).__name__, name, ros_env(domain), namespace="pkg",
                               params_files=[REPO / "config" / "params" / f"{name}.yaml"],
                               parameters={"status_period_s": 0.5, **overrides.get(name, {})},
                               log_path=tmp_path / f"{name}.log")
             for name in graph.NODES}
    try:
        # The listener runs in a fresh interpreter: rclpy state left in this pytest process by earlier
        # tests must not decide whether these nodes are heard. Generous timeout: five processes import
        # torch at once on a loaded 2-core machine.
        out = subprocess.run([sys.executable, "-c", _COLLECT_STATUSES, str(domain), "180", *graph.NODES],
                             capture_output=True, text=True, timeout=300, env=ros_env(domain))
        assert out.returncode == 0, out.stderr[-3000:]
        statuses = json.loads(out.stdout.strip().splitlines()[-1])
        missing = [n for n in graph.NODES if n not in statuses]
        assert not missing, "\n".join(f"--- {n} (alive: {procs[n].alive()}):\n{procs[n].log()[-3000:]}"
                                       for n in missing)
        for name, st in statuses.items():
            assert st["node"] == f"/pkg/{name}" and st["errors"] == 0, st
    finally:
        codes = {name: p.stop(timeout_s=30) for name, p in procs.items()}
    assert codes == {name: 0 for name in graph.NODES}, {n: procs[n].log()[-2000:] for n in codes if codes[n]}
