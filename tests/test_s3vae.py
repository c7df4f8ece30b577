"""S3VAE and DSVAE: the causal prior, the regularisers, the frame-measured motion labels, the judge's
metrics and their plumbing (the shared battery runs in test_variants.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import vaelab
from vaelab.data import moving_mnist as mm
from vaelab.losses.divergences import grouped_total_correlation, total_correlation
from vaelab.metrics.generative import conditional_entropy, inception_score, marginal_entropy
from vaelab.losses import density_ratio as dr
from vaelab.nn.sequence import frame_cells

F64 = torch.float64
SHAPE = (4, 1, 28, 28)


def tiny(**kw):
    torch.manual_seed(0)
    return vaelab.build("s3vae", backbone="small", latent_dim=4, dynamic_dim=3, hidden=16, data_shape=SHAPE, **kw)


def _digits(n=60, seed=0):
    rng = np.random.default_rng(seed)
    d = np.zeros((n, 28, 28), np.uint8)
    d[:, 5:23, 7:21] = rng.integers(1, 256, (n, 18, 14), dtype=np.uint8)
    return d, np.arange(n) % 10


# ----- the learned prior ------------------------------------------------------------------------
def test_dynamic_prior_is_causal():
    v = tiny().eval()
    z = torch.randn(5, 6, 3)
    base = v.dynamic_prior.conditional(z)
    for t in range(6):
        z2 = z.clone()
        z2[:, t] += 3.0  # change z_t only
        p = v.dynamic_prior.conditional(z2)
        # p(z_s | z_<s) for s <= t does not see z_t; for s = t + 1 it does
        assert torch.equal(p.mean[:, :t + 1], base.mean[:, :t + 1]) and torch.equal(p.logvar[:, :t + 1], base.logvar[:, :t + 1])
        if t + 1 < 6:
            assert not torch.allclose(p.mean[:, t + 1], base.mean[:, t + 1])


def test_dynamic_prior_samples_follow_its_conditionals():
    """Ancestral draws: z_1 ~ p(z_1) exactly (mean and variance of many draws), z_t from the conditional."""
    v = tiny().eval().requires_grad_(False)
    z = v.dynamic_prior.sample(20000, 3, generator=torch.Generator().manual_seed(0))
    p1 = v.dynamic_prior.conditional(z[:1])  # p(z_1) does not depend on anything
    m, sd = p1.mean[0, 0], (0.5 * p1.logvar[0, 0]).exp()
    assert torch.allclose(z[:, 0].mean(0), m, atol=4 * float(sd.max()) / math.sqrt(20000))
    assert torch.allclose(z[:, 0].std(0), sd, rtol=0.03)
    # standardised by their own conditionals, the later steps are N(0, 1) too
    p = v.dynamic_prior.conditional(z)
    eps = (z - p.mean) / (0.5 * p.logvar).exp()
    assert abs(float(eps.mean())) < 0.02 and abs(float(eps.std()) - 1) < 0.02


@pytest.mark.parametrize("skip", [True, False])
def test_posterior_of_z_t_reads_only_frames_up_to_t(skip):
    v = tiny(dynamic_skip=skip).eval()
    assert v.posterior.dynamic_head.in_features == v.config.hidden + (v.encoder.out_features if skip else 0)
    x = torch.rand(2, *SHAPE)
    _, q, _ = v.encode_sequence(x)
    x2 = x.clone()
    x2[:, 2] = torch.rand(2, *SHAPE[1:])  # change frame 3 of 4
    _, q2, _ = v.encode_sequence(x2)
    assert torch.equal(q.mean[:, :2], q2.mean[:, :2]) and not torch.allclose(q.mean[:, 2], q2.mean[:, 2])


def test_dsvae_posteriors_read_their_own_frames():
    """DSVAE's factorised q(z_t | x_t) reads frame t alone; its full q(z_t | x_1:T, z_f) reads every frame
    and the z_f it is given."""
    x = torch.rand(2, *SHAPE)
    x2 = x.clone()
    x2[:, 2] = torch.rand(2, *SHAPE[1:])
    torch.manual_seed(0)
    frame = vaelab.build("dsvae", backbone="small", latent_dim=4, dynamic_dim=3, hidden=16, data_shape=SHAPE).eval()
    (_, q, _), (_, q2, _) = frame.encode_sequence(x), frame.encode_sequence(x2)
    changed = [not torch.allclose(q.mean[:, t], q2.mean[:, t]) for t in range(SHAPE[0])]
    assert changed == [False, False, True, False]
    torch.manual_seed(0)
    full = vaelab.build("dsvae", backbone="small", latent_dim=4, dynamic_dim=3, hidden=16, data_shape=SHAPE,
                        dynamic_posterior="full").eval()
    h = full.encoder(x.flatten(0, 1)).view(2, SHAPE[0], -1)
    h2 = full.encoder(x2.flatten(0, 1)).view(2, SHAPE[0], -1)
    z_f = torch.randn(2, 4)
    base = full.posterior.dynamic(h, z_f).mean
    assert all(not torch.allclose(base[:, t], full.posterior.dynamic(h2, z_f).mean[:, t]) for t in range(SHAPE[0]))
    assert not torch.allclose(base, full.posterior.dynamic(h, z_f + 1).mean)
    with pytest.raises(vaelab.ConfigError, match="dynamic_posterior"):
        tiny(dynamic_posterior="smoothed")


# ----- the regularisers -------------------------------------------------------------------------
def test_static_consistency_is_zero_for_identical_codes_and_positive_for_swapped_ones():
    """With every frame of a sequence the same, its shuffled copy is itself: anchor = positive, and
    the triplet term is max(m − ‖a − n‖, 0) — zero once the other sequence is farther than the margin.
    Swapping the roles (the other sequence as the positive) makes it positive."""
    v = tiny(dfp_weight=0.0, mi_weight=0.0, triplet_margin=1e-3).eval()
    frame = torch.rand(3, 1, *SHAPE[1:])
    x = frame.expand(3, SHAPE[0], *SHAPE[1:]).contiguous()
    _, terms = v.loss({"x": x, "dataset_size": 100}, 0)
    a = v.encode(x).mean.detach().double()
    dist = (a - a.roll(1, 0) + 1e-6).norm(dim=1)
    assert float(dist.min()) > 1e-3  # the other sequences are farther than the margin
    assert float(terms["scc"]) == 0.0
    swapped = torch.nn.functional.triplet_margin_loss(a, a.roll(1, 0), a, margin=1e-3)
    assert float(swapped) > 0 and float(swapped) == pytest.approx(float((dist + 1e-3 - 1e-6).mean()), rel=1e-4)


def test_grouped_mutual_information_matches_the_gaussian_closed_form():
    """I(z_a; z_b) of a Gaussian aggregate posterior: ½ (log det C_aa + log det C_bb − log det C)."""
    g = torch.Generator().manual_seed(5)
    n, s = 1000, 0.6  # posteriors wide enough that the 1000-point mixture is close to its Gaussian limit
    a = torch.randn(4, 4, generator=g, dtype=F64)
    cov = a @ a.T / 4 + 0.5 * torch.eye(4, dtype=F64)
    mu = torch.randn(n, 4, generator=g, dtype=F64) @ torch.linalg.cholesky(cov).T
    lv = torch.full_like(mu, 2 * math.log(s))
    z = mu + s * torch.randn(n, 4, generator=g, dtype=F64)
    c = cov + s * s * torch.eye(4, dtype=F64)
    exact = 0.5 * float(torch.logdet(c[:2, :2]) + torch.logdet(c[2:, 2:]) - torch.logdet(c))
    assert exact > 0.1
    assert float(grouped_total_correlation(z, mu, lv, (2, 2), n)) == pytest.approx(exact, abs=0.03)
    # one dimension per group is the total correlation
    assert torch.allclose(grouped_total_correlation(z, mu, lv, (1, 1, 1, 1), n), total_correlation(z, mu, lv, n))
    with pytest.raises(ValueError, match="add up"):
        grouped_total_correlation(z, mu, lv, (2, 1), n)


def test_grouped_mutual_information_of_independent_groups_is_near_zero():
    g = torch.Generator().manual_seed(6)
    mu = torch.randn(1000, 3, generator=g, dtype=F64)
    lv = torch.full_like(mu, 2 * math.log(0.6))
    z = mu + 0.6 * torch.randn(1000, 3, generator=g, dtype=F64)
    assert abs(float(grouped_total_correlation(z, mu, lv, (1, 2), 1000))) < 0.02


def test_the_minibatch_estimate_tends_to_log_n_once_a_batchs_posteriors_stop_overlapping():
    """S3VAE's setting (a batch of 32 out of N = 10,000, 64 + 24 dimensions): with the groups
    independent by construction, narrow posteriors still give log N, not 0, because every aggregate
    density is dominated by the sample's own posterior (docs/equations.md, "S3VAE"); wide ones give
    less."""
    g = torch.Generator().manual_seed(7)
    mu = torch.randn(32, 88, generator=g, dtype=F64)
    est = {}
    for s in (0.1, 3.0):
        lv = torch.full_like(mu, 2 * math.log(s))
        est[s] = float(grouped_total_correlation(mu + s * torch.randn(32, 88, generator=g, dtype=F64), mu, lv, (64, 24), 10_000))
    assert est[0.1] == pytest.approx(math.log(10_000), abs=1e-6)
    assert est[3.0] < math.log(10_000) - 1


def _trained_critic(rho: float, da: int = 8, db: int = 4, n: int = 256, steps: int = 1500, seed: int = 0):
    """A critic trained on fresh batches of n pairs (a, b), a ~ N(0, I), b_i = ρ a_i + √(1−ρ²) ε_i for the first
    min(da, db) coordinates (independent noise elsewhere); returns (estimate on 20,000 fresh pairs, exact MI)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    critic = dr.DependenceCritic(da, db, hidden=64)
    opt = torch.optim.Adam(critic.parameters(), 1e-3)
    k = min(da, db)

    def draw(m):
        a, b = torch.randn(m, da, generator=g), torch.randn(m, db, generator=g)
        b[:, :k] = rho * a[:, :k] + math.sqrt(1 - rho ** 2) * b[:, :k]
        return a, b

    for _ in range(steps):
        a, b = draw(n)
        loss = dr.critic_loss(critic, a, b, dr.product_pairs(b, g))
        opt.zero_grad()
        loss.backward()
        opt.step()
    a, b = draw(20_000)
    with torch.no_grad():
        return float(dr.mutual_information(critic, a, b)), -0.5 * k * math.log(1 - rho ** 2)


