"""Bayesian per-voxel class fusion (dense and top-k) and its effect on a noisy simulated sequence."""
import math

import numpy as np
import pytest
import torch

from metric_semantic_slam.core.mapping import SEMANTIC_FUSIONS, BlockStore, SemanticConfig, make_semantic_fusion

C = 21


def _fusion(method="bayesian", **kw):
    store = BlockStore(8)
    store.insert(torch.tensor([[0, 0, 0]]))
    return make_semantic_fusion(store, C, SemanticConfig(method=method, **kw))


def _feed(fu, seq, voxel=0):
    for lab in seq:
        fu.update_labels(torch.tensor([voxel]), torch.tensor([lab]))


def test_registry_and_unknown_key():
    assert {"bayesian", "bayesian_topk"} <= set(SEMANTIC_FUSIONS)
    with pytest.raises(ValueError, match="unknown semantic fusion"):
        _fusion("nope")
    with pytest.raises(ValueError):
        SemanticConfig(measurement_probability=1.0).validate()


def test_dense_posterior_matches_bayes_rule():
    p = 0.7
    fu = _fusion(measurement_probability=p)
    seq = [3, 3, 5, 3, 7]
    _feed(fu, seq)
    post = fu.probabilities(torch.tensor([0]))[0].double().numpy()
    # Explicit Bayes with a uniform prior and Kimera's likelihood.
    log = np.zeros(C)
    for lab in seq:
        lik = np.full(C, (1 - p) / (C - 1))
        lik[lab] = p
        log += np.log(lik)
    ref = np.exp(log - log.max())
    ref /= ref.sum()
    np.testing.assert_allclose(post, ref, atol=2e-3)
    assert fu.labels(torch.tensor([0])).item() == 3
    assert fu.labels(torch.tensor([1])).item() == 0  # never observed


def test_unknown_label_is_ignored_and_single_observation_stays_unknown():
    fu = _fusion()
    _feed(fu, [0, 0, 0])
    assert fu.store.view("sem_scores")[0].abs().sum().item() == 0
    _feed(fu, [4])
    assert fu.labels(torch.tensor([0])).item() == 0  # one measurement does not clear the margin
    _feed(fu, [4])
    assert fu.labels(torch.tensor([0])).item() == 4


@pytest.mark.parametrize("method", ["bayesian", "bayesian_topk"])
def test_saturation_lets_the_map_change_its_mind(method):
    fu = _fusion(method, max_log_odds=30.0)
    _feed(fu, [2] * 100)  # would be 380 without the cap
    n_flip = math.ceil(30.0 / fu.delta)
    _feed(fu, [6] * (n_flip - 2))
    assert fu.labels(torch.tensor([0])).item() == 2
    _feed(fu, [6] * 4)
    assert fu.labels(torch.tensor([0])).item() == 6


def test_topk_agrees_with_dense_when_few_classes_compete():
    rng = np.random.default_rng(0)
    dense, topk = _fusion("bayesian"), _fusion("bayesian_topk", top_k=4)
    vox = torch.arange(400)
    cand = rng.integers(1, C, size=(400, 4))
    for _ in range(12):
        lab = torch.as_tensor(cand[np.arange(400), rng.integers(0, 4, 400)])
        dense.update_labels(vox, lab)
        topk.update_labels(vox, lab)
    assert torch.equal(dense.labels(vox), topk.labels(vox))
    assert topk.store.layers["sem_topk_scores"].element_size() * 4 < dense.store.layers["sem_scores"].shape[2] * 2


def test_probabilities_equal_to_the_label_likelihood_give_the_same_posterior():
    p = 0.7
    a, b = _fusion(measurement_probability=p), _fusion(measurement_probability=p)
    for lab in [3, 3, 9]:
        a.update_labels(torch.tensor([0]), torch.tensor([lab]))
        q = torch.full((1, C), (1 - p) / (C - 1))
        q[0, lab] = p
        b.update_probabilities(torch.tensor([0]), q)
    np.testing.assert_allclose(a.probabilities(torch.tensor([0])).numpy(),
                               b.probabilities(torch.tensor([0])).numpy(), atol=2e-3)
