"""CVAE (Sohn et al. 2015): label conditioning, and the quadrant-completion task with its
conditional log-likelihood estimate."""
import math

import pytest
import torch
import torch.nn.functional as F

import vaelab
from battery import enter_phase, one_step_each_phase, tiny_batch, tiny_config
from vaelab.cli import main
from vaelab.errors import ConfigError
from vaelab.io import atomic_write_json
from vaelab.models.base import NotAvailable
from vaelab.tasks.quadrants import MASK_VALUE, masked_bernoulli_log_prob, quadrant_mask, split
from vaelab.training.checkpoint import save_checkpoint


def build(name, seed=0, **over):
    torch.manual_seed(seed)
    return vaelab.build(name, **{**tiny_config(name), **over})


# ----- label-conditional CVAE -----------------------------------------------------------------
def test_label_alone_changes_the_decoder_output():
    v = build("cvae").eval()
    z = torch.randn(6, 4)
    a = v.decode(z, torch.full((6,), 3))
    b = v.decode(z, torch.full((6,), 5))
    assert not torch.allclose(a, b)
    assert torch.equal(a, v.decode(z, torch.full((6,), 3)))


def test_encoder_and_decoder_both_receive_the_condition():
    v = build("cvae")
    x = tiny_batch()["x"]
    c = F.one_hot(torch.arange(8) % 10, 10).float().requires_grad_()
    (gq,) = torch.autograd.grad(v.encode(x, c).mean.sum(), c)
    (gp,) = torch.autograd.grad(v.decode(torch.randn(8, 4), c).sum(), c)
    assert gq.abs().sum() > 0 and gp.abs().sum() > 0
    # and in training: the loss reaches the label columns of both first layers
    v.zero_grad()
    v.loss(tiny_batch(), 0)[0].backward()
    assert v.encoder.fc[0].weight.grad[:, -10:].abs().sum() > 0
    assert v.decoder.fc[0].weight.grad[:, -10:].abs().sum() > 0


def test_sample_honours_labels():
    v = build("cvae").eval()
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    y7 = torch.full((4,), 7)
    s7 = v.sample(4, y=y7, generator=g())
    assert s7.shape == (4, 1, 28, 28) and torch.equal(s7, v.sample(4, y=y7, generator=g()))
    assert not torch.allclose(s7, v.sample(4, y=torch.full((4,), 1), generator=g()))
    # the same z and label as decoding by hand
    z = torch.randn(4, 4, generator=g())
    torch.testing.assert_close(s7, torch.sigmoid(v.decode(z, y7)))
    assert v.sample(5, generator=g()).shape == (5, 1, 28, 28)  # labels drawn uniformly
    with pytest.raises(ValueError):
        v.sample(4, y=torch.zeros(3, dtype=torch.int64))


def test_missing_labels_are_a_clear_error():
    v = build("cvae")
    with pytest.raises(ValueError, match="needs the labels"):
        v.encode(tiny_batch()["x"])


def randomise_label_prior(v, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in v.label_prior.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))


def prior_by_hand(v, y):
    """(μ_y, log σ_y²) of the prior network, computed from its parameters: one-hot → [Linear, ReLU] → Linear."""
    h = F.one_hot(y, 10).double()
    layers = [m for m in v.label_prior.modules() if isinstance(m, torch.nn.Linear)]
    for i, m in enumerate(layers):
        h = h @ m.weight.double().T + m.bias.double()
        if i < len(layers) - 1:
            h = h.clamp_min(0)
    return h.chunk(2, -1)


@pytest.mark.parametrize("hidden", [0, 256])
def test_prior_network_starts_at_standard_normal_and_has_the_configured_shape(hidden):
    v = build("cvae", prior_hidden=hidden)
    p = v.conditional_prior(torch.arange(10))
    assert torch.equal(p.loc, torch.zeros(10, 4)) and torch.equal(p.logvar, torch.zeros(10, 4))
    n_linear = sum(isinstance(m, torch.nn.Linear) for m in v.label_prior.modules())
    assert n_linear == (2 if hidden else 1)
    with pytest.raises(ConfigError, match="prior_hidden"):
        vaelab.build("cvae", prior_hidden=-1)