def test_the_critics_estimate_of_independent_groups_is_near_zero_at_s3vaes_sizes():
    """z_f of 256 and z_t of 32 dimensions, 256 pairs a batch (32 sequences × 8 frames): ≈ 0, where the
    minibatch estimator gives log N (the test above)."""
    est, exact = _trained_critic(0.0, da=256, db=32, n=256, steps=800)
    assert exact == 0.0 and abs(est) < 0.02


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_the_critics_estimate_of_a_gaussian_dependence_is_its_closed_form(rho):
    est, exact = _trained_critic(rho)
    assert exact > 0.5 and est == pytest.approx(exact, rel=0.15)


def test_pairs_from_the_product_of_marginals_never_meet_their_own_partner():
    g = torch.Generator().manual_seed(0)
    b = torch.arange(7.0)[:, None]
    for _ in range(20):
        apart = dr.product_pairs(b, g)
        assert sorted(apart[:, 0].tolist()) == b[:, 0].tolist() and bool((apart != b).all())
    with pytest.raises(ValueError, match="at least 2"):
        dr.product_pairs(b[:1], g)


def test_the_critic_and_the_model_update_their_own_parameters_only():
    """One train_step: the critic's loss moves the critic and nothing else; the model's loss (with the MI
    penalty through the critic) moves the model and leaves the critic where its own update put it."""
    v = tiny().train()
    opts = v.configure_optimizers("train", lambda ps: torch.optim.SGD(ps, lr=0.1))
    assert set(opts) == {"model", "critic"}
    x = (torch.rand(4, *SHAPE) > 0.7).float()
    before = {k: p.detach().clone() for k, p in v.named_parameters()}
    torch.manual_seed(3)
    _, _, critic_loss = v._objectives({"x": x, "dataset_size": 100}, 0)
    grads = torch.autograd.grad(critic_loss, list(v.critic.parameters()))
    expected = {f"critic.{k}": before[f"critic.{k}"] - 0.1 * g for (k, _), g in zip(v.critic.named_parameters(), grads)}
    torch.manual_seed(3)
    terms = v.train_step({"x": x, "dataset_size": 100}, 0, opts, "train")
    assert {"mi", "critic"} <= set(terms)
    for k, p in v.named_parameters():
        if k.startswith("critic."):
            assert torch.allclose(p, expected[k], atol=1e-6), k
    assert not torch.equal(before["decoder.head.net.0.weight"], dict(v.named_parameters())["decoder.head.net.0.weight"])


