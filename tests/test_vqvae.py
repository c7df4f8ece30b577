"""VQ-VAE: quantiser (nearest code, straight-through, EMA, restarts), PixelCNN masks, two-phase plan."""
import math

import pytest
import torch

import battery
import vaelab
from battery import tiny_batch
from vaelab.errors import ConfigError
from vaelab.models.base import NotAvailable
from vaelab.models.vq_vae import VQVAE
from vaelab.nn.pixelcnn import PixelCNN, causal_mask
from vaelab.nn.quantizer import CodeGrid, VectorQuantizer
from vaelab.optim import make_optimizer_factory
from vaelab.training.config import TrainConfig
from variant_configs import TEST_CONFIGS, config_for


def build(**kw):
    torch.manual_seed(0)
    cfg = {"backbone": "small", "latent_dim": 4, "num_codes": 16, "prior_channels": 8, "prior_layers": 2}
    cfg.update(kw)
    return vaelab.build("vq-vae", **cfg)


# ----- quantiser --------------------------------------------------------------------------------
@pytest.mark.parametrize("ema", [True, False])
def test_quantiser_picks_the_nearest_code_and_outputs_it(ema):
    torch.manual_seed(0)
    vq = VectorQuantizer(10, 3, ema=ema)
    z = torch.randn(2, 3, 4, 5)
    out = vq(z)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 3).double()
    ref = torch.cdist(flat, vq.codebook.detach().double()).argmin(1)
    assert torch.equal(out.indices.flatten(), ref)
    chosen = vq.codebook.detach()[ref].view(2, 4, 5, 3).permute(0, 3, 1, 2)
    assert torch.equal(out.z_q.detach(), chosen) and torch.equal(out.codes.detach(), chosen)
    assert torch.allclose(out.commitment_loss, ((z - chosen) ** 2).mean())
    if not ema:
        assert torch.allclose(out.codebook_loss, ((z - chosen) ** 2).mean())


def test_straight_through_gradient_is_the_identity_to_the_encoder():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 3, ema=False)
    z = torch.randn(2, 3, 2, 2, requires_grad=True)
    w = torch.randn(2, 3, 2, 2)
    (vq(z).z_q * w).sum().backward()
    assert torch.equal(z.grad, w)
    assert vq.codebook.grad is None, "the decoder's gradient does not reach the codebook"
    # the codebook loss moves the used codes only
    vq.zero_grad()
    out = vq(z.detach())
    out.codebook_loss.backward()
    used = torch.zeros(8, dtype=torch.bool)
    used[out.indices.unique()] = True
    assert (vq.codebook.grad[used].abs().sum(1) > 0).all() and (vq.codebook.grad[~used] == 0).all()


def test_straight_through_reaches_the_model_encoder():
    v = build(ema=False)
    total, _ = v.loss(tiny_batch(), 0)
    total.backward()
    for name, p in v.named_parameters():
        if name.startswith("encoder") or name.startswith("decoder"):
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        if name.startswith("prior"):
            assert p.grad is None, f"{name}: the prior is not trained in the first phase"


def test_ema_update_equals_its_formula():
    """N ← γN + (1−γ)n, m ← γm + (1−γ)Σz, e = m / Ñ, Ñ = (N + ε)/(ΣN + Kε)·ΣN (van den Oord et al. App. A.1)."""
    g, eps = 0.9, 0.01
    vq = VectorQuantizer(3, 2, ema=True, decay=g, eps=eps, restart_after=0)
    e0 = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    vq.codebook.copy_(e0)
    vq.ema_sum.copy_(e0)
    vq.ema_count.fill_(1.0)
    pts = [[1.0, 0.0], [0.0, 1.0], [9.0, 1.0], [1.0, 1.0]]  # codes 0, 0, 1, 0; code 2 unused
    z = torch.tensor(pts).t().reshape(1, 2, 2, 2)  # (B=1, D=2, H=2, W=2) in raster order
    out = vq(z, update=True)
    assert out.indices.flatten().tolist() == [0, 0, 1, 0]
    n = torch.tensor([3.0, 1.0, 0.0])
    s = torch.tensor([[2.0, 2.0], [9.0, 1.0], [0.0, 0.0]])
    count = g * 1.0 + (1 - g) * n
    msum = g * e0 + (1 - g) * s
    tot = count.sum()
    smoothed = (count + eps) / (tot + 3 * eps) * tot
    assert torch.allclose(vq.ema_count, count) and torch.allclose(vq.ema_sum, msum)
    assert torch.allclose(vq.codebook, msum / smoothed[:, None])
    assert vq.unused_steps.tolist() == [0, 0, 1]
    before = vq.codebook.clone()
    vq(z, update=False)
    assert torch.equal(vq.codebook, before), "no update without update=True"


