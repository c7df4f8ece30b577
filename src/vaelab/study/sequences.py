"""The sequence study (``vaelab sequences``): S3VAE, each of its regularisers removed in turn, and
DSVAE, on a Moving-MNIST dataset, over several seeds, scored by the dataset's judge (the S3VAE paper's
protocol, docs/equations.md "S3VAE and DSVAE").

Layout of the output directory ``OUT``::

    OUT/sequence-study.json          the settings (checked again on every invocation)
    OUT/runs/<row>-s<seed>/          one vaelab run dir each (plus failed.json when it failed)
    OUT/sequence-results.{json,md}   mean ± sd per row, and every run's numbers
    OUT/report/sequences.html        the page (with strips and GIFs of seed 0's runs, copied to report/img/)

The study is a task of the study runner (:mod:`vaelab.study.runner`, :class:`SequenceTask`); every run
is brought to trained + evaluated by the same code as ``vaelab compare``'s
(:func:`vaelab.study.execute.execute`), so it resumes after an interruption and a failure is
recorded and skipped on the next invocation (``--retry-failed`` to try again). The tables cover
every evaluated run in ``OUT/runs``, so rows and seeds may be added by later invocations (e.g. the
ablations with fewer seeds than S3VAE and DSVAE).
"""
from __future__ import annotations

import dataclasses
import os
import statistics
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError
from ..io import atomic_write_json, atomic_write_text, read_json
from ..provenance import environment, now, versions
from ..registry import get, make_config
from .execute import Job, saved_record
from .results import compute_line, compute_totals
from .runner import run_task
from .settings import RunSpec, Settings

#: (key, label, variant, model overrides): the S3VAE paper's comparison and ablation.
ROWS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("s3vae", "S3VAE", "s3vae", {}),
    ("s3vae-no-scc", "S3VAE w/o static consistency", "s3vae", {"scc_weight": 0.0}),
    ("s3vae-no-dfp", "S3VAE w/o dynamic factor prediction", "s3vae", {"dfp_weight": 0.0}),
    ("s3vae-no-mi", "S3VAE w/o MI penalty", "s3vae", {"mi_weight": 0.0}),
    ("dsvae", "DSVAE", "dsvae", {}),
    ("dsvae-full", "DSVAE (full posterior)", "dsvae", {"dynamic_posterior": "full"}),
)
METRICS = ("content_accuracy", "content_accuracy_mean_dynamics", "content_is", "content_h_y_given_x", "content_h_y",
           "motion_accuracy", "swap_content_accuracy", "swap_motion_accuracy", "recon_accuracy", "probe_digit_z_f",
           "probe_digit_z_t", "neg_elbo", "seconds_per_epoch", "train_seconds")
#: The study's default length and networks: the largest frame networks a 3-seed study affords on 2 CPU cores (about
#: 2.8 min per epoch of moving-mnist in bf16; the papers' dcgan-bn costs 3× that)
EPOCHS, BACKBONE, PRECISION = 30, "dcgan-bn32", "bf16"


@dataclasses.dataclass
class SequenceStudy:
    """Everything that defines a sequence study."""

    out: Path
    dataset: str = "moving-mnist"
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = EPOCHS
    batch_size: int = 32
    lr: float = 1e-3
    backbone: str = BACKBONE
    precision: str = PRECISION
    rows: tuple[str, ...] = tuple(r[0] for r in ROWS)
    n_samples: int = 1000
    iwae_k: int = 50
    iwae_n: int = 200
    retry_failed: bool = False
    command: str | None = None

    def key(self) -> dict[str, Any]:
        """The settings that make the runs comparable (recorded in sequence-study.json)."""
        return {"dataset": self.dataset, "epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
                "backbone": self.backbone, "precision": self.precision}

    def settings(self) -> Settings:
        """The evaluation settings in the form :func:`vaelab.study.execute.execute` reads."""
        return Settings(variants=[], out=self.out, dataset=self.dataset, epochs=self.epochs, seeds=self.seeds,
                        n_samples=self.n_samples, iwae_k=self.iwae_k, iwae_n=self.iwae_n,
                        retry_failed=self.retry_failed, progress=False)


