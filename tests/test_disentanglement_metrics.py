"""Oracle tests of the disentanglement metrics (metrics/disentanglement/), as disentanglement_lib has them:
a tiny synthetic process whose observations are its factors (or a fixed invertible mix of them), and
representations whose scores are known — the identity, a permuted and rescaled identity, a constant, pure
noise, a rotation of two factors into two codes, a duplicated code."""
import math

import numpy as np
import pytest

from vaelab.metrics import disentanglement as dm

SIZES = (3, 5, 6, 4)
#: Small counts so that the whole file runs in seconds on one core.
OPTS = dict(n_train=600, n_eval=300, n_test=300, group_size=16, n_variance=600, n_estimators=10, batch_size=128)
CHANCE = 1 / len(SIZES)
#: SAP of a code that determines each factor, every other code independent of it: mean_k (1 − 1/K_k).
SAP_IDENTITY = float(np.mean([1 - 1 / s for s in SIZES]))


class Toy:
    """Factors of sizes SIZES; observations the factors as floats, or ``factors @ mix``."""
    factor_names = ("a", "b", "c", "d")
    factor_sizes = SIZES

    def __init__(self, mix: np.ndarray | None = None):
        self.mix = mix

    def sample_factors(self, n, rng):
        return np.stack([rng.integers(s, size=n) for s in self.factor_sizes], 1).astype(np.int64)

    def sample_observations_from_factors(self, factors, rng):
        x = factors.astype(np.float32)
        return x if self.mix is None else (x @ self.mix).astype(np.float32)


MIX = np.random.default_rng(123).normal(size=(4, 4)) + 3 * np.eye(4)  # fixed, invertible (checked below)
STD = np.sqrt((np.array(SIZES) ** 2 - 1) / 12)  # a factor's standard deviation


def identity(x):
    return x


def unmix(x):
    """The identity representation of Toy(MIX): the factors recovered from the mixed observations, rounded
    to drop float32 noise (an integer factor value sits on a MIG bin edge, and noise would split it in two)."""
    return np.round(x.astype(np.float64) @ np.linalg.inv(MIX), 3)


def permuted_scaled(x):
    return x[:, [2, 0, 3, 1]] * np.array([3.0, -0.5, 7.0, 1.5])


def constant(x):
    return np.full((len(x), 4), 0.7)


def noise_representation(seed=0):
    rng = np.random.default_rng(seed)
    return lambda x: rng.normal(size=(len(x), 4))


def entangled(x):
    """Factors a and b rotated by 45° into codes 0 and 1 (after standardising them); c, d kept."""
    a, b = x[:, 0] / STD[0], x[:, 1] / STD[1]
    return np.c_[a + b, a - b, x[:, 2:]]


def redundant(x):
    """The identity plus a second copy of factor a."""
    return np.c_[x, 2.0 * x[:, 0]]


def scores(represent, sampler=None, seed=0, **opts):
    return dm.compute_all(represent, sampler or Toy(), np.random.default_rng(seed), **{**OPTS, **opts})


@pytest.fixture(scope="module")
def ident():
    return scores(identity)


# ----- the identity and its invariances ------------------------------------------------------------------------

def test_the_identity_scores_about_one(ident):
    assert ident["beta_vae.eval_accuracy"] == 1.0 and ident["beta_vae.train_accuracy"] == 1.0
    assert ident["factor_vae.eval_accuracy"] == 1.0 and ident["factor_vae.num_active_dims"] == 4
    # MIG: the matching code carries all of H(v_k); the best other code only sampling noise in its MI estimate
    assert 0.97 <= ident["mig"] <= 1.0
    assert ident["dci.disentanglement"] > 0.99 and ident["dci.completeness"] > 0.99
    assert ident["dci.informativeness_test"] == 1.0
    # SAP: the matching code is predicted perfectly, the others at chance 1/K (plus sampling noise, which
    # only raises the runner-up): just under mean_k (1 − 1/K_k) = 0.7625
    assert SAP_IDENTITY - 0.06 <= ident["sap"] <= SAP_IDENTITY + 1e-9


def test_an_invertible_mix_undone_by_the_representation_scores_like_the_identity(ident):
    assert abs(np.linalg.det(MIX)) > 1
    mixed = scores(unmix, Toy(MIX))
    assert mixed.keys() == ident.keys()
    for key in ident:
        assert mixed[key] == pytest.approx(ident[key], abs=0.02), key


def test_a_permuted_and_rescaled_identity_scores_like_the_identity(ident):
    """Every metric is invariant to the order of the codes and to a per-code scale (sign included)."""
    other = scores(permuted_scaled)
    for key in ident:
        assert other[key] == pytest.approx(ident[key], abs=0.02), key