def test_a_stored_run_without_prior_hidden_loads_with_the_linear_prior_it_was_trained_with(tmp_path):
    v = build("cvae", prior_hidden=0)
    randomise_label_prior(v)
    save_checkpoint(tmp_path, v, {}, {"torch": torch.get_rng_state()}, {"epoch": 1, "done": True})
    model = v.config.to_dict()
    del model["prior_hidden"]  # as written before the key existed
    atomic_write_json(tmp_path / "config.json", {"variant": "cvae", "model": model})
    w = vaelab.load(tmp_path)
    assert w.config.prior_hidden == 0
    y = torch.arange(10)
    torch.testing.assert_close(w.conditional_prior(y).loc, v.conditional_prior(y).loc)


def test_learned_prior_samples_from_p_z_given_y():
    v = build("cvae").eval()
    randomise_label_prior(v)
    y = torch.tensor([0, 3, 3, 9])
    s = v.sample(4, y=y, generator=torch.Generator().manual_seed(1))
    mu, logvar = (t.float() for t in prior_by_hand(v, y))
    z = mu + (0.5 * logvar).exp() * torch.randn(4, 4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(s, torch.sigmoid(v.decode(z, y)))


def test_kl_to_learned_prior_matches_monte_carlo():
    v = build("cvae").eval()
    randomise_label_prior(v)
    b = tiny_batch()
    with torch.no_grad():
        q = v.encode(b["x"], b["y"])
        kl, _ = v.regularizer(q, None, b, 0)
        mu, logvar = prior_by_hand(v, b["y"])
        qd = torch.distributions.Normal(q.loc.double(), q.scale.double())
        pd = torch.distributions.Normal(mu, (0.5 * logvar).exp())
        z = qd.sample((20000,))
        mc = (qd.log_prob(z) - pd.log_prob(z)).sum(-1).mean()
    assert abs(float(kl) - float(mc)) < 0.05 * float(mc) + 0.05, (float(kl), float(mc))


def test_standard_prior_option():
    v = build("cvae", prior="standard").eval()
    assert not hasattr(v, "label_prior")
    y = torch.full((4,), 2)
    s = v.sample(4, y=y, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(s, torch.sigmoid(v.decode(torch.randn(4, 4, generator=torch.Generator().manual_seed(0)), y)))
    with pytest.raises(ConfigError):
        vaelab.build("cvae", prior="mog")


@pytest.mark.parametrize("prior", ["learned", "standard"])
def test_log_weights_average_to_the_elbo(prior):
    """mean log w = E_q[log p(x|z,y) + log p(z|y) − log q(z|x,y)], the ELBO that ``loss`` computes with an analytic KL."""
    v = build("cvae", prior=prior).eval()
    if prior == "learned":
        randomise_label_prior(v)
    b = tiny_batch(4)
    reps = 500
    torch.manual_seed(0)
    with torch.no_grad():
        lw = v.log_weights(b["x"], reps, b["y"]).double()  # (k, B)
        _, terms = v.loss({"x": b["x"].repeat(reps, 1, 1, 1), "y": b["y"].repeat(reps)}, 0)
    se = float(lw.std(0).mean()) / math.sqrt(reps * 4)
    assert lw.shape == (reps, 4) and torch.isfinite(lw).all()
    assert abs(-float(lw.mean()) - float(terms["loss"])) < 5 * se + 1e-3, (-float(lw.mean()), float(terms["loss"]), se)
    # float condition vectors work too
    assert v.log_weights(b["x"], 2, F.one_hot(b["y"], 10).float()).shape == (2, 4)


def test_cli_sample_with_label(tmp_path, capsys):
    """`vaelab sample RUN --label 7` draws class 7 from a saved cvae run."""
    v = build("cvae")
    save_checkpoint(tmp_path, v, {}, {"torch": torch.get_rng_state()}, {"epoch": 1, "done": True})
    atomic_write_json(tmp_path / "config.json", {"variant": "cvae", "model": v.config.to_dict()})
    out = tmp_path / "seven.png"
    assert main(["sample", str(tmp_path), "--label", "7", "--n", "4", "--out", str(out)]) == 0
    assert out.is_file()
    assert main(["sample", str(tmp_path), "--label", "12"]) == 2


# ----- quadrant masks -------------------------------------------------------------------------
def test_quadrant_masks():
    m1, m2, m3 = (quadrant_mask(k) for k in (1, 2, 3))
    assert m1.shape == (28, 28) and m1.dtype == torch.bool
    assert m1[14:, :14].all() and m1.sum() == 14 * 14  # bottom-left only
    assert m2[:, :14].all() and m2.sum() == 28 * 14  # left half
    assert (~m3)[14:, 14:].all() and (~m3).sum() == 14 * 14  # all but bottom-right
    assert (m1 <= m2).all() and (m2 <= m3).all()  # nested
    odd = quadrant_mask(1, 5, 7)  # splits at H // 2, W // 2
    assert odd[2:, :3].all() and odd.sum() == 3 * 3
    for bad in (0, 4):
        with pytest.raises(ValueError):
            quadrant_mask(bad)


def test_split_marks_missing_pixels():
    x = torch.rand(3, 1, 28, 28)
    x_in, missing = split(x, 2)
    assert missing.shape == (1, 1, 28, 28)
    assert torch.equal(x_in[..., :14], x[..., :14]) and (x_in[..., 14:] == MASK_VALUE).all()
    assert torch.equal(missing[0, 0].bool(), ~quadrant_mask(2))


def test_masked_likelihood_matches_float64_reference():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(2, 1, 28, 28, generator=g) > 0.5).float()
    logits = torch.randn(3, 2, 1, 28, 28, generator=g)
    _, missing = split(x, 1)
    got = masked_bernoulli_log_prob(logits, x, missing)
    p = torch.sigmoid(logits.double())
    ref = (x * p.log() + (1 - x) * (1 - p).log()) * missing.double()
    torch.testing.assert_close(got.double(), ref.flatten(2).sum(-1), rtol=1e-5, atol=1e-4)
    assert got.shape == (3, 2)


# ----- quadrant-completion CVAE ---------------------------------------------------------------
def binary_batch(n=8, seed=0):
    b = tiny_batch(n, seed)
    b["x"] = (b["x"] > 0).float()
    return b


def test_conditional_log_weights_match_float64_reference():
    """log p(y|x,z) + log p(z|x) − log q(z|x,y), recomputed by hand with torch.distributions."""
    v = build("cvae-quadrant", given_quadrants=2).eval()
    x = binary_batch(4)["x"]
    got = v.conditional_log_weights(x, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        x_in, missing = split(x, 2)
        guess = torch.sigmoid(v.baseline_out(v.baseline(x_in))).view_as(x)
        h = torch.where(missing.bool(), guess, x_in)
        pm, plv = v.prior_head.linear(v.prior_net(h)).double().chunk(2, -1)
        qm, qlv = v.recognition_head.linear(v.recognition(x)).double().chunk(2, -1)
        eps = torch.randn(3, 4, 4, generator=torch.Generator().manual_seed(1)).double()
        z = qm + (0.5 * qlv).exp() * eps
        logits = v.generation(z.float().reshape(12, 4), x_in.flatten(1).repeat(3, 1)).double().view(3, 4, 1, 28, 28)
        log_py = torch.distributions.Bernoulli(logits=logits).log_prob(x.double()).mul(missing.double()).flatten(2).sum(-1)
        normal = torch.distributions.Normal
        ref = log_py + normal(pm, (0.5 * plv).exp()).log_prob(z).sum(-1) - normal(qm, (0.5 * qlv).exp()).log_prob(z).sum(-1)
    torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-3)


def test_conditional_nll_is_a_bound_that_tightens_with_S():
    v = build("cvae-quadrant", given_quadrants=1).eval()
    with torch.no_grad():  # an untrained q ≈ p and a decoder that ignores z leave no gap to close: open one
        v.recognition_head.bias[:4] += 1.5  # q(z|x,y) off the prior's mean ...
        v.recognition_head.bias[4:] -= 1.0  # ... and narrower
        v.generation.fc[0].weight[:, :4] *= 30  # p(y|x,z) depends on z
    x = binary_batch(6)["x"]
    nll = {}
    for S in (1, 10, 100):
        runs = [v.conditional_nll(x, S=S, generator=torch.Generator().manual_seed(r)) for r in range(10)]
        assert all(math.isfinite(r) for r in runs)
        nll[S] = sum(runs) / len(runs)
    # log p(y|x) <= 0 for binary y, so the NLL estimate is >= 0; the bound rises with S (NLL falls)
    assert 0 < nll[100] < nll[10] < nll[1], nll


def test_single_sample_estimate_is_the_elbo():
    """E[log w] over z ~ q is the ELBO, whose analytic-KL form is what ``loss`` minimises."""
    v = build("cvae-quadrant", given_quadrants=3).eval()
    with torch.no_grad():
        v.recognition_head.bias[:4] += 1.0  # a KL well away from 0
    x = binary_batch(4)["x"]
    reps = 500
    torch.manual_seed(0)
    with torch.no_grad():
        lw = v.conditional_log_weights(x, reps).double()  # (S, B): KL by sampling
        _, terms = v.loss({"x": x.repeat(reps, 1, 1, 1)}, 0)  # each image `reps` times: KL analytic
    mc = -float(lw.mean())
    se = float(lw.std(0).mean()) / math.sqrt(reps * 4)
    assert abs(mc - float(terms["loss"])) < 5 * se + 1e-3, (mc, float(terms["loss"]), se)
    assert float(terms["kl"]) > 1.0


def test_phases_train_their_own_networks():
    v = build("cvae-quadrant")
    assert [p.name for p in v.phases()] == ["baseline", "train"]
    before = {k: p.detach().clone() for k, p in v.named_parameters()}
    make = lambda params, lr=None, **kw: torch.optim.SGD(params, lr=0.1)  # noqa: E731
    enter_phase(v, "baseline")  # as the trainer starts a phase: loss() follows the phase it records
    opts = v.configure_optimizers("baseline", make)
    terms = v.train_step(tiny_batch(), 0, opts, "baseline")
    assert "nn_nll" in terms
    moved = {k for k, p in v.named_parameters() if not torch.equal(p, before[k])}
    assert moved and all(k.startswith("baseline") for k in moved)
    mid = {k: p.detach().clone() for k, p in v.named_parameters()}
    enter_phase(v, "train", step=1)
    opts = v.configure_optimizers("train", make)
    v.train_step(tiny_batch(), 1, opts, "train")
    moved = {k for k, p in v.named_parameters() if not torch.equal(p, mid[k])}
    assert moved and not any(k.startswith("baseline") for k in moved)


def test_prior_sees_the_baseline_guess():
    v = build("cvae-quadrant").eval()
    x = tiny_batch()["x"]
    x_in, missing = v.split(x)
    a = v.prior(x_in, missing).mean
    with torch.no_grad():
        v.baseline_out.bias.add_(3.0)
    assert not torch.allclose(a, v.prior(x_in, missing).mean)


def test_completions_keep_the_given_quadrants():
    v = build("cvae-quadrant", given_quadrants=2).eval()
    x = tiny_batch()["x"]
    given = quadrant_mask(2)
    c = v.complete(x, n_samples=3, generator=torch.Generator().manual_seed(0))
    assert c.shape == (3, 8, 1, 28, 28) and c.min() >= 0 and c.max() <= 1
    assert torch.equal(c[..., given], x[..., given].expand(3, *x[..., given].shape))
    assert not torch.allclose(c[0], c[1])  # samples differ in the missing part
    r = v.reconstruct(x)
    assert torch.equal(r[..., given], x[..., given])


def test_no_baseline_and_pyro_generation():
    v = build("cvae-quadrant", baseline_epochs=0, generation_sees_x=False)
    assert [p.name for p in v.phases()] == ["train"]
    assert not any(k.startswith("baseline") for k, _ in v.named_parameters())
    assert v.generation.cond_dim == 0
    one_step_each_phase(v)
    with pytest.raises(NotAvailable):
        v.baseline_conditional_nll(tiny_batch()["x"])


def test_given_quadrants_changes_the_target():
    x = binary_batch(4)["x"]
    nlls = []
    for k in (1, 2, 3):
        v = build("cvae-quadrant", given_quadrants=k).eval()
        nlls.append(v.baseline_conditional_nll(x))
    assert all(n > 0 for n in nlls) and nlls[0] > nlls[2]  # fewer missing pixels, less to predict


def test_task_metrics_report_the_three_conditional_nlls():
    v = build("cvae-quadrant", given_quadrants=2).eval()
    x = binary_batch(6)["x"]
    m = v.task_metrics(x, torch.zeros(6, dtype=torch.long), generator=torch.Generator().manual_seed(0))
    assert set(m) == {"cond_neg_elbo", "cond_nll", "cond_nll_baseline"}
    assert m["cond_nll_baseline"] == v.baseline_conditional_nll(x)
    assert m["cond_neg_elbo"] == v.conditional_nll(x, S=1, generator=torch.Generator().manual_seed(0))
    assert all(math.isfinite(val) and val > 0 for val in m.values())
    assert "cond_nll_baseline" not in build("cvae-quadrant", baseline_epochs=0).task_metrics(x, None)


def test_quadrant_variant_is_not_a_density_model():
    v = build("cvae-quadrant")
    with pytest.raises(NotAvailable):
        v.sample(4)
    with pytest.raises(NotAvailable, match="conditional_nll"):
        v.log_weights(tiny_batch()["x"], 2)


@pytest.mark.parametrize("bad", [{"given_quadrants": 0}, {"given_quadrants": 4}, {"baseline_epochs": -1},
                                 {"data_shape": (784,)}])
def test_quadrant_config_rejects_bad_values(bad):
    with pytest.raises(ConfigError):
        vaelab.build("cvae-quadrant", **bad)


@pytest.mark.slow
def test_cvae_obeys_its_label_at_the_quick_study_settings(tmp_path):
    """The quick study's CVAE (mnist-5k, small backbone, latent 16, RMSprop, 10 epochs): at least 3 in
    4 samples are of the requested class (49% with the linear prior network, 86% with the hidden layer)."""
    from vaelab import rundir
    from vaelab.reference_classifier import load_or_train
    from vaelab.training.config import TrainConfig

    cfg = TrainConfig(dataset="mnist-5k", epochs=10, optimizer="rmsprop", seed=0, progress=False)
    run = rundir.train("cvae", {"backbone": "small", "latent_dim": 16}, cfg, tmp_path / "run")
    v = rundir.load(run).eval()
    wanted = torch.arange(10).repeat_interleave(100)
    samples = v.sample(1000, wanted, generator=torch.Generator().manual_seed(0))
    acc = float((load_or_train("mnist-5k").predict(samples) == wanted.numpy()).mean())
    assert acc > 0.75, acc


def test_the_prior_networks_hidden_layer_trains_once_its_output_layer_moved():
    """The battery lets label_prior.0 stand still for one step (zero-initialised output layer); by the second it moves."""
    from vaelab.optim import make_optimizer_factory
    from vaelab.training.config import TrainConfig

    v = build("cvae", prior_hidden=8)
    opts = v.configure_optimizers("train", make_optimizer_factory(TrainConfig(lr=1e-2)))
    w0 = v.label_prior[0].weight.detach().clone()
    v.train_step(tiny_batch(), 0, opts, "train")
    assert torch.equal(v.label_prior[0].weight, w0)
    v.train_step(tiny_batch(), 1, opts, "train")
    assert not torch.equal(v.label_prior[0].weight, w0)