def specs(st: SequenceStudy) -> list[tuple[str, RunSpec]]:
    """(row key, RunSpec) of every run, row-major; every config validated before anything trains."""
    import torch

    from ..data import load_dataset  # local: torch; keeps `vaelab --help` at 0.1 s
    from ..rundir import data_defaults  # local: torch; keeps `vaelab --help` at 0.1 s
    from ..training.config import TrainConfig  # local: torch; keeps `vaelab --help` at 0.1 s

    rows = {r[0]: r for r in ROWS}
    unknown = [r for r in st.rows if r not in rows]
    if unknown:
        raise ConfigError(f"--rows: unknown row {unknown[0]!r}; choose from {', '.join(rows)}")
    test = load_dataset(st.dataset, "test")
    if not test.is_sequence:
        raise ConfigError(f"--dataset: {st.dataset} holds images; the sequence study needs moving-mnist or moving-mnist-5k")
    out = []
    for key in st.rows:
        _, _, variant, row_overrides = rows[key]
        overrides = {**row_overrides, "backbone": st.backbone}
        conf = make_config(variant, **data_defaults(variant, dict(overrides), test))
        with torch.random.fork_rng(devices=[]):
            phases = [(p.name, st.epochs if p.epochs is None else int(p.epochs)) for p in get(variant)(conf).phases()]
        for seed in st.seeds:
            tc = TrainConfig(dataset=st.dataset, epochs=st.epochs, seed=seed, batch_size=st.batch_size, lr=st.lr,
                             optimizer="adam", precision=st.precision, progress=False)
            tc.validate()
            out.append((key, RunSpec(variant, seed, Path(st.out) / "runs" / f"{key}-s{seed}", dict(overrides),
                                     conf.to_dict(), tc, phases, dict(overrides))))
    return out


def earlier_runs(out: Path, seen: set[tuple[str, int]]) -> list[dict[str, Any]]:
    """Records of the finished, evaluated runs in ``out/runs`` that this invocation did not plan (other
    rows or seeds run into the same directory before), so a study can grow over several invocations."""
    keys = {r[0] for r in ROWS}
    found = []
    for d in sorted((out / "runs").glob("*-s*")):
        key, _, seed = d.name.rpartition("-s")
        if key in keys and seed.isdigit() and (key, int(seed)) not in seen and (d / "eval.json").is_file():
            found.append({"row": key, "seed": int(seed), "run_dir": str(d), "status": "ok", "eval": read_json(d / "eval.json"),
                          "state_before": "earlier invocation"})
    return found


