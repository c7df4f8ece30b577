"""VaDE: the closed-form regulariser against Monte Carlo and the paper's eq. 17, the reduction to
the plain VAE, phase state across checkpoints, and cluster recovery on well-separated data.

The synthetic-data helpers here are shared with test_gmvae.py."""
import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from scipy.stats import multivariate_normal

import vaelab
from vaelab.data import Dataset
from vaelab.data.augment import random_affine
from vaelab.distributions.gaussian import DiagonalGaussian
from vaelab.distributions.mixture import MixtureOfGaussians
from vaelab.errors import ConfigError
from vaelab.models.base import PhaseContext
from vaelab.models.vade import vade_kl
from vaelab.training.checkpoint import read_checkpoint
from vaelab.optim import apply_lr_scale, make_optimizer_factory
from vaelab.training.config import TrainConfig
from vaelab.training.trainer import Trainer


# ----- helpers shared with test_gmvae.py ---------------------------------------------------------
def synthetic_clusters(n=1000, K=4, D=32, flip=0.05, seed=0):
    """K random binary prototypes in {0,1}^D, each example one prototype with ``flip`` of its bits flipped."""
    g = torch.Generator().manual_seed(seed)
    protos = (torch.rand(K, D, generator=g) < 0.5).float()
    y = torch.randint(0, K, (n,), generator=g)
    x = (protos[y] - (torch.rand(n, D, generator=g) < flip).float()).abs()
    return x, y


def cluster_accuracy(y, pred) -> float:
    """Best one-to-one map of clusters to labels (Hungarian, SciPy), share matched."""
    y, pred = np.asarray(y), np.asarray(pred)
    n = max(y.max(), pred.max()) + 1
    w = np.zeros((n, n))
    np.add.at(w, (pred, y), 1)
    r, c = linear_sum_assignment(-w)
    return w[r, c].sum() / y.size


def fit(v, x, y, epochs, batch_size=64, lr=3e-3, seed=0):
    """The trainer's loop in miniature: every phase, its progress, begin_phase, its optimizers, lr_schedule, its
    augmentation, train_step."""
    make = make_optimizer_factory(TrainConfig(lr=lr))
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    step = 0
    for i, ph in enumerate(v.phases()):
        n_epochs = epochs if ph.epochs is None else ph.epochs
        if n_epochs == 0:
            continue
        v.train()
        v.set_progress(phase=i, steps=step, phase_steps=0)
        v.begin_phase(ph.name, PhaseContext(x, y, seed, batch_size))
        opts = v.configure_optimizers(ph.name, make)
        schedule, seen = v.lr_schedule(ph.name), 0
        for _ in range(n_epochs):
            perm = torch.randperm(len(x), generator=g)
            for i in range(0, len(x), batch_size):
                idx = perm[i:i + batch_size]
                seen += len(idx)
                if schedule is not None:
                    apply_lr_scale(opts.values(), schedule(seen, len(x)))
                v.set_progress(steps=step)
                xb = x[idx] if not ph.affine else random_affine(x[idx], *ph.affine)  # the phase's augmentation
                v.train_step({"x": xb, "y": y[idx], "index": idx, "dataset_size": len(x)}, step, opts, ph.name)
                v.count_update()
                step += 1
    return v.eval()


def self_consistency(v, n=50, seed=0) -> float:
    """Share of per-cluster samples (binarised) that the model assigns back to their own cluster."""
    s = v.sample_per_cluster(n, generator=torch.Generator().manual_seed(seed))
    K = s.shape[0] // n
    assert s.shape[1:] == tuple(v.config.data_shape) and s.min() >= 0 and s.max() <= 1
    pred = v.predict((s > 0.5).float())
    return float((pred == torch.arange(K).repeat_interleave(n)).float().mean())