def noisy_identity(scales, seed=0):
    """The factors plus N(0, 0.1²) noise, code j multiplied by scales[j]."""
    rng = np.random.default_rng(seed)
    return lambda x: (x + 0.1 * rng.normal(size=x.shape)) * np.asarray(scales)


def test_very_different_code_scales_do_not_change_the_scores():
    """Codes on scales 50 and 0.2: without FactorVAE's normalisation the small code would win every argmin
    (its raw variance is below the fixed code's noise variance); BetaVAE's classifier sees standardised
    features; MIG, DCI and SAP only use the codes' order."""
    plain, scaled = scores(noisy_identity([1, 1, 1, 1])), scores(noisy_identity([50, 1, 1, 0.2]))
    assert plain["factor_vae.eval_accuracy"] > 0.95 and plain["mig"] > 0.9
    for key in plain:
        assert scaled[key] == pytest.approx(plain[key], abs=0.02), key


# ----- representations without information -------------------------------------------------------------------

@pytest.mark.parametrize("represent", [constant, noise_representation()], ids=["constant", "noise"])
def test_an_uninformative_representation_scores_about_zero(represent):
    s = scores(represent)
    assert s["mig"] < 0.02
    assert s["sap"] < 0.05
    assert s["dci.disentanglement"] < 0.1 and s["dci.completeness"] < 0.1
    assert s["dci.informativeness_test"] < CHANCE + 0.08
    assert abs(s["beta_vae.eval_accuracy"] - CHANCE) < 0.08
    if represent is constant:  # no active code: FactorVAE scores 0 by convention (disentanglement_lib)
        assert s["factor_vae.num_active_dims"] == 0 and s["factor_vae.eval_accuracy"] == 0
    else:
        assert abs(s["factor_vae.eval_accuracy"] - CHANCE) < 0.08


# ----- entangled and redundant codes --------------------------------------------------------------------------

def test_an_entangled_representation_scores_lower_than_the_identity(ident):
    s = scores(entangled)
    # MIG: factor a (or b) is as informative about either rotated code → its gap collapses
    assert s["mig"] < ident["mig"] - 0.3
    # DCI: codes 0 and 1 each matter for two factors; both factors lean on two codes
    assert s["dci.disentanglement"] < ident["dci.disentanglement"] - 0.15
    assert s["dci.completeness"] < ident["dci.completeness"] - 0.15
    assert s["sap"] < ident["sap"] - 0.2
    assert s["dci.informativeness_test"] > 0.95  # the rotation keeps the information


def test_a_redundant_code_lowers_mig_completeness_and_sap_but_not_disentanglement(ident):
    s = scores(redundant)
    # MIG: factor a's two best codes tie, so its gap is ~0 → MIG ≈ 3/4 of the identity's
    assert s["mig"] == pytest.approx(0.75 * ident["mig"], abs=0.03)
    # completeness: factor a's importance is spread over two codes
    assert s["dci.completeness"] < ident["dci.completeness"] - 0.05
    # disentanglement: each code still matters for one factor only
    assert s["dci.disentanglement"] > 0.99
    # SAP: factor a's gap vanishes → about SAP − (1 − 1/3)/4
    assert s["sap"] == pytest.approx(ident["sap"] - (1 - 1 / 3) / 4, abs=0.04)
    assert s["factor_vae.num_active_dims"] == 5


def test_determinism():
    a, b = scores(entangled, seed=7), scores(entangled, seed=7)
    assert a == b
    assert scores(entangled, seed=8) != a


# ----- hand-computed values -----------------------------------------------------------------------------------

