"""S-VAE (Davidson et al. 2018): vMF posterior, uniform prior on the sphere, closed-form KL, IWAE weights."""
import math

import pytest
import torch

import vaelab
from battery import tiny_batch
from vaelab.distributions.vmf import HypersphericalUniform, VonMisesFisher
from vaelab.errors import ConfigError


def build(**kw):
    torch.manual_seed(0)
    cfg = {"backbone": "small", "latent_dim": 5}
    cfg.update(kw)
    return vaelab.build("s-vae", **cfg)


def test_posterior_is_a_vmf_on_the_sphere():
    v = build(kappa_min=1.0)
    assert v.latent_kind == "sphere"
    q = v.encode(tiny_batch()["x"])
    assert isinstance(q, VonMisesFisher) and q.loc.shape == (8, 5) and q.scale.shape == (8,)
    assert torch.allclose(q.loc.norm(dim=-1), torch.ones(8), atol=1e-6)
    assert (q.scale > 1.0).all()
    emb = v.embed(tiny_batch()["x"])
    assert torch.allclose(emb.norm(dim=-1), torch.ones(8), atol=1e-6)
    s = v.sample(6, generator=torch.Generator().manual_seed(0))
    assert s.shape == (6, 1, 28, 28) and 0 <= s.min() and s.max() <= 1


def test_loss_is_recon_plus_closed_form_kl():
    v = build()
    b = tiny_batch()
    torch.manual_seed(1)
    total, terms = v.loss(b, 0)
    q = v.encode(b["x"])
    kl = q.kl(HypersphericalUniform(5)).mean()
    assert torch.allclose(terms["kl"], kl, rtol=1e-6)
    assert torch.allclose(total, terms["recon"] + terms["kl"] / 600, rtol=1e-6), "step 0 of the 600-step KL warm-up"
    assert torch.allclose(terms["kappa"], q.scale.mean())
    total.backward()
    assert v.head.weight.grad[-1].abs().sum() > 0, "the κ row of the head gets a gradient"


def test_log_weights_are_a_proper_importance_bound():
    """log w = log p(x|z) + log U(z) − log vMF(z|x) with z ~ vMF; mean = ELBO ≤ IWAE."""
    v = build().eval()
    x = (tiny_batch()["x"] > 0.3).float()
    torch.manual_seed(2)
    lw = v.log_weights(x, 16)
    assert lw.shape == (16, 8) and torch.isfinite(lw).all()
    torch.manual_seed(2)
    q = v.encode(x)
    z = q.rsample((16,))
    assert torch.allclose(z.norm(dim=-1), torch.ones(()), atol=1e-5)
    logits = v.decode(z.reshape(-1, 5)).view(16, *x.shape)
    manual = v.log_lik(logits, x) - math.log(2 * math.pi**2.5 / math.gamma(2.5)) - q.log_prob(z)
    assert torch.allclose(lw, manual, rtol=1e-5, atol=1e-3)
    iwae = torch.logsumexp(lw, 0) - math.log(16)
    assert (iwae >= lw.mean(0) - 1e-4).all()


def test_learns_on_a_tiny_batch():
    v = build(latent_dim=3)
    b = tiny_batch(16, seed=3)
    opt = torch.optim.Adam(v.parameters(), lr=3e-3)
    torch.manual_seed(0)
    losses = []
    for step in range(12):
        total, _ = v.loss(b, step)
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(float(total.detach()))
    assert losses[-1] < losses[0] - 20, losses


@pytest.mark.parametrize("warmup,step,train,weight", [(600, 0, True, 1 / 600), (600, 299, True, 0.5), (600, 599, True, 1.0),
                                                       (600, 5000, True, 1.0), (600, 0, False, 1.0), (0, 0, True, 1.0)])
def test_kl_warmup_weights_the_kl_in_training_only(warmup, step, train, weight):
    v = build(kl_warmup_steps=warmup).train(train)
    b = tiny_batch()
    torch.manual_seed(1)
    total, terms = v.loss(b, step)
    assert v.kl_weight(step) == pytest.approx(weight)
    assert torch.allclose(total, terms["recon"] + weight * terms["kl"], rtol=1e-6)
    assert terms["kl"] > 0, "the reported KL is the full one"