# ----- the closed-form regulariser -----------------------------------------------------------------
def random_case(B=3, K=4, D=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = DiagonalGaussian(torch.randn(B, D, generator=g), 0.5 * torch.randn(B, D, generator=g) - 0.5)
    prior = MixtureOfGaussians(torch.log_softmax(torch.randn(K, generator=g), -1), 1.5 * torch.randn(K, D, generator=g),
                               0.4 * torch.randn(K, D, generator=g))
    gamma = torch.softmax(2 * torch.randn(B, K, generator=g), -1)
    return q, prior, gamma


def test_closed_form_kl_matches_monte_carlo():
    """Σ_c γ_c KL(q ‖ p(z|c)) + KL(γ ‖ π) = E_{z~q, c~γ}[log q(z|x) + log γ_c − log π_c − log N(z; μ_c, σ_c²)]."""
    q, prior, gamma = random_case()
    kl_z, kl_c = vade_kl(q, gamma, prior)
    closed = (kl_z + kl_c).double().numpy()
    n = 200_000
    rng = np.random.default_rng(0)
    pi, mu, var = prior.weights.double().numpy(), prior.loc.double().numpy(), prior.logvar.exp().double().numpy()
    for b in range(gamma.shape[0]):
        m, v = q.loc[b].double().numpy(), q.logvar[b].exp().double().numpy()
        z = m + np.sqrt(v) * rng.standard_normal((n, m.size))
        c = rng.choice(len(pi), size=n, p=gamma[b].double().numpy() / gamma[b].double().sum().item())
        log_q = multivariate_normal(m, np.diag(v)).logpdf(z)
        log_pzc = np.empty(n)
        for k in range(len(pi)):
            sel = c == k
            log_pzc[sel] = multivariate_normal(mu[k], np.diag(var[k])).logpdf(z[sel])
        f = log_q + np.log(gamma[b].double().numpy()[c]) - np.log(pi[c]) - log_pzc
        se = f.std() / np.sqrt(n)
        assert abs(f.mean() - closed[b]) < 3 * se, (b, f.mean(), closed[b], se)


def test_regulariser_equals_the_papers_eq_17():
    """The regrouped form equals eq. 17's terms written out (float64, independent of kl_normal_normal)."""
    q, prior, gamma = random_case(seed=1)
    kl_z, kl_c = vade_kl(q, gamma, prior)
    g = gamma.double()
    mt, lvt = q.loc.double()[:, None, :], q.logvar.double()[:, None, :]
    mc, lvc, pi = prior.loc.double()[None], prior.logvar.double()[None], prior.weights.double()
    eq17 = (-0.5 * (g * (lvc + lvt.exp() / lvc.exp() + (mt - mc) ** 2 / lvc.exp()).sum(-1)).sum(-1)
            + (g * (pi.log() - g.log())).sum(-1)
            + 0.5 * (1 + q.logvar.double()).sum(-1))
    torch.testing.assert_close(-(kl_z + kl_c).double(), eq17, rtol=1e-5, atol=1e-5)


def test_one_standard_normal_component_reduces_to_the_plain_vae():
    torch.manual_seed(0)
    v = vaelab.build("vade", backbone="mlp", data_shape=(12,), latent_dim=3, n_clusters=1)
    v.set_progress(phase=1)  # the ELBO phase
    v.prior.set_parameters(torch.ones(1), torch.zeros(1, 3), torch.ones(1, 3))
    w = vaelab.build("vae", backbone="mlp", data_shape=(12,), latent_dim=3)
    w.load_state_dict({k: t for k, t in v.state_dict().items() if k in w.state_dict()})
    x = torch.rand(5, 12)
    batch = {"x": x, "y": torch.zeros(5, dtype=torch.long), "index": torch.arange(5), "dataset_size": 5}
    torch.manual_seed(1)
    tv, terms = v.loss(batch, 0)
    torch.manual_seed(1)
    tw, _ = w.loss(batch, 0)
    torch.testing.assert_close(tv, tw)
    assert abs(float(terms["kl_c"])) < 1e-6


def test_iwae_from_log_weights_agrees_with_sampling_the_mixture_prior():
    """log_weights use the mixture marginal log p(z); their logmeanexp estimates log p(x) like the plain
    Monte-Carlo estimate log E_{c~π, z~p(z|c)} p(x|z) does."""
    torch.manual_seed(0)
    v = vaelab.build("vade", backbone="mlp", data_shape=(12,), latent_dim=2, n_clusters=3).eval()
    v.prior.set_parameters(torch.tensor([0.2, 0.3, 0.5]), torch.randn(3, 2), torch.rand(3, 2) + 0.2)
    x = (torch.rand(4, 12, generator=torch.Generator().manual_seed(5)) > 0.5).float()
    with torch.no_grad():
        torch.manual_seed(1)
        lw = v.log_weights(x, 5000)
        iwae = torch.logsumexp(lw, 0) - np.log(5000)
        n = 50_000
        z = v.prior.sample(n, generator=torch.Generator().manual_seed(2))
        ll = v.log_lik(v.decode(z).unsqueeze(1).expand(n, 4, 12), x)
        direct = torch.logsumexp(ll, 0) - np.log(n)
    torch.testing.assert_close(iwae, direct, atol=0.05, rtol=0)


# ----- phases ---------------------------------------------------------------------------------------
def test_pretrain_is_an_autoencoder_that_leaves_the_mixture_alone():
    torch.manual_seed(0)
    v = vaelab.build("vade", backbone="mlp", data_shape=(12,), latent_dim=3, n_clusters=2)
    assert [p.name for p in v.phases()] == ["pretrain", "train"] and v.phases()[0].epochs == v.config.pretrain_epochs
    x = torch.rand(64, 12)
    ctx = PhaseContext(x, torch.zeros(64, dtype=torch.long), 0, 16)
    v.set_progress(phase=0)  # as the trainer starts a phase
    v.begin_phase("pretrain", ctx)
    before = {k: t.clone() for k, t in v.prior.state_dict().items()}
    opts = v.configure_optimizers("pretrain", make_optimizer_factory(TrainConfig()))
    terms = v.train_step({"x": x[:16], "y": None, "index": torch.arange(16), "dataset_size": 64}, 0, opts, "pretrain")
    assert set(terms) == {"loss", "recon"}
    assert all(torch.equal(before[k], t) for k, t in v.prior.state_dict().items())
    # the GMM fit at the start of "train" loads the mixture; the phase the trainer records switches the loss
    v.set_progress(phase=1)
    v.begin_phase("train", ctx)
    assert v.phase == "train" and not torch.equal(before["loc"], v.prior.loc.detach())
    _, terms = v.loss({"x": x[:16], "y": None, "index": torch.arange(16), "dataset_size": 64}, 1)
    assert {"recon", "kl_z", "kl_c"} <= set(terms)


def test_resume_inside_the_elbo_phase_is_bitwise_identical(tmp_path):
    """The phase (Variant.progress) and warm-up position live in buffers and optimizer state, so a run restarted from its
    mid-phase checkpoint ends where an uninterrupted one does."""
    x, y = synthetic_clusters(n=48, K=3, D=16, seed=3)
    images = (x * 255).to(torch.uint8).numpy().reshape(48, 1, 4, 4)
    ds = Dataset("synthetic", "train", images, y.numpy(), n_classes=3)
    cfg = dict(backbone="mlp", data_shape=(1, 4, 4), latent_dim=2, n_classes=3, pretrain_epochs=1, gmm_restarts=2,
               warmup_epochs=2.0)
    # a checkpoint after every batch, so the crash leaves one inside the ELBO phase's second epoch
    tc = dict(epochs=3, batch_size=16, progress=False, eval_every=0, seed=0, checkpoint_every_s=1e-9)

    def run(run_dir, crash_at=None):
        run_dir.mkdir(exist_ok=True)
        torch.manual_seed(0)
        v = vaelab.build("vade", **cfg)
        if crash_at is not None:
            real = v.train_step

            def step(batch, s, opts, phase):
                if s == crash_at:
                    raise RuntimeError("simulated crash")
                return real(batch, s, opts, phase)
            v.train_step = step
        return v, Trainer(v, TrainConfig(**tc), run_dir, ds)

    v_full, t_full = run(tmp_path / "full")
    t_full.fit()
    # 3 batches an epoch: pretrain = steps 0-2, train = steps 3-11; crash in the second ELBO epoch
    v_a, t_a = run(tmp_path / "cut", crash_at=7)
    with pytest.raises(RuntimeError, match="simulated crash"):
        t_a.fit()
    _, state = read_checkpoint(tmp_path / "cut")
    assert state["phase"] == 1 and state["epoch"] == 1 and state["batch"] == 1 and state["phase_started"]
    v_b, t_b = run(tmp_path / "cut")
    t_b.fit(resume=True)
    for k, a in v_full.state_dict().items():
        assert torch.equal(a, v_b.state_dict()[k]), k
    assert v_b.phase == "train"


def test_lr_schedule_hook_reproduces_the_old_per_step_rates(tmp_path):
    """The ELBO phase's lr, now set by the trainer from ``lr_schedule``, equals step by step what VaDE's
    own train_step used to set: base lr × lr_factor(examples seen so far including the batch), with
    the seen count summed batch by batch (a last partial batch included) and the mixture's group at
    gmm_lr_scale × lr. The pretraining phase keeps a constant lr."""
    x, y = synthetic_clusters(n=50, K=3, D=16, seed=1)
    ds = Dataset("synthetic", "train", x.reshape(-1, 1, 4, 4).numpy(), y.numpy(), n_classes=3)
    cfg = dict(backbone="mlp", data_shape=(1, 4, 4), latent_dim=2, n_classes=3, pretrain_epochs=1, gmm_restarts=1,
               warmup_epochs=1.5, lr_decay=0.5, lr_decay_epochs=1, lr_decay_min=0.2, gmm_lr_scale=2.0)
    torch.manual_seed(0)
    v = vaelab.build("vade", **cfg)
    seen_lrs = []
    real = v.train_step

    def step(batch, s, opts, phase):
        seen_lrs.append((phase, [g["lr"] for g in opts["model"].param_groups]))
        return real(batch, s, opts, phase)
    v.train_step = step
    lr = 1e-3
    Trainer(v, TrainConfig(epochs=4, batch_size=16, lr=lr, progress=False, eval_every=0), tmp_path, ds).fit()
    # the old code: elbo_images += n after each step; lr = base × factor(elbo_images + n, N)
    c, N, old, seen = v.config, 50, [], 0
    for _ in range(4):
        for n in (16, 16, 16, 2):
            warm = min(1.0, (seen + n) / (c.warmup_epochs * N))
            decay = max(c.lr_decay ** (((seen + n) // N) // c.lr_decay_epochs), c.lr_decay_min)
            old.append([lr * warm * decay, 2.0 * lr * warm * decay])
            seen += n
    pre = [lrs for ph, lrs in seen_lrs if ph == "pretrain"]
    elbo = [lrs for ph, lrs in seen_lrs if ph == "train"]
    assert pre == [[lr]] * 4
    assert len(elbo) == 16 and elbo == old
    assert len({round(a[0], 12) for a in elbo}) >= 6  # the schedule does move the lr


# ----- clustering -----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_recovers_well_separated_clusters(seed):
    K = 4
    x, y = synthetic_clusters(n=1000, K=K, seed=seed)
    torch.manual_seed(seed)
    v = vaelab.build("vade", backbone="mlp", data_shape=(32,), latent_dim=4, n_clusters=K, n_classes=K,
                     pretrain_epochs=3, warmup_epochs=1.0)
    fit(v, x, y, epochs=5, seed=seed)
    pred = v.predict(x)
    assert pred.dtype == torch.int64 and pred.shape == (1000,)
    assert cluster_accuracy(y, pred) >= 0.95
    assert self_consistency(v) >= 0.9
    lw = v.log_weights(x[:8], 5)
    assert lw.shape == (5, 8) and torch.isfinite(lw).all()
    s = v.sample(6, generator=torch.Generator().manual_seed(0))
    assert s.shape == (6, 32) and s.min() >= 0 and s.max() <= 1


def test_per_cluster_samples_have_the_image_shape():
    torch.manual_seed(0)
    v = vaelab.build("vade", backbone="small", latent_dim=4, n_clusters=3).eval()
    s = v.sample_per_cluster(2, generator=torch.Generator().manual_seed(0))
    assert s.shape == (6, 1, 28, 28) and s.min() >= 0 and s.max() <= 1
    assert vaelab.build("vade", backbone="small").n_clusters == 10  # None → the dataset's classes


def test_lr_schedule_is_warm_up_times_step_decay_with_a_floor():
    v = vaelab.build("vade", backbone="mlp", data_shape=(12,), warmup_epochs=1.0, lr_decay=0.5, lr_decay_epochs=2,
                     lr_decay_min=0.2)
    n = 100  # images per epoch
    got = [v.lr_factor(seen, n) for seen in (25, 100, 199, 200, 399, 400, 600, 5000)]
    assert got == pytest.approx([0.25, 1.0, 1.0, 0.5, 0.5, 0.25, 0.2, 0.2])
    assert vaelab.build("vade", backbone="mlp", data_shape=(12,), warmup_epochs=0).lr_factor(10 ** 6, n) == 1.0


def test_pretrain_noise_masks_inputs_only_while_training():
    torch.manual_seed(0)
    v = vaelab.build("vade", backbone="mlp", data_shape=(12,), latent_dim=3, pretrain_noise=0.5)
    x = torch.rand(8, 12)
    batch = {"x": x, "y": None, "index": torch.arange(8), "dataset_size": 8}
    v.eval()
    clean, _ = v.loss(batch, 0)
    assert torch.equal(clean, -v.log_lik(v.decode(v.encode(x).mean), x).mean())  # no noise in evaluation
    v.train()
    torch.manual_seed(1)
    noisy, _ = v.loss(batch, 0)
    torch.manual_seed(1)
    keep = torch.rand_like(x) >= 0.5
    assert torch.equal(noisy, -v.log_lik(v.decode(v.encode(x * keep).mean), x).mean())
    assert not torch.equal(noisy, clean)


def test_pretrain_augmentation_is_declared_by_the_phase_and_applied_by_the_trainer(tmp_path, monkeypatch):
    """The model computes on the images it is given (vaelab.models imports nothing of vaelab.data); the
    pretraining phase declares its random moves (Phase.affine) and the trainer moves each pretraining
    batch, input and target alike, right before the update, with the draws VaDE's loss used to make."""
    import vaelab.training.trainer as trainer_module

    torch.manual_seed(0)
    v = vaelab.build("vade", backbone="small", latent_dim=3, pretrain_shift=0.1, pretrain_rotation=10.0)
    assert [p.affine for p in v.phases()] == [(0.1, 10.0), None]
    x = torch.rand(4, 1, 28, 28)
    v.train()
    plain, _ = v.loss({"x": x, "y": None, "index": torch.arange(4), "dataset_size": 4}, 0)
    assert torch.equal(plain, -v.log_lik(v.decode(v.encode(x).mean), x).mean())

    xs, ys = synthetic_clusters(n=32, K=2, D=16, seed=2)
    ds = Dataset("synthetic", "train", xs.reshape(-1, 1, 4, 4).numpy(), ys.numpy(), n_classes=2)
    v = vaelab.build("vade", backbone="mlp", data_shape=(1, 4, 4), latent_dim=2, n_classes=2, pretrain_epochs=1,
                     gmm_restarts=1, pretrain_shift=0.2, pretrain_rotation=30.0)
    moves, seen = [], []

    def spy(images, shift, rotation):
        state = torch.get_rng_state()
        out = random_affine(images, shift, rotation)
        moves.append((images, shift, rotation, state, out))
        return out
    monkeypatch.setattr(trainer_module, "random_affine", spy)
    real = v.train_step

    def step(batch, s, opts, phase):
        seen.append((phase, batch["x"]))
        return real(batch, s, opts, phase)
    v.train_step = step
    Trainer(v, TrainConfig(epochs=1, batch_size=16, progress=False, eval_every=0), tmp_path, ds).fit()
    assert [ph for ph, _ in seen] == ["pretrain", "pretrain", "train", "train"] and len(moves) == 2
    for (_, x_seen), (images, shift, rotation, state, out) in zip(seen, moves):
        assert (shift, rotation) == (0.2, 30.0) and x_seen is out and not torch.equal(out, images)
        torch.set_rng_state(state)
        assert torch.equal(random_affine(images, 0.2, 30.0), out)
    with pytest.raises(ConfigError, match="pretrain_shift.*image data"):
        vaelab.build("vade", backbone="mlp", data_shape=(12,), pretrain_shift=0.1)


@pytest.mark.parametrize("key,value", [("pretrain_epochs", -1), ("gmm_restarts", 0), ("n_clusters", 0),
                                       ("gmm_lr_scale", 0), ("init_logvar_scale", -1), ("warmup_epochs", -2),
                                       ("lr_decay", 0), ("lr_decay", 1.5), ("lr_decay_epochs", 0),
                                       ("lr_decay_min", 2), ("pretrain_noise", 1.0), ("pretrain_shift", 0.6),
                                       ("pretrain_rotation", -1)])
def test_bad_config_values_are_config_errors(key, value):
    with pytest.raises(ConfigError, match=key):
        vaelab.build("vade", **{key: value})
