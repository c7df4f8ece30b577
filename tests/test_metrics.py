"""The metric functions against oracles and float64 references (no classifier needed; fast)."""
import itertools
import math

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.spatial.distance import cdist
from scipy.stats import multivariate_normal

from vaelab import metrics
from vaelab.metrics.cost import cost_scores
from vaelab.rundir import read_metrics


def correlated(n, d, seed, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d)) / math.sqrt(d)
    return rng.normal(size=(n, d)) @ a * scale + shift


# ----- FID ---------------------------------------------------------------------------------------
def fid_reference(a, b):
    """The usual float64 recipe (pytorch-fid): sqrtm of the product, real part."""
    m1, m2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fid_matches_float64_reference(seed):
    a = correlated(600, 12, seed)
    b = correlated(500, 12, seed + 10, shift=0.3, scale=1.5)
    got, ref = metrics.fid(a, b), fid_reference(a, b)
    assert ref > 0.5
    assert got == pytest.approx(ref, rel=1e-6)
    # torch and float32 inputs go through the same float64 path
    assert metrics.fid(torch.from_numpy(a).float(), torch.from_numpy(b).float()) == pytest.approx(
        fid_reference(a.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64)), rel=1e-6)


def test_fid_closed_form_for_known_gaussians():
    # Commuting (diagonal) covariances: Tr((S1 S2)^1/2) = sum sqrt(s1 s2).
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 1.0])
    want = 1 + 0 + 4 + (1 + 4 + 9) + (4 + 1 + 1) - 2 * (2 + 2 + 3)
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-12)


def test_fid_of_a_set_with_itself_is_zero():
    a = correlated(400, 16, 3, scale=5.0)
    assert metrics.fid(a, a) == pytest.approx(0.0, abs=1e-7)
    assert metrics.fid(a, a[::-1]) == pytest.approx(0.0, abs=1e-7)


def test_fid_grows_with_a_shift():
    a = correlated(500, 8, 4)
    b = correlated(500, 8, 5)
    near, far = metrics.fid(a, b), metrics.fid(a, b + 3.0)
    assert far > near + 8 * 9 - 5  # the mean term alone adds 8 * 3² = 72


# ----- Inception Score -----------------------------------------------------------------------------
def test_inception_score_extremes_and_formula():
    eye = np.eye(10)
    assert metrics.inception_score(np.tile(eye, (50, 1))) == pytest.approx(10.0, rel=1e-12)  # confident, all classes
    p = np.random.default_rng(0).dirichlet(np.ones(10), size=1)
    assert metrics.inception_score(np.repeat(p, 1000, 0)) == pytest.approx(1.0, abs=1e-12)  # one image repeated
    probs = np.random.default_rng(1).dirichlet(np.ones(4) * 0.5, size=200)
    py = probs.mean(0)
    kl = [sum(pi * math.log(pi / qi) for pi, qi in zip(row, py) if pi > 0) for row in probs]
    assert metrics.inception_score(probs) == pytest.approx(math.exp(np.mean(kl)), rel=1e-10)
    with pytest.raises(ValueError):
        metrics.inception_score(np.ones((3, 4)))  # rows not normalised


# ----- precision / recall ----------------------------------------------------------------------------
def pr_reference(real, fake, k):
    rr = np.sort(cdist(real, real), 1)[:, k]
    rf = np.sort(cdist(fake, fake), 1)[:, k]
    precision = (cdist(fake, real) <= rr[None, :] * (1 + 1e-9)).any(1).mean()
    recall = (cdist(real, fake) <= rf[None, :] * (1 + 1e-9)).any(1).mean()
    return precision, recall


def test_precision_recall_of_a_set_with_itself_is_one():
    a = correlated(300, 10, 0)
    a = np.concatenate([a, a[:20], a[:20]])  # duplicates: balls of radius 0 must still contain their centre
    assert metrics.precision_recall(a, a, k=3) == {"precision": 1.0, "recall": 1.0}


