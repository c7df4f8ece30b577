"""The study runner (vaelab.study.runner) drives the three studies — images (`vaelab compare`), sequences
(`vaelab sequences`), zero-shot (`vaelab zsl --study`) — and each writes, for the same runs, the same bytes
as before the runner existed: tests/golden/studies/ holds the files the three pipelines wrote before it.

Each study here is small and fake at its bottom only: a run's training and scoring write fake records
(vaelab.rundir.train / evaluate_run, vaelab.zsl.run.run), while planning, the state of each run on disk,
resuming, failure records, aggregation and tables are the real code. Every study runs twice: the second
invocation trains nothing and writes the same files (an old study directory resumes unchanged).

Regenerate the golden files (only when an output changes on purpose):
``VAELAB_REGOLD=1 OMP_NUM_THREADS=1 PYTHONPATH=src python -m pytest tests/test_study_runner.py``."""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden" / "studies"
FILES = {"image": ("study.json", "results.json", "results.csv", "results.md"),
         "sequence": ("sequence-study.json", "sequence-results.json", "sequence-results.md"),
         "zsl": ("zsl-results.json", "zsl-results.md")}
ENV = {"machine": {"cpu": "fake cpu", "summary": "fake machine", "torch_threads": 1}, "git_commit": "0" * 40}


@pytest.fixture
def fixed(monkeypatch, tmp_path):
    """Timestamps, versions, the machine and clocks fixed wherever vaelab bound them; cwd = tmp_path."""
    from vaelab import provenance

    fakes = {"now": lambda: "2000-01-01T00:00:00", "versions": lambda: {"vaelab": "x", "torch": "y"},
             "environment": lambda: dict(ENV)}
    # every vaelab module's binding of these names, whatever it holds: a module first imported while an earlier
    # test had patched provenance keeps that test's function, which an identity check would miss
    for mod in [m for name, m in sys.modules.items() if name.startswith("vaelab") and m is not None]:
        for name, fake in fakes.items():
            if callable(getattr(mod, name, None)):
                monkeypatch.setattr(mod, name, fake)
    for name, fake in fakes.items():
        monkeypatch.setattr(provenance, name, fake)
    monkeypatch.setattr(time, "perf_counter", lambda: 0.0)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def fake_rundir(monkeypatch, fail: str | None = None):
    """vaelab.rundir.train and evaluate_run replaced by writers of fake config / checkpoint / eval
    records (a run of variant ``fail`` raises in training); returns the list of trained run dirs."""
    import vaelab.rundir as R

    trained = []

    def train(variant, model_cfg=None, train_cfg=None, run_dir=None, resume=False, **kw):
        d = Path(run_dir)
        trained.append(d.name)
        if variant == fail or d.name.startswith(f"{fail}-"):
            raise RuntimeError(f"fake failure of {d.name}\nsecond line")
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.json").write_text(json.dumps({"variant": variant, "model": model_cfg, "train": dataclasses.asdict(train_cfg),
                                                   "command": "fake", "versions": {"vaelab": "x"}}))
        (d / "checkpoint.json").write_text(json.dumps({"done": True}))
        return d

    def evaluate_run(run_dir, n_samples=0, iwae_k=0, iwae_n=0, seed=0, **kw):
        d = Path(run_dir)
        k = sum(map(ord, d.name)) % 97
        ev = {"recon_accuracy": 0.5 + k / 200, "fid": 10.0 + k, "neg_elbo": 100.0 - k / 3, "content_accuracy": 0.4 + k / 300,
              "motion_accuracy": 0.3 + k / 500, "content_is": 3.0 + k / 50, "train_seconds": 60.0 + k,
              "meta": {"n_samples": n_samples, "iwae_k": iwae_k, "iwae_n": iwae_n, "n_test": 1000, "seed": seed,
                       "eval_seconds": 5.0 + k, "disentanglement": None, "classifier_test_accuracy": 0.97}}
        (d / "eval.json").write_text(json.dumps(ev))
        return ev

    monkeypatch.setattr(R, "train", train)
    monkeypatch.setattr(R, "evaluate_run", evaluate_run)
    return trained


