"""Zero-shot learning: the benchmark's contract, its splits, the metrics, the WGAN-GP penalty, ESZSL's
closed form, the runner's invariants (no unseen label on the transductive path, determinism) and the CLI."""
import hashlib
import json
import math

import numpy as np
import pytest
import torch

from vaelab.cli import main
from vaelab.losses.adversarial import critic_loss, gradient_penalty
from vaelab.metrics.zsl import harmonic_mean, per_class_accuracy, restricted_argmax, zsl_scores
from vaelab.zsl.benchmark import ATTRIBUTES, FOLDS, attribute_matrix, class_attributes, fold_classes
from vaelab.zsl.eszsl import eszsl_fit, eszsl_scores
from vaelab.zsl.features import Features, extractor_training_set, make_split
from vaelab.zsl.run import ZSLConfig, pseudo_label, run_generator, synth_count
from vaelab.data import Dataset


# ----- the benchmark's contract --------------------------------------------------------------------
@pytest.mark.parametrize("table", ["mnist", "fashion-mnist"])
def test_attribute_tables_are_complete_and_distinct(table):
    t = ATTRIBUTES[table]
    m = attribute_matrix(table)
    assert m.shape == (10, len(t["attributes"])) and m.shape[1] >= 12
    assert set(np.unique(m)) <= {0.0, 1.0}
    assert len({tuple(r) for r in m}) == 10, "two classes share an attribute vector"
    assert all(name and definition.endswith(".") for name, definition in t["attributes"])
    assert len({name for name, _ in t["attributes"]}) == m.shape[1]
    np.testing.assert_allclose(np.linalg.norm(class_attributes(table), axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("table", ["mnist", "fashion-mnist"])
def test_folds_split_the_classes(table):
    assert len(FOLDS[table]) >= 3
    for k in range(len(FOLDS[table])):
        seen, unseen = fold_classes(table, k)
        assert len(unseen) == 3 and len(seen) == 7 and sorted(seen + unseen) == list(range(10))
    assert len({tuple(sorted(f)) for f in FOLDS[table]}) == len(FOLDS[table])
    assert fold_classes("mnist-5k", 1) == fold_classes("mnist", 1)


def fake_features(n_per_class=30, dim=12, seed=0, fold=0):
    """Features whose class is readable (class mean + noise), with MNIST's fold 0."""
    rng = np.random.default_rng(seed)
    seen, unseen = fold_classes("mnist", fold)
    means = rng.random((10, dim)) * 3

    def draw(n):
        y = np.repeat(np.arange(10), n)
        return np.abs(means[y] + 0.3 * rng.standard_normal((len(y), dim))).astype(np.float32), y

    xtr, ytr = draw(n_per_class)
    xte, yte = draw(n_per_class // 2)
    return Features("mnist-5k", fold, seen, unseen, class_attributes("mnist"), xtr, ytr, xte, yte, {})


def test_extractor_never_sees_an_unseen_class():
    seen, unseen = fold_classes("mnist", 0)
    imgs = np.arange(40 * 4, dtype=np.uint8).reshape(40, 1, 2, 2)
    ds = Dataset("x", "train", imgs, np.arange(40) % 10)
    ex = extractor_training_set(ds, seen)
    kept = ds.labels[np.isin(ds.labels, seen)]
    assert len(ex) == len(kept) and ex.n_classes == 7 and set(ex.labels) == set(range(7))
    np.testing.assert_array_equal(np.asarray(seen)[ex.labels], kept)  # renumbered, not relabelled


def test_split_invariants():
    f = fake_features()
    ind = make_split(f, "inductive", 0, seed=0)
    assert set(ind.y_train) == set(f.seen) and ind.x_unlabelled is None
    assert set(ind.y_test_seen) == set(f.seen) and set(ind.y_test_unseen) == set(f.unseen)
    assert len(ind.y_test_seen) + len(ind.y_test_unseen) == len(f.y_test)
    assert ind.x_train.min() >= 0 and ind.x_train.max() <= 1
    tr = make_split(f, "transductive", 0, seed=0)
    assert len(tr.x_unlabelled) == int(np.isin(f.y_train, f.unseen).sum())
    np.testing.assert_array_equal(tr.x_train, ind.x_train)
    few = make_split(f, "inductive", 5, seed=0)
    extra = few.y_train[np.isin(few.y_train, f.unseen)]
    assert sorted(np.bincount(extra, minlength=10)[f.unseen]) == [5, 5, 5]
    assert len(few.y_train) == len(ind.y_train) + 15


def permute_unseen_labels(f: Features, seed=1) -> Features:
    """The same features with the unseen classes' training labels shuffled among the unseen classes."""
    rng = np.random.default_rng(seed)
    y = f.y_train.copy()
    m = np.isin(y, f.unseen)
    y[m] = rng.permutation(y[m])
    assert not np.array_equal(y, f.y_train)
    return Features(f.dataset, f.fold, f.seen, f.unseen, f.attributes, f.x_train, y, f.x_test, f.y_test, {})


def test_the_transductive_split_never_reads_unseen_labels():
    f = fake_features()
    a, b = make_split(f, "transductive", 0, 3), make_split(permute_unseen_labels(f), "transductive", 0, 3)
    for k in ("x_train", "y_train", "x_unlabelled", "x_test_seen", "x_test_unseen"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))


def _tree_hash(d):
    h = hashlib.sha256()
    for p in sorted(d.rglob("checkpoint.safetensors")):
        h.update(p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("method", ["f-vaegan-d2", "zero-vae-gan"])
def test_transductive_runs_are_bitwise_unchanged_by_permuted_unseen_labels(method, tmp_path):
    f = fake_features()
    cfg = ZSLConfig(method=method, setting="transductive", epochs=2, batch_size=32, n_synth=20, refine_epochs=1,
                    model={"hidden": 16})
    ra = run_generator(cfg, make_split(f, "transductive", 0, 0), tmp_path / "a")
    rb = run_generator(cfg, make_split(permute_unseen_labels(f), "transductive", 0, 0), tmp_path / "b")
    for k in ("T1", "u", "s", "H"):
        assert ra[k] == rb[k]
    assert _tree_hash(tmp_path / "a") == _tree_hash(tmp_path / "b")
    if method == "zero-vae-gan":
        assert ra["pseudo_labelled"] > 0 and "before_self_training" in ra


def test_a_run_is_deterministic(tmp_path):
    f = fake_features()
    cfg = ZSLConfig(method="f-clswgan", epochs=2, batch_size=32, n_synth=20, model={"hidden": 16, "classifier_epochs": 1})
    ra = run_generator(cfg, make_split(f, "inductive", 0, 0), tmp_path / "a")
    rb = run_generator(cfg, make_split(f, "inductive", 0, 0), tmp_path / "b")
    assert {k: ra[k] for k in ("T1", "u", "s", "H")} == {k: rb[k] for k in ("T1", "u", "s", "H")}
    assert _tree_hash(tmp_path / "a") == _tree_hash(tmp_path / "b")


@pytest.mark.parametrize("shots", [0, 5])
def test_the_default_synthetic_count_balances_the_gzsl_classes(shots):
    sp = make_split(fake_features(n_per_class=30), "inductive", shots, 0)
    per_seen = [int((sp.y_train == c).sum()) for c in sp.seen]
    assert synth_count(ZSLConfig(), sp) == round(sum(per_seen) / len(per_seen))  # the few-shot unseen ones do not count
    assert synth_count(ZSLConfig(n_synth=7), sp) == 7


def test_pseudo_labels_are_the_most_confident_per_class():
    scores = np.log(np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55], [0.3, 0.7]]))
    scores = np.concatenate([np.full((5, 2), -np.inf), scores], 1)  # classes 2 and 3
    idx, lab = pseudo_label(scores, [2, 3], 0.5)
    assert dict(zip(idx.tolist(), lab.tolist())) == {0: 2, 2: 3, 4: 3}  # class 2: 1 of 2; class 3: 2 of 3 (rounded)


