"""The mapping core runs with torch + numpy only: importing it pulls in neither open3d nor ROS."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_mapping_imports_no_open3d_or_rclpy():
    code = ("import sys; import metric_semantic_slam.core.mapping as m; "
            "m.SemanticVoxelMapper(m.MapperConfig(device='cpu')); "
            "bad = [k for k in sys.modules if k.split('.')[0] in ('open3d', 'rclpy', 'cv2', 'scipy')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