def written(out: Path, kind: str) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in FILES[kind]}


def check_golden(name: str, files: dict[str, bytes]) -> None:
    d = GOLDEN / name
    if os.environ.get("VAELAB_REGOLD"):
        d.mkdir(parents=True, exist_ok=True)
        for fname, data in files.items():
            (d / fname).write_bytes(data)
    for fname, data in files.items():
        assert data == (d / fname).read_bytes(), f"{fname} differs from tests/golden/studies/{name}/{fname}"


def test_image_study_writes_the_golden_files_and_resumes(fixed, monkeypatch):
    from vaelab import reference_classifier
    from vaelab.study import Settings, run_study

    trained = fake_rundir(monkeypatch, fail="beta-vae")
    monkeypatch.setattr(reference_classifier, "load_or_train", lambda *a, **k: None)
    s = Settings(variants=["vae", "beta-vae"], out=Path("study"), dataset="mnist-5k", backbone="small", latent_dim=4, epochs=1,
                 seeds=(0, 1), n_samples=20, iwae_k=2, iwae_n=10, map_points=60, progress=False, command="vaelab compare fake")
    first = run_study(s, say=lambda m: None)
    assert sorted(trained) == ["beta-vae-s0", "beta-vae-s1", "vae-s0", "vae-s1"]
    assert first["variants"]["beta-vae"]["n_failed"] == 2 and (Path("study/runs/beta-vae-s0/failed.json")).is_file()
    check_golden("image/first", written(Path("study"), "image"))
    again = run_study(s, say=lambda m: None)
    assert len(trained) == 4 and again["variants"] == first["variants"]
    check_golden("image/again", written(Path("study"), "image"))


def test_image_study_pairs_the_per_image_iwae_values_of_its_runs(fixed, monkeypatch):
    """Runs that saved per-image IWAE values on the same images: results.json gets paired_iwae against the
    study's first variant (scipy's t-interval of the per-image differences of the seed means), results.md its table."""
    import numpy as np
    from safetensors.numpy import save_file
    from scipy import stats

    import vaelab.rundir as R
    from vaelab import reference_classifier
    from vaelab.study import Settings, run_study

    fake_rundir(monkeypatch, fail="beta-vae")
    monkeypatch.setattr(reference_classifier, "load_or_train", lambda *a, **k: None)
    rng = np.random.default_rng(0)
    base = rng.normal(90, 6, 10)
    values = {(v, seed): base + shift + rng.normal(0, 1, 10) for v, shift in (("vae", 0.0), ("info-vae", -1.5)) for seed in (0, 1)}
    fake_eval = R.evaluate_run

    def evaluate_run(run_dir, **kw):
        name, _, seed = Path(run_dir).name.rpartition("-s")
        meta = {"dataset": "mnist-5k", "n_test": "1000", "iwae_n": "10", "iwae_k": "2", "seed": "0",
                "binarization": "dynamic", "binarize_seed": "0", "inputs_sha256": "0" * 64}
        save_file({"iwae_nll": values[name, int(seed)]}, str(Path(run_dir) / "likelihood.safetensors"),
                  metadata={"meta": json.dumps(meta)})
        return fake_eval(run_dir, **kw)

    monkeypatch.setattr(R, "evaluate_run", evaluate_run)
    s = Settings(variants=["vae", "info-vae", "beta-vae"], out=Path("study"), dataset="mnist-5k", backbone="small", latent_dim=4,
                 epochs=1, seeds=(0, 1), n_samples=20, iwae_k=2, iwae_n=10, map_points=60, progress=False)
    res = run_study(s, say=lambda m: None)
    assert json.loads(Path("study/results.json").read_text())["paired_iwae"] == res["paired_iwae"]
    iw, bv = res["paired_iwae"]
    d = (values["info-vae", 0] + values["info-vae", 1]) / 2 - (values["vae", 0] + values["vae", 1]) / 2
    lo, hi = stats.t.interval(0.95, 9, loc=d.mean(), scale=stats.sem(d))
    assert (iw["a"], iw["b"], iw["n_images"], iw["seeds"]) == ("vae", "info-vae", 10, [0, 1])
    assert iw["mean_diff"] == pytest.approx(d.mean(), rel=1e-12)
    assert (iw["ci_low"], iw["ci_high"]) == (pytest.approx(lo, rel=1e-12), pytest.approx(hi, rel=1e-12))
    assert bv == {"a": "vae", "b": "beta-vae", "reason": "no seed with per-image IWAE values for both"}
    md = Path("study/results.md").read_text()
    assert "## Paired IWAE NLL differences" in md
    label = {n: v["label"] for n, v in res["variants"].items()}
    assert f"| {label['info-vae']} | 10 | 0,1 | {d.mean():+.2f} | [{lo:+.2f}, {hi:+.2f}] |" in md
    assert f"| {label['beta-vae']} | — | — | — | left out: no seed with per-image IWAE values for both |" in md
    assert f"Against {label['vae']} (the study's first variant)" in md


