"""`vaelab evaluate` and `vaelab compare` on dsprites: the reference classifier's data hash of on-demand
images, the disentanglement metrics in eval.json (posterior mean, seeded, n/a without a Gaussian encoder),
the factor traversal saved with the run's figures, and the study's disentanglement table and figures.

Tiny everywhere: a 1-epoch classifier on 256 images, runs of 1 epoch on 200 images with the dcgan backbone,
and metric counts of a few hundred draws (patched into the ``quick`` mode)."""
import json
import re
import shutil

import pytest

import vaelab.rundir as R
import vaelab.model_figures as MF
import vaelab.run_figures as F
from vaelab import scoring
from vaelab.cli import main
from vaelab.data import dsprites, factor_sampler, head, load_dataset
from vaelab.report import write_report

TINY_COUNTS = {"quick": True, "beta_vae.n_train": 60, "beta_vae.n_eval": 30, "beta_vae.group_size": 4,
               "factor_vae.n_train": 60, "factor_vae.n_eval": 30, "factor_vae.group_size": 4, "factor_vae.n_variance": 200,
               "mig.n_train": 300, "dci.n_train": 300, "dci.n_test": 100, "dci.n_estimators": 3,
               "sap.n_train": 300, "sap.n_test": 100}
RUN = ["--dataset", "dsprites", "--train-size", "200", "--backbone", "dcgan", "--latent-dim", "4", "--epochs", "1"]
EVAL = ["--n-samples", "20", "--iwae-k", "2", "--iwae-n", "10", "--map-points", "60"]


@pytest.fixture(scope="module", autouse=True)
def small_test_split():
    """dsprites' test split cut to 600 combinations for this module (evaluate runs the classifier and the
    model over all of it); the cached split is dropped before and after."""
    mp = pytest.MonkeyPatch()
    mp.setattr(dsprites.procedural, "TEST_SIZE", 600)  # where test_combinations reads it
    dsprites.test_combinations.cache_clear()
    yield
    mp.undo()
    dsprites.test_combinations.cache_clear()


@pytest.fixture(scope="module")
def tiny_counts():
    mp = pytest.MonkeyPatch()
    mp.setitem(scoring.DISENTANGLEMENT_MODES, "quick", TINY_COUNTS)
    yield
    mp.undo()


@pytest.fixture(scope="module")
def dsprites_classifier():
    """A 1-epoch shape classifier on 256 images, patched in as dsprites' recipe for this module."""
    from vaelab import reference_classifier as rc

    mp = pytest.MonkeyPatch()
    mp.setitem(rc.RECIPES, "dsprites", rc.Recipe(epochs=1, shift=0, n_train=256))
    try:
        yield rc.load_or_train("dsprites")
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def run(tmp_path_factory, dsprites_classifier, tiny_counts):
    out = tmp_path_factory.mktemp("dis") / "vae"
    assert main(["train", "vae", *RUN, "--no-progress", "--out", str(out)]) == 0
    assert main(["evaluate", str(out), *EVAL, "--disentanglement", "quick", "-q"]) == 0
    return out


def test_the_data_hash_of_on_demand_images_is_cheap_and_follows_the_rows_and_the_drawing(monkeypatch):
    from vaelab.reference_classifier import data_hash

    train = load_dataset("dsprites", "train")
    h = data_hash(train)  # 737,280 images: never made into one array (that raises DataError)
    assert h == data_hash(load_dataset("dsprites", "train")) and h != data_hash(head(train, 1000))
    monkeypatch.setattr(dsprites.procedural, "HEART_SHIFT", 0.3)  # another drawing rule: another hash
    assert data_hash(train) != h


