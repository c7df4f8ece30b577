"""VAE-GAN (Larsen et al. 2016): who updates what, the feature-space likelihood, the balance rule."""
import math

import pytest
import torch
import torch.nn.functional as F

import vaelab
from battery import tiny_batch, tiny_config
from vaelab.errors import ConfigError
from vaelab.models.base import NotAvailable
from vaelab.models.vae_gan import balance_updates, feature_nll


def build(seed=0, **over):
    torch.manual_seed(seed)
    return vaelab.build("vae-gan", **{**tiny_config("vae-gan"), **over})


def sgd(lr):
    return lambda params, lr_=None, **kw: torch.optim.SGD(params, lr=lr)


def groups(v):
    return {"encoder": v.encoder_parameters(), "decoder": v.decoder_parameters(), "discriminator": v.discriminator_parameters()}


def snapshot(v):
    return {n: [p.detach().clone() for p in ps] for n, ps in groups(v).items()}


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def step(v, seed=1, lr=0.1, batch=None):
    opts = v.configure_optimizers("train", sgd(lr))
    torch.manual_seed(seed)
    return v.train_step(batch or tiny_batch(), 0, opts, "train")


def test_optimizers_partition_the_parameters():
    v = build()
    opts = v.configure_optimizers("train", sgd(0.1))
    owned = {name: {id(p) for g in o.param_groups for p in g["params"]} for name, o in opts.items()}
    assert set(owned) == {"encoder", "decoder", "discriminator"}
    ids = [i for s in owned.values() for i in s]
    assert len(ids) == len(set(ids)), "a parameter is owned by two optimizers"
    assert set(ids) == {id(p) for p in v.parameters()}


@pytest.mark.parametrize("change, differs", [
    ({"generator_loss": "saturating"}, {"decoder"}),  # GAN loss: decoder only, never the encoder
    ({"gamma": 0.5}, {"decoder"}),  # γ weighs L_llike for the decoder only
    ({"label_smoothing": 0.2}, {"discriminator"}),  # the discriminator's targets reach no one else
])
def test_each_objective_reaches_only_its_owner(change, differs):
    """One step of two models that differ only in one player's objective: only that player moves differently."""
    base = dict(balance=False)
    a, b = build(**base), build(**base, **change)
    step(a), step(b)
    sa, sb = snapshot(a), snapshot(b)
    for name in sa:
        assert same(sa[name], sb[name]) != (name in differs), f"{change}: {name}"


def test_update_matches_independent_gradients():
    """With plain SGD, each player's step is −lr·∇ of its own objective, written out here from the paper.

    (A large lr makes the step, not float32 rounding of the weights, dominate the difference; the GAN
    gradient that must not reach the encoder is only ~1e-3 of its own at initialisation.)"""
    lr = 100.0
    v = build(balance=False)
    ref = build(balance=False)
    batch = tiny_batch()
    x = batch["x"]

    torch.manual_seed(1)  # the same noise as the step below: ε of q, then z_p
    q = ref.encode(x)
    z = q.rsample()
    x_rec = torch.sigmoid(ref.decoder(z))
    x_p = torch.sigmoid(ref.decoder(torch.randn(x.shape[0], ref.config.latent_dim)))
    dis = ref.discriminator
    lr_, f_real = dis(x)
    lrec, f_rec = dis(x_rec)
    lp, _ = dis(x_p)
    kl = 0.5 * (q.logvar.exp() + q.loc**2 - 1 - q.logvar).sum(-1).mean()
    var = f_real.detach().var(0, unbiased=False).mean()  # feature_norm: σ² from the real features
    llike = (0.5 * (f_real - f_rec).pow(2).sum(-1) / var).mean()
    lgan = (F.logsigmoid(lr_) + 0.5 * F.logsigmoid(-lrec) + 0.5 * F.logsigmoid(-lp)).mean()  # eq. 33, real:fake 1:1
    gen = -(F.logsigmoid(lrec) + F.logsigmoid(lp)).mean()  # non-saturating: −log Dis(x̃), both fakes
    objectives = {"encoder": kl + llike, "decoder": ref.config.gamma * llike + gen, "discriminator": -lgan}
    expected = {name: torch.autograd.grad(objectives[name], params, retain_graph=True) for name, params in groups(ref).items()}

    before = snapshot(v)
    step(v, seed=1, lr=lr, batch=batch)
    for name, params in groups(v).items():
        got = torch.cat([((b - p.detach()) / lr).flatten() for b, p in zip(before[name], params)])
        want = torch.cat([g.flatten() for g in expected[name]])
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()), msg=name)


def test_discriminator_loss_decreases_when_only_it_trains():
    v = build(balance=False)
    batch = tiny_batch(16)
    opts = {"encoder": torch.optim.SGD(v.encoder_parameters(), lr=0.0),
            "decoder": torch.optim.SGD(v.decoder_parameters(), lr=0.0),
            "discriminator": torch.optim.Adam(v.discriminator_parameters(), lr=1e-3)}
    enc0 = [p.detach().clone() for p in v.encoder_parameters()]
    losses = []
    for i in range(25):
        torch.manual_seed(7)  # the same z each step: a fixed batch of fakes
        losses.append(float(v.train_step(batch, i, opts, "train")["d_loss"]))
    assert losses[-1] < 0.5 * losses[0], losses
    assert same(enc0, v.encoder_parameters())