def test_precision_recall_matches_brute_force():
    real = correlated(400, 6, 1)
    fake = correlated(300, 6, 2, shift=0.8, scale=0.6)  # a narrower, shifted set: precision > recall
    got = metrics.precision_recall(real, fake, k=3, batch_size=128)
    p, r = pr_reference(real, fake, 3)
    assert got["precision"] == pytest.approx(p, abs=1e-12) and got["recall"] == pytest.approx(r, abs=1e-12)
    assert 0 < got["recall"] < got["precision"] < 1


def test_precision_recall_of_far_sets_is_zero():
    a = correlated(200, 5, 3)
    assert metrics.precision_recall(a, a + 100.0, k=3) == {"precision": 0.0, "recall": 0.0}


# ----- clustering ------------------------------------------------------------------------------------
def test_clustering_accuracy_of_a_permutation_is_one():
    labels = np.random.default_rng(0).integers(0, 10, 1000)
    perm = np.random.default_rng(1).permutation(10) + 100  # renamed clusters
    s = metrics.clustering_scores(perm[labels], labels)
    assert s == {"accuracy": 1.0, "nmi": pytest.approx(1.0), "ari": pytest.approx(1.0)}


def test_clustering_accuracy_of_constant_labels_is_the_largest_class_share():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    s = metrics.clustering_scores(np.zeros(100, dtype=int), labels)
    assert s["accuracy"] == pytest.approx(0.5)
    assert s["nmi"] == pytest.approx(0.0, abs=1e-12) and s["ari"] == pytest.approx(0.0, abs=1e-12)


def test_clustering_accuracy_matches_brute_force_over_maps():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, 300)
    pred = np.where(rng.random(300) < 0.6, (labels + 1) % 4, rng.integers(0, 5, 300))  # 5 clusters, 4 labels
    c = metrics.contingency(pred, labels)
    best = max(sum(c[i, m[i]] for i in range(5) if m[i] is not None)
               for m in itertools.permutations([0, 1, 2, 3, None]))
    assert metrics.clustering_accuracy(pred, labels) == pytest.approx(best / 300)


# ----- likelihood bounds -----------------------------------------------------------------------------
def test_iwae_bound_formula_and_jensen():
    log_w = np.random.default_rng(0).normal(-90, 3, size=(50, 7))
    want = np.log(np.exp(log_w - log_w.max(0)).mean(0)) + log_w.max(0)
    np.testing.assert_allclose(metrics.iwae_bound(log_w), want, rtol=1e-12)
    assert np.all(metrics.iwae_bound(log_w) >= metrics.elbo_estimate(log_w))  # log-mean-exp ≥ mean
    np.testing.assert_allclose(metrics.iwae_bound(torch.from_numpy(log_w[:1])), log_w[0])  # K = 1 is the ELBO


