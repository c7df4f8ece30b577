"""The regularised-posterior variants: beta-vae, info-vae, wae (what is special about each; the shared
battery covers the rest, here also for their non-default modes)."""
import pytest
import torch

import vaelab
from battery import CHECKS, check_save_load, tiny_batch
from vaelab.distributions import DiagonalGaussian
from vaelab.errors import ConfigError
from vaelab.losses.divergences import mmd
from vaelab.models.base import NotAvailable
from vaelab.registry import get
from vaelab.optim import make_optimizer_factory
from vaelab.training.config import TrainConfig
from variant_configs import TEST_CONFIGS

TINY = {"backbone": "small", "latent_dim": 4}


def build(name, seed=0, **cfg):
    torch.manual_seed(seed)
    return vaelab.build(name, **{**TINY, **cfg})


def loss_at(v, batch, seed=1, step=0):
    torch.manual_seed(seed)
    return v.loss(batch, step)


# ----- the battery, for the modes the registry's defaults do not reach -------------------------------
MODES = [
    ("beta-vae", {"mode": "capacity", "capacity_steps": 10}),
    ("info-vae", {"alpha": 0.5, "kernel": "imq", "mmd_unbiased": True}),
    ("wae", {"mode": "gan", "disc_hidden": 32, "disc_layers": 2}),
    ("wae", {"encoder": "gaussian", "cost": "bce", "cost_scale": 1.0, "kernel": "rbf"}),
    ("beta-tcvae", {"estimator": "mws", "alpha": 0.5, "gamma": 2.0}),
    ("dip-vae", {"mode": "ii", "lambda_d": 3.0}),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in list(c.items())[:2])}" for n, c in MODES]


@pytest.mark.parametrize("name,overrides", MODES, ids=IDS)
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.replace("check_", ""))
def test_battery_in_other_modes(name, overrides, check, monkeypatch):
    monkeypatch.setitem(TEST_CONFIGS, name, overrides)
    check(name)


@pytest.mark.parametrize("name,overrides", MODES, ids=IDS)
def test_save_load_in_other_modes(name, overrides, tmp_path, monkeypatch):
    monkeypatch.setitem(TEST_CONFIGS, name, overrides)
    check_save_load(name, tmp_path)


# ----- β-VAE -----------------------------------------------------------------------------------------
def test_beta_one_is_exactly_the_plain_vae():
    vae, bvae = build("vae"), build("beta-vae", beta=1.0)
    for (k, a), (_, b) in zip(vae.named_parameters(), bvae.named_parameters()):
        assert torch.equal(a, b), k
    batch = tiny_batch()
    (t1, terms1), (t2, terms2) = loss_at(vae, batch), loss_at(bvae, batch)
    assert torch.equal(t1, t2)
    assert torch.equal(terms1["kl"], terms2["kl"]) and torch.equal(terms1["recon"], terms2["recon"])
    # and the same log importance weights (the generative model is unchanged)
    torch.manual_seed(2)
    w1 = vae.log_weights(batch["x"], 3)
    torch.manual_seed(2)
    assert torch.equal(w1, bvae.log_weights(batch["x"], 3))


def test_beta_weights_the_kl():
    total, terms = loss_at(build("beta-vae", beta=4.0), tiny_batch())
    assert torch.allclose(total, terms["recon"] + 4.0 * terms["kl"])
    total0, terms0 = loss_at(build("beta-vae", beta=0.0), tiny_batch())
    assert torch.equal(total0, terms0["recon"])


def test_capacity_schedule():
    v = build("beta-vae", mode="capacity", capacity_max=25.0, capacity_steps=1000)
    assert [v.capacity(s) for s in (0, 1, 250, 500, 1000, 5000)] == [0.0, 0.025, 6.25, 12.5, 25.0, 25.0]
    v.train()
    total, terms = loss_at(v, tiny_batch(), step=500)
    assert float(terms["capacity"]) == 12.5
    assert torch.allclose(total, terms["recon"] + 1000.0 * (terms["kl"] - 12.5).abs())
    # an evaluation (`vaelab evaluate` passes step 0) uses the capacity of the last update, whose step
    # is one less than the update count the trainer recorded (Variant.trained_steps)
    v.eval()
    _, terms = loss_at(v, tiny_batch(), step=0)
    assert float(terms["capacity"]) == 0.0  # no update recorded
    v.set_progress(steps=501)
    _, terms = loss_at(v, tiny_batch(), step=0)
    assert float(terms["capacity"]) == 12.5
    _, terms = loss_at(v, tiny_batch(), step=750)  # the trainer's own evaluation: the step count, later
    assert float(terms["capacity"]) == 18.75


