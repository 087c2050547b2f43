"""Privacy: private (and dynamic) classes never appear in any output; the edge profile's outputs (scene
graph + anonymised mesh) carry no private-class vertices, points or objects, on a simulated scene
with a walking person fed through the mapper with ground-truth labels."""
from __future__ import annotations

import json

import numpy as np
import pytest

from metric_semantic_slam.core import privacy
from metric_semantic_slam.core.labels import Label, LabelSpace, load_label_space
from metric_semantic_slam.core.mapping import SemanticCloud, SemanticMesh
from metric_semantic_slam.core.scene_graph import SceneGraphBuilder
from metric_semantic_slam.core.scene_graph.evaluation import map_rendered_world

LABELS = load_label_space()
PERSON = LABELS.id_of("person")


def _leaky_labels() -> LabelSpace:
    """The indoor label space with the person neither dynamic nor private: a mapper using it fuses people,
    as a mislabelled or misconfigured upstream stage would; the output filters must still remove them."""
    labs = [Label(lab.id, lab.name, lab.color, lab.is_thing, False, False) if lab.id == PERSON else lab
            for lab in LABELS.labels]
    return LabelSpace(labs, name=LABELS.name, version=LABELS.version)


def _mesh(classes, n_tri_per_vertex=1):
    rng = np.random.default_rng(0)
    V = len(classes)
    tri = np.stack([np.arange(V), np.roll(np.arange(V), -1), np.roll(np.arange(V), -2)], axis=1)
    return SemanticMesh(vertices=rng.normal(size=(V, 3)).astype(np.float32), triangles=tri.astype(np.int64),
                        colors=rng.integers(1, 255, (V, 3)).astype(np.uint8), classes=np.asarray(classes, np.int64),
                        instances=np.arange(V, dtype=np.int64), triangle_block=np.zeros(V, np.int64),
                        block_coords=np.zeros((1, 3), np.int64))


def test_anonymise_mesh_and_cloud_units():
    cls = np.array([1, 2, PERSON, 7, 7, 2, PERSON, 1, 6, 6])
    mesh = _mesh(cls)
    assert privacy.contains_private(mesh, LABELS)
    out = privacy.anonymise_mesh(mesh, LABELS, drop_color=True)
    assert not privacy.contains_private(out, LABELS, include_dynamic=True)
    assert PERSON not in out.classes and (out.colors == 0).all()
    # every kept triangle indexes kept vertices, and exactly the triangles without a person vertex survive
    assert out.triangles.max() < len(out.vertices)
    bad = np.isin(np.arange(len(cls)), np.nonzero(cls == PERSON)[0])
    assert len(out.triangles) == int((~bad[mesh.triangles].any(axis=1)).sum())
    kept = out.vertices[out.triangles]
    orig_ok = mesh.vertices[mesh.triangles[~bad[mesh.triangles].any(axis=1)]]
    assert np.allclose(kept, orig_ok)
    assert len(out.triangle_block) == len(out.triangles)
    # colors survive without drop_color
    assert (privacy.anonymise_mesh(mesh, LABELS).colors > 0).any()
    cloud = SemanticCloud(points=np.zeros((len(cls), 3), np.float32), colors=np.full((len(cls), 3), 9, np.uint8),
                          classes=cls, instances=np.zeros(len(cls), np.int64))
    c2 = privacy.anonymise_cloud(cloud, LABELS)
    assert len(c2.points) == int((cls != PERSON).sum()) and not privacy.contains_private(c2, LABELS)
    # ids outside the label space are not mistaken for anything
    privacy.anonymise_cloud(SemanticCloud(np.zeros((1, 3)), np.zeros((1, 3), np.uint8), np.array([999]),
                                          np.zeros(1, np.int64)), LABELS)
    with pytest.raises(ValueError):
        privacy.contains_private([1, 2], LABELS)


