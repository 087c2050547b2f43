"""The suite's DDS transport: which environment each process gets (ros/dds.py), and that the bundled
profiles file moves a 640x480 image stream between two processes (shared memory + UDPv4, no TCP)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
import xml.etree.ElementTree as ET

import pytest

from metric_semantic_slam.ros.dds import dds_environment, profiles_file, profiles_xml

NS = "{http://www.eprosima.com}"


def test_bundled_profiles_give_shared_memory_and_udp_without_builtin_transports():
    root = ET.parse(profiles_file()).getroot()
    kinds = {d.find(f"{NS}transport_id").text: d.find(f"{NS}type").text
             for d in root.iter(f"{NS}transport_descriptor")}
    assert sorted(kinds.values()) == ["SHM", "UDPv4"]
    participant = next(root.iter(f"{NS}participant"))
    assert participant.get("is_default_profile") == "true"
    assert participant.find(f"{NS}rtps/{NS}useBuiltinTransports").text == "false"
    assert [t.text for t in participant.iter(f"{NS}transport_id")] == list(kinds)


def test_environment_rules(tmp_path):
    bundled = str(profiles_file())
    assert dds_environment({})["FASTDDS_DEFAULT_PROFILES_FILE"] == bundled
    # the user's transport wins: no profiles file is added on top of it
    assert "FASTDDS_DEFAULT_PROFILES_FILE" not in dds_environment({"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"})
    own = tmp_path / "mine.xml"
    own.write_text("<dds/>")
    assert dds_environment({"FASTDDS_DEFAULT_PROFILES_FILE": str(own)})["FASTDDS_DEFAULT_PROFILES_FILE"] == str(own)
    assert dds_environment({"FASTRTPS_DEFAULT_PROFILES_FILE": str(own)}).get("FASTDDS_DEFAULT_PROFILES_FILE") is None
    # a profiles file that is gone would fail every participant: replaced by the bundled one
    gone = dds_environment({"FASTDDS_DEFAULT_PROFILES_FILE": str(tmp_path / "gone.xml")})
    assert gone["FASTDDS_DEFAULT_PROFILES_FILE"] == bundled
    # forced (tests, benchmarks): the bundled transport whatever the shell says
    forced = dds_environment({"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4", "FASTDDS_DEFAULT_PROFILES_FILE": str(own),
                              "OTHER": "kept"}, force=True)
    assert forced == {"FASTDDS_DEFAULT_PROFILES_FILE": bundled, "OTHER": "kept"}


@pytest.mark.parametrize("transports", [True, False])
def test_player_profile_adds_a_writer_heartbeat(transports):
    root = ET.fromstring(profiles_xml(20, transports=transports))
    writer = next(root.iter(f"{NS}data_writer"))
    period = writer.find(f"{NS}times/{NS}heartbeat_period")
    assert (period.find(f"{NS}sec").text, period.find(f"{NS}nanosec").text) == ("0", "20000000")
    assert (len(list(root.iter(f"{NS}transport_descriptor"))) == 2) == transports


_PUB = textwrap.dedent("""
    import sys, time, numpy as np, rclpy
    from sensor_msgs.msg import Image
    from metric_semantic_slam.ros.qos import qos_profile
    rclpy.init()
    node = rclpy.create_node("dds_pub")
    pub = node.create_publisher(Image, "/dds_test/image", qos_profile("reliable", depth=5))
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    pixels = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8).tobytes()
    for i in range(60):
        msg = Image(height=480, width=640, encoding="rgb8", step=1920, data=pixels)
        msg.header.frame_id = str(i)
        pub.publish(msg)
        time.sleep(1 / 30)
    time.sleep(2.0)
""")


def test_bundled_transport_carries_30hz_images_between_processes(tmp_path):
    pytest.importorskip("rclpy")
    from sensor_msgs.msg import Image

    from metric_semantic_slam.ros.testing import TopicCollector, ros_env

    domain = 79
    env = ros_env(domain)
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(profiles_file())
    script = tmp_path / "pub.py"
    script.write_text(_PUB)
    # the collector here joins with whatever transport this pytest process started with: shared memory is
    # common to the bundled profile, Fast DDS's default and LARGE_DATA alike
    with TopicCollector(domain, {"/dds_test/image": Image}) as col:
        proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            col.spin_until(lambda: col.count("/dds_test/image") >= 60 or proc.poll() is not None, 60)
            col.spin_until(lambda: col.count("/dds_test/image") >= 60, 3)
        finally:
            out = proc.communicate(timeout=30)[0]
    frames = [int(m.header.frame_id) for _t, m in col.messages["/dds_test/image"]]
    assert frames == list(range(60)), (frames, out)
    last = col.messages["/dds_test/image"][-1][1]
    assert (last.width, last.height, len(last.data)) == (640, 480, 640 * 480 * 3)


def test_an_install_without_the_profiles_file_falls_back_to_fast_dds_defaults(monkeypatch):
    from metric_semantic_slam.ros import dds

    def missing():
        raise FileNotFoundError("bundled Fast DDS profiles not found")

    monkeypatch.setattr(dds, "profiles_file", missing)
    with pytest.warns(RuntimeWarning, match="default transports"):
        env = dds.dds_environment({"A": "1"})
    assert env == {"A": "1"}


def test_config_files_are_looked_up_where_pip_installs_data_files():
    from metric_semantic_slam.core.labels import config_candidates

    assert config_candidates("dds/fastdds_profiles.xml")[-1] == (
        Path(sys.prefix) / "share" / "metric_semantic_slam" / "config" / "dds" / "fastdds_profiles.xml")