@pytest.mark.parametrize("ema", [True, False])
def test_dead_code_is_restarted_from_the_batch(ema):
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 2, ema=ema, restart_after=2)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [100.0, 100.0], [-100.0, 100.0]]))
        if ema:
            vq.ema_sum.copy_(vq.codebook)
    vq.unused_steps.zero_()
    z = torch.tensor([[0.1, 0.0], [0.9, 1.1], [0.0, 0.2], [1.2, 0.8]]).t().reshape(1, 2, 2, 2)
    vq(z, update=True)
    assert vq.unused_steps.tolist() == [0, 0, 1, 1]
    vq(z, update=True)  # codes 2 and 3 reach 2 unused steps: restarted
    batch = z.permute(0, 2, 3, 1).reshape(-1, 2)
    for k in (2, 3):
        assert (vq.codebook[k] - batch).abs().sum(1).min() < 1e-6, "restarted at an encoder output of the batch"
        if ema:
            assert torch.allclose(vq.ema_sum[k], vq.codebook[k]) and vq.ema_count[k] == 1.0
    assert vq.unused_steps.tolist() == [0, 0, 0, 0]
    assert {"unused_steps"} <= set(vq.state_dict())


def test_codes_start_dead_and_are_initialised_from_the_first_batch():
    torch.manual_seed(0)
    vq = VectorQuantizer(6, 2, ema=True, restart_after=5)
    z = (torch.randn(1, 2, 4, 4) * 0.01 + 50.0)  # far from every N(0, 1) initial code
    first = vq(z, update=True)
    batch = z.permute(0, 2, 3, 1).reshape(-1, 2)
    unused = [k for k in range(6) if k not in first.indices.unique().tolist()]
    assert len(unused) == 5
    for k in unused:
        assert (vq.codebook[k] - batch).abs().sum(1).min() < 1e-6
    assert int(vq(z).usage * 6) > 1, "after the first step the batch spreads over several codes"


def test_perplexity_and_usage():
    vq = VectorQuantizer(8, 2, ema=True)
    with torch.no_grad():
        vq.codebook.copy_(torch.arange(16.0).view(8, 2) * 10)
    four = vq.codebook[:4].t().reshape(1, 2, 2, 2)
    out = vq(four)
    assert math.isclose(float(out.perplexity), 4.0, rel_tol=1e-5) and math.isclose(float(out.usage), 0.5)
    one = vq.codebook[:1].t().reshape(1, 2, 1, 1).expand(3, 2, 2, 2)
    assert math.isclose(float(vq(one).perplexity), 1.0, rel_tol=1e-5)


def test_distances_stay_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    vq = VectorQuantizer(64, 8)
    z = torch.randn(4, 8, 3, 3)
    ref = vq(z).indices
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(vq(z.bfloat16()).indices, vq(z.bfloat16().float()).indices)
        assert (vq(z).indices == ref).all()


# ----- PixelCNN ---------------------------------------------------------------------------------
def test_causal_masks():
    assert causal_mask("vertical", 3, "A").tolist() == [[1, 1, 1], [0, 0, 0]]  # rows above / current row
    assert causal_mask("vertical", 3, "B").tolist() == [[1, 1, 1], [1, 1, 1]]
    assert causal_mask("horizontal", 5, "A").tolist() == [[1, 1, 0]]  # left / current
    assert causal_mask("horizontal", 5, "B").tolist() == [[1, 1, 1]]


def test_pixelcnn_output_depends_only_on_earlier_positions():
    """By gradient: logits at (i, j) depend on inputs strictly before (i, j) in raster order, and on
    all of them (no blind spot: the gated vertical/horizontal stacks)."""
    torch.manual_seed(0)
    h, w = 5, 5
    net = PixelCNN(6, channels=8, layers=4)
    for p in net.parameters():  # random, non-zero weights everywhere (masks applied in forward)
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(1, 8, h, w, requires_grad=True)
    for i in range(h):
        for j in range(w):
            (grad,) = torch.autograd.grad(net.forward_features(x)[0, :, i, j].sum(), x)
            dep = grad[0].abs().sum(0) > 0  # (h, w)
            order = torch.arange(h * w).view(h, w)
            before = order < i * w + j
            assert not dep[~before].any(), f"({i},{j}) sees itself or a later position"
            assert dep[before].all(), f"({i},{j}) misses an earlier position"


def test_pixelcnn_is_a_normalised_distribution():
    torch.manual_seed(0)
    net = PixelCNN(3, channels=8, layers=2)
    grids = torch.cartesian_prod(*[torch.arange(3)] * 4).view(-1, 2, 2)  # all 81 2×2 grids
    total = net.log_prob(grids).exp().sum()
    assert abs(float(total.detach()) - 1) < 1e-5


def test_pixelcnn_sampling_is_deterministic_and_follows_the_model():
    torch.manual_seed(0)
    net = PixelCNN(4, channels=8, layers=2)
    a = net.sample(5, (3, 3), generator=torch.Generator().manual_seed(1))
    b = net.sample(5, (3, 3), generator=torch.Generator().manual_seed(1))
    assert a.shape == (5, 3, 3) and torch.equal(a, b) and 0 <= a.min() and a.max() < 4
    # the first position is drawn from p(k_0): compare frequencies with the model's marginal
    with torch.no_grad():
        net.out[-1].bias.copy_(torch.tensor([2.0, 0.0, -1.0, 0.5]))
    s = net.sample(2000, (1, 1), generator=torch.Generator().manual_seed(2))
    p = torch.softmax(net(torch.zeros(1, 1, 1, dtype=torch.long))[0, :, 0, 0], 0)
    freq = torch.bincount(s.flatten(), minlength=4).float() / 2000
    assert (freq - p).abs().max() < 0.04