def test_feature_nll_is_gaussian_in_feature_space():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 30, generator=g, dtype=torch.float64), torch.randn(5, 30, generator=g, dtype=torch.float64)
    ref = -torch.distributions.Normal(b, 1.0).log_prob(a).sum(-1) - 0.5 * 30 * math.log(2 * math.pi)
    torch.testing.assert_close(feature_nll(a, b).double(), ref)
    assert torch.equal(feature_nll(a, a), torch.zeros(5))


def test_feature_reconstruction_zero_for_identical_images():
    v = build()
    x = tiny_batch()["x"]
    _, f1 = v.discriminator(x)
    _, f2 = v.discriminator(x.clone())
    assert torch.equal(feature_nll(f1, f2), torch.zeros(x.shape[0]))
    _, f3 = v.discriminator(x.flip(0))
    assert (feature_nll(f1, f3) > 0).all()


@pytest.mark.parametrize("layer", ["trunk", "fc"])
def test_feature_layer_shapes(layer):
    v = build(feature_layer=layer)
    logits, f = v.discriminator(tiny_batch()["x"])
    assert logits.shape == (8,)
    assert f.shape == (8, 64 * 7 * 7 if layer == "trunk" else 256)


def test_balance_rule():
    eq, m = 0.68, 0.25
    assert balance_updates(0.69, 0.69, eq, m) == (True, True)  # undecided: both learn
    assert balance_updates(0.2, 0.7, eq, m) == (True, False)  # Dis too good on real: rest it
    assert balance_updates(0.7, 0.1, eq, m) == (True, False)  # Dis too good on fakes: rest it
    assert balance_updates(1.2, 0.7, eq, m) == (False, True)  # Dis losing: rest the decoder
    assert balance_updates(0.1, 1.5, eq, m) == (True, True)  # both would rest: both learn


def test_balance_skips_the_winning_side(monkeypatch):
    """When the rule says the discriminator is far ahead, its step is skipped; the others still move."""
    import vaelab.models.vae_gan as mod

    monkeypatch.setattr(mod, "balance_updates", lambda *a: (True, False))
    v = build()
    before = snapshot(v)
    terms = step(v, lr=0.01)
    after = snapshot(v)
    assert float(terms["d_update"]) == 0.0 and float(terms["g_update"]) == 1.0
    assert same(before["discriminator"], after["discriminator"])
    assert not same(before["decoder"], after["decoder"]) and not same(before["encoder"], after["encoder"])


def test_terms_report_discriminator_health():
    v = build()
    _, terms = v.loss(tiny_batch(), 0)
    for k in ("loss", "kl", "llike", "d_loss", "g_loss", "d_acc", "d_real", "d_fake"):
        assert k in terms and torch.isfinite(terms[k])
    assert 0 <= float(terms["d_acc"]) <= 1
    torch.testing.assert_close(terms["loss"], terms["kl"] + terms["llike"])


def test_task_metrics_carry_the_collapse_report():
    v = build().eval()
    x = tiny_batch()["x"]
    m = v.task_metrics(x, None, generator=torch.Generator().manual_seed(0))
    rep = v.collapse_report(x, generator=torch.Generator().manual_seed(0))
    assert m == {"gan_collapsed": float(rep["collapsed"]), "gan_d_acc": rep["d_acc"], "gan_diversity": rep["diversity"]}


def test_collapse_report_flags_mode_collapse():
    v = build()
    x = tiny_batch(32)["x"]
    rep = v.collapse_report(x, generator=torch.Generator().manual_seed(0))
    assert set(rep) >= {"d_acc", "diversity", "collapsed", "reason"}
    one = v.sample(1, generator=torch.Generator().manual_seed(0))
    v.sample = lambda n, y=None, generator=None: one.expand(n, *one.shape[1:]).clone()  # every sample the same
    rep = v.collapse_report(x)
    assert rep["collapsed"] and rep["diversity"] < 1e-6 and "mode collapse" in rep["reason"]


def test_pixel_term_is_opt_in():
    _, terms = build().loss(tiny_batch(), 0)
    assert "pixel" not in terms
    _, terms = build(pixel_weight=1.0).loss(tiny_batch(), 0)
    assert terms["pixel"] > 0


def test_no_pixel_likelihood():
    with pytest.raises(NotAvailable, match="discriminator features"):
        build().log_weights(tiny_batch()["x"], 2)


@pytest.mark.parametrize("bad", [{"gamma": -1.0}, {"generator_loss": "wgan"}, {"feature_layer": "conv3"},
                                 {"backbone": "mlp"}, {"label_smoothing": 0.7}, {"margin": 0.0}])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ConfigError):
        vaelab.build("vae-gan", **{**tiny_config("vae-gan"), **bad})


def test_mlp_backbone_with_fc_features():
    v = vaelab.build("vae-gan", backbone="mlp", feature_layer="fc", latent_dim=4)
    terms = step(v)
    assert torch.isfinite(terms["loss"])