def test_location_labels_from_frames_agree_with_the_generator():
    """The dynamic factor prediction's per-frame label (the grid cell of the ink's centre) matches the cell
    of the centre the generator put the digit at (its top-left corner plus the digit's own centre)."""
    d, y = _digits()
    seq, _, f = mm.generate(d, y, 500, frames=8, seed=4)
    cells, valid = frame_cells(torch.as_tensor(seq).float() / 255, 3)
    assert bool(valid.all())
    own = [np.average(np.indices((28, 28)).reshape(2, -1), axis=1, weights=(d[i] / 255 > 0.1).ravel() * d[i].ravel())
           for i in range(len(d))]  # (row, col) of each digit's thresholded centre
    order = np.random.default_rng(4).permutation(len(d))  # the generator's pairing of sequences and digits
    centre = np.stack([f["positions"][:, :, 1] + np.array([own[order[i % len(d)]][0] for i in range(500)])[:, None],
                       f["positions"][:, :, 0] + np.array([own[order[i % len(d)]][1] for i in range(500)])[:, None]], -1)
    truth = (np.clip((centre[..., 0] * 3 / 64).astype(int), 0, 2) * 3 + np.clip((centre[..., 1] * 3 / 64).astype(int), 0, 2))
    assert (cells.numpy() == truth).mean() >= 0.99
    assert len(np.unique(truth)) == 9  # every cell is visited


def test_location_labels_ignore_a_haze_and_frames_without_ink():
    x = torch.zeros(1, 3, 1, 30, 30)
    x[0, 0, 0, 2:6, 2:6] = 1.0  # top-left cell
    x[0, 1, 0, 22:26, 12:16] = 1.0  # bottom-middle cell
    cells, valid = frame_cells(x + 0.05 * (x == 0), 3)  # a haze under the threshold everywhere else
    assert cells[0, :2].tolist() == [0, 7] and valid[0].tolist() == [True, True, False]


def test_dynamic_skip_must_be_a_bool():
    with pytest.raises(vaelab.ConfigError, match="dynamic_skip"):
        tiny(dynamic_skip="no")


