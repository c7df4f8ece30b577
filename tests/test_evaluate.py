"""`vaelab evaluate` / evaluate_run on a tiny trained run: every metric present, absent ones with a
reason, conditional and clustering paths, and one-line errors for bad run dirs."""
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors import safe_open

from vaelab.cli import main
from vaelab.rundir import evaluate_run
from vaelab.scoring import is_available
from vaelab.scoring import CLUSTER_KEYS, LIKELIHOOD_KEYS, PER_IMAGE_FILE, SAMPLE_KEYS, finite_or_absent, format_table, standard_error
from vaelab.models.base import NotAvailable
from vaelab.models.vae import VAE
from vaelab.rundir import load, train
from vaelab.training.config import TrainConfig

ALL_KEYS = {"recon_accuracy", "real_accuracy", *SAMPLE_KEYS, "cond_accuracy", *LIKELIHOOD_KEYS, *CLUSTER_KEYS,
            "parameters", "seconds_per_epoch", "images_per_s", "train_seconds", "images_per_epoch", "load_avg_max", "meta"}
SMALL = ["--n-samples", "200", "--iwae-k", "20", "--iwae-n", "40"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("eval") / "vae-tiny"
    train("vae", {"backbone": "small", "latent_dim": 4},
                 TrainConfig(dataset="mnist-5k", epochs=1, batch_size=25, lr=2e-3, binarize="dynamic", progress=False, eval_every=0), run)
    return run


def test_cli_writes_every_metric(tiny_run, mnist5k_quick_classifier, capsys):
    assert main(["evaluate", str(tiny_run), *SMALL, "--quiet"]) == 0
    table = capsys.readouterr().out
    res = json.loads((tiny_run / "eval.json").read_text())
    assert set(res) == ALL_KEYS
    for k in ("recon_accuracy", "real_accuracy", "precision", "recall", "sample_class_tv"):
        assert 0 <= res[k] <= 1, k
    assert res["real_accuracy"] > 0.9 and res["recon_accuracy"] > 0.3  # a trained model beats chance
    assert res["fid"] > 0 and 1 <= res["inception_score"] <= 10
    # the IWAE bound and the −ELBO on the same images, from the same draws: L_K ≥ mean log w, exactly
    assert res["iwae_nll"] <= res["neg_elbo_iwae_subset"]
    assert res["images_per_epoch"] == 4000 and res["load_avg_max"] >= 0
    assert sum(res["sample_class_histogram"]) == 200 and len(res["sample_class_histogram"]) == 10
    assert 0 < res["iwae_nll"] <= res["neg_elbo_iwae_subset"]  # log-mean-exp ≥ mean, on the same weights
    assert res["neg_elbo"] > 50
    for k in ("cond_accuracy", *CLUSTER_KEYS):
        assert res[k]["available"] is False and "vae" in res[k]["reason"]
    assert res["parameters"] == load(tiny_run).num_parameters()
    assert res["seconds_per_epoch"] > 0 and res["images_per_s"] > 0
    m = res["meta"]
    assert (m["dataset"], m["binarization"], m["n_samples"], m["iwae_k"], m["iwae_n"], m["n_test"]) == \
           ("mnist-5k", "dynamic", 200, 20, 40, 1000)
    assert m["classifier_test_accuracy"] == mnist5k_quick_classifier.test_accuracy and m["checkpoint"]["done"] is True
    assert "recon_accuracy" in table and "iwae_nll" in table and "K=20" in table


def test_evaluate_is_deterministic(tiny_run, mnist5k_quick_classifier):
    kw = dict(n_samples=100, iwae_k=5, iwae_n=10, seed=3, classifier=mnist5k_quick_classifier, write=False)
    a, b = evaluate_run(tiny_run, **kw), evaluate_run(tiny_run, **kw)
    drop = ("meta",)
    assert {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}
    c = evaluate_run(tiny_run, **{**kw, "seed": 4})
    assert c["fid"] != a["fid"] and c["recon_accuracy"] == a["recon_accuracy"]  # reconstructions use the mean


def test_evaluate_device_auto_is_cpu_here_and_recorded(tiny_run, mnist5k_quick_classifier):
    if torch.cuda.is_available():
        pytest.skip("checks auto on a machine without CUDA")
    kw = dict(n_samples=100, iwae_k=5, iwae_n=10, seed=3, classifier=mnist5k_quick_classifier, write=False)
    a, b = evaluate_run(tiny_run, **kw), evaluate_run(tiny_run, device="auto", **kw)
    assert a["meta"]["device"] == b["meta"]["device"] == "cpu"
    assert {k: v for k, v in a.items() if k != "meta"} == {k: v for k, v in b.items() if k != "meta"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("cmd", ["evaluate", "sample"])
def test_cuda_without_cuda_is_refused(tiny_run, tmp_path, cmd, capsys):
    before = sorted(p.name for p in tiny_run.iterdir())
    out = ["--no-write"] if cmd == "evaluate" else ["--out", str(tmp_path / "s.png")]
    assert main([cmd, str(tiny_run), "--device", "cuda", *out]) == 2
    err = capsys.readouterr().err
    assert "--device: cuda asked for" in err and "no CUDA device" in err and err.count("\n") == 1
    assert sorted(p.name for p in tiny_run.iterdir()) == before and not (tmp_path / "s.png").exists()


class CondClusterVAE(VAE):
    """A test-only conditional VAE that also assigns clusters (not registered)."""

    conditional = True
    clusters = True

    def predict(self, x):
        return (self.encode(x, torch.zeros(x.shape[0], dtype=torch.long)).mean[:, :2] > 0).long() @ torch.tensor([1, 2])


class BareVAE(VAE):
    """A test-only variant with no sampler and no likelihood."""

    def sample(self, n, y=None, generator=None):
        raise NotAvailable("bare: no sampling")

    def log_weights(self, x, k, y=None):
        raise NotAvailable("bare: no tractable likelihood bound")


class TaskVAE(VAE):
    """A test-only variant with task metrics of its own."""

    def task_metrics(self, x, y, generator=None):
        return {"task_mean_pixel": float(x.mean()), "task_n": float(len(y))}


class ClashVAE(VAE):
    def task_metrics(self, x, y, generator=None):
        return {"fid": 0.0}


def _as(cls, monkeypatch):
    import vaelab.rundir.evaluation as R  # where evaluate_run looks up load

    real_load = R.load

    def load(run_dir, device="cpu"):
        v = real_load(run_dir, device)
        w = cls(v.config)
        if not cls.conditional:
            w.load_state_dict(v.state_dict())
        return w.eval()

    monkeypatch.setattr(R, "load", load)


def test_conditional_and_clustering_paths(tiny_run, mnist5k_quick_classifier, monkeypatch):
    _as(CondClusterVAE, monkeypatch)
    res = evaluate_run(tiny_run, n_samples=100, iwae_k=4, iwae_n=8, classifier=mnist5k_quick_classifier, write=False)
    assert 0 <= res["cond_accuracy"] <= 1
    for k in CLUSTER_KEYS:
        assert isinstance(res[k], float), k
    assert 0.1 <= res["cluster_accuracy"] <= 1
    assert res["meta"]["sample_labels"].startswith("balanced")


def test_unavailable_metrics_say_why(tiny_run, mnist5k_quick_classifier, monkeypatch):
    _as(BareVAE, monkeypatch)
    res = evaluate_run(tiny_run, n_samples=50, iwae_k=4, iwae_n=8, classifier=mnist5k_quick_classifier, write=False)
    assert set(res) == ALL_KEYS
    for k in SAMPLE_KEYS:
        assert res[k] == {"available": False, "reason": "bare: no sampling"}, k
    for k in LIKELIHOOD_KEYS:
        assert res[k] == {"available": False, "reason": "bare: no tractable likelihood bound"}, k
    (tiny_run / PER_IMAGE_FILE).write_bytes(b"stale")
    evaluate_run(tiny_run, n_samples=50, iwae_k=4, iwae_n=8, classifier=mnist5k_quick_classifier, figures=False)
    assert not (tiny_run / PER_IMAGE_FILE).exists()  # no bound, no per-image values: a stale file goes
    assert is_available(res["recon_accuracy"]) and not is_available(res["cond_accuracy"])


def test_per_image_likelihoods_are_saved_with_their_standard_errors(tiny_run, mnist5k_quick_classifier, capsys):
    res = evaluate_run(tiny_run, n_samples=50, iwae_k=4, iwae_n=30, seed=2, classifier=mnist5k_quick_classifier,
                       figures=False)
    path = tiny_run / PER_IMAGE_FILE
    assert path.is_file() and json.loads((tiny_run / "eval.json").read_text()) == res
    with safe_open(str(path), "numpy") as f:
        meta = json.loads(f.metadata()["meta"])
        per = {k: f.get_tensor(k) for k in f.keys()}
    assert set(per) == {"neg_elbo", "iwae_nll", "neg_elbo_iwae_subset"}
    assert per["neg_elbo"].shape == (1000,) and per["iwae_nll"].shape == per["neg_elbo_iwae_subset"].shape == (30,)
    assert all(a.dtype == np.float64 for a in per.values())
    for key in ("neg_elbo", "iwae_nll", "neg_elbo_iwae_subset"):  # the saved values are the ones eval.json averages
        assert per[key].mean() == pytest.approx(res[key], rel=1e-12, abs=0)
    for key, se in (("neg_elbo", "neg_elbo_se"), ("iwae_nll", "iwae_nll_se")):
        x = per[key]
        ref = np.sqrt(np.sum((x - x.mean()) ** 2) / (len(x) - 1)) / np.sqrt(len(x))
        assert res[se] == pytest.approx(ref, rel=1e-12) and res[se] > 0
    assert np.all(per["iwae_nll"] <= per["neg_elbo_iwae_subset"] + 1e-9)
    assert (meta["dataset"], meta["n_test"], meta["iwae_n"], meta["iwae_k"], meta["binarization"], meta["binarize_seed"]) == \
           ("mnist-5k", "1000", "30", "4", "dynamic", "0")
    assert len(meta["inputs_sha256"]) == 64
    table = format_table(res)
    assert f"{res['iwae_nll']:.2f} ± {res['iwae_nll_se']:.2f}" in table
    assert f"{res['neg_elbo']:.2f} ± {res['neg_elbo_se']:.2f}" in table
    # the IWAE bound skipped: its SE absent with it, and the file holds only the −ELBO
    res = evaluate_run(tiny_run, n_samples=50, iwae_k=0, iwae_n=30, seed=2, classifier=mnist5k_quick_classifier,
                       figures=False)
    assert res["iwae_nll_se"] == res["iwae_nll"] and not is_available(res["iwae_nll_se"])
    assert is_available(res["neg_elbo_se"])
    with safe_open(str(path), "numpy") as f:
        assert set(f.keys()) == {"neg_elbo"}


def test_standard_error_is_absent_exactly_where_its_mean_is():
    out = finite_or_absent({"neg_elbo": float("nan"), "neg_elbo_se": 1.0, "iwae_nll": 3.0, "iwae_nll_se": 0.5})
    assert not is_available(out["neg_elbo"]) and out["neg_elbo_se"] == out["neg_elbo"]
    assert (out["iwae_nll"], out["iwae_nll_se"]) == (3.0, 0.5)
    assert standard_error(np.array([1.0, 2.0, 4.0])) == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1) / np.sqrt(3))