def test_scrub_scene_graph_removes_every_reference():
    d = {"schema": "msslam_scene_graph", "version": 1,
         "objects": [{"id": 1, "class_id": 6, "class_name": "table", "is_dynamic": False},
                     {"id": 2, "class_id": PERSON, "class_name": "person", "is_dynamic": True},
                     {"id": 3, "class_id": 17, "class_name": "cup", "is_dynamic": False}],
         "relations": [{"subject_id": 2, "predicate": "near", "object_id": 1, "score": 1.0},
                       {"subject_id": 3, "predicate": "on", "object_id": 1, "score": 1.0}],
         "structure": {"rooms": [{"id": 0, "object_ids": [1, 2, 3]}],
                       "support_surfaces": [{"id": 1, "object_id": 1, "class_name": "table", "occupied_by": [2, 3]}]}}
    assert privacy.contains_private(d, LABELS)
    out = privacy.scrub_scene_graph(d, LABELS)
    assert not privacy.contains_private(out, LABELS, include_dynamic=True)
    assert [o["id"] for o in out["objects"]] == [1, 3]
    assert out["relations"] == [d["relations"][1]]
    assert out["structure"]["rooms"][0]["object_ids"] == [1, 3]
    assert out["structure"]["support_surfaces"][0]["occupied_by"] == [3]
    assert "person" not in json.dumps(out)
    assert d["objects"][1]["class_name"] == "person"  # the input is not modified
    upd = {"schema": "msslam_scene_graph_update", "changed": d["objects"], "relations": d["relations"]}
    assert [o["id"] for o in privacy.scrub_scene_graph(upd, LABELS)["changed"]] == [1, 3]


@pytest.fixture(scope="module")
def walking_person_maps():
    """Seed 2 (the person walks through many frames), rendered with ground-truth labels into the normal
    mapper and into one that (wrongly) fuses people; also the person's world points per frame."""
    import torch

    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    person_pts = []

    def grab(mapper, hits, T, t):
        m = hits.semantic == PERSON
        if m.any():
            person_pts.append(hits.points_world[m][::4].astype(np.float64))

    kw = dict(n_frames=50, width=200, height=150, duration_s=45.0)
    _, normal = map_rendered_world(2, on_frame=grab, **kw)
    _, leaky = map_rendered_world(2, label_space=_leaky_labels(), **kw)
    torch.set_num_threads(n_threads)
    return normal, leaky, np.concatenate(person_pts) if person_pts else np.zeros((0, 3))


def _edge(mapper, drop_color=False):
    mesh = mapper.extract_mesh()
    cloud = mapper.extract_point_cloud()
    b = SceneGraphBuilder(LABELS)
    u = b.update(cloud.points, cloud.classes, cloud.instances, mapper.instances(), stamp_s=1.0)
    mesh_out, graph_out = privacy.edge_outputs(mesh, b.graph.to_dict(), LABELS, drop_color=drop_color,
                                               instance_table=mapper.instances())
    upd_out = privacy.scrub_scene_graph(u.to_dict(), LABELS)
    return mesh, mesh_out, graph_out, upd_out


def test_edge_outputs_carry_no_person(walking_person_maps):
    normal, leaky, person_pts = walking_person_maps
    assert len(person_pts) > 500, "the person must be seen in the rendered frames"
    # The leaky mapper really fused the person: the filter has something to remove.
    leaky_mesh, leaky_out, leaky_graph, leaky_upd = _edge(leaky, drop_color=True)
    assert (leaky_mesh.classes == PERSON).sum() > 100
    for mesh_out, graph_out, upd_out in [_edge(normal)[1:], (leaky_out, leaky_graph, leaky_upd)]:
        assert not privacy.contains_private(mesh_out, LABELS, include_dynamic=True)
        assert PERSON not in mesh_out.classes
        for d in (graph_out, upd_out):
            assert not privacy.contains_private(d, LABELS, include_dynamic=True)
            text = json.dumps(d)
            assert '"person"' not in text and f'"class_id": {PERSON},' not in text
        assert len(mesh_out.vertices) > 1000 and mesh_out.triangles.max() < len(mesh_out.vertices)
    assert (leaky_out.colors == 0).all()
    # Geometry: with the normal mapper no published vertex lies on the person's body (away from the
    # floor it stands on, where floor vertices are legitimately within a few cm of its feet).
    from scipy.spatial import cKDTree

    mesh_out = _edge(normal)[1]
    body = person_pts[person_pts[:, 2] > 0.25]
    d, _ = cKDTree(mesh_out.vertices.astype(np.float64)).query(body, k=1)
    assert np.mean(d < 0.02) < 0.01, f"{np.mean(d < 0.02):.3f} of the person's body points touch the mesh"
    # In the leaky map the person's body is in the raw mesh; the anonymised mesh drops the person's
    # vertices by class and by instance (its border voxels may be "unknown" but keep its instance id).
    d_raw, _ = cKDTree(leaky_mesh.vertices.astype(np.float64)).query(body, k=1)
    d_out, _ = cKDTree(leaky_out.vertices.astype(np.float64)).query(body, k=1)
    assert np.mean(d_raw < 0.03) > 0.15
    assert np.mean(d_out < 0.03) < 0.2 * np.mean(d_raw < 0.03)
