"""`vaelab compare`: resumability (finished runs are not retrained, an interrupted one resumes), a
failing variant is recorded while the others go on, one row per variant with mean ± sd in the
tables, the plan (protocols, phase budgets, overrides) and one-line errors for bad input.

Tiny studies: mnist-5k, small backbone, 1–2 epochs, tiny evaluation sizes, the session's quick
mnist-5k reference classifier (tests/conftest.py)."""
import csv
import json
import statistics

import pytest

import vaelab.rundir as R
import vaelab.training.trainer as T
from vaelab.cli import main
from vaelab.commands.compare import parse_seeds
from vaelab.study import Settings, aggregate, plan
from vaelab.errors import ConfigError

TINY = ["--dataset", "mnist-5k", "--backbone", "small", "--latent-dim", "4", "--n-samples", "20", "--iwae-k", "2",
        "--iwae-n", "10", "--map-points", "60", "--no-progress"]


class Spy:
    """Wraps a function and records the keyword arguments of each call."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, *args, **kw):
        self.calls.append((args, kw))
        return self.fn(*args, **kw)


def test_interrupted_run_resumes_and_finished_runs_are_skipped(tmp_path, mnist5k_quick_classifier, monkeypatch, capsys):
    out = tmp_path / "study"
    args = ["compare", "--variants", "vae", "--epochs", "2", *TINY, "--out", str(out), "--no-report"]
    run = out / "runs" / "vae-s0"

    # 1. interrupted (Ctrl-C) at the start of epoch 2's bookkeeping: the epoch-1 checkpoint stays
    orig_end = T.Trainer._end_epoch

    def end_epoch(self, phase, st):
        if st.epoch == 2:
            raise KeyboardInterrupt
        orig_end(self, phase, st)

    monkeypatch.setattr(T.Trainer, "_end_epoch", end_epoch)
    assert main(args) == 130
    ck = json.loads((run / "checkpoint.json").read_text())
    assert (ck["done"], ck["completed"]) == (False, {"train": 1})
    assert not (run / "eval.json").exists() and not (out / "results.json").exists()
    monkeypatch.setattr(T.Trainer, "_end_epoch", orig_end)
    capsys.readouterr()

    # 2. the same command resumes that run from its checkpoint and finishes the study
    spy = Spy(R.train)
    monkeypatch.setattr(R, "train", spy)
    assert main(args) == 0
    assert len(spy.calls) == 1 and spy.calls[0][1].get("resume") is True
    err = capsys.readouterr().err
    assert "[1/1] vae seed 0: resuming" in err and "training epoch 2/2 done" in err
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["step"]) for r in recs] == [(1, 40), (2, 80)]  # 4000 images / batch 100
    assert json.loads((run / "checkpoint.json").read_text())["done"] is True
    assert (run / "eval.json").is_file() and (out / "results.json").is_file()
    stamp = (run / "checkpoint.safetensors").stat().st_mtime_ns, (run / "eval.json").stat().st_mtime_ns

    # 3. again: nothing is retrained or re-evaluated
    real_evaluate = R.evaluate_run

    def boom(*a, **k):
        raise AssertionError("must not run")

    monkeypatch.setattr(R, "train", boom)
    monkeypatch.setattr(R, "evaluate_run", boom)
    assert main(args) == 0
    assert "finished before; skipped" in capsys.readouterr().err
    assert ((run / "checkpoint.safetensors").stat().st_mtime_ns, (run / "eval.json").stat().st_mtime_ns) == stamp
    res = json.loads((out / "results.json").read_text())
    assert res["variants"]["vae"]["n_ok"] == 1 and res["runs"][0]["state_before"] == "done"

    # 4. other evaluation sizes: re-evaluated, still not retrained
    ev = Spy(real_evaluate)
    monkeypatch.setattr(R, "evaluate_run", ev)
    assert main([*args, "--n-samples", "30"]) == 0
    assert len(ev.calls) == 1 and ev.calls[0][1]["n_samples"] == 30
    assert json.loads((run / "eval.json").read_text())["meta"]["n_samples"] == 30

    # 5. other training settings in the same --out: refused, one line, exit 2
    capsys.readouterr()
    assert main([*args, "--epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert "epochs=2, this one asks 3" in err and err.count("\n") == 1


def test_failing_variant_is_recorded_and_tables_have_one_row_per_variant(tmp_path, mnist5k_quick_classifier, monkeypatch, capsys):
    from vaelab.models.beta_vae import BetaVAE
    from vaelab.models.vae import VAE

    def nan_regularizer(self, q, z, batch, step):
        kl = q.kl(self.prior).mean() * float("nan")
        return kl, {"kl": kl}

    monkeypatch.setattr(BetaVAE, "regularizer", nan_regularizer)
    monkeypatch.setattr(VAE, "task_metrics", lambda self, x, y, generator=None: {"task_x": 0.25})
    out = tmp_path / "study"
    args = ["compare", "--variants", "vae,beta-vae", "--seeds", "0,1", "--epochs", "1", *TINY, "--out", str(out)]
    assert main(args) == 1  # a run failed: recorded, reported, exit 1
    err = capsys.readouterr().err
    assert "[3/4] beta-vae seed 0: FAILED in train: TrainingDiverged: non-finite loss" in err
    assert "[4/4] beta-vae seed 1" in err and "1 run(s) failed" not in err and "2 run(s) failed" in err

    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["variants"] == ["vae", "beta-vae"] and set(res["variants"]) == {"vae", "beta-vae"}
    beta, vae = res["variants"]["beta-vae"], res["variants"]["vae"]
    assert (beta["n_ok"], beta["n_failed"]) == (0, 2) and all("non-finite" in e["error"] for e in beta["errors"])
    failed = json.loads((out / "runs" / "beta-vae-s0" / "failed.json").read_text())
    assert failed["stage"] == "train" and failed["error_type"] == "TrainingDiverged" and "Traceback" in failed["traceback"]
    assert beta["metrics"] == {}
    # the other variant went on: mean ± sd over its two seeds, from the runs' eval.json
    assert vae["n_ok"] == 2
    accs = [json.loads((out / "runs" / f"vae-s{s}" / "eval.json").read_text())["recon_accuracy"] for s in (0, 1)]
    m = vae["metrics"]["recon_accuracy"]
    assert m["n"] == 2 and m["mean"] == pytest.approx(statistics.fmean(accs)) and m["sd"] == pytest.approx(statistics.stdev(accs))
    assert vae["metrics"]["cluster_accuracy"]["available"] is False and vae["paper"]["recon_accuracy"] == 78.6
    assert res["environment"]["machine"]["cores"] >= 1 and res["environment"]["versions"]["torch"]
    assert res["command"] == res["command_equivalent"]  # called in-process: the equivalent command line is recorded
    assert "vaelab compare --variants vae,beta-vae --dataset mnist-5k --backbone small --latent-dim 4 --epochs 1 --seeds 0,1" in res["command"]

    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["variant"] for r in rows] == ["vae", "beta-vae"]
    assert rows[0]["recon_accuracy_n"] == "2" and float(rows[0]["recon_accuracy_sd"]) == pytest.approx(m["sd"])
    assert rows[1]["recon_accuracy_n"] == "0" and "non-finite" in rows[1]["errors"]
    md = (out / "results.md").read_text()
    vae_row = next(line for line in md.splitlines() if line.startswith("| VAE |"))
    assert f"{100 * m['mean']:.1f} ± {100 * m['sd']:.1f}" in vae_row and "| 78.6 |" in vae_row
    assert "## Failed runs" in md and "beta-vae seed 1 (train)" in md
    assert res["compute"]["runs"] == 2 and res["compute"]["eval_seconds_missing"] == 0 and "Compute: " in md
    assert "## Task metrics" in md and "- VAE: `task_x` 0.25 ± 0.00" in md
    html = (out / "report" / "index.html").read_text()
    assert "Failed runs" in html and "non-finite loss" in html
    assert '<ul id="task-metrics"><li><b>VAE</b>: <code>task_x</code> 0.25 ± 0.00</li></ul>' in html
    # the runs saved their per-image likelihoods; the pair with the failed variant is left out, with the reason
    assert all((out / "runs" / f"vae-s{s}" / "likelihood.safetensors").is_file() for s in (0, 1))
    assert res["paired_iwae"] == [{"a": "vae", "b": "beta-vae", "reason": "no seed with per-image IWAE values for both"}]
    assert 'id="paired-iwae"' in html and "## Paired IWAE NLL differences" in md

    # a later invocation reuses the failure record instead of retraining; --retry-failed tries again
    spy = Spy(R.train)
    monkeypatch.setattr(R, "train", spy)
    assert main([*args, "--no-report"]) == 1
    assert spy.calls == [] and "failed before" in capsys.readouterr().err
    assert main([*args, "--no-report", "--retry-failed"]) == 1
    assert [c[1].get("resume") for c in spy.calls] == [True, True]  # the two beta-vae runs, not the vae ones


def test_aggregate_mean_sd_and_absent_reasons():
    evals = [{"a": 0.5, "b": {"available": False, "reason": "why"}, "c": [1, 2], "d": 3, "meta": {}},
             {"a": 0.7, "b": {"available": False, "reason": "why"}, "c": [3, 4], "d": float("nan")}]
    agg = aggregate(evals)
    assert agg["a"]["mean"] == pytest.approx(0.6) and agg["a"]["sd"] == pytest.approx(statistics.stdev([0.5, 0.7]))
    assert agg["a"]["n"] == 2 and agg["d"] == {"mean": 3.0, "sd": None, "n": 1, "values": [3.0]}  # NaN is not a value
    assert agg["b"] == {"available": False, "reason": "why"} and "c" not in agg and "meta" not in agg


def test_task_metrics_are_the_keys_outside_the_standard_schema():
    from vaelab.study import markdown, task_metrics

    v = {"label": "CVAE-Q", "n_ok": 1, "n_failed": 0, "errors": [], "metrics": {
        "recon_accuracy": {"mean": 0.9, "sd": None, "n": 1}, "seconds_per_epoch.baseline": {"mean": 2.0, "sd": None, "n": 1},
        "fid": {"available": False, "reason": "no sampling"}, "cond_nll": {"mean": 70.123, "sd": None, "n": 1},
        "cond_nll_baseline": {"mean": 80.5, "sd": 1.5, "n": 2}}}
    plain = {**v, "label": "VAE", "metrics": {"recon_accuracy": {"mean": 0.9, "sd": None, "n": 1}}}
    assert task_metrics(v) == ["cond_nll", "cond_nll_baseline"] and task_metrics(plain) == []
    res = {"settings": {"dataset": "mnist", "backbone": "small", "latent_dim": 4, "epochs": 1, "protocol": "paper",
                        "seeds": [0], "variants": ["vae", "q"]}, "finished": "now", "command": "x",
           "environment": {"machine": {"summary": "m"}}, "variants": {"vae": plain, "q": v}}
    md = markdown(res)
    assert "## Task metrics" in md and "- CVAE-Q: `cond_nll` 70.12, `cond_nll_baseline` 80.50 ± 1.50" in md
    assert "- VAE" not in md


def test_plan_protocols_phase_budgets_and_overrides(tmp_path, monkeypatch):
    s = Settings(variants=["vae", "vq-vae"], out=tmp_path, dataset="mnist-5k", backbone="small", epochs=3, seeds=(0, 2),
                 phase_epochs=1, overrides={"vae": {"latent_dim": 2}})
    specs = plan(s)
    assert [(sp.variant, sp.seed, sp.run_dir.name) for sp in specs] == \
           [("vae", 0, "vae-s0"), ("vae", 2, "vae-s2"), ("vq-vae", 0, "vq-vae-s0"), ("vq-vae", 2, "vq-vae-s2")]
    vq = specs[2]
    assert vq.phases == [("train", 3), ("prior", 1)] and vq.model_overrides == {"prior_epochs": 1}
    assert specs[0].resolved_model["latent_dim"] == 2 and vq.resolved_model["latent_dim"] == 16
    assert {(sp.train.optimizer, sp.train.lr, sp.train.batch_size, sp.train.epochs) for sp in specs} == {("rmsprop", 1e-3, 100, 3)}

    fast = plan(Settings(variants=["vae", "vq-vae"], out=tmp_path, dataset="mnist-5k", backbone="small", protocol="fast"))
    assert [(sp.train.optimizer, sp.train.lr, sp.train.batch_size) for sp in fast] == [("adam", 1e-3, 100)] * 2
    assert parse_seeds("0,2-4") == (0, 2, 3, 4)


def test_runs_trained_before_a_config_key_existed_stay_compatible(tmp_path):
    """A run dir is reused only if it was trained as planned; a model key its config.json lacks (added
    to the variant later, defaulting to the old behaviour) counts as its default."""
    import dataclasses

    from vaelab.study import check_compatible
    from vaelab.io import atomic_write_json

    def spec_with(**over):
        s = Settings(variants=["vade"], out=tmp_path, dataset="mnist-5k", backbone="small",
                     overrides={"vade": over} if over else {})
        return plan(s)[0]

    sp = spec_with()
    old_model = {k: v for k, v in sp.resolved_model.items() if k not in ("lr_decay", "pretrain_noise")}
    sp.run_dir.mkdir(parents=True)
    atomic_write_json(sp.run_dir / "config.json", {"variant": "vade", "model": old_model, "train": dataclasses.asdict(sp.train)})
    check_compatible(sp)  # the missing keys are at their defaults in the plan
    with pytest.raises(ConfigError, match="model.lr_decay=None, this study asks 0.9"):
        check_compatible(spec_with(lr_decay=0.9))
    atomic_write_json(sp.run_dir / "config.json", {"variant": "vade", "model": {**old_model, "latent_dim": 3},
                                                   "train": dataclasses.asdict(sp.train)})
    with pytest.raises(ConfigError, match="model.latent_dim=3, this study asks 16"):
        check_compatible(sp)


def test_a_changed_default_does_not_change_a_stored_run(tmp_path):
    """An S-VAE run from before kappa_link/kl_warmup_steps existed was trained with the softplus head
    and no warm-up: it loads that way, and a study planning the new defaults does not reuse it."""
    import dataclasses

    from vaelab.study import check_compatible
    from vaelab.io import atomic_write_json
    from vaelab.training.checkpoint import save_checkpoint

    sp = plan(Settings(variants=["s-vae"], out=tmp_path, dataset="mnist-5k", backbone="small", latent_dim=3))[0]
    old_model = {k: v for k, v in sp.resolved_model.items() if k not in ("kappa_link", "kl_warmup_steps")}  # both added later
    sp.run_dir.mkdir(parents=True)
    atomic_write_json(sp.run_dir / "config.json", {"variant": "s-vae", "model": old_model, "train": dataclasses.asdict(sp.train)})
    with pytest.raises(ConfigError, match="model.kappa_link='softplus', this study asks 'exp'"):
        check_compatible(sp)
    check_compatible(plan(Settings(variants=["s-vae"], out=tmp_path, dataset="mnist-5k", backbone="small", latent_dim=3,
                                   overrides={"s-vae": {"kappa_link": "softplus", "kl_warmup_steps": 0}}))[0])
    v = R.build_variant("s-vae", {**old_model, "kappa_link": "softplus", "kl_warmup_steps": 0}, 0)
    save_checkpoint(sp.run_dir, v, {}, {}, {"done": True})
    loaded = R.load(sp.run_dir)
    assert loaded.config.kappa_link == "softplus" and loaded.config.kl_warmup_steps == 0


@pytest.mark.parametrize("extra, pattern", [
    (["--variants", "vae,nope"], "--variants: unknown variant 'nope'"),
    (["--variants", "vae,vae"], "listed twice"),
    (["--seeds", "0,x"], "--seeds: expected comma-separated integers"),
    (["--seeds", "-1"], "--seeds: expected comma-separated integers"),
    (["--seeds", "1,1"], "--seeds: a seed is listed twice"),
    (["--protocol", "slow"], "--protocol: 'slow' is not valid"),
    (["--epochs", "0"], "--epochs: must be an integer >= 1"),
    (["--dataset", "cifar10"], "--dataset: 'cifar10' is not valid"),
    (["--set", "vae:nokey=1"], "vae has no config key 'nokey'"),
    (["--set", "s-vae:kappa_min=2"], "'s-vae' is not one of the compared variants"),
    (["--set", "latent_dim=0"], "vae: latent_dim: must be an integer >= 1"),
    (["--backbone", "huge"], "backbone: 'huge' is not valid"),
])
def test_bad_input_exit_2_one_line(extra, pattern, tmp_path, capsys):
    args = ["compare", "--variants", "vae", "--out", str(tmp_path / "o"), "--dataset", "mnist-5k", "--no-progress", *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert pattern in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()  # nothing trained or written


def test_compute_totals_sum_training_and_evaluation_seconds():
    from vaelab.study import compute_line, compute_totals

    runs = [{"status": "ok", "eval": {"train_seconds": 3600.0, "meta": {"eval_seconds": 1800.0}}},
            {"status": "ok", "eval": {"train_seconds": 1800.0, "meta": {}}},  # evaluated before eval_seconds existed
            {"status": "failed", "eval": None}]
    c = compute_totals(runs)
    assert c == {"runs": 2, "train_seconds": 5400.0, "eval_seconds": 1800.0, "eval_seconds_missing": 1,
                 "total_seconds": 7200.0}
    line = compute_line({"compute": c, "environment": {"machine": {"torch_threads": 1}}})
    assert line.startswith("2.00 h over 2 runs: training 1.50 h + evaluation 0.50 h, wall time of 1-thread processes")
    assert "1 run(s) without a recorded evaluation time" in line