def test_sequence_study_writes_the_golden_files_and_resumes(fixed, monkeypatch):
    from vaelab import reference_classifier
    from vaelab.study.sequences import SequenceStudy, run_study

    trained = fake_rundir(monkeypatch, fail="dsvae")
    judge = type("Judge", (), {"meta": {"stem": "moving-mnist-5k-judge", "test_accuracy": 0.99, "motion_accuracy": 0.98,
                                        "n_train": 10, "n_test": 5}})()
    monkeypatch.setattr(reference_classifier, "load_or_train", lambda *a, **k: judge)
    st = SequenceStudy(out=Path("study"), dataset="moving-mnist-5k", seeds=(0, 1), epochs=1, rows=("s3vae", "dsvae"),
                       command="vaelab sequences fake")
    first = run_study(st, say=lambda m: None)
    assert sorted(trained) == ["dsvae-s0", "dsvae-s1", "s3vae-s0", "s3vae-s1"]
    assert [(r["row"], r["n"], r["n_failed"]) for r in first["rows"]] == [("s3vae", 2, 0), ("dsvae", 0, 2)]
    check_golden("sequence/first", written(Path("study"), "sequence"))
    # a later invocation with one seed only: the other seed's runs count as earlier runs
    again = run_study(dataclasses.replace(st, seeds=(0,)), say=lambda m: None)
    assert len(trained) == 4 and [r["n"] for r in again["rows"]] == [2, 0]
    check_golden("sequence/again", written(Path("study"), "sequence"))


def fake_zsl_run(monkeypatch, record, ran: list, broken=()):
    """vaelab.zsl.run.run replaced wherever vaelab bound it: a run writes ``record(cfg, name)`` as its
    zsl.json (a method in ``broken`` raises instead), reuses one written before, and appends its name to ``ran``."""
    from vaelab.zsl.run import run as real_run

    def fake_run(cfg, out, log=None, shared_select=None):
        path = Path(out) / "zsl.json"
        if path.is_file():
            return json.loads(path.read_text())
        ran.append(Path(out).name)
        if cfg.method in broken:
            raise FloatingPointError(f"fake failure of {Path(out).name}\nsecond line")
        rec = {**record(cfg, Path(out).name), "config": json.loads(json.dumps(cfg.to_dict()))}
        Path(out).mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rec))
        return rec

    for mod in [m for name, m in sys.modules.items() if name.startswith("vaelab") and m is not None]:
        if getattr(mod, "run", None) is real_run:
            monkeypatch.setattr(mod, "run", fake_run)