# ----- the variant ------------------------------------------------------------------------------
def test_loss_terms_and_reduction():
    """L = recon + P·(codebook + β·commit), VQ terms as element means, P = pixels per image."""
    for ema in (True, False):
        v = build(ema=ema, beta=0.25)
        total, t = v.loss(tiny_batch(), 0)
        expect = t["recon"] + 784 * (t["codebook"] + 0.25 * t["commit"])
        assert torch.allclose(total, expect, rtol=1e-5)
        assert (t["codebook"] == 0) == ema
        for k in ("perplexity", "usage", "recon_acc"):
            assert k in t
        assert 1 <= float(t["perplexity"]) <= 16 and 0 < float(t["usage"]) <= 1 and 0 <= float(t["recon_acc"]) <= 1


def test_encode_decode_embed_and_the_codegrid():
    v = build().eval()
    x = tiny_batch()["x"]
    q = v.encode(x)
    assert isinstance(q, CodeGrid) and q.indices.shape == (8, 7, 7) and q.mean.shape == (8, 4 * 49)
    assert torch.equal(q.mean, v.quantizer.lookup(q.indices).flatten(1))
    assert torch.equal(q.log_prob(q.mean), torch.zeros(8)) and torch.isinf(q.log_prob(q.mean + 1)).all()
    assert torch.equal(v.decode(q.mean), v.decode(q.codes))
    assert torch.equal(v.embed(x), q.mean)


def test_two_phases_train_only_their_own_parameters():
    v = build(ema=False)
    make = make_optimizer_factory(TrainConfig(lr=1e-2))
    assert [p.name for p in v.phases()] == ["train", "prior"] and v.phases()[1].epochs == v.config.prior_epochs
    b = tiny_batch()
    vq_names = [n for n, _ in v.named_parameters() if not n.startswith("prior.")]
    opt = v.configure_optimizers("prior", make)["prior"]
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(p) for p in v.prior.parameters()}
    battery.enter_phase(v, "prior")
    before = {k: t.clone() for k, t in v.state_dict().items() if not k.startswith("prior.") and k != "progress"}
    terms = v.train_step(b, 0, {"prior": opt}, "prior")
    assert set(terms) == {"loss", "prior_nll"}
    after = v.state_dict()
    for k, t in before.items():
        assert torch.equal(t, after[k]), f"{k} changed in the prior phase (VQ-VAE must be frozen)"
    # loss() follows the phase the trainer recorded, also in eval mode (the trainer's test-set evaluation)
    v.eval()
    _, t = v.loss(b, 0)
    assert set(t) == {"loss", "prior_nll"}
    battery.enter_phase(v, "train")
    _, t = v.loss(b, 0)
    assert "perplexity" in t
    assert vq_names and all(not n.startswith("prior.") for n in vq_names)


def test_phase_survives_a_state_dict_round_trip():
    v = build()
    battery.enter_phase(v, "prior")
    w = build()
    w.load_state_dict(v.state_dict())
    assert w.phase == "prior"
    _, t = w.loss(tiny_batch(), 0)
    assert "prior_nll" in t


def test_sampling_uses_the_prior_and_log_weights_are_the_point_mass_bound():
    v = build().eval()
    with pytest.raises(NotAvailable, match="not been trained"):  # the first phase: no prior to sample yet
        v.sample(3)
    battery.enter_phase(v, "prior")
    s = v.sample(3, generator=torch.Generator().manual_seed(0))
    assert s.shape == (3, 1, 28, 28) and 0 <= s.min() and s.max() <= 1
    assert torch.equal(s, v.sample(3, generator=torch.Generator().manual_seed(0)))
    x = (tiny_batch()["x"] > 0.3).float()
    lw = v.log_weights(x, 4)
    q = v.encode(x)
    ref = v.log_lik(v.decode(q.codes), x) + v.prior.log_prob(q.indices)
    assert lw.shape == (4, 8) and torch.allclose(lw, ref.expand(4, -1))


def test_battery_with_the_loss_trained_codebook(monkeypatch, tmp_path):
    monkeypatch.setitem(TEST_CONFIGS, "vq-vae", {**config_for("vq-vae"), "ema": False})
    for check in battery.CHECKS:
        check("vq-vae")
    battery.check_save_load("vq-vae", tmp_path)


@pytest.mark.parametrize("bad", [{"backbone": "mlp"}, {"ema_decay": 1.0}, {"num_codes": 1}, {"beta": -1.0},
                                 {"restart_after": -1}, {"prior_epochs": -1}, {"data_shape": (1, 30, 30)}])
def test_config_errors(bad):
    with pytest.raises(ConfigError):
        vaelab.build("vq-vae", **{"backbone": "small", **bad})
