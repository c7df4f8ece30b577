"""Calibrated stacking and AUSUC (metrics/zsl.py) against hand-computed curves, and the validation
split on which γ is chosen (seen classes only)."""
import numpy as np
import pytest

from vaelab.metrics.zsl import ausuc, best_gamma, calibrated_scores, seen_unseen_curve, zsl_scores
from vaelab.zsl.calibrate import pseudo_unseen_classes, validation_split

from zsl_synthetic import linear_split

SEEN, UNSEEN = [0, 1], [2, 3]
# unseen test examples (classes 2, 3, 3) and seen ones (0, 1); columns are classes 0..3
S_U = np.array([[0.5, 0, 1, 0],    # class 2: best unseen 2 (right), margin Δ = 0.5 − 1 = −0.5
                [2.0, 0, 0, 1],    # class 3: best unseen 3 (right), Δ = 2 − 1 = 1
                [0.0, 1, 0.5, 0]])  # class 3: best unseen 2 (wrong), Δ = 1 − 0.5 = 0.5
Y_U = np.array([2, 3, 3])
S_S = np.array([[1.0, 0, 0, 3],    # class 0: best seen 0 (right), Δ = 1 − 3 = −2
                [0.0, 2, 0, 0]])   # class 1: best seen 1 (right), Δ = 2
Y_S = np.array([0, 1])


def test_the_seen_unseen_curve_of_a_hand_built_score_matrix():
    g, s, u = seen_unseen_curve(S_U, Y_U, S_S, Y_S, UNSEEN, SEEN)
    # per-class means: class 2 weighs 1/2, each class-3 example 1/4; each seen example 1/2
    np.testing.assert_allclose(g, [-np.inf, -2, -0.5, 0.5, 1, 2])
    np.testing.assert_allclose(s, [1, 0.5, 0.5, 0.5, 0.5, 0])
    np.testing.assert_allclose(u, [0, 0, 0.5, 0.5, 0.75, 0.75])
    # the area: flat at u = 0 from s = 1 to 0.5, vertical steps, then u = 0.75 from s = 0.5 to 0
    assert ausuc(S_U, Y_U, S_S, Y_S, UNSEEN, SEEN) == pytest.approx(0.375)


def test_calibrated_stacking_at_a_given_gamma_and_the_best_gamma():
    plain = zsl_scores(S_U, Y_U, S_S, Y_S, UNSEEN, SEEN)
    at0 = calibrated_scores(S_U, Y_U, S_S, Y_S, UNSEEN, SEEN, 0.0)
    assert (at0["u"], at0["s"]) == (plain["u"], plain["s"]) == (0.5, 0.5)
    g = best_gamma(S_U, Y_U, S_S, Y_S, UNSEEN, SEEN)
    assert g == pytest.approx(1.5)  # the middle of the step γ ∈ [1, 2), where H = 2·0.75·0.5/1.25 = 0.6
    assert calibrated_scores(S_U, Y_U, S_S, Y_S, UNSEEN, SEEN, g) == pytest.approx({"u": 0.75, "s": 0.5, "H": 0.6})
    assert calibrated_scores(S_U, Y_U, S_S, Y_S, UNSEEN, SEEN, 10.0) == pytest.approx({"u": 0.75, "s": 0.0, "H": 0.0})


def test_the_curve_agrees_with_calibrated_stacking_at_every_step():
    rng = np.random.default_rng(3)
    seen, unseen = [0, 1, 2, 4], [3, 5]
    yu, ys = rng.choice(unseen, 40), rng.choice(seen, 60)
    su, ss = rng.standard_normal((40, 6)), rng.standard_normal((60, 6))
    su[np.arange(40), yu] += 1.0
    ss[np.arange(60), ys] += 1.0
    g, s, u = seen_unseen_curve(su, yu, ss, ys, unseen, seen)
    mids = np.concatenate([[g[1] - 1], (g[1:-1] + g[2:]) / 2, [g[-1] + 1]])
    for gamma, s_k, u_k in zip(mids, s, u):
        r = calibrated_scores(su, yu, ss, ys, unseen, seen, gamma)
        assert (r["s"], r["u"]) == pytest.approx((s_k, u_k))
    assert s[0] == pytest.approx(zsl_scores(ss, ys, ss, ys, seen, seen)["T1"])  # γ → −∞: accuracy among the seen classes
    assert u[-1] == pytest.approx(zsl_scores(su, yu, ss, ys, unseen, seen)["T1"])  # γ → +∞: T1
    assert s[-1] == 0 and u[0] == 0 and np.all(np.diff(s) <= 0) and np.all(np.diff(u) >= 0)
    assert 0 < ausuc(su, yu, ss, ys, unseen, seen) < s[0] * u[-1]


def test_the_validation_split_holds_only_seen_classes():
    sp = linear_split()
    pu = pseudo_unseen_classes(sp.seen)
    assert pu == sorted(sp.seen)[-2:] and pseudo_unseen_classes(sp.seen, [5, 1]) == [1, 5]
    v = validation_split(sp, pu, "transductive", seed=0)
    assert v.unseen == pu and set(v.seen) == set(sp.seen) - set(pu)
    for part in (v.y_train, v.y_test_seen, v.y_test_unseen):
        assert set(part.tolist()) <= set(sp.seen)
    assert set(v.y_test_unseen.tolist()) == set(pu) and not set(v.y_train.tolist()) & set(pu)
    # the held-out seen features are not in the fitting set
    rows = {r.tobytes() for r in v.x_train}
    assert not any(r.tobytes() in rows for r in v.x_test_seen)
    assert len(v.x_unlabelled) == len(v.y_test_unseen)
    assert validation_split(sp, pu, "inductive", seed=0).x_unlabelled is None
    with pytest.raises(ValueError, match="pseudo-unseen"):
        validation_split(sp, pu[:1], "inductive", seed=0)