def test_regularisers_switch_off_and_dsvae_has_none():
    terms = lambda v: set(v.loss({"x": torch.rand(3, *SHAPE), "dataset_size": 100}, 0)[1])  # noqa: E731
    assert terms(tiny()) == {"loss", "recon", "kl_f", "kl_t", "scc", "dfp", "mi", "critic"}
    assert terms(tiny(mi_estimator="mws")) == {"loss", "recon", "kl_f", "kl_t", "scc", "dfp", "mi"}
    assert terms(tiny(scc_weight=0.0)) == {"loss", "recon", "kl_f", "kl_t", "dfp", "mi", "critic"}
    assert terms(tiny(mi_weight=0.0, dfp_weight=0.0)) == {"loss", "recon", "kl_f", "kl_t", "scc"}
    torch.manual_seed(0)
    ds = vaelab.build("dsvae", backbone="small", latent_dim=4, dynamic_dim=3, hidden=16, data_shape=SHAPE)
    assert terms(ds) == {"loss", "recon", "kl_f", "kl_t"} and ds.location is None and ds.critic is None


def test_loss_without_regularisers_is_the_negative_elbo_estimate():
    """DSVAE's loss is −ELBO: the mean of −log w over one posterior draw equals it in expectation."""
    torch.manual_seed(0)
    v = vaelab.build("dsvae", backbone="small", latent_dim=4, dynamic_dim=3, hidden=16, data_shape=SHAPE).eval()
    x = (torch.rand(4, *SHAPE) > 0.8).float()
    torch.manual_seed(1)
    losses = torch.stack([v.loss({"x": x, "dataset_size": 100}, 0)[0] for _ in range(300)])
    torch.manual_seed(2)
    lw = v.log_weights(x, 300)  # (K, B)
    ref = -lw.mean()
    se = float(torch.sqrt(losses.var() / 300 + lw.mean(1).var() / 300))
    assert abs(float(losses.mean() - ref)) < 4 * se + 1e-3


@pytest.mark.parametrize("both, static, step, w_all, w_f", [(0, 0, 0, 1.0, 1.0), (0, 4, 0, 1.0, 0.25), (0, 4, 1, 1.0, 0.5),
                                                        (0, 4, 9, 1.0, 1.0), (2, 4, 0, 0.5, 0.25), (2, 4, 5, 1.0, 1.0)])
def test_kl_warmups_weight_the_kls_in_training_only(both, static, step, w_all, w_f):
    """loss = recon + w_all · (w_f · KL_f + KL_t) in training; the eval loss is −ELBO whatever the warm-ups."""
    v = tiny(kl_warmup_steps=both, static_kl_warmup_steps=static, scc_weight=0.0, dfp_weight=0.0, mi_weight=0.0)
    x = torch.rand(3, *SHAPE)
    torch.manual_seed(5)
    total, t = v.train().loss({"x": x}, step)
    assert float(total) == pytest.approx(float(t["recon"] + w_all * (w_f * t["kl_f"] + t["kl_t"])), rel=1e-6)
    torch.manual_seed(5)
    total, t = v.eval().loss({"x": x}, step)
    assert float(total) == pytest.approx(float(t["recon"] + t["kl_f"] + t["kl_t"]), rel=1e-6)
    with pytest.raises(Exception, match="static_kl_warmup_steps"):
        tiny(static_kl_warmup_steps=-1)


def test_swap_and_fixes_keep_the_right_codes():
    v = tiny().eval()
    a, b = torch.rand(2, *SHAPE), torch.rand(2, *SHAPE)
    qa_f, _, _ = v.encode_sequence(a)
    _, qb_t, _ = v.encode_sequence(b)
    assert torch.allclose(v.swap(a, b), v.log_lik.image(v.decode_sequence(qa_f.mean, qb_t.mean)))
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(v.fix_static(a, generator=g()), v.fix_static(a, generator=g()))
    assert v.fix_dynamic(a, generator=g()).shape == a.shape


# ----- the judge's metrics ----------------------------------------------------------------------
def test_entropies_and_inception_score_on_oracle_probabilities():
    onehot = np.eye(4)[np.arange(400) % 4]
    assert conditional_entropy(onehot) == pytest.approx(0.0, abs=1e-12)
    assert marginal_entropy(onehot) == pytest.approx(math.log(4))
    uniform = np.full((10, 4), 0.25)
    assert conditional_entropy(uniform) == pytest.approx(math.log(4)) and inception_score(uniform) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5), 200)
    assert math.log(inception_score(p)) == pytest.approx(marginal_entropy(p) - conditional_entropy(p))


def test_the_judge_reads_the_digit_from_the_window_around_its_ink():
    """The content head reads each frame's 28×28 window centred on the ink's centre of mass: a digit
    whose centre of mass is its field's centre comes back exactly, wherever it sits in the frame, so the
    content logits do not depend on the digit's position; a window never leaves the frame, and a
    frame without ink gives the central window."""
    from vaelab.nn.judge import SequenceJudgeNet, ink_windows

    digit = torch.zeros(28, 28)
    digit[9:19, 12:16] = 1.0  # centre of mass (13.5, 13.5), the field's centre
    digit[11:17, 10:18] += 0.5
    frames = torch.zeros(3, 1, 64, 64)
    frames[0, 0, 5:33, 30:58] = digit
    frames[1, 0, 36:64, 0:28] = digit
    frames[2, 0, 0:4, 0:4] = 1.0  # ink in a corner: the window is shifted inside the frame
    w = ink_windows(frames, 28)
    assert w.shape == (3, 1, 28, 28)
    assert torch.equal(w[0, 0], digit) and torch.equal(w[1, 0], digit)
    assert torch.equal(w[2, 0], frames[2, 0, :28, :28])
    assert torch.equal(ink_windows(torch.zeros(1, 1, 64, 64), 28), torch.zeros(1, 1, 28, 28))
    torch.manual_seed(0)
    net = SequenceJudgeNet((2, 1, 64, 64)).eval()
    with torch.no_grad():
        here, there, corner = net(frames[[0, 0]][None]), net(frames[[1, 1]][None]), net(frames[[2, 2]][None])
    assert torch.equal(here, there) and not torch.allclose(here, corner)


