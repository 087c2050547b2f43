import numpy as np
import pytest

from metric_semantic_slam.core.camera import PinholeCamera
from metric_semantic_slam.core.labels import LabelSpace, load_label_space


def test_backproject_project_round_trip():
    cam = PinholeCamera(64, 48, 50.0, 52.0, 31.5, 23.5)
    depth = np.full((48, 64), 2.0)
    pts = cam.backproject(depth).reshape(-1, 3)
    uv, z = cam.project(pts)
    u, v = np.meshgrid(np.arange(64), np.arange(48))
    np.testing.assert_allclose(uv[:, 0], u.ravel(), atol=1e-9)
    np.testing.assert_allclose(uv[:, 1], v.ravel(), atol=1e-9)
    np.testing.assert_allclose(z, 2.0)


def test_convention_optical_frame_x_right_y_down():
    cam = PinholeCamera(64, 48, 50.0, 50.0, 31.5, 23.5)
    uv, _ = cam.project(np.array([[1.0, 1.0, 5.0]]))
    assert uv[0, 0] > cam.cx and uv[0, 1] > cam.cy  # +x right, +y down


def test_camera_rejects_bad_values_and_shapes():
    with pytest.raises(ValueError):
        PinholeCamera(0, 48, 50, 50, 1, 1)
    cam = PinholeCamera(64, 48, 50.0, 50.0, 31.5, 23.5)
    with pytest.raises(ValueError):
        cam.backproject(np.zeros((10, 10)))
    assert cam.backproject(np.full((48, 64), np.nan))[..., 2].max() == 0


def test_scaled_camera_keeps_pixel_centre_convention():
    cam = PinholeCamera(640, 480, 525.0, 525.0, 319.5, 239.5)
    half = cam.scaled(0.5)
    assert (half.width, half.height) == (320, 240)
    assert half.cx == pytest.approx(159.5) and half.fx == pytest.approx(262.5)


def test_default_label_space_roles():
    ls = load_label_space()
    assert ls.id_of("person") in ls
    person = ls.by_id(ls.id_of("person"))
    assert person.is_dynamic and person.is_private and person.is_thing
    assert not ls.thing_mask[ls.id_of("floor")]
    things = [lab.name for lab in ls.labels if lab.is_thing and not lab.is_dynamic]
    assert len(things) >= 12
    rgb = ls.colorize(np.array([[ls.id_of("wall"), 999]]))
    assert tuple(rgb[0, 0]) == ls.by_id(ls.id_of("wall")).color and tuple(rgb[0, 1]) == (0, 0, 0)
    with pytest.raises(KeyError):
        ls.id_of("unicorn")


def test_label_space_validation():
    base = {"labels": [{"id": 0, "name": "unknown", "color": [0, 0, 0]}, {"id": 1, "name": "a", "color": [1, 1, 1]}]}
    assert len(LabelSpace.from_dict(base)) == 2
    dup = {"labels": base["labels"] + [{"id": 1, "name": "b", "color": [0, 0, 0]}]}
    with pytest.raises(ValueError):
        LabelSpace.from_dict(dup)
    with pytest.raises(ValueError):
        LabelSpace.from_dict({"labels": [{"id": 1, "name": "a", "color": [0, 0, 0]}]})