def test_evaluate_writes_the_disentanglement_metrics_and_the_factor_traversal(run):
    ev = json.loads((run / "eval.json").read_text())
    for key in scoring.DISENTANGLEMENT_KEYS:
        assert isinstance(ev[key], float), key
    assert 0 <= ev["disentanglement.mig"] <= 1 and ev["disentanglement.beta_vae.eval_accuracy"] >= 0
    dis = ev["meta"]["disentanglement"]
    assert dis["mode"] == "quick" and dis["options"]["dci"]["n_estimators"] == 3 and dis["options"]["mig"]["n_train"] == 300
    assert ev["meta"]["classifier"]["recipe"]["n_train"] == 256 and isinstance(ev["recon_accuracy"], float)
    index = json.loads((run / "figures" / "index.json").read_text())
    ft = index["figures"]["factor_traversal"]
    assert ft["file"] == "factor-traversal.png" and (run / "figures" / ft["file"]).stat().st_size > 1000
    assert ft["dims"] == ft["latent_dims"] == 4 and len(ft["images"]) == 3 and ft["values"][0] == -2.0
    test = load_dataset("dsprites", "test")
    assert [int(test.labels[i]) for i in ft["images"]] == [0, 1, 2]  # one seed image of each shape


def test_the_metrics_are_seeded_skippable_and_na_without_a_gaussian_encoder(run, tiny_counts):
    v = R.load(run)
    sampler = factor_sampler("dsprites")
    a = scoring.disentanglement_scores(v, sampler, "quick", 7, 100)
    assert a == scoring.disentanglement_scores(v, sampler, "quick", 7, 100)
    assert a != scoring.disentanglement_scores(v, sampler, "quick", 8, 100)
    off = scoring.disentanglement_scores(v, sampler, "none", 0, 100)
    assert set(off) == set(scoring.DISENTANGLEMENT_KEYS) and all(m["reason"].startswith("skipped") for m in off.values())
    vq = R.build_variant("vq-vae", {"data_shape": (1, 64, 64), "backbone": "small", "n_classes": 3}, 0)
    na = scoring.disentanglement_scores(vq, sampler, "quick", 0, 100)
    assert all(m["available"] is False and "Gaussian encoder" in m["reason"] for m in na.values())


def test_a_bad_mode_is_one_line(run, capsys):
    assert main(["evaluate", str(run), "--disentanglement", "full", "--no-write"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--disentanglement: 'full' is not valid; choose one of standard, quick, none" in err and "\n" not in err


def test_the_study_report_has_the_disentanglement_table_and_the_traversals(tmp_path, dsprites_classifier, tiny_counts, monkeypatch):
    out = tmp_path / "study"
    assert main(["compare", "--variants", "vae,beta-tcvae", "--seeds", "0", *RUN, *EVAL, "--disentanglement", "quick",
                 "--no-progress", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["train_size"] == 200 and "--train-size 200" in res["command"]
    for v in res["variants"].values():
        assert v["metrics"]["disentanglement.mig"]["n"] == 1
    md = (out / "results.md").read_text()
    assert "## Disentanglement (mean ± sd over seeds)" in md and "| β-TCVAE | 1 |" in md and "dci: n_train=300" in md
    # the page again, with no model to be had: the figures are the runs' saved ones
    for name in ("load", "evaluate_run", "make_figures"):
        monkeypatch.setattr(R, name, lambda *a, **k: pytest.fail("the report ran a model"))
    for name in ("write_figures", "factor_traversal", "kl_per_dim"):
        for mod in (F, MF):  # run_figures re-exports model_figures' drawings
            if hasattr(mod, name):
                monkeypatch.setattr(mod, name, lambda *a, **k: pytest.fail("the report drew from a model"))
    shutil.rmtree(out / "report")
    html = write_report(out).read_text()
    table = re.search(r'<table id="disentanglement-results">.*?</table>', html, re.S).group(0)
    assert table.count('<tr data-variant=') == 2 and table.count('data-key="disentanglement.') >= 2 * 11
    assert "MIG" in table and "DCI disent." in table
    for variant in ("vae", "beta-tcvae"):
        src = f"img/{variant}-factor_traversal.png"
        assert f'<img src="{src}"' in html
        assert (out / "report" / src).read_bytes() == (out / "runs" / f"{variant}-s0" / "figures" / "factor-traversal.png").read_bytes()


def test_no_disentanglement_section_without_factors():
    from vaelab.report.html import disentanglement_section

    results = {"settings": {"variants": ["vae"]}, "variants": {"vae": {"label": "VAE", "n_ok": 1, "metrics": {
        "recon_accuracy": {"mean": 0.9, "sd": None, "n": 1, "values": [0.9]}}}}, "runs": []}
    assert disentanglement_section(results, {}) == ""