def test_judge_net_shapes_and_sequence_scores_on_an_oracle():
    """sequence_scores counts what the judge says: with a model whose fixes return the input itself
    and a judge reading the labels off the input, every accuracy is 1."""
    from vaelab import scoring
    from vaelab.reference_classifier import Classifier, make_net

    net = make_net((4, 1, 16, 16), 10, 8)
    assert net(torch.rand(3, 4, 1, 16, 16)).shape == (3, 10) and net.motion_logits(torch.rand(3, 4, 1, 16, 16)).shape == (3, 8)

    class Out(torch.nn.Module):  # features (digit/10, motion/10) → confident digit logits
        out_features = 10

        def forward(self, f):
            return torch.nn.functional.one_hot((f[:, 0] * 10).round().long(), 10).float() * 50

    class Oracle(torch.nn.Module):  # reads digit/10 and motion/10 off pixels [0, 0, 0, 0:2] of frame 1
        out = Out()

        def features(self, x):
            return x[:, 0, 0, 0, :2]

        def motion_logits(self, x):
            return torch.nn.functional.one_hot((x[:, 0, 0, 0, 1] * 10).round().long(), 8).float() * 50

    class Model:  # every generation keeps its input; a swap takes the motion pixel from the motion sequence
        config = type("C", (), {"latent_dim": 10})  # z_f: the digit one-hot; z_1:T: the motion one-hot per frame

        def reconstruct(self, x, y=None):
            return x

        def fix_static(self, x, generator=None, mean_dynamics=False):
            return x

        def fix_dynamic(self, x, generator=None):
            return x

        def encode_sequence(self, x):
            digit = torch.nn.functional.one_hot((x[:, 0, 0, 0, 0] * 10).round().long(), 10).float()
            move = torch.nn.functional.one_hot((x[:, 0, 0, 0, 1] * 10).round().long(), 8).float()
            return type("Q", (), {"mean": digit}), type("Q", (), {"mean": move[:, None].expand(-1, 4, -1)}), None

        def swap(self, content, motion):
            out = content.clone()
            out[:, 0, 0, 0, 1] = motion[:, 0, 0, 0, 1]
            return out

    judge = Classifier(Oracle(), {"test_accuracy": 1.0})
    labels, motion = np.arange(40) % 10, np.arange(40) % 8
    x = torch.zeros(40, 4, 1, 8, 8)
    x[:, 0, 0, 0, 0] = torch.as_tensor(labels) / 10
    x[:, 0, 0, 0, 1] = torch.as_tensor(motion) / 10
    out = scoring.sequence_scores(Model(), judge, x, labels, motion, torch.Generator().manual_seed(0), 16)
    for k in ("content_accuracy", "content_accuracy_mean_dynamics", "motion_accuracy", "swap_content_accuracy",
              "swap_motion_accuracy", "recon_motion_accuracy", "probe_digit_z_f"):
        assert out[k] == 1.0, (k, out[k])
    # the motion one-hot says nothing about the digit here (motion = i mod 8, digit = i mod 10 over 40 sequences,
    # the probe fitted on the first 20): the probe on z_1:T does no better than the digits' own frequencies
    assert out["probe_digit_z_t"] <= 0.35
    # the swaps keep the content's digit, so they match the motion source's only where the two digits agree
    assert out["swap_digit_from_dynamics"] <= 0.3
    assert out["content_h_y_given_x"] == pytest.approx(0.0, abs=1e-12) and out["content_h_y"] == pytest.approx(math.log(10))


# ----- runs, pictures, the judge, the study's tables ---------------------------------------------
TINY_MODEL = {"backbone": "dcgan", "latent_dim": 4, "dynamic_dim": 3, "hidden": 16}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from vaelab.rundir import train
    from vaelab.training.config import TrainConfig

    d = tmp_path_factory.mktemp("s3") / "run"
    train("s3vae", dict(TINY_MODEL), TrainConfig(dataset="moving-mnist-5k", epochs=1, batch_size=16, train_size=48,
                                                 progress=False, eval_every=0), d)
    return d


