"""GMVAE: the closed-form cluster posterior, the four loss terms and the information constraint,
the marginal p(z|w) in the importance weights, and cluster recovery on well-separated data."""
import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

import vaelab
from vaelab.errors import ConfigError
from test_vade import cluster_accuracy, fit, self_consistency, synthetic_clusters


def tiny(**kw):
    torch.manual_seed(0)
    cfg = dict(backbone="mlp", data_shape=(12,), latent_dim=3, w_dim=2, n_clusters=4, prior_hidden=16)
    cfg.update(kw)
    return vaelab.build("gmvae", **cfg)


def test_cluster_posterior_is_bayes_rule_on_the_conditional_prior():
    """p(c|z, w) ∝ (1/K) N(z; μ_c(w), σ_c²(w)), with μ_c, σ_c² read off the prior network's K heads."""
    v = tiny()
    g = torch.Generator().manual_seed(1)
    w, z = torch.randn(5, 2, generator=g), torch.randn(5, 3, generator=g)
    pz = v.conditional_prior(w)
    r = pz.responsibilities(z).detach().double().numpy()
    out = v.prior_net(w).detach().double().numpy().reshape(5, 4, 6)
    for b in range(5):
        lj = np.array([np.log(0.25) + multivariate_normal(out[b, c, :3], np.diag(np.exp(out[b, c, 3:]))).logpdf(z[b].numpy())
                       for c in range(4)])
        np.testing.assert_allclose(r[b], np.exp(lj - np.logaddexp.reduce(lj)), atol=1e-5)
        # log p(z|w) marginalises c
        np.testing.assert_allclose(float(pz.log_prob(z)[b].detach()), np.logaddexp.reduce(lj), rtol=1e-5)


def test_loss_is_the_four_terms_with_the_information_constraint_on_the_c_prior_term():
    x = torch.rand(8, 12)
    batch = {"x": x, "y": None, "index": torch.arange(8), "dataset_size": 8}

    def loss(v):
        torch.manual_seed(3)
        return v.loss(batch, 0)

    plain = tiny(info_lambda=0.0)
    total, t = loss(plain)
    torch.testing.assert_close(total, t["recon"] + t["kl_w"] + t["kl_z"] + t["kl_c"])
    assert float(t["kl_c"]) <= np.log(4) + 1e-6 and float(t["kl_c"]) >= 0
    # a threshold above the term replaces it by λ, and no gradient flows through it
    big = tiny(info_lambda=10.0)
    total_b, tb = loss(big)
    torch.testing.assert_close(total_b, tb["recon"] + tb["kl_w"] + tb["kl_z"] + 10.0)
    torch.testing.assert_close(tb["kl_c"], t["kl_c"])
    # the c-prior term's gradient: present at λ = 0, absent when the term is below λ
    for v, expect in ((plain, True), (big, False)):
        v.zero_grad()
        torch.manual_seed(3)
        qz, qw = v.encode_all(x)
        z, w = qz.rsample(), qw.rsample()
        pz = v.conditional_prior(w)
        log_pc = pz.log_responsibilities(z)
        kl_c = (log_pc.exp() * (log_pc - pz.log_weights)).sum(-1).mean()
        torch.clamp(kl_c, min=v.config.info_lambda).backward()
        g = v.prior_net[0].weight.grad
        assert (g is not None and g.abs().sum() > 0) == expect


def test_iwae_from_log_weights_agrees_with_sampling_the_generative_model():
    """With c marginalised in log p(z|w), logmeanexp of the weights estimates log p(x); compare it with
    the plain Monte-Carlo estimate log E_{w~p(w), c~p(c), z~p(z|w,c)} p(x|z) of a tiny model."""
    v = tiny().eval()
    x = (torch.rand(4, 12, generator=torch.Generator().manual_seed(5)) > 0.5).float()
    with torch.no_grad():
        torch.manual_seed(1)
        lw = v.log_weights(x, 5000)  # (k, B)
        assert lw.shape == (5000, 4) and torch.isfinite(lw).all()
        iwae = torch.logsumexp(lw, 0) - np.log(5000)
        n = 50_000
        g = torch.Generator().manual_seed(2)
        z = v.conditional_prior(torch.randn(n, 2, generator=g)).sample(1, generator=g)[0]
        ll = v.log_lik(v.decode(z).unsqueeze(1).expand(n, 4, 12), x)  # (n, B)
        direct = torch.logsumexp(ll, 0) - np.log(n)
    torch.testing.assert_close(iwae, direct, atol=0.05, rtol=0)
    assert torch.all(lw.mean(0) <= iwae)


def test_predict_and_samples_have_the_right_shapes():
    torch.manual_seed(0)
    v = vaelab.build("gmvae", backbone="small", latent_dim=4, w_dim=3, n_clusters=3).eval()
    x = torch.rand(5, 1, 28, 28)
    p = v.predict(x)
    assert p.dtype == torch.int64 and p.shape == (5,) and p.max() < 3
    s = v.sample_per_cluster(2, generator=torch.Generator().manual_seed(0))
    assert s.shape == (6, 1, 28, 28) and s.min() >= 0 and s.max() <= 1
    s = v.sample(4, generator=torch.Generator().manual_seed(0))
    assert s.shape == (4, 1, 28, 28)
    assert v.clusters and vaelab.build("gmvae", backbone="small").n_clusters == 10


@pytest.mark.parametrize("seed", [0, 3])
def test_recovers_well_separated_clusters(seed):
    K = 4
    x, y = synthetic_clusters(n=500, K=K, seed=seed)
    torch.manual_seed(seed)
    v = vaelab.build("gmvae", backbone="mlp", data_shape=(32,), latent_dim=4, n_clusters=K, n_classes=K)
    fit(v, x, y, epochs=20, lr=5e-3, seed=seed)
    assert cluster_accuracy(y, v.predict(x)) >= 0.95
    # per-cluster samples come back to their cluster (chance is 0.25); lower than VaDE's because
    # the heads μ_c(w) of two clusters can overlap for prior draws of w that q(w|x) rarely visits
    assert self_consistency(v) >= 0.7


@pytest.mark.parametrize("key,value", [("w_dim", 0), ("n_clusters", 0), ("prior_hidden", 0), ("info_lambda", -0.1)])
def test_bad_config_values_are_config_errors(key, value):
    with pytest.raises(ConfigError, match=key):
        vaelab.build("gmvae", **{key: value})