def test_zsl_study_writes_the_golden_files_and_resumes(fixed, monkeypatch):
    from vaelab.zsl.run import ZSLConfig
    from vaelab.zsl.study import StudyGrid, run_study

    ran = []

    def record(cfg, name):
        k = (sum(map(ord, name)) % 89) / 100
        rec = {"T1": 0.3 + k / 2, "u": 0.2 + k / 3, "s": 0.8 - k / 4, "H": 0.3 + k / 5, "u_cal": 0.3, "s_cal": 0.7,
               "H_cal": 0.4 + k / 7, "AUSUC": 0.5 + k / 9, "gamma": 0.1, "seconds": 12.0 + 10 * k, "created": "c",
               "versions": {"v": 1}, "machine": {"m": 1},
               "diagnostics": {} if cfg.method == "eszsl" else {"probe_unseen": 0.6 + k / 10, "gen_seen_to_real_seen": 1.5}}
        if cfg.setting == "transductive" and cfg.method == "zero-vae-gan":
            rec["before_self_training"] = {"H": 0.25}
        return rec

    fake_zsl_run(monkeypatch, record, ran)
    base = ZSLConfig(epochs=1, batch_size=32, n_synth=10)
    g = StudyGrid(datasets=["mnist-5k"], methods=["f-clswgan", "eszsl", "zero-vae-gan"], settings=["inductive", "transductive"],
                  folds=[0, 1], seeds=[0, 1], shots=[0, 5], base=base, shot_methods=["f-clswgan"])
    rows = run_study(g, Path("study"), command="vaelab zsl --study fake")
    assert len(ran) == 3 * 2 * 2 * 2 + 4 and len(rows) == 3 * 2 + 1
    check_golden("zsl/first", written(Path("study"), "zsl"))
    assert run_study(g, Path("study"), command="vaelab zsl --study fake") == rows and len(ran) == 28
    check_golden("zsl/again", written(Path("study"), "zsl"))


def test_zsl_study_records_a_failing_run_and_goes_on(fixed, monkeypatch):
    """A run that raises is recorded (failed.json), counted in its row and the tables, skipped by the
    next invocation, and run again with retry_failed."""
    from vaelab.zsl.run import ZSLConfig
    from vaelab.zsl.study import StudyGrid, run_study

    ran, broken = [], {"eszsl"}
    fake_zsl_run(monkeypatch, lambda cfg, name: {"T1": 0.5, "u": 0.4, "s": 0.9, "H": 0.55, "u_cal": 0.5, "s_cal": 0.8,
                                                 "H_cal": 0.6, "AUSUC": 0.5, "seconds": 3.0, "diagnostics": {}}, ran, broken)
    g = StudyGrid(datasets=["mnist-5k"], methods=["ridge", "eszsl"], settings=["inductive"], folds=[0], seeds=[0, 1],
                  shots=[0], base=ZSLConfig(epochs=1))
    rows = run_study(g, Path("study"))
    assert len(ran) == 4
    by = {r["method"]: r for r in rows}
    assert by["ridge"]["n"] == 2 and "n_failed" not in by["ridge"] and by["ridge"]["H"] == pytest.approx(0.55)
    assert by["eszsl"]["n"] == 0 and by["eszsl"]["n_failed"] == 2 and by["eszsl"]["H"] is None
    failure = json.loads(Path("study/runs/mnist-5k/eszsl-inductive-k0-f0-s1/failed.json").read_text())
    assert failure["error"] == "FloatingPointError: fake failure of eszsl-inductive-k0-f0-s1" and failure["stage"] == "run"
    res = json.loads(Path("study/zsl-results.json").read_text())
    assert res["n_failed"] == 2 and [r.get("status") for r in res["runs"]] == [None, None, "failed", "failed"]
    md = Path("study/zsl-results.md").read_text()
    assert "| ESZSL (2 of 2 runs failed) | inductive | – | – | – | – |" in md
    from vaelab.report import write_zsl_page

    assert "<td>0 (2 failed)</td>" in write_zsl_page(Path("study")).read_text()
    run_study(g, Path("study"))  # skipped, not retried
    assert len(ran) == 4
    broken.clear()
    rows = run_study(g, Path("study"), retry_failed=True)
    assert len(ran) == 6 and all(r["n"] == 2 and "n_failed" not in r for r in rows)
    assert not Path("study/runs/mnist-5k/eszsl-inductive-k0-f0-s1/failed.json").exists()