def test_a_sequence_run_trains_resumes_bitwise_and_draws_strips_and_gifs(tiny_run, tmp_path):
    from PIL import Image

    from vaelab.data import load_dataset
    from vaelab.rundir import load, train
    from vaelab.run_figures import sequence_pictures
    from vaelab.training.config import TrainConfig

    # the same run again, in two invocations (1 epoch, then 1 more), equals one of 2 epochs
    a, b = tmp_path / "a", tmp_path / "b"
    cfg = dict(dataset="moving-mnist-5k", batch_size=16, train_size=32, progress=False, eval_every=0)
    train("s3vae", dict(TINY_MODEL), TrainConfig(epochs=2, **cfg), a)
    train("s3vae", dict(TINY_MODEL), TrainConfig(epochs=1, **cfg), b)
    train(None, run_dir=b, resume=True, extra_epochs=2)  # the new total
    assert (a / "checkpoint.safetensors").read_bytes() == (b / "checkpoint.safetensors").read_bytes()

    paths = sequence_pictures(load(tiny_run), load_dataset("moving-mnist-5k", "test"), 3, 0, tmp_path / "pics")
    names = sorted(p.name for p in paths)
    assert names == sorted(f"{k}-0.{e}" for k in ("samples", "reconstructions", "swaps", "content-fixed") for e in ("png", "gif"))
    gif = Image.open(tmp_path / "pics" / "swaps-0.gif")
    assert gif.n_frames == 8  # one GIF frame per sequence frame
    strip = Image.open(tmp_path / "pics" / "swaps-0.png")
    assert strip.height > strip.width / 8 * 9 - 40  # 9 rows (3 examples × content, motion, swap) of 8 frames


def test_a_sequence_run_saves_its_pictures_and_the_page_copies_them(tiny_run, tmp_path):
    """The strips and GIFs are made with the run's figures (RUN/figures/ and its index); the sequence page
    copies them beside itself, and says, for a run without saved figures, how to make them."""
    import shutil

    from vaelab.report import write_sequence_page
    from vaelab.rundir import make_figures
    from vaelab.study.sequences import SequenceStudy

    out = tmp_path / "study"
    shutil.copytree(tiny_run, out / "runs" / "s3vae-s0")
    shutil.copytree(tiny_run, out / "runs" / "dsvae-s0")  # stands in for a run evaluated before figures were saved
    index = make_figures(out / "runs" / "s3vae-s0")
    names = ("samples", "reconstructions", "swaps", "content-fixed")
    assert index["kind"] == "sequence" and set(index["figures"]) == set(names)
    assert all((out / "runs" / "s3vae-s0" / "figures" / index["figures"][n][p]).is_file() for n in names for p in ("file", "gif"))
    st = SequenceStudy(out=out, dataset="moving-mnist-5k", seeds=(0,))
    res = {"settings": {**st.key(), "seeds": [0]}, "judge": {}, "rows": [],
           "pictures": {k: {"seed": 0, "run_dir": f"runs/{k}-s0"} for k in ("s3vae", "dsvae")}}
    html = write_sequence_page(out, res).read_text()
    assert 'src="img/s3vae/swaps-0.gif"' in html and 'href="img/s3vae/swaps-0.png"' in html
    assert (out / "report" / "img" / "s3vae" / "swaps-0.gif").read_bytes() == \
        (out / "runs" / "s3vae-s0" / "figures" / "swaps-0.gif").read_bytes()
    assert f"`vaelab evaluate {out / 'runs' / 'dsvae-s0'} --figures-only` makes them" in html
    assert not (out / "report" / "img" / "dsvae").exists()


def _subset(ds, n):
    from vaelab.data import Dataset

    return Dataset(ds.name, ds.split, ds.images[:n], ds.labels[:n], n_classes=ds.n_classes,
                   factors={k: v[:n] for k, v in ds.factors.items()})


