"""The common distribution base (vaelab.distributions.base): KL dispatch with register_kl, the shared
sample signature, and GaussianHead (features → DiagonalGaussian, an nn.Linear underneath)."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import vaelab
from vaelab.distributions import (
    DiagonalGaussian,
    Distribution,
    GaussianMixturePrior,
    HypersphericalUniform,
    KLNotImplementedError,
    MixtureOfGaussians,
    StandardNormal,
    VonMisesFisher,
    as_sample_shape,
    kl,
    register_kl,
)
from vaelab.distributions.vmf import log_sphere_area
from vaelab.losses.divergences import kl_monte_carlo, kl_normal_normal, kl_normal_std
from vaelab.models.wae import PointMass
from vaelab.nn import GaussianHead
from vaelab.nn.quantizer import CodeGrid

F64 = torch.float64


def gaussian(b=3, d=4, seed=0, dtype=F64, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(b, d, generator=g, dtype=dtype)
    logvar = 0.5 * torch.randn(b, d, generator=g, dtype=dtype)
    return DiagonalGaussian(loc.requires_grad_(requires_grad), logvar.requires_grad_(requires_grad))


def assert_within_se(closed, log_ratio, k=4.0):
    """closed (B,) against the Monte-Carlo mean of log_ratio (n, B), within k standard errors."""
    mc, se = log_ratio.mean(0), log_ratio.std(0) / math.sqrt(log_ratio.shape[0])
    assert torch.all((closed - mc).abs() <= k * se + 1e-12), (closed, mc, se)


# ----- KL dispatch --------------------------------------------------------------------------------
def test_kl_gaussian_standard_is_the_closed_form_and_agrees_with_monte_carlo():
    p = gaussian()
    got = kl(p, StandardNormal(4))
    assert torch.equal(got, kl_normal_std(p.loc, p.logvar))
    assert torch.equal(p.kl(StandardNormal(4)), got)  # the method is the same dispatch
    # a float64 Monte-Carlo estimate, with torch.distributions densities (independent of our log_prob)
    n = 200_000
    z = p.loc + p.scale * torch.randn(n, 3, 4, generator=torch.Generator().manual_seed(1), dtype=F64)
    normal = torch.distributions.Normal
    log_ratio = (normal(p.loc, p.scale).log_prob(z) - normal(0.0, 1.0).log_prob(z)).sum(-1)
    assert_within_se(got, log_ratio)
    assert got.shape == (3,) and torch.all(got > 0.1)


def test_kl_gaussian_gaussian_is_the_closed_form_and_agrees_with_monte_carlo():
    p, q = gaussian(seed=0), gaussian(seed=1)
    got = kl(p, q)
    assert torch.equal(got, kl_normal_normal(p.loc, p.logvar, q.loc, q.logvar))
    n = 200_000
    z = p.loc + p.scale * torch.randn(n, 3, 4, generator=torch.Generator().manual_seed(2), dtype=F64)
    normal = torch.distributions.Normal
    log_ratio = (normal(p.loc, p.scale).log_prob(z) - normal(q.loc, q.scale).log_prob(z)).sum(-1)
    assert_within_se(got, log_ratio)
    assert torch.equal(kl(p, p), torch.zeros(3, dtype=F64))


def test_kl_vmf_uniform_is_registered_and_agrees_with_monte_carlo():
    m = 5
    mu = F.normalize(torch.randn(3, m, generator=torch.Generator().manual_seed(0), dtype=F64), dim=-1)
    q = VonMisesFisher(mu, torch.tensor([0.5, 3.0, 20.0], dtype=F64))
    u = HypersphericalUniform(m)
    got = kl(q, u)
    assert torch.equal(got, q.kl(u))
    z = q.sample((20_000,), generator=torch.Generator().manual_seed(3))
    log_ratio = q.log_prob(z) + log_sphere_area(m)  # log q(z) − log U(z)
    assert_within_se(got, log_ratio)
    with pytest.raises(NotImplementedError, match="S\\^4.*S\\^5"):
        kl(q, HypersphericalUniform(m + 1))


def test_a_subclass_finds_its_parents_registration():
    class Posterior(DiagonalGaussian):
        pass

    class Prior(StandardNormal):
        pass

    p = gaussian()
    sub = Posterior(p.loc, p.logvar)
    assert torch.equal(kl(sub, Prior(4)), kl_normal_std(p.loc, p.logvar))
    assert torch.equal(kl(sub, p), torch.zeros(3, dtype=F64))  # (DiagonalGaussian, DiagonalGaussian)


def test_the_most_specific_registration_wins_and_ties_are_an_error():
    class Special(DiagonalGaussian):
        pass

    @register_kl(Special, StandardNormal)
    def _special(p, q):
        return torch.full(p.batch_shape, 7.0)

    p = gaussian()
    s = Special(p.loc, p.logvar)
    assert torch.equal(kl(s, StandardNormal(4)), torch.full((3,), 7.0))  # more specific than (DG, SN)
    assert torch.equal(kl(p, StandardNormal(4)), kl_normal_std(p.loc, p.logvar))  # the parent is unaffected
    assert torch.equal(kl(s, p), torch.zeros(3, dtype=F64))  # (DG, DG) still applies on the other pair

    class A(Distribution):
        pass

    class A2(A):
        pass

    class B(Distribution):
        pass

    class B2(B):
        pass

    register_kl(A2, B)(lambda p, q: torch.zeros(()))
    register_kl(A, B2)(lambda p, q: torch.ones(()))
    assert float(kl(A2(), B())) == 0.0 and float(kl(A(), B2())) == 1.0
    with pytest.raises(KLNotImplementedError, match="ambiguous"):
        kl(A2(), B2())


def test_a_missing_pair_is_a_clear_error_naming_both_classes():
    p = gaussian()
    with pytest.raises(KLNotImplementedError, match=r"KL\(StandardNormal ‖ DiagonalGaussian\)") as e:
        kl(StandardNormal(4), p)
    assert isinstance(e.value, NotImplementedError)
    with pytest.raises(NotImplementedError, match="DiagonalGaussian ‖ MixtureOfGaussians"):
        p.kl(MixtureOfGaussians(torch.zeros(2), torch.zeros(2, 4), torch.zeros(2, 4)))


def test_mc_samples_gives_the_monte_carlo_estimate_for_a_missing_pair():
    p = gaussian(dtype=torch.float32)
    g = torch.Generator().manual_seed(5)
    w = torch.log(torch.tensor([0.3, 0.7]))
    mix = MixtureOfGaussians(w, torch.randn(2, 4, generator=g), 0.3 * torch.randn(2, 4, generator=g))
    est = kl(p, mix, mc_samples=64, generator=torch.Generator().manual_seed(6))
    z = p.rsample((64,), generator=torch.Generator().manual_seed(6))  # the same draws: z ~ p
    torch.testing.assert_close(est, (p.log_prob(z) - mix.log_prob(z)).mean(0), rtol=0, atol=0)
    torch.testing.assert_close(est, kl_monte_carlo(p, mix, 64, generator=torch.Generator().manual_seed(6)), rtol=0, atol=0)
    assert est.shape == (3,)
    # with one component the mixture is a Gaussian: the estimate matches that closed form
    one = MixtureOfGaussians(torch.zeros(3, 1), (p.loc + 0.5).unsqueeze(1), (p.logvar - 0.3).unsqueeze(1))
    pd = DiagonalGaussian(p.loc.double(), p.logvar.double())
    closed = kl_normal_normal(pd.loc, pd.logvar, pd.loc + 0.5, pd.logvar - 0.3)
    log_ratio = kl_monte_carlo(p, one, 20_000, generator=torch.Generator().manual_seed(7), reduce=False).double()
    assert_within_se(closed, log_ratio)
    # a registered pair keeps its closed form even when mc_samples is given
    assert torch.equal(kl(p, StandardNormal(4), mc_samples=10), kl_normal_std(p.loc, p.logvar))


def test_kl_checks_the_event_size_against_the_standard_normal():
    with pytest.raises(ValueError, match="event shapes differ"):
        kl(gaussian(d=3), StandardNormal(4))


# ----- the common sample signature ----------------------------------------------------------------
def all_distributions():
    g = torch.Generator().manual_seed(0)
    mu = F.normalize(torch.randn(4, 3, generator=g), dim=-1)
    return {
        "diagonal": gaussian(4, 3, dtype=torch.float32, requires_grad=True),
        "standard": StandardNormal(3),
        "standard-expanded": StandardNormal(3).expand((4,)),
        "mixture": MixtureOfGaussians(torch.log(torch.tensor([0.25, 0.75])), torch.randn(2, 3, generator=g), torch.zeros(2, 3)),
        "mixture-batched": MixtureOfGaussians(torch.full((4, 2), -math.log(2)), torch.randn(4, 2, 3, generator=g),
                                              torch.zeros(4, 2, 3)),
        "mixture-prior": GaussianMixturePrior(2, 3).distribution(),
        "uniform": HypersphericalUniform(3),
        "vmf": VonMisesFisher(mu, torch.tensor([1.0, 5.0, 10.0, 50.0])),
        "point": PointMass(torch.randn(4, 3, generator=g)),
        "codes": CodeGrid(torch.zeros(4, 2, 2, dtype=torch.long), torch.randn(4, 3, 2, 2, generator=g)),
    }


EXPECTED = {  # (batch_shape, event_shape)
    "diagonal": ((4,), (3,)), "standard": ((), (3,)), "standard-expanded": ((4,), (3,)), "mixture": ((), (3,)),
    "mixture-batched": ((4,), (3,)), "mixture-prior": ((), (3,)), "uniform": ((), (3,)), "vmf": ((4,), (3,)),
    "point": ((4,), (3,)), "codes": ((4,), (12,)),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("sample_shape", [5, (5,), (2, 3), (), torch.Size([2])])
def test_sample_and_rsample_shapes(name, sample_shape):
    d = all_distributions()[name]
    assert isinstance(d, Distribution)
    batch, event = EXPECTED[name]
    assert tuple(d.batch_shape) == batch and tuple(d.event_shape) == event
    want = as_sample_shape(sample_shape) + batch + event
    g = torch.Generator().manual_seed(1)
    assert tuple(d.sample(sample_shape, generator=g).shape) == want
    assert tuple(d.sample(sample_shape).shape) == want
    if d.has_rsample:
        assert tuple(d.rsample(sample_shape, generator=g).shape) == want
    else:
        with pytest.raises(NotImplementedError, match="rsample"):
            d.rsample(sample_shape)
    assert tuple(d.mean.shape) == batch + event


def test_as_sample_shape():
    assert as_sample_shape(3) == (3,) and as_sample_shape(()) == () and as_sample_shape([2, 3]) == (2, 3)
    assert as_sample_shape(torch.Size([4])) == (4,) and as_sample_shape(torch.tensor(2)) == (2,)
    for bad in (2.5, "ab", (1.0, 2)):
        with pytest.raises(TypeError):
            as_sample_shape(bad)


def test_sample_has_no_gradient_and_rsample_has():
    q = gaussian(dtype=torch.float32, requires_grad=True)
    a = q.rsample(2, generator=torch.Generator().manual_seed(0))
    b = q.sample(2, generator=torch.Generator().manual_seed(0))
    assert a.requires_grad and not b.requires_grad
    assert torch.equal(a.detach(), b)  # the same random numbers


@pytest.mark.parametrize("n", [1, 7])
def test_prior_draws_are_todays_random_numbers(n):
    """sample((n,)) of an empty-batch prior draws exactly what sample(n) / torch.randn(n, D) drew."""
    ref = torch.randn(n, 5, generator=torch.Generator().manual_seed(3))
    p = StandardNormal(5)
    for s in ((n,), n):
        assert torch.equal(p.sample(s, generator=torch.Generator().manual_seed(3)), ref)
        assert torch.equal(p.rsample(s, generator=torch.Generator().manual_seed(3)), ref)
    # a label-conditional prior with batch (n,) draws the same numbers with sample()
    assert torch.equal(p.expand((n,)).sample(generator=torch.Generator().manual_seed(3)), ref)
    # the global stream too (sample(n, device=...) in the training losses)
    torch.manual_seed(11)
    ref_global = torch.randn(n, 5)
    torch.manual_seed(11)
    assert torch.equal(p.sample((n,), device="cpu"), ref_global)
    # the uniform on the sphere: normalised standard normal draws
    u = HypersphericalUniform(5).sample((n,), generator=torch.Generator().manual_seed(3))
    assert torch.equal(u, ref / ref.norm(dim=-1, keepdim=True).clamp_min(1e-30))
    # a Gaussian posterior: z = μ + σ ε with ε ~ randn(sample_shape + (B, D))
    q = gaussian(2, 5, dtype=torch.float32)
    eps = torch.randn(n, 2, 5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(q.rsample((n,), generator=torch.Generator().manual_seed(3)), q.loc + q.scale * eps)


def test_mixture_sample_shapes_draw_the_same_numbers():
    m = MixtureOfGaussians(torch.log(torch.tensor([0.2, 0.8])), torch.tensor([[-3.0, 0.0], [3.0, 1.0]]), torch.zeros(2, 2))
    z6, k6 = m.sample(6, generator=torch.Generator().manual_seed(0), return_components=True)
    z23, k23 = m.sample((2, 3), generator=torch.Generator().manual_seed(0), return_components=True)
    assert z6.shape == (6, 2) and k6.shape == (6,) and z23.shape == (2, 3, 2) and k23.shape == (2, 3)
    assert torch.equal(z23.reshape(6, 2), z6) and torch.equal(k23.reshape(6), k6)
    k = m.sample_components(6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(k, k6)
    prior = GaussianMixturePrior(2, 2)
    with torch.no_grad():
        prior.set_parameters(torch.tensor([0.2, 0.8]), m.loc, torch.ones(2, 2))
    assert torch.equal(prior.sample((6,), generator=torch.Generator().manual_seed(0)), z6)
    assert torch.equal(prior.sample(6, generator=torch.Generator().manual_seed(0)), z6)


def test_gmvae_style_single_draw_matches_the_old_indexing():
    m = MixtureOfGaussians(torch.full((4, 3), -math.log(3)), torch.randn(4, 3, 2), torch.zeros(4, 3, 2))
    old = m.sample(1, generator=torch.Generator().manual_seed(2))[0]
    assert torch.equal(m.sample(generator=torch.Generator().manual_seed(2)), old)


# ----- GaussianHead -------------------------------------------------------------------------------
def test_gaussian_head_is_the_hand_written_linear_head():
    torch.manual_seed(0)
    head = GaussianHead(7, 3)
    torch.manual_seed(0)
    lin = nn.Linear(7, 6)  # what the variants built before: the same RNG draws, the same parameters
    assert isinstance(head, nn.Linear) and list(head.state_dict()) == ["weight", "bias"]
    assert torch.equal(head.weight, lin.weight) and torch.equal(head.bias, lin.bias)
    h = torch.randn(5, 7)
    mu, logvar = lin(h).float().chunk(2, dim=-1)
    q = head(h)
    assert isinstance(q, DiagonalGaussian) and q.batch_shape == (5,) and q.event_shape == (3,)
    assert torch.equal(q.loc, mu) and torch.equal(q.logvar, logvar)
    assert torch.equal(head.linear(h), lin(h))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the layer in bf16, the parameters in float32
        mu16, lv16 = lin(h).float().chunk(2, dim=-1)
        q16 = head(h)
    assert q16.loc.dtype == torch.float32 and torch.equal(q16.loc, mu16) and torch.equal(q16.logvar, lv16)
    # an old checkpoint of the nn.Linear loads strictly
    lin2 = nn.Linear(7, 6)
    head.load_state_dict(lin2.state_dict())
    assert torch.equal(head(h).loc, lin2(h)[:, :3])


@pytest.mark.parametrize("name, heads", [
    ("vae", {"head": "encoder"}),
    ("cvae", {"head": "encoder", "label_prior": None}),
    ("cvae-quadrant", {"recognition_head": "recognition", "prior_head": "prior_net"}),
])
def test_variant_heads_keep_their_state_dict_keys_and_values(name, heads):
    torch.manual_seed(0)
    extra = {"cvae-quadrant": {"baseline_epochs": 0}, "cvae": {"prior_hidden": 0}}.get(name, {})  # cvae: its linear prior
    v = vaelab.build(name, backbone="small", latent_dim=4, **extra)
    sd = v.state_dict()
    for attr in heads:
        assert isinstance(getattr(v, attr), GaussianHead)
        assert f"{attr}.weight" in sd and f"{attr}.bias" in sd and sd[f"{attr}.weight"].shape[0] == 8
        assert not any(k.startswith(f"{attr}.") and k not in (f"{attr}.weight", f"{attr}.bias") for k in sd)
    x = (torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    y = torch.tensor([1, 2, 3])
    with torch.no_grad():
        if name == "cvae-quadrant":
            feats = v.recognition(x)
        else:
            feats = v.encoder(x, v.condition(y))
        attr = next(iter(heads))
        mu, logvar = F.linear(feats, sd[f"{attr}.weight"], sd[f"{attr}.bias"]).float().chunk(2, dim=-1)
        q = v.encode(x, y)
    assert torch.equal(q.loc, mu) and torch.equal(q.logvar, logvar)