def test_capacity_gradient_pushes_kl_towards_c():
    """Below the capacity the penalty rewards a larger KL, above it a smaller one."""
    v = build("beta-vae", mode="capacity", capacity_max=1e6, capacity_steps=1, gamma=1.0)
    q = DiagonalGaussian(torch.zeros(2, 4, requires_grad=True), torch.zeros(2, 4))
    reg, _ = v.regularizer(q, None, {}, step=10)  # C = 1e6 ≫ KL
    reg.backward()
    assert torch.all(q.loc.grad == 0)  # KL is at its minimum in μ: d|KL − C|/dμ = −dKL/dμ = 0 at μ = 0
    q = DiagonalGaussian(torch.full((2, 4), 0.5, requires_grad=True), torch.zeros(2, 4))
    v.regularizer(q, None, {}, step=10)[0].backward()
    assert torch.all(q.loc.grad < 0)  # gradient descent moves μ away from 0: KL grows towards C


# ----- InfoVAE ---------------------------------------------------------------------------------------
def test_info_vae_objective_matches_its_terms():
    total, terms = loss_at(build("info-vae", alpha=0.5, lam=10.0), tiny_batch())
    assert torch.allclose(total, terms["recon"] + 0.5 * terms["kl"] + 9.5 * terms["mmd"])
    total, terms = loss_at(build("info-vae"), tiny_batch())  # defaults: the paper's MNIST α = 0, λ = 1000
    assert torch.allclose(total, terms["recon"] + terms["kl"] + 999.0 * terms["mmd"])
    total, terms = loss_at(build("info-vae", alpha=1.0), tiny_batch())  # α = 1: no per-example KL at all
    assert torch.allclose(total, terms["recon"] + 1000.0 * terms["mmd"])


def test_info_vae_alpha0_lambda1_is_the_plain_vae():
    vae, info = build("vae"), build("info-vae", alpha=0.0, lam=1.0)
    (t1, _), (t2, _) = loss_at(vae, tiny_batch()), loss_at(info, tiny_batch())
    assert torch.equal(t1, t2)


def test_info_vae_mmd_sees_sampled_codes_not_the_mean():
    """The seed's bug: MMD on the deterministic mean. Here z ~ q(z|x), so with α = 1 (no KL) the
    encoder's log-variance still gets gradients (through z = μ + σ ε in recon and MMD)."""
    v = build("info-vae", alpha=1.0)
    total, _ = loss_at(v, tiny_batch())
    total.backward()
    d = v.config.latent_dim
    grad_logvar = v.head.weight.grad[d:]
    assert grad_logvar.abs().sum() > 0
    # and the MMD term itself moves with the noise: two draws give two values
    b = tiny_batch()
    _, t1 = loss_at(v, b, seed=1)
    _, t2 = loss_at(v, b, seed=2)
    assert not torch.equal(t1["mmd"], t2["mmd"])


def test_info_vae_mmd_matches_the_shared_divergence():
    v = build("info-vae", kernel="rbf")  # latent_dim 4: the authors' width s = 4/√2, k = exp(−‖z − z'‖²/16)
    q = v.encode(tiny_batch()["x"])
    z = q.rsample()
    torch.manual_seed(5)
    _, terms = v.regularizer(q, z, {}, 0)
    torch.manual_seed(5)
    prior = torch.randn(z.shape)
    k = lambda a, b: torch.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / 16.0)
    expected = k(z, z).mean() + k(prior, prior).mean() - 2 * k(z, prior).mean()
    assert torch.allclose(terms["mmd"], expected)
    assert torch.allclose(terms["mmd"], mmd(z, prior, kernel="rbf", unbiased=False, bandwidth=8 ** 0.5))


# ----- WAE -------------------------------------------------------------------------------------------
def test_wae_deterministic_encoder_and_no_likelihood():
    v = build("wae")
    x = tiny_batch()["x"]
    q = v.encode(x)
    assert torch.equal(q.rsample(), q.mean) and q.rsample((3,)).shape == (3, 8, 4)
    with pytest.raises(NotAvailable, match="deterministic encoder"):
        v.log_weights(x, 2)
    w = build("wae", encoder="gaussian").log_weights(x, 2)
    assert w.shape == (2, 8) and torch.isfinite(w).all()


def test_wae_mmd_objective_is_scaled_l2_plus_lambda_mmd():
    v = build("wae")
    batch = tiny_batch()
    total, terms = loss_at(v, batch)
    z = v.encode(batch["x"]).mean
    cost = 0.05 * (torch.sigmoid(v.decode(z)) - batch["x"]).pow(2).flatten(1).sum(-1).mean()
    assert torch.allclose(terms["cost"], cost)
    assert torch.allclose(total, terms["cost"] + 10.0 * terms["mmd"])
    _, t = loss_at(build("wae", cost="bce", cost_scale=1.0), batch)
    assert torch.allclose(t["cost"], t["recon"])  # BCE cost = the reconstruction NLL in nats