class CountTask:
    """The smallest StudyTask: units 0..n-1, a unit is done when OUT/<i>.json exists."""

    executors = ("serial",)

    def __init__(self, out, n=3):
        self.out, self.n, self.events = Path(out), n, []

    def plan(self):
        return list(range(self.n))

    def open(self, specs, started):
        self.events.append(("open", (self.out / ".lock").is_file()))

    def label(self, i):
        return f"unit {i}"

    def saved(self, i, prefix, say):
        p = self.out / f"{i}.json"
        return json.loads(p.read_text()) if p.is_file() else None

    def prepare(self, pending, say):
        self.events.append(("prepare", list(pending)))

    def job(self, i, prefix, say):
        def run():
            (self.out / f"{i}.json").write_text(json.dumps({"unit": i, "prefix": prefix}))
            return {"unit": i, "prefix": prefix, "new": True}
        return run

    def collect(self, specs, records, started, seconds):
        return {"records": records}

    def write(self, results):
        (self.out / "results.json").write_text(json.dumps(results))


def test_the_runner_locks_skips_done_units_and_refuses_an_executor_the_task_does_not_allow(tmp_path):
    from vaelab.errors import ConfigError, RunDirError
    from vaelab.io import RunLock
    from vaelab.study.runner import run_task

    task = CountTask(tmp_path / "s")
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "1.json").write_text(json.dumps({"unit": 1, "prefix": "before"}))
    finished = []
    res = run_task(task, say=lambda m: None, finish=lambda out, results, say: finished.append(out))
    assert [r["unit"] for r in res["records"]] == [0, 1, 2] and [r.get("new") for r in res["records"]] == [True, None, True]
    assert res["records"][2]["prefix"] == "[3/3] unit 2" and finished == [tmp_path / "s"]
    assert task.events == [("open", True), ("prepare", [0, 2])] and not (tmp_path / "s" / ".lock").exists()
    assert run_task(CountTask(tmp_path / "s"), say=lambda m: None)["records"][0] == {"unit": 0, "prefix": "[1/3] unit 0"}
    ray_like = type("Ray", (), {"name": "ray", "map": lambda self, jobs: pytest.fail("ran")})()
    with pytest.raises(ConfigError, match=r"^--executor ray: this study runs with serial only$"):
        run_task(CountTask(tmp_path / "s"), executor=ray_like)
    with RunLock(tmp_path / "s"), pytest.raises(RunDirError, match="in use"):
        run_task(CountTask(tmp_path / "s"), say=lambda m: None)


def test_vaelab_zsl_study_exits_1_on_a_failed_run_and_retries_it(fixed, monkeypatch, capsys):
    from vaelab.cli import main

    ran, broken = [], {"eszsl"}
    fake_zsl_run(monkeypatch, lambda cfg, name: {"T1": 0.5, "u": 0.4, "s": 0.9, "H": 0.55, "u_cal": 0.5, "s_cal": 0.8,
                                                 "H_cal": 0.6, "AUSUC": 0.5, "seconds": 3.0, "diagnostics": {}}, ran, broken)
    argv = ["zsl", "--study", "--datasets", "mnist-5k", "--methods", "ridge,eszsl", "--settings", "inductive", "--folds", "0",
            "--seeds", "0", "--any-shots", "0", "--out", "study"]
    assert main(argv) == 1 and ran == ["ridge-inductive-k0-f0-s0", "eszsl-inductive-k0-f0-s0"]
    assert "vaelab zsl: 1 run(s) failed" in capsys.readouterr().err
    broken.clear()
    assert main(argv) == 1 and len(ran) == 2  # the failure is kept, not retried
    assert main([*argv, "--retry-failed"]) == 0 and ran[2:] == ["eszsl-inductive-k0-f0-s0"]