# ----- metrics -------------------------------------------------------------------------------------
def test_per_class_accuracy_differs_from_per_sample_accuracy():
    true = np.array([0] * 90 + [1] * 10)
    pred = np.array([0] * 90 + [0] * 10)  # every class-1 example wrong
    assert float((pred == true).mean()) == pytest.approx(0.9)
    assert per_class_accuracy(pred, true, [0, 1]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no examples"):
        per_class_accuracy(pred, true, [0, 1, 2])


def test_perfect_and_seen_biased_classifiers():
    y_u, y_s = np.array([7, 8, 9, 9]), np.array([0, 1, 2])
    onehot = lambda y: np.eye(10)[y]  # noqa: E731
    perfect = zsl_scores(onehot(y_u), y_u, onehot(y_s), y_s, [7, 8, 9], [0, 1, 2])
    assert perfect == {"T1": 1.0, "u": 1.0, "s": 1.0, "H": 1.0}
    # a classifier that puts every unseen image into seen class 0 but ranks the right unseen class second
    biased_u = onehot(y_u) * 0.5 + onehot(np.zeros(4, dtype=int))
    r = zsl_scores(biased_u, y_u, onehot(y_s), y_s, [7, 8, 9], [0, 1, 2])
    assert r["T1"] == 1.0 and r["u"] == 0.0 and r["s"] == 1.0 and r["H"] == 0.0
    assert harmonic_mean(0.5, 1.0) == pytest.approx(2 / 3)
    np.testing.assert_array_equal(restricted_argmax(np.array([[5.0, 1, 2]]), [1, 2]), [2])


# ----- the Wasserstein critic's penalty ------------------------------------------------------------
def test_gradient_penalty_of_a_linear_critic_is_lambda_times_norm_gap_squared():
    torch.manual_seed(0)
    w = torch.randn(7, dtype=torch.float64)
    critic = lambda x: x @ w  # noqa: E731
    real, fake = torch.randn(5, 7, dtype=torch.float64), torch.randn(5, 7, dtype=torch.float64)
    gp = gradient_penalty(critic, real, fake, weight=10.0)
    assert float(gp) == pytest.approx(10.0 * (float(w.norm()) - 1) ** 2, rel=1e-6)
    loss, wd, _ = critic_loss(critic, real, fake, 10.0)
    assert float(wd) == pytest.approx(float((real @ w).mean() - (fake @ w).mean()), rel=1e-6)  # (critic_loss sums in float32)
    assert float(loss) == pytest.approx(-float(wd) + float(gp), rel=1e-6)


def test_gradient_penalty_samples_between_real_and_fake():
    """A critic D(x) = ‖x‖²/2 has gradient x̂: with ε given, the penalty is computed at ε real + (1 − ε) fake."""
    real, fake = torch.full((2, 3), 2.0, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64)
    eps = torch.tensor([0.5, 1.0], dtype=torch.float64)
    gp = gradient_penalty(lambda x: 0.5 * (x ** 2).sum(1), real, fake, weight=1.0, eps=eps)
    norms = np.array([math.sqrt(3) * 1.0, math.sqrt(3) * 2.0])
    assert float(gp.detach()) == pytest.approx(float(np.mean((norms - 1) ** 2)))


# ----- ESZSL ----------------------------------------------------------------------------------------
def test_eszsl_closed_form_is_a_stationary_point_of_its_objective():
    rng = np.random.default_rng(0)
    x, s = rng.standard_normal((40, 6)), rng.random((10, 5))
    y = np.arange(40) % 4
    classes = [0, 1, 2, 3]
    gamma, lam = 0.7, 0.3
    v = torch.tensor(eszsl_fit(x, y, s, classes, gamma, lam), requires_grad=True)
    X, S, Y = torch.tensor(x.T), torch.tensor(s[classes].T), torch.eye(4, dtype=torch.float64)[y]
    obj = ((X.T @ v @ S - Y) ** 2).sum() + gamma * ((v @ S) ** 2).sum() + lam * ((X.T @ v) ** 2).sum() \
        + gamma * lam * (v ** 2).sum()
    (g,) = torch.autograd.grad(obj, v)
    assert float(g.abs().max()) < 1e-8
    assert eszsl_scores(x, v.detach().numpy(), s).shape == (40, 10)


# ----- the command line ----------------------------------------------------------------------------
@pytest.mark.parametrize("argv, needle", [
    (["--method", "nope"], "--method"), (["--fold", "5"], "--fold"), (["--setting", "semi"], "--setting"),
    (["--shots", "3"], "--shots"), (["--shots", "5", "--setting", "transductive"], "inductive"),
    (["--dataset", "cifar"], "dataset"), (["--study", "--folds", "0,7"], "--folds"),
])
def test_bad_zsl_input_is_a_one_line_error(argv, needle, tmp_path, capsys):
    assert main(["zsl", "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err
    assert not (tmp_path / "o").exists()


def test_feature_generators_stay_out_of_the_image_commands(tmp_path, capsys):
    assert main(["train", "f-vaegan-d2", "--out", str(tmp_path / "r")]) == 2
    assert "vaelab zsl" in capsys.readouterr().err
    assert main(["compare", "--variants", "zero-vae-gan", "--out", str(tmp_path / "c")]) == 2
    assert not (tmp_path / "r").exists() and not (tmp_path / "c").exists()


def test_the_benchmark_page_agrees_with_the_code():
    from pathlib import Path

    from vaelab.zsl.benchmark import VERSION

    page = (Path(__file__).resolve().parents[1] / "docs" / "zsl.md").read_text()
    assert f"(version {VERSION})" in page
    for table, t in ATTRIBUTES.items():
        for i, (name, definition) in enumerate(t["attributes"]):
            assert f"| {i} | `{name}` | {definition} |" in page
        for c, row in zip(t["classes"], t["matrix"]):
            assert f"| {c} | " + " | ".join(str(v) for v in row) + " |" in page
        for k, unseen in enumerate(FOLDS[table]):
            assert f"| {table} | {k} | " in page
            line = next(ln for ln in page.splitlines() if ln.startswith(f"| {table} | {k} | "))
            assert line.split(" | ")[3] == ", ".join(str(c) for c in range(10) if c not in unseen) + " |"


def test_the_study_runs_its_grid_resumably_and_reports_it(tmp_path, monkeypatch):
    import dataclasses

    from vaelab.report import write_zsl_page as write_page
    from vaelab.zsl import run as zrun
    from vaelab.zsl.study import StudyGrid, run_study, runs_of

    monkeypatch.setattr(zrun, "load_features", lambda dataset, fold, data_dir=None, log=None, extractor="supervised": dataclasses.replace(
        fake_features(fold=fold), meta={"images_sha256": "x", "recipe": {}, "arch": "fake"}))
    base = ZSLConfig(epochs=1, batch_size=32, n_synth=10, model={"hidden": 8, "classifier_epochs": 1})
    g = StudyGrid(datasets=["mnist-5k"], methods=["f-clswgan", "eszsl"], settings=["inductive"], folds=[0], seeds=[0, 1],
                  shots=[0, 5], base=base, shot_methods=["f-clswgan"])
    assert len(runs_of(g)) == 2 * 2 + 2  # the grid, plus any-shot k=5 for the generator only
    rows = run_study(g, tmp_path, command="vaelab zsl --study")
    assert {(r["method"], r["shots"], r["n"]) for r in rows} == {("f-clswgan", 0, 2), ("eszsl", 0, 2), ("f-clswgan", 5, 2)}
    md = (tmp_path / "zsl-results.md").read_text()
    assert "| f-CLSWGAN | inductive |" in md and "| ESZSL | inductive |" in md and "CUB" in md and "| f-CLSWGAN | 5 |" in md
    assert "| H | H_cal | AUSUC | probe u | s/run |" in md
    eszsl_row = next(ln for ln in md.splitlines() if ln.startswith("| ESZSL | inductive |"))
    assert eszsl_row.split(" | ")[-2] == "–"  # ESZSL has no generated features to probe
    rec = json.loads((tmp_path / "runs" / "mnist-5k" / "f-clswgan-inductive-k0-f0-s1" / "zsl.json").read_text())
    assert {"gen_seen_to_real_seen", "probe_unseen", "probe_seen", "confusion_unseen"} <= set(rec["diagnostics"])
    assert "select" not in rec["config"] and "selection" not in rec  # a run without --select keeps its old keys
    res = json.loads((tmp_path / "zsl-results.json").read_text())
    assert res["n_runs"] == 6 and len(res["runs"]) == 6 and res["environment"]["machine"]["cpu"]
    one = next(r for r in res["runs"] if r["run_dir"].endswith("f-clswgan-inductive-k0-f0-s1"))
    assert one["config"]["seed"] == 1 and one["H"] == rec["H"] and one["machine"] == rec["machine"]
    assert "Collected on: " in md
    stamp = (tmp_path / "runs" / "mnist-5k" / "f-clswgan-inductive-k0-f0-s1" / "zsl.json").stat().st_mtime_ns
    from vaelab.zsl import methods

    monkeypatch.setattr(methods, "run_generator", lambda *a, **k: pytest.fail("a finished run was retrained"))
    run_study(g, tmp_path)
    assert (tmp_path / "runs" / "mnist-5k" / "f-clswgan-inductive-k0-f0-s1" / "zsl.json").stat().st_mtime_ns == stamp
    page = write_page(tmp_path).read_text()
    assert page.count("<table>") == 3 and "Zero-shot learning" in page and "not comparable" in page
    with pytest.raises(Exception, match="another config"):
        zrun.run(dataclasses.replace(base, method="eszsl", seed=0, lr=0.5), tmp_path / "runs" / "mnist-5k" / "eszsl-inductive-k0-f0-s0")