class LinearGaussian:
    """p(z) = N(0, I_d), p(x|z) = N(Wz + b, σ² I_D), with the exact posterior as q (float64 throughout).

    Then p(x, z) / q(z|x) = p(x) for every z: each log weight equals log p(x) = log N(x; b, WWᵀ + σ² I)."""

    def __init__(self, d=3, D=5, sigma=0.7, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.W = torch.randn(D, d, generator=g, dtype=torch.float64)
        self.b = torch.randn(D, generator=g, dtype=torch.float64)
        self.s2 = sigma ** 2
        self.cov = torch.linalg.inv(torch.eye(d, dtype=torch.float64) + self.W.T @ self.W / self.s2)  # posterior cov
        self.d, self.D = d, D

    def log_px(self, x):
        return multivariate_normal(self.b.numpy(), (self.W @ self.W.T + self.s2 * torch.eye(self.D, dtype=torch.float64)).numpy()).logpdf(x.numpy())

    def log_weights(self, x, k, y=None):
        mu = (x - self.b) @ self.W @ self.cov / self.s2  # (B, d); cov symmetric
        q = torch.distributions.MultivariateNormal(mu, covariance_matrix=self.cov)
        z = q.sample((k,))  # (k, B, d)
        prior = torch.distributions.MultivariateNormal(torch.zeros(self.d, dtype=torch.float64), torch.eye(self.d, dtype=torch.float64))
        lik = torch.distributions.Normal(z @ self.W.T + self.b, math.sqrt(self.s2)).log_prob(x).sum(-1)  # (k, B)
        return lik + prior.log_prob(z) - q.log_prob(z)


def test_iwae_is_exact_for_the_true_posterior():
    m = LinearGaussian()
    x = torch.randn(13, m.D, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    torch.manual_seed(0)
    log_w = m.log_weights(x, 64, None)
    want = m.log_px(x)
    np.testing.assert_allclose(log_w.numpy(), np.broadcast_to(want, log_w.shape), rtol=0, atol=1e-9)
    # the batched driver, forced to split both images and samples, returns the same
    iw, el = metrics.variant_log_weights(m.log_weights, x, 50, max_items=16)
    np.testing.assert_allclose(iw, want, atol=1e-9)
    np.testing.assert_allclose(el, want, atol=1e-9)


def test_iwae_nondecreasing_in_k_on_a_trained_vae():
    """On a briefly trained VAE: L_1 (= ELBO) < L_5 < L_50, averaged over seeds (Burda et al. 2016, Thm 1)."""
    import vaelab
    from vaelab.data import load_dataset, to_tensor

    ds = load_dataset("mnist-5k", "train")
    x = (to_tensor(ds.images[:1200]) > 0.5).float()
    torch.manual_seed(0)
    v = vaelab.build("vae", backbone="mlp", latent_dim=8)
    opt = torch.optim.Adam(v.parameters(), lr=1e-3)
    for step in range(80):
        xb = x[(step * 50) % 1100:(step * 50) % 1100 + 50]
        loss, _ = v.loss({"x": xb}, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    v.eval()
    xt = x[1100:1150]
    means = {}
    for k in (1, 5, 50):
        vals = []
        for seed in range(4):
            torch.manual_seed(seed)
            iw, el = metrics.variant_log_weights(v.log_weights, xt, k, max_items=1000)
            vals.append(iw.mean())
            if k == 1:
                np.testing.assert_allclose(iw, el)
        means[k] = float(np.mean(vals))
    assert means[1] < means[5] < means[50] < 0, means


# ----- cost --------------------------------------------------------------------------------------------
def test_cost_scores_medians_per_phase(tmp_path):
    recs = [{"phase": "pretrain", "epoch": 0, "seconds": 2.0, "images_per_s": 500.0},
            {"phase": "train", "epoch": 0, "seconds": 10.0, "images_per_s": 100.0},
            {"phase": "train", "epoch": 1, "seconds": 12.0, "images_per_s": 80.0},
            {"phase": "train", "epoch": 2, "seconds": 50.0, "images_per_s": 20.0}]
    p = tmp_path / "metrics.jsonl"
    import json

    lines = [json.dumps(r) for r in recs]
    lines.insert(2, json.dumps({**recs[1], "seconds": 99.0}))  # a repeated epoch after a resume: the last copy counts
    lines[1], lines[2] = lines[2], lines[1]
    p.write_text("\n".join(lines) + "\n{\"torn")
    got = cost_scores(read_metrics(p))
    assert got["seconds_per_epoch"] == 12.0 and got["images_per_s"] == 80.0
    assert got["seconds_per_epoch.pretrain"] == 2.0 and got["images_per_s.train"] == 80.0
    assert got["train_seconds"] == 2 + 10 + 12 + 50
    single = cost_scores(recs[1:])
    assert "seconds_per_epoch.train" not in single and single["seconds_per_epoch"] == 12.0