def test_mig_by_hand():
    """Factors v0 ∈ {0,1} and v1 ∈ {0,1,2,3}, every pair once per two rows; code z0 = v0, z1 = ⌊v1/2⌋.
    H(v0) = log 2, H(v1) = log 4; I(z0; v0) = log 2, I(z1; v0) = 0 (independent);
    I(z0; v1) = 0, I(z1; v1) = H(z1) = log 2. MIG = ½ (log 2 / log 2 + log 2 / log 4) = ¾."""
    v = np.array([(a, b) for a in range(2) for b in range(4)] * 2)
    z = np.c_[v[:, 0], v[:, 1] // 2].astype(float)
    h0, h1 = math.log(2), math.log(4)
    i00, i10, i01, i11 = math.log(2), 0.0, 0.0, math.log(2)
    expected = 0.5 * ((i00 - i10) / h0 + (i11 - i01) / h1)
    assert expected == pytest.approx(0.75)
    assert dm.discrete_entropy(v[:, 1]) == pytest.approx(h1)
    assert dm.mutual_info_matrix(dm.discretize(z), v) == pytest.approx(np.array([[i00, i01], [i10, i11]]), abs=1e-12)
    assert dm.mig_from_codes(z, v) == pytest.approx(expected, abs=1e-12)
    # a code carrying v1 entirely lifts v1's gap to 1
    assert dm.mig_from_codes(np.c_[z, v[:, 1]], v) == pytest.approx(0.5 * (1 + (h1 - math.log(2)) / h1), abs=1e-12)


def test_dci_and_sap_from_hand_made_matrices():
    assert dm.dci_from_importance(np.eye(3)) == pytest.approx({"disentanglement": 1.0, "completeness": 1.0})
    assert dm.dci_from_importance(np.ones((3, 3))) == pytest.approx({"disentanglement": 0.0, "completeness": 0.0},
                                                                    abs=1e-12)
    # two codes share factor 0, code 2 is factor 1: disentanglement 1; factor 0's completeness 1 − log 2 / log 3
    r = np.array([[0.5, 0.0], [0.5, 0.0], [0.0, 1.0]])
    out = dm.dci_from_importance(r)
    assert out["disentanglement"] == pytest.approx(1.0)
    assert out["completeness"] == pytest.approx(0.5 * (1 - math.log(2) / math.log(3)) + 0.5)
    # non-square, by hand: code 0 splits evenly over both factors, code 1 is factor 1 only, code 2 unused
    r = np.array([[1.0, 1.0], [0.0, 2.0], [0.0, 0.0]])
    h3 = -(1 / 3 * math.log(1 / 3) + 2 / 3 * math.log(2 / 3)) / math.log(3)  # factor 1's split (1, 2, 0), base d = 3
    assert dm.dci_from_importance(r) == pytest.approx({"disentanglement": 0.5 * 0 + 0.5 * 1,
                                                       "completeness": 0.25 * 1 + 0.75 * (1 - h3)})
    assert dm.dci_from_importance(np.zeros((2, 2))) == {"disentanglement": 0.0, "completeness": 0.0}
    assert dm.sap_from_matrix(np.array([[0.9, 0.2], [0.3, 0.25]])) == pytest.approx(0.5 * (0.6 + 0.05))


# ----- options and errors -------------------------------------------------------------------------------------

def test_compute_all_keys_and_options():
    calls = []

    def spy(x):
        calls.append(len(x))
        return x

    s = dm.compute_all(spy, Toy(), np.random.default_rng(0), quick=True, n_train=200, n_eval=100, n_test=100,
                       n_variance=200, batch_size=50, **{"dci.n_estimators": 5})
    assert set(s) == {"beta_vae.train_accuracy", "beta_vae.eval_accuracy", "factor_vae.train_accuracy",
                      "factor_vae.eval_accuracy", "factor_vae.num_active_dims", "mig", "dci.disentanglement",
                      "dci.completeness", "dci.informativeness_train", "dci.informativeness_test", "sap"}
    assert max(calls) <= 50
    with pytest.raises(ValueError, match="unknown option 'n_trees'"):
        dm.compute_all(spy, Toy(), np.random.default_rng(0), n_trees=3)
    with pytest.raises(ValueError, match="unknown option 'mig.n_test'"):
        dm.compute_all(spy, Toy(), np.random.default_rng(0), **{"mig.n_test": 3})


@pytest.mark.parametrize("metric", ["beta_vae", "factor_vae", "mig", "dci", "sap"])
def test_bad_representations_are_named(metric):
    fn = dm.METRICS[metric]
    rng = np.random.default_rng(0)
    opts = {k: v for k, v in OPTS.items() if k in dm._options(fn)}
    with pytest.raises(ValueError, match=rf"^{metric}: represent must return .* got shape \(3, 4\) for \d+ observations"):
        fn(lambda x: x[:3], Toy(), rng, **opts)
    with pytest.raises(ValueError, match=rf"^{metric}: represent returned \d+ NaN or infinite values"):
        fn(lambda x: np.where(x > 1, np.nan, x), Toy(), rng, **opts)
    with pytest.raises(ValueError, match=rf"^{metric}: n_train must be an integer"):
        fn(identity, Toy(), rng, **{**opts, "n_train": 0})


def test_a_bad_sampler_is_named():
    class OneFactor(Toy):
        factor_names, factor_sizes = ("a",), (3,)

    with pytest.raises(ValueError, match="^mig: need at least 2 factors"):
        dm.mig(identity, OneFactor(), np.random.default_rng(0))