def test_wae_gan_has_two_optimizers_over_disjoint_parameters():
    v = build("wae", mode="gan", disc_hidden=16, disc_layers=2, disc_lr=5e-4)
    opts = v.configure_optimizers("train", make_optimizer_factory(TrainConfig(lr=1e-3)))
    assert set(opts) == {"model", "disc"}
    ids = {k: {id(p) for g in o.param_groups for p in g["params"]} for k, o in opts.items()}
    assert not ids["model"] & ids["disc"]
    assert ids["model"] | ids["disc"] == {id(p) for p in v.parameters()}
    assert ids["disc"] == {id(p) for p in v.discriminator.parameters()}
    assert opts["disc"].param_groups[0]["lr"] == 5e-4 and opts["model"].param_groups[0]["lr"] == 1e-3


def test_wae_gan_discriminator_learns_to_separate_codes_from_prior():
    """Only the discriminator moves here: its loss on a fixed (codes, prior draws) pair falls."""
    v = build("wae", mode="gan", disc_hidden=32, disc_layers=2)
    z = v.encode(tiny_batch(64)["x"]).mean.detach() + 3.0  # codes far from N(0, I)
    opt = torch.optim.Adam(v.discriminator.parameters(), lr=1e-2)

    def d_loss():
        torch.manual_seed(7)  # the same prior draws every time
        return v._disc_loss(z)

    before = float(d_loss().detach())
    for _ in range(30):
        opt.zero_grad()
        d_loss().backward()
        opt.step()
    assert float(d_loss().detach()) < 0.5 * before


def test_wae_gan_objective_is_the_non_saturating_loss():
    v = build("wae", mode="gan", disc_hidden=32, disc_layers=2)
    opts = v.configure_optimizers("train", make_optimizer_factory(TrainConfig(lr=1e-3)))
    terms = v.train_step(tiny_batch(), 0, opts, "train")
    assert set(terms) == {"loss", "cost", "recon", "gan", "disc"}
    assert torch.allclose(terms["loss"], terms["cost"] + 10.0 * terms["gan"])
    total, eval_terms = loss_at(v, tiny_batch())
    assert set(eval_terms) == set(terms)
    # encoder's penalty: −log d(z̃) = softplus(−logit), not log(1 − d(z̃))
    z = v.encode(tiny_batch()["x"]).mean
    assert torch.allclose(eval_terms["gan"], torch.nn.functional.softplus(-v.discriminator(z)).mean())
    assert torch.allclose(total, eval_terms["cost"] + 10.0 * eval_terms["gan"])


# ----- config errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name,cfg,key", [
    ("beta-vae", {"beta": -1}, "beta"),
    ("beta-vae", {"beta": "big"}, "beta"),
    ("beta-vae", {"mode": "annealed"}, "mode"),
    ("beta-vae", {"gamma": -2.0}, "gamma"),
    ("beta-vae", {"capacity_max": float("nan")}, "capacity_max"),
    ("beta-vae", {"capacity_steps": 0}, "capacity_steps"),
    ("beta-vae", {"capacity_steps": 10.5}, "capacity_steps"),
    ("info-vae", {"alpha": 2.0}, "alpha"),
    ("info-vae", {"lam": -1.0}, "lam"),
    ("info-vae", {"alpha": 0.0, "lam": 0.5}, "lam"),
    ("info-vae", {"kernel": "laplace"}, "kernel"),
    ("info-vae", {"bandwidth": 0}, "bandwidth"),
    ("info-vae", {"mmd_unbiased": "yes"}, "mmd_unbiased"),
    ("wae", {"mode": "wgan"}, "mode"),
    ("wae", {"lam": -10}, "lam"),
    ("wae", {"cost": "l1"}, "cost"),
    ("wae", {"cost_scale": 0}, "cost_scale"),
    ("wae", {"encoder": "implicit"}, "encoder"),
    ("wae", {"disc_layers": 0}, "disc_layers"),
    ("wae", {"disc_lr": -1e-3}, "disc_lr"),
])
def test_bad_config_values_raise_config_error_naming_the_key(name, cfg, key):
    with pytest.raises(ConfigError, match=rf"^{key}:"):
        vaelab.build(name, **{**TINY, **cfg})


def test_unknown_key_is_a_config_error():
    with pytest.raises(ConfigError, match="lambda"):
        vaelab.build("info-vae", **{"lambda": 3})