def test_task_metrics_are_added_and_may_not_overwrite_standard_ones(tiny_run, mnist5k_quick_classifier, monkeypatch):
    _as(TaskVAE, monkeypatch)
    res = evaluate_run(tiny_run, n_samples=50, iwae_k=2, iwae_n=4, classifier=mnist5k_quick_classifier, write=False)
    assert set(res) == ALL_KEYS | {"task_mean_pixel", "task_n"}
    assert res["task_n"] == 1000.0 and 0 < res["task_mean_pixel"] < 1  # mnist-5k's 1000 test images
    _as(ClashVAE, monkeypatch)
    with pytest.raises(RuntimeError, match="fid"):
        evaluate_run(tiny_run, n_samples=50, iwae_k=2, iwae_n=4, classifier=mnist5k_quick_classifier, write=False)


def test_bad_run_dirs_exit_2_with_one_line(tmp_path, tiny_run, capsys):
    assert main(["evaluate", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nope" in err
    broken = tmp_path / "broken"
    shutil.copytree(tiny_run, broken)
    (broken / "checkpoint.safetensors").unlink()
    assert main(["evaluate", str(broken), *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "checkpoint" in err
    assert main(["evaluate", str(tiny_run), "--n-samples", "1"]) == 2
    assert "--n-samples" in capsys.readouterr().err


# ----- the figures that need the model: made by the evaluation, saved in the run dir --------------------------
FIGURES = {"samples": "samples.png", "recon": "recon.png", "traversal": "traversal.png", "map": "map.png"}


def test_evaluate_saves_the_figures_with_an_index(tiny_run, mnist5k_quick_classifier, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("eval.json", "figures"))
    assert main(["evaluate", str(run), *SMALL, "--map-points", "50", "--quiet"]) == 0
    index = json.loads((run / "figures" / "index.json").read_text())
    assert (index["schema"], index["variant"], index["kind"]) == (1, "vae", "image")
    assert {k: e.get("file") for k, e in index["figures"].items()} == FIGURES
    assert all((run / "figures" / f).read_bytes()[:4] == b"\x89PNG" for f in FIGURES.values())
    assert index["figures"]["map"]["points"] == index["settings"]["map_points"] == 50
    assert index["figures"]["traversal"]["latent_dims"] == 4 and index["figures"]["recon"]["n"] == 10
    assert index["settings"]["inputs"] == "static binarisation"  # the run binarises: shown deterministically
    assert "figures" in json.loads((run / "eval.json").read_text())["meta"]["stage_seconds"]
    # --figures-only: drawn again, the same bytes (seeded), eval.json as it was
    drawn = {p.name: p.read_bytes() for p in (run / "figures").iterdir() if p.suffix == ".png"}
    stamp = (run / "eval.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["evaluate", str(run), "--figures-only", "--map-points", "50", "--quiet"]) == 0
    assert f"{run}/figures/map.png" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in (run / "figures").iterdir() if p.suffix == ".png"} == drawn
    assert (run / "eval.json").stat().st_mtime_ns == stamp


def test_no_figures_without_writing_or_when_asked(tiny_run, mnist5k_quick_classifier, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("eval.json", "figures"))
    assert main(["evaluate", str(run), *SMALL, "--no-write", "--quiet"]) == 0
    assert not (run / "figures").exists() and not (run / "eval.json").exists()
    assert main(["evaluate", str(run), *SMALL, "--no-figures", "--quiet"]) == 0
    assert not (run / "figures").exists() and (run / "eval.json").is_file()
    assert main(["evaluate", str(run), "--figures-only", "--no-write"]) == 2


def test_a_figure_the_variant_cannot_make_is_listed_with_the_reason(tiny_run, tmp_path, monkeypatch):
    from vaelab.data import load_dataset
    from vaelab.run_figures import write_figures

    test = load_dataset("mnist-5k", "test")
    bare = BareVAE(load(tiny_run).config)
    bare.load_state_dict(load(tiny_run).state_dict())
    monkeypatch.setattr(BareVAE, "embed", lambda self, x, y=None: (_ for _ in ()).throw(RuntimeError("embed broke")))
    index = write_figures(bare.eval(), tmp_path / "run", test, "dynamic", map_points=20)
    f = index["figures"]
    assert f["samples"] == {"reason": "bare: no sampling"}  # NotAvailable: the variant's own words
    assert f["map"] == {"reason": "could not draw: RuntimeError: embed broke", "failed": True}
    assert f["recon"]["file"] == "recon.png" and f["traversal"]["file"] == "traversal.png"
    assert sorted(p.name for p in (tmp_path / "run" / "figures").iterdir()) == ["index.json", "recon.png", "traversal.png"]
