"""The diagnostics (metrics/zsl_diagnostics.py, zsl/diagnostics.py) against oracles: a probe cannot
tell identical sets apart and separates disjoint ones perfectly, a hand-made confusion, and a
perfect generator (the true class means plus real residuals) looks real to every diagnostic."""
import numpy as np
import pytest

from vaelab.metrics.zsl_diagnostics import confusion_shares, mass_to, probe_accuracy
from vaelab.zsl.diagnostics import confusion_record, diagnose

from zsl_synthetic import linear_split


def test_the_probe_is_at_chance_on_identical_sets_and_perfect_on_separable_ones():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 6))
    assert probe_accuracy(x, x.copy(), seed=3) == 0.5  # each test row appears once with each label
    same = probe_accuracy(x, rng.standard_normal((400, 6)), seed=0)  # two draws of one distribution
    assert abs(same - 0.5) < 0.1
    assert probe_accuracy(x, x + 10.0, seed=0) == 1.0
    shifted = probe_accuracy(x, x + 0.5, seed=0)  # partly separable
    assert 0.55 < shifted < 1.0
    with pytest.raises(ValueError, match="same F"):
        probe_accuracy(x, x[:, :3])


def test_a_hand_made_confusion():
    # unseen classes 2 and 3; class 2: two to 2, one to 0, one to 3; class 3: one to 1, one to 3
    true = np.array([2, 2, 2, 2, 3, 3])
    pred = np.array([2, 0, 2, 3, 1, 3])
    shares = confusion_shares(pred, true, [2, 3], [0, 1, 2, 3])
    np.testing.assert_allclose(shares, [[0.25, 0, 0.5, 0.25], [0, 0.5, 0, 0.5]])
    assert mass_to(shares, [0, 1, 2, 3], [2, 3]) == pytest.approx((0.75 + 0.5) / 2)
    assert mass_to(shares, [0, 1, 2, 3], [0, 1]) == pytest.approx((0.25 + 0.5) / 2)
    with pytest.raises(ValueError, match="no examples"):
        confusion_shares(pred, true, [2, 5], [0, 1, 2, 3])


def test_the_confusion_record_before_and_after_calibration():
    sp = linear_split()
    n = len(sp.attributes)
    scores = np.full((len(sp.y_test_unseen), n), -5.0)
    scores[np.arange(len(scores)), sp.y_test_unseen] = 0.0  # right unseen class second best ...
    scores[:, sp.seen[0]] = 1.0  # ... behind seen class seen[0] by a margin of 1
    r = confusion_record(scores, sp, gamma=0.0)
    assert r["unseen_mass"] == 0 and r["correct"] == 0 and r["unseen_mass_cal"] == 0
    shares = np.array(r["shares"])
    assert shares.shape == (len(sp.unseen), n) and np.allclose(shares[:, r["classes"].index(sp.seen[0])], 1)
    r2 = confusion_record(scores, sp, gamma=1.5)  # calibrated stacking moves every example back
    assert r2["unseen_mass"] == 0 and r2["unseen_mass_cal"] == 1


class MeanPlusResidual:
    """A perfect generator of linear_split: a class's real mean plus a real residual of that class."""

    device = "cpu"

    def __init__(self, sp):
        x = np.concatenate([sp.x_train, sp.x_test_unseen])
        y = np.concatenate([sp.y_train, sp.y_test_unseen])
        self.x, self.y = x, y

    def sample(self, n, y, generator=None):
        import torch

        rng = np.random.default_rng(generator.initial_seed())
        y = y.numpy()
        out = np.stack([self.x[rng.choice(np.flatnonzero(self.y == c))] for c in y])
        return torch.from_numpy(out.astype(np.float32))


def test_a_generator_of_real_features_looks_real():
    sp = linear_split()
    scores = np.zeros((len(sp.y_test_unseen), len(sp.attributes)))
    scores[np.arange(len(scores)), sp.y_test_unseen] = 1.0
    d = diagnose(MeanPlusResidual(sp), sp, scores, gamma=0.0, n_synth=50, seed=0)
    assert d["gen_seen_to_real_seen"] > 0.9  # real training features stand in for the test ones
    assert d["probe_unseen"] <= 0.7 and d["probe_seen"] <= 0.7  # (the unseen "fakes" are the test rows themselves)
    assert d["confusion_unseen"]["correct"] == 1.0 and d["confusion_unseen"]["unseen_mass"] == 1.0


def test_the_ridge_generator_is_found_out_on_the_unseen_classes_only():
    from vaelab.zsl.ridge import RidgeGenerator

    sp = linear_split()
    scores = np.zeros((len(sp.y_test_unseen), len(sp.attributes)))
    d = diagnose(RidgeGenerator(sp.x_train, sp.y_train, sp.attributes, sp.seen), sp, scores, gamma=0.0, n_synth=50, seed=0)
    # seen classes: real means + real residuals, so real-like; unseen: predicted means, off enough for a linear probe
    assert d["gen_seen_to_real_seen"] > 0.9 and d["probe_seen"] < 0.7 and d["probe_unseen"] > d["probe_seen"] + 0.2
