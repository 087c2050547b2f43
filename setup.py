"""ament_python build of metric_semantic_slam (colcon on ROS 2 Jazzy/Kilted, or pip anywhere)."""
import glob
import os

from setuptools import find_packages, setup

PACKAGE = "metric_semantic_slam"
HERE = os.path.dirname(os.path.abspath(__file__))

# The node graph is the one source of truth for executables; read it without importing the package.
_graph: dict = {}
with open(os.path.join(HERE, PACKAGE, "graph.py")) as f:
    exec(compile(f.read(), "graph.py", "exec"), _graph)


def tree(folder: str) -> list[tuple[str, list[str]]]:
    """data_files entries installing ``folder`` recursively under share/<package>/."""
    out = []
    for root, _dirs, files in os.walk(os.path.join(HERE, folder)):
        files = [os.path.relpath(os.path.join(root, f), HERE) for f in sorted(files) if not f.endswith(".pyc")]
        if files:
            rel = os.path.relpath(root, HERE)
            out.append((os.path.join("share", PACKAGE, rel), files))
    return out


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "benchmarks"]),
    # the built-in panoptic network's weights and training record (issue #6)
    package_data={PACKAGE: ["models/*.pt", "models/*.json"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *tree("launch"),
        *tree("config"),
        *tree("rviz"),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="metric_semantic_slam developers",
    maintainer_email="msslam@example.com",
    description="Real-time metric-semantic SLAM: depth fusion, VIO, panoptic mapping, 3D scene graph.",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={"console_scripts": _graph["console_scripts"]()},
)