@pytest.mark.parametrize("link", ["exp", "softplus"])
def test_kappa_link_maps_the_head_output(link):
    """κ = exp(h) + kappa_min (log-scale head, default) or softplus(h) + kappa_min (reference code)."""
    v = build(kappa_link=link, kappa_min=1.0)
    x = tiny_batch()["x"]
    raw = v.head(v.encoder(x, None))[:, -1].double()
    want = (raw.exp() if link == "exp" else torch.nn.functional.softplus(raw)) + 1.0
    assert torch.allclose(v.encode(x).scale.double(), want, rtol=1e-5)


def test_exp_link_is_capped_at_kappa_max_and_stays_finite():
    v = build(kappa_max=1e4)
    with torch.no_grad():
        v.head.bias[-1] = 1e3  # exp(1e3) overflows without the cap
    x = tiny_batch()["x"]
    q = v.encode(x)
    assert torch.allclose(q.scale, torch.full((8,), 1e4), rtol=1e-5)
    total, terms = v.loss({"x": (x > 0.3).float()}, 0)
    assert torch.isfinite(total) and torch.isfinite(terms["kl"])
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in v.parameters() if p.grad is not None)


def test_score_correction_value_zero_gradient_with_leave_one_out_baseline():
    from vaelab.losses.gradients import score_correction
    theta = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64, requires_grad=True)
    log_p = theta ** 2  # ∇ log p_i = 2 θ_i
    f = torch.tensor([1.0, 4.0, -2.0])
    out = score_correction(f, log_p)
    assert float(out.detach()) == 0.0
    out.backward()
    b = torch.tensor([(4 - 2) / 2, (1 - 2) / 2, (1 + 4) / 2])  # leave-one-out means
    assert torch.allclose(theta.grad, ((f - b) * 2 * theta.detach()).double() / 3)


def test_g_cor_adds_the_score_term_to_the_kappa_gradient_only():
    """Same draws, same loss value; the κ gradient differs by −(f − b) ∇κ log π(ε | κ) / B, and the
    decoder's gradient is the same."""
    b = {"x": (tiny_batch()["x"] > 0.3).float()}
    runs = {}
    for g_cor in (False, True):
        v = build(g_cor=g_cor, kl_warmup_steps=0)
        q = v.encode(b["x"])
        kappa = q.scale.detach().requires_grad_(True)
        v.encode = lambda x, y=None, _q=q, _k=kappa: VonMisesFisher(_q.loc.detach(), _k)
        torch.manual_seed(5)
        total, _ = v.loss(b, 0)
        total.backward()
        runs[g_cor] = (float(total.detach()), kappa.grad.clone(), next(v.decoder.parameters()).grad.clone(), v)
    (l0, g0, d0, _), (l1, g1, d1, v) = runs[False], runs[True]
    assert l0 == l1 and torch.equal(d0, d1)
    torch.manual_seed(5)
    q = v.encode(b["x"])
    k = q.scale.detach().requires_grad_(True)
    z, log_pi = VonMisesFisher(q.loc.detach(), k).rsample_with_eps_log_prob()
    f = v.log_lik(v.decode(z), b["x"]).detach()
    score, = torch.autograd.grad(log_pi.sum(), k)
    base = (f.sum() - f) / (len(f) - 1)
    assert torch.allclose(g1 - g0, -(f - base) * score / len(f), rtol=1e-4, atol=1e-7)
    assert (g1 - g0).abs().max() > 0


@pytest.mark.parametrize("bad", [{"latent_dim": 1}, {"kappa_min": -1.0}, {"kappa_link": "relu"},
                                 {"kappa_max": 0.5}, {"kappa_max": float("inf")},
                                 {"kl_warmup_steps": -1}, {"kl_warmup_steps": 1.5}, {"g_cor": "yes"}, {"g_cor": 1}])
def test_config_errors(bad):
    with pytest.raises(ConfigError):
        vaelab.build("s-vae", **{"backbone": "small", **bad})