def aggregate(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per row: mean and sample sd (0 for one run) of every metric over its successful runs."""
    out = []
    for key, label, variant, overrides in ROWS:
        recs = [r for r in records if r["row"] == key]
        if not recs:
            continue
        ok = [r for r in recs if r["status"] == "ok"]
        row: dict[str, Any] = {"row": key, "label": label, "variant": variant, "overrides": overrides,
                               "n": len(ok), "n_failed": len(recs) - len(ok)}
        for m in METRICS:
            vals = [float(r["eval"][m]) for r in ok if isinstance((r.get("eval") or {}).get(m), (int, float))]
            if vals:
                row[m] = statistics.fmean(vals)
                row[m + "_sd"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        out.append(row)
    return out


def _cell(row: dict[str, Any], m: str) -> str:
    if m not in row:
        return "n/a"
    pct = m.endswith("accuracy")
    v, sd = (100 * row[m], 100 * row[m + "_sd"]) if pct else (row[m], row[m + "_sd"])
    return f"{v:.1f} ± {sd:.1f}" if pct or m == "neg_elbo" else f"{v:.3f} ± {sd:.3f}"


COLUMNS = (("content_accuracy", "content acc. %"), ("content_accuracy_mean_dynamics", "content, mean dyn. %"),
           ("content_is", "IS"), ("content_h_y_given_x", "H(y|x)"), ("content_h_y", "H(y)"),
           ("motion_accuracy", "motion acc. %"), ("swap_content_accuracy", "swap content %"),
           ("swap_motion_accuracy", "swap motion %"), ("probe_digit_z_f", "digit probe z_f %"),
           ("probe_digit_z_t", "digit probe z_1:T %"), ("neg_elbo", "−ELBO (nats/seq.)"))


def markdown(rows: list[dict[str, Any]], st: SequenceStudy, judge: dict[str, Any] | None,
             results: dict[str, Any] | None = None) -> str:
    lines = [f"# Sequence study on {st.dataset}", "",
             f"{st.epochs} epochs, Adam lr {st.lr:g}, batch {st.batch_size}, backbone {st.backbone}, {st.precision}; "
             f"seeds {', '.join(map(str, st.seeds))}; "
             "mean ± sd over seeds. Content: z_f of a test sequence kept, dynamics from the prior, judged digit; "
             "IS, H(y|x), H(y) on those sequences (nats). Motion: the test sequence's dynamics kept, z_f from the prior, "
             "judged direction. Swap: z_f of one test sequence with z_1:T of another. Digit probes: logistic "
             "regression from the posterior means, fitted on half the test sequences, scored on the other (chance 10%).", ""]
    if results:
        machine = results.get("environment", {}).get("machine", {})
        lines += [f"Compute: {compute_line(results)}; CPU: {machine.get('cpu', '?')}.", ""]
    if judge:
        lines += [f"Judge ({judge.get('stem')}): digit accuracy {100 * judge['test_accuracy']:.2f}%, motion accuracy "
                  f"{100 * judge.get('motion_accuracy', float('nan')):.2f}% on the real test sequences.", ""]
    if st.command:
        lines += [f"`{st.command}`", ""]
    lines += ["| model | " + " | ".join(c[1] for c in COLUMNS) + " | n |",
              "|---|" + "---|" * len(COLUMNS) + "---|"]
    for r in rows:
        failed = f" ({r['n_failed']} failed)" if r["n_failed"] else ""
        lines.append(f"| {r['label']} | " + " | ".join(_cell(r, c[0]) for c in COLUMNS) + f" | {r['n']}{failed} |")
    return "\n".join(lines) + "\n"


@dataclasses.dataclass
class RowJob:
    """One run of the study: the image study's :class:`vaelab.study.execute.Job`, its record tagged with the row."""

    job: Any
    row: str

    def __call__(self) -> dict[str, Any]:
        return {**self.job(), "row": self.row}


class SequenceTask:
    """``vaelab sequences`` as a :class:`vaelab.study.runner.StudyTask`: one unit per (row, seed), run by
    the image study's code (:func:`vaelab.study.execute.execute`) with the dataset's judge."""

    executors = ("serial",)

    def __init__(self, st: SequenceStudy):
        self.st, self.out, self.s, self.judge = st, Path(st.out), st.settings(), None

    def plan(self) -> list[tuple[str, RunSpec]]:
        return specs(self.st)

    def open(self, specs: list[tuple[str, RunSpec]], started: str) -> None:
        st, meta_path = self.st, self.out / "sequence-study.json"
        if meta_path.is_file():
            have = read_json(meta_path).get("settings", {})
            k = next((k for k, v in st.key().items() if have.get(k) != v), None)
            if k is not None:
                raise ConfigError(f"{self.out}: holds a sequence study with {k}={have.get(k)!r}, this one asks "
                                  f"{st.key()[k]!r}; use another --out")
        atomic_write_json(meta_path, {"settings": st.key(), "created": started})

    def label(self, spec: tuple[str, RunSpec]) -> str:
        return f"{spec[0]} seed {spec[1].seed}"

    def saved(self, spec: tuple[str, RunSpec], prefix: str, say: Callable[[str], None]) -> dict[str, Any] | None:
        rec = saved_record(spec[1], self.s, prefix, say)
        return None if rec is None else {**rec, "row": spec[0]}

    def prepare(self, pending: list[tuple[str, RunSpec]], say: Callable[[str], None]) -> None:
        from ..reference_classifier import load_or_train  # local: torch; keeps `vaelab --help` at 0.1 s

        say(f"judge for {self.st.dataset} (trained once, then cached)")  # the results name it: loaded even when all is done
        self.judge = load_or_train(self.st.dataset, log=say)

    def job(self, spec: tuple[str, RunSpec], prefix: str, say: Callable[[str], None]) -> RowJob:
        return RowJob(Job(spec[1], self.s, self.judge, prefix, say), spec[0])

    def collect(self, specs: list[tuple[str, RunSpec]], records: list[dict[str, Any]], started: str,
                seconds: float) -> dict[str, Any]:
        st, out = self.st, self.out
        records = records + earlier_runs(out, {(r["row"], r["seed"]) for r in records})
        for r in records:  # each run's own record of what it was: its model and training config, command, versions
            conf = read_json(Path(r["run_dir"]) / "config.json") if (Path(r["run_dir"]) / "config.json").is_file() else {}
            r["config"] = {k: conf.get(k) for k in ("variant", "model", "train", "command", "versions")}
        judge_meta = {k: self.judge.meta.get(k) for k in ("stem", "test_accuracy", "motion_accuracy", "n_train", "n_test")}
        pictures = {}  # each row's lowest-seed run, whose pictures (made by its evaluation) the report shows
        for key in dict.fromkeys(r["row"] for r in records):
            first = min((r for r in records if r["row"] == key and r["status"] == "ok"), key=lambda r: r["seed"], default=None)
            if first is not None:
                pictures[key] = {"seed": first["seed"], "run_dir": os.path.relpath(first["run_dir"], out)}
        return {"settings": {**st.key(), "seeds": list(st.seeds), "n_samples": st.n_samples},
                "judge": judge_meta, "rows": aggregate(records), "runs": records, "pictures": pictures,
                "command": st.command, "created": now(), "versions": versions(), "environment": environment(),
                "compute": compute_totals(records)}

    def write(self, results: dict[str, Any]) -> None:
        atomic_write_json(self.out / "sequence-results.json", results)
        atomic_write_text(self.out / "sequence-results.md", markdown(results["rows"], self.st, results["judge"], results))


def run_study(st: SequenceStudy, say: Callable[[str], None] | None = None,
              finish: Callable[[Path, dict[str, Any], Callable[[str], None]], None] | None = None) -> dict[str, Any]:
    """Run (or resume) the study on the study runner; write sequence-results.{json,md}; then ``finish(out,
    results, say)`` if given (``vaelab sequences`` passes :func:`vaelab.report.write_sequence_page`, which
    copies the pictures that each row's lowest-seed run made when it was evaluated: :mod:`vaelab.run_figures`).
    Returns the results."""
    return run_task(SequenceTask(st), say, finish=finish)