@pytest.fixture(scope="module")
def tiny_judge(tmp_path_factory):
    from vaelab.data import load_dataset
    from vaelab.reference_classifier import Recipe, obtain

    mp = pytest.MonkeyPatch()
    mp.setenv("VAELAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    tr, te = load_dataset("moving-mnist-5k", "train"), load_dataset("moving-mnist-5k", "test")
    judge = obtain(_subset(tr, 96), _subset(te, 48), Recipe(epochs=1, batch_size=32, shift=0))
    again = obtain(_subset(tr, 96), _subset(te, 48), Recipe(epochs=1, batch_size=32, shift=0))  # from the cache
    mp.undo()
    assert again.meta["weights_sha256"] == judge.meta["weights_sha256"]
    return judge


def test_judge_trains_on_both_labels_and_scores_a_run(tiny_run, tiny_judge):
    from vaelab import scoring
    from vaelab.data import load_dataset, to_tensor
    from vaelab.rundir import load

    assert tiny_judge.is_judge and set(tiny_judge.meta) >= {"motion_accuracy", "n_motions", "test_accuracy"}
    assert tiny_judge.meta["arch"] == "SequenceJudgeNet-v5" and tiny_judge.meta["n_motions"] == 8
    te = _subset(load_dataset("moving-mnist-5k", "test"), 40)
    v = load(tiny_run)
    score = lambda: scoring.sequence_scores(v, tiny_judge, to_tensor(te.images), te.labels, te.factors["motion"],  # noqa: E731
                                            torch.Generator().manual_seed(4), 16)
    ev = score()
    assert set(ev) == set(scoring.SEQUENCE_KEYS)
    assert all(0 <= ev[k] <= 1 for k in scoring.SEQUENCE_KEYS if k.endswith("accuracy"))
    assert 1 <= ev["content_is"] <= 10 and 0 <= ev["content_h_y_given_x"] <= math.log(10) + 1e-9
    assert ev == score()  # seeded


@pytest.mark.slow
def test_evaluate_run_reports_sequence_metrics(tiny_run, tiny_judge):
    from vaelab.rundir import evaluate_run

    ev = evaluate_run(tiny_run, n_samples=20, iwae_k=2, iwae_n=4, classifier=tiny_judge, write=False)
    for k in ("content_accuracy", "motion_accuracy", "content_is", "swap_motion_accuracy", "recon_accuracy", "neg_elbo",
              "iwae_nll", "fid"):
        assert isinstance(ev[k], float) and math.isfinite(ev[k]), (k, ev[k])


def test_evaluate_prints_the_sequence_metrics():
    """``vaelab evaluate``'s table shows a sequence run's judge metrics, each with its own value; an image
    run's table has no such rows."""
    from vaelab.scoring import SEQUENCE_KEYS, absent, format_table

    meta = {"n_samples": 10, "iwae_k": 0, "iwae_n": 0, "n_test": 20, "binarization": "none", "classifier_test_accuracy": 0.99,
            "variant": "s3vae", "dataset": "moving-mnist-5k", "run_dir": "r"}
    base = {"meta": meta, "parameters": 10, "sample_class_histogram": [1] * 10, "neg_elbo_iwae_subset": absent("skipped"),
            **{k: 0.5 for k in ("recon_accuracy", "real_accuracy", "fid", "inception_score", "precision", "recall",
                                "sample_class_tv", "neg_elbo")},
            **{k: absent("n/a") for k in ("cond_accuracy", "iwae_nll", "cluster_accuracy", "cluster_nmi", "cluster_ari")}}
    seq = {k: 0.01 * (i + 1) for i, k in enumerate(SEQUENCE_KEYS)}
    lines = {ln.split()[0]: ln.split()[1] for ln in format_table({**base, **seq}).splitlines()[1:]}
    for k in SEQUENCE_KEYS:
        assert lines[k] == f"{seq[k]:.4f}", (k, lines.get(k))
    assert not set(SEQUENCE_KEYS) & {ln.split()[0] for ln in format_table(base).splitlines()[1:]}


def test_sequence_study_tables_from_records():
    from vaelab.report.sequences import section
    from vaelab.study.sequences import SequenceStudy, aggregate, markdown

    ev = lambda acc: {"content_accuracy": acc, "motion_accuracy": 0.5, "content_is": 5.0, "content_h_y": 2.0,  # noqa: E731
                      "content_h_y_given_x": 0.3, "neg_elbo": 1000.0}
    recs = [{"row": "s3vae", "status": "ok", "eval": ev(0.9)}, {"row": "s3vae", "status": "ok", "eval": ev(0.8)},
            {"row": "dsvae", "status": "ok", "eval": ev(0.5)}, {"row": "dsvae", "status": "failed"}]
    rows = aggregate(recs)
    assert [r["row"] for r in rows] == ["s3vae", "dsvae"]
    assert rows[0]["content_accuracy"] == pytest.approx(0.85) and rows[0]["content_accuracy_sd"] == pytest.approx(0.0707, abs=1e-4)
    assert rows[1]["n"] == 1 and rows[1]["n_failed"] == 1 and rows[1]["content_accuracy_sd"] == 0.0
    st = SequenceStudy(out="x", dataset="moving-mnist-5k", seeds=(0, 1))
    md = markdown(rows, st, {"stem": "moving-mnist-5k", "test_accuracy": 0.99, "motion_accuracy": 0.98})
    assert "| S3VAE | 85.0 ± 7.1 |" in md and "| DSVAE | 50.0 ± 0.0 |" in md and "1 (1 failed)" in md
    html = section({"settings": {**st.key(), "seeds": [0, 1]}, "judge": {"stem": "j", "test_accuracy": 0.99}, "rows": rows,
                    "pictures": {"s3vae": {"seed": 0, "files": ["img/s3vae/swaps-0.png", "img/s3vae/swaps-0.gif"]}}})
    assert "85.0 ± 7.1" in html and 'src="img/s3vae/swaps-0.gif"' in html and "99.00%" in html


# ----- the judge is not fooled by a background -------------------------------------------------
def _real_frames(n=300):
    from vaelab.data import load_dataset, to_tensor

    te = load_dataset("moving-mnist-5k", "test")
    return to_tensor(te.images[:n]).flatten(0, 1), te


@pytest.mark.parametrize("haze", [0.01, 0.02, 0.05])
def test_the_judges_window_stays_on_the_digit_under_a_haze(haze):
    """Real test frames with a uniform haze over the whole frame: the window is placed where it is on the
    clean frame (the crop is the clean crop plus the haze) for nearly every frame, and never more than a
    pixel away (the few digit pixels the haze lifts over the ink threshold); counting every pixel as ink,
    as before, pulls the centre towards the middle of the frame by pixels."""
    from vaelab.nn.judge import ink_windows
    from vaelab.nn.sequence import INK
    from vaelab.nn.utils import ink_centres

    frames, _ = _real_frames()
    hazy = (frames + haze).clamp(max=1.0)
    clean_w, hazy_w = ink_windows(frames, 28), ink_windows(hazy, 28)
    same = ((hazy_w - (clean_w + haze).clamp(max=1.0)).abs().flatten(1).amax(1) < 1e-5).float().mean()
    assert float(same) >= 0.95
    (cy0, cx0, _), (cy1, cx1, _) = ink_centres(frames, INK), ink_centres(hazy, INK)
    assert float(torch.maximum((cy1 - cy0).abs(), (cx1 - cx0).abs()).max()) <= 1.0
    cy0, cx0, _ = ink_centres(frames)
    cy1, cx1, _ = ink_centres(hazy)
    assert float(((cy1 - cy0) ** 2 + (cx1 - cx0) ** 2).sqrt().mean()) > 1.0  # what an unthresholded centre does


def test_the_judges_window_barely_moves_under_a_blur():
    from vaelab.nn.sequence import INK
    from vaelab.nn.utils import ink_centres

    frames, _ = _real_frames()
    blurred = torch.nn.functional.avg_pool2d(frames, 3, stride=1, padding=1, count_include_pad=False)
    (cy0, cx0, _), (cy1, cx1, _) = ink_centres(frames, INK), ink_centres(blurred, INK)
    assert float(torch.maximum((cy1 - cy0).abs(), (cx1 - cx0).abs()).quantile(0.99)) <= 0.5


@pytest.mark.slow
def test_the_trained_judge_reads_hazy_and_blurred_test_sequences():
    """The cached moving-mnist-5k judge: its digit accuracy on hazy (+0.02) and blurred real test sequences
    stays within a point of its accuracy on the clean ones."""
    from vaelab.data import to_tensor
    from vaelab.reference_classifier import load_or_train

    judge = load_or_train("moving-mnist-5k")
    _, te = _real_frames()
    x = to_tensor(te.images)
    clean = float((judge.predict(x) == te.labels).mean())
    hazy = float((judge.predict((x + 0.02).clamp(max=1)) == te.labels).mean())
    blur = torch.nn.functional.avg_pool2d(x.flatten(0, 1), 3, stride=1, padding=1, count_include_pad=False).view_as(x)
    blurred = float((judge.predict(blur) == te.labels).mean())
    assert clean >= 0.98 and hazy >= clean - 0.01 and blurred >= clean - 0.01, (clean, hazy, blurred)


def test_translate_frames_moves_each_frame_and_keeps_its_ink_whole():
    from vaelab.nn.sequence import translate_frames

    g = torch.Generator().manual_seed(0)
    x = torch.zeros(3, 4, 1, 20, 24)
    x[:, :, :, 2:7, 3:6] = torch.rand(3, 4, 1, 5, 3, generator=g) * 0.8 + 0.2  # a 5×3 patch of ink per frame
    x[2, 3] = 0.0  # a frame without ink stays where it is
    out = translate_frames(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    moved = 0
    for b in range(3):
        for t in range(4):
            if b == 2 and t == 3:
                assert torch.equal(out[b, t], x[b, t])
                continue
            rows, cols = (out[b, t, 0] > 0.1).nonzero(as_tuple=True)
            top, left = int(rows.min()), int(cols.min())
            assert (int(rows.max()) - top, int(cols.max()) - left) == (4, 2)  # the whole patch, not cut at an edge
            torch.testing.assert_close(out[b, t, 0, top:top + 5, left:left + 3], x[b, t, 0, 2:7, 3:6], rtol=0, atol=0)
            assert out[b, t].sum() == pytest.approx(float(x[b, t].sum()), rel=1e-6)
            moved += (top, left) != (2, 3)
    assert moved >= 9  # the offsets are drawn, not all zero
    assert torch.equal(translate_frames(x, torch.Generator().manual_seed(1)), out)  # seeded


def test_translate_frames_draws_every_offset_that_keeps_the_ink_inside():
    """A one-pixel dot at (row 1, col 2) of a 4×5 frame may land on any of the 20 pixels, uniformly."""
    from vaelab.nn.sequence import translate_frames

    x = torch.zeros(1, 4000, 1, 4, 5)
    x[..., 1, 2] = 1.0
    out = translate_frames(x, torch.Generator().manual_seed(0))
    where = out[0, :, 0].flatten(1).argmax(1)
    counts = torch.bincount(where, minlength=20).float()
    assert counts.min() > 0 and counts.std() / counts.mean() < 0.15  # uniform over the 20 places (expected sd ≈ 0.07)


def test_the_shifted_positive_is_an_option_that_trains():
    from variant_configs import config_for

    from vaelab.errors import ConfigError
    from vaelab.registry import make_config

    with pytest.raises(ConfigError, match="scc_positive"):
        make_config("s3vae", scc_positive="shift")
    torch.manual_seed(0)
    v = vaelab.build("s3vae", **{**config_for("s3vae"), "backbone": "small", "scc_positive": "shuffle-shift"})
    x = torch.zeros(3, 4, 1, 28, 28)
    x[:, :, :, 5:15, 6:12] = 1.0
    total, terms = v.loss({"x": x}, 0)
    assert torch.isfinite(total) and terms["scc"] >= 0
