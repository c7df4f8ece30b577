"""``vaelab compare``: the seed's study (Table 2, Figs 5, 16, 17, 18) as a controlled experiment.

Every (variant, seed) is trained with the same backbone, latent size, epoch budget, batch and
optimizer, evaluated by :func:`vaelab.metrics.evaluate_run`, and summarised per variant (mean ± sd
over seeds) in ``results.json``, ``results.csv``, ``results.md`` and the HTML report
(:mod:`vaelab.report`). Layout of the output directory ``OUT``::

    OUT/study.json                the settings of the study (checked again on every invocation)
    OUT/runs/<variant>-s<seed>/   one vaelab run dir each (config.json, checkpoint, metrics.jsonl, eval.json)
                                  plus failed.json when that run failed
    OUT/results.{json,csv,md}     per-variant aggregates and per-run records
    OUT/report/index.html         the report (images beside it in report/img/)

Protocols: ``paper`` trains every variant with the seed's Table 1 settings (RMSprop, lr 1e-3, batch
100); ``fast`` uses each variant's own recommended settings, the class attribute ``FAST_TRAIN`` (a
dict of :class:`~vaelab.training.trainer.TrainConfig` fields such as optimizer, lr, batch_size),
over the default Adam, lr 1e-3, batch 100.

Resumable: a run whose checkpoint says done and whose eval.json matches the evaluation settings is
skipped; a finished run without (matching) eval.json is only evaluated; an interrupted run resumes
from its checkpoint. A run that fails (NaN loss, any exception) is recorded in its failed.json and
the study goes on; a later invocation reuses that record unless ``retry_failed``.

Phase budgets: a variant's integer config fields named ``*_epochs`` (VaDE's ``pretrain_epochs``,
VQ-VAE's ``prior_epochs``, ...) are the budgets of its extra phases. ``phase_epochs`` caps them all
(``--quick`` uses it), and ``--set [VARIANT:]KEY=VALUE`` sets any model config value.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .config import check_int, finite_number, parse_value
from .errors import ConfigError

SCHEMA = 1
PROTOCOLS = ("paper", "fast")
PAPER_TRAIN = {"optimizer": "rmsprop", "lr": 1e-3, "batch_size": 100}  # the seed's Table 1
FAST_DEFAULT = {"optimizer": "adam", "lr": 1e-3, "batch_size": 100}
FAST_ATTR = "FAST_TRAIN"  # class attribute of a variant: its recommended TrainConfig overrides
FAST_KEYS = ("optimizer", "lr", "batch_size", "precision")  # what FAST_TRAIN may set

#: The seed's Table 2 (MNIST; Keras on a Tesla P100, 5000 epochs, latent sizes 2–128; accuracies of a
#: pre-trained CNN on 27–100 re-generated images): recon accuracy in %, seconds per epoch.
PAPER_TABLE2: dict[str, dict[str, Any]] = {
    "vae": {"label": "VAE", "recon_accuracy": 78.6, "seconds_per_epoch": 2},
    "vade": {"label": "VaDE", "recon_accuracy": 94.0, "seconds_per_epoch": 65},
    "gmvae": {"label": "GMVAE", "recon_accuracy": 96.3, "seconds_per_epoch": 37},
    "info-vae": {"label": "InfoVAE", "recon_accuracy": 66.7, "seconds_per_epoch": 29},
    "beta-vae": {"label": "β-VAE", "recon_accuracy": 84.1, "seconds_per_epoch": 19},
    "vq-vae": {"label": "VQ-VAE", "recon_accuracy": 83.7, "seconds_per_epoch": 3},
    "s-vae": {"label": "S-VAE", "recon_accuracy": 76.5, "seconds_per_epoch": 55},
    "vae-gan": {"label": "VAE-GAN", "recon_accuracy": 63.3, "seconds_per_epoch": 35},
}

#: ``--quick``: every registered variant on mnist-5k, small backbone, one seed, budgets that fit the
#: whole study and its report in under 15 minutes on 2 CPU cores (11 variants: 8 min 33 s and 9 min
#: 43 s in two runs with OMP_NUM_THREADS=1 on a 2-core machine shared with other jobs (load 3.5–5.5),
#: the classifier cached; training it adds about 30 s). Main-phase epochs cost 2–2.5 s each for most
#: variants, ~10 s for VAE-GAN; the report's figures (t-SNE of 1000 points per variant) about a minute.
QUICK = {"dataset": "mnist-5k", "backbone": "small", "epochs": 10, "seeds": (0,), "phase_epochs": 5,
         "n_samples": 2000, "iwae_k": 100, "iwae_n": 200, "map_points": 1000}
#: Defaults of the full study (the evaluation sizes are evaluate_run's).
DEFAULTS = {"dataset": "mnist", "backbone": "paper", "epochs": 10, "seeds": (0,), "phase_epochs": None,
            "n_samples": 10000, "iwae_k": 1000, "iwae_n": 1000, "map_points": 2000}
EVAL_SEED = 0  # every run is evaluated with the same sample seed
#: The TrainConfig fields that define a run's experiment: an existing run dir must agree on them to be
#: resumed or reused (speed knobs such as fused/compile/channels_last and progress may differ).
EXPERIMENT_KEYS = ("dataset", "epochs", "batch_size", "lr", "optimizer", "seed", "binarize", "precision")


@dataclass
class Settings:
    """Everything that defines a study. ``overrides``: per-variant model config values (``--set``)."""

    variants: list[str]
    out: Path
    dataset: str = "mnist"
    data_dir: str | None = None
    backbone: str = "paper"
    latent_dim: int = 16
    epochs: int = 10
    seeds: tuple[int, ...] = (0,)
    protocol: str = "paper"
    binarize: str = "none"
    phase_epochs: int | None = None
    n_samples: int = 10000
    iwae_k: int = 1000
    iwae_n: int = 1000
    map_points: int = 2000
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    quick: bool = False
    retry_failed: bool = False
    progress: bool = True
    command: str | None = None

    def study_key(self) -> dict[str, Any]:
        """The settings that make runs comparable; recorded in study.json."""
        return {"dataset": self.dataset, "backbone": self.backbone, "latent_dim": self.latent_dim, "epochs": self.epochs,
                "protocol": self.protocol, "binarize": self.binarize, "phase_epochs": self.phase_epochs}

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["out"] = str(self.out)
        d["seeds"] = list(self.seeds)
        return d


@dataclass
class RunSpec:
    """One (variant, seed) of the study: where it lives and exactly how it is trained."""

    variant: str
    seed: int
    run_dir: Path
    model: dict[str, Any]  # model config passed to train (before data_shape/n_classes are filled)
    resolved_model: dict[str, Any]  # the full resolved model config (as config.json will hold it)
    train: Any  # TrainConfig
    phases: list[tuple[str, int]]  # (phase name, epochs)
    model_overrides: dict[str, Any]  # what differs from the variant's defaults besides backbone/latent_dim

    @property
    def name(self) -> str:
        return self.run_dir.name


# ----- parsing user input ----------------------------------------------------------------------
def parse_variants(text: str | None) -> list[str]:
    """``all`` (or None) → every registered variant; else a comma list of registered names."""
    from .registry import variants

    known = variants()
    if text is None or text.strip() == "all":
        return order_variants(known)
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ConfigError("--variants: give 'all' or a comma-separated list of variant names")
    bad = [n for n in names if n not in known]
    if bad:
        raise ConfigError(f"--variants: unknown variant {bad[0]!r}; valid: all, {', '.join(known)}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"--variants: {dup[0]!r} is listed twice")
    return names


def order_variants(names: list[str]) -> list[str]:
    """The seed's Table 2 order for its variants, then the others alphabetically."""
    paper = [n for n in PAPER_TABLE2 if n in names]
    return paper + sorted(n for n in names if n not in PAPER_TABLE2)


def parse_seeds(text: str | None) -> tuple[int, ...]:
    """``0,1,2`` → (0, 1, 2); also ``0-2``. Seeds are distinct integers >= 0."""
    if text is None:
        return (0,)
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                a, b = int(lo), int(hi)
                if b < a:
                    raise ValueError
                seeds += range(a, b + 1)
            else:
                seeds.append(int(part))
    except ValueError:
        raise ConfigError(f"--seeds: expected comma-separated integers >= 0 (e.g. 0,1,2), got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise ConfigError(f"--seeds: expected comma-separated integers >= 0 (e.g. 0,1,2), got {text!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: a seed is listed twice in {text!r}")
    return tuple(seeds)


def parse_sets(items: list[str], selected: list[str]) -> dict[str, dict[str, Any]]:
    """``--set [VARIANT:]KEY=VALUE`` → {variant: {key: value}}. Without VARIANT the value goes to every
    selected variant whose config has KEY (and it is an error if none has it)."""
    from .registry import get

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected [VARIANT:]KEY=VALUE")
        lhs, val = item.split("=", 1)
        target, _, key = lhs.strip().rpartition(":")
        key = key.strip()
        value = parse_value(val.strip())
        if target:
            if target not in selected:
                raise ConfigError(f"--set {item!r}: {target!r} is not one of the compared variants ({', '.join(selected)})")
            if key not in config_fields(get(target)):
                raise ConfigError(f"--set {item!r}: {target} has no config key {key!r}; valid: {', '.join(sorted(config_fields(get(target))))}")
            out.setdefault(target, {})[key] = value
        else:
            hit = [n for n in selected if key in config_fields(get(n))]
            if not hit:
                raise ConfigError(f"--set {item!r}: none of the compared variants has a config key {key!r}")
            for n in hit:
                out.setdefault(n, {})[key] = value
    return out


def config_fields(cls) -> dict[str, Any]:
    """{field name: default} of a variant's config dataclass."""
    out = {}
    for f in dataclasses.fields(cls.Config):
        out[f.name] = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
    return out


def phase_budget_keys(cls) -> list[str]:
    """The config fields that are epoch budgets of a variant's extra phases: integers named ``*_epochs``."""
    return [k for k, d in config_fields(cls).items() if k.endswith("_epochs") and isinstance(d, int) and not isinstance(d, bool)]


# ----- the plan ----------------------------------------------------------------------------------
def train_settings(cls, s: Settings) -> dict[str, Any]:
    """The TrainConfig values of the protocol for variant class ``cls``."""
    if s.protocol == "paper":
        return dict(PAPER_TRAIN)
    rec = dict(getattr(cls, FAST_ATTR, None) or {})
    bad = sorted(set(rec) - set(FAST_KEYS))
    if bad:
        raise ConfigError(f"{cls.name}.{FAST_ATTR}: keys {', '.join(bad)} may not be set by a variant (allowed: {', '.join(FAST_KEYS)})")
    return {**FAST_DEFAULT, **rec}


def plan(s: Settings) -> list[RunSpec]:
    """The runs of the study, in order (variant-major), each config validated: a bad value raises
    ConfigError before anything is trained."""
    import torch

    from .data import load_dataset
    from .registry import get, make_config
    from .training.trainer import TrainConfig

    if s.protocol not in PROTOCOLS:
        raise ConfigError(f"--protocol: {s.protocol!r} is not valid; choose one of {', '.join(PROTOCOLS)}")
    for name, val, lo in (("--epochs", s.epochs, 1), ("--latent-dim", s.latent_dim, 1), ("--n-samples", s.n_samples, 10),
                          ("--iwae-k", s.iwae_k, 0), ("--iwae-n", s.iwae_n, 0), ("--map-points", s.map_points, 10)):
        check_int(val, name, lo)
    check_int(s.phase_epochs, "--phase-epochs", 0, optional=True)
    test = load_dataset(s.dataset, "test", s.data_dir)  # fails early (exit 2) on missing data
    specs: list[RunSpec] = []
    for name in s.variants:
        cls = get(name)
        model: dict[str, Any] = {"backbone": s.backbone, "latent_dim": s.latent_dim}
        extra: dict[str, Any] = {}
        if s.phase_epochs is not None:
            for k in phase_budget_keys(cls):
                if config_fields(cls)[k] > s.phase_epochs:
                    extra[k] = s.phase_epochs
        extra.update(s.overrides.get(name, {}))
        model.update(extra)
        try:
            conf = make_config(name, **{**model, "data_shape": test.shape, "n_classes": test.n_classes})
        except ConfigError as e:
            raise ConfigError(f"{name}: {e}") from None
        with torch.random.fork_rng(devices=[]):
            phases = [(p.name, s.epochs if p.epochs is None else int(p.epochs)) for p in cls(conf).phases()]
        tdict = train_settings(cls, s)
        for seed in s.seeds:
            tc = TrainConfig(dataset=s.dataset, data_dir=s.data_dir, epochs=s.epochs, seed=seed, binarize=s.binarize,
                             progress=s.progress, **tdict)
            tc.validate()
            specs.append(RunSpec(name, seed, Path(s.out) / "runs" / f"{name}-s{seed}", dict(model), conf.to_dict(), tc,
                                 phases, extra))
    return specs


# ----- the state of a run on disk ------------------------------------------------------------------
def _read(path: Path) -> Any:
    from .io import read_json

    return read_json(path) if path.is_file() else None


def check_compatible(spec: RunSpec) -> None:
    """Raise ConfigError if ``spec.run_dir`` holds a run trained with other settings than planned."""
    conf = _read(spec.run_dir / "config.json")
    if conf is None:
        return
    want_train = dataclasses.asdict(spec.train)
    have_train = conf.get("train", {})
    checks = [(f"train.{k}", have_train.get(k), want_train[k]) for k in EXPERIMENT_KEYS]
    checks.insert(0, ("variant", conf.get("variant"), spec.variant))
    from .registry import get, stored_model_config

    # a key the run's config.json lacks was added to the variant after that run was trained: it reads as
    # the value the run was trained with (the variant's stored_defaults, else the key's default, which
    # then is the old behaviour), so the run is compatible when the plan asks for that value
    have_model = stored_model_config(spec.variant, conf.get("model", {}))  # another variant fails the first check
    defaults = config_fields(get(spec.variant))
    checks += [(f"model.{k}", have_model.get(k), v) for k, v in spec.resolved_model.items()
               if k in have_model or _norm(v) != _norm(defaults.get(k, object()))]
    for key, have, want in checks:
        if _norm(have) != _norm(want):
            raise ConfigError(f"{spec.run_dir}: was trained with {key}={have!r}, this study asks {want!r}; "
                              "use another --out (or delete that run dir)")


def _norm(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def eval_matches(ev: dict[str, Any] | None, s: Settings) -> bool:
    if not isinstance(ev, dict) or "meta" not in ev:
        return False
    m = ev["meta"]
    return (m.get("n_samples") == s.n_samples and m.get("iwae_k") == s.iwae_k and m.get("seed") == EVAL_SEED
            and m.get("iwae_n") == min(s.iwae_n, m.get("n_test", s.iwae_n)))


def run_state(spec: RunSpec, s: Settings) -> str:
    """``failed`` (a recorded failure), ``done``, ``evaluate`` (trained, eval missing/stale), ``resume``, ``new``."""
    if (spec.run_dir / "failed.json").is_file() and not s.retry_failed:
        return "failed"
    if not (spec.run_dir / "config.json").is_file():
        return "new"
    ck = _read(spec.run_dir / "checkpoint.json")
    if isinstance(ck, dict) and ck.get("done"):
        return "done" if eval_matches(_read(spec.run_dir / "eval.json"), s) else "evaluate"
    return "resume"


# ----- progress --------------------------------------------------------------------------------------
class _TrainProgress(logging.Handler):
    """Turns the trainer's log records into one-line progress messages with the run's position."""

    def __init__(self, prefix: str, phases: list[tuple[str, int]], say: Callable[[str], None]):
        super().__init__(logging.INFO)
        self.prefix, self.epochs, self.say = prefix, dict(phases), say

    def emit(self, record: logging.LogRecord) -> None:
        try:
            args = record.args if isinstance(record.args, tuple) else ()
            if record.msg.startswith("%s epoch %d:") and len(args) >= 4:
                phase, epoch, _, secs = args[:4]
                verb = "training" if phase == "train" else f"phase {phase}"
                self.say(f"{self.prefix}: {verb} epoch {epoch}/{self.epochs.get(phase, '?')} done ({secs:.1f}s)")
            elif record.msg.startswith("phase %s:") and args:
                if len(self.epochs) > 1:
                    self.say(f"{self.prefix}: phase {args[0]} ({_plural(self.epochs.get(args[0], '?'), 'epoch')})")
            elif record.levelno >= logging.INFO and not record.msg.startswith("%s epoch"):
                self.say(f"{self.prefix}: {record.getMessage()}")
        except Exception:  # progress must never break training
            pass


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----- running ---------------------------------------------------------------------------------------
def execute(spec: RunSpec, s: Settings, classifier, prefix: str, say: Callable[[str], None]) -> dict[str, Any]:
    """Bring one run to done + evaluated; return its record. Failures are caught and recorded
    (failed.json); KeyboardInterrupt is not (the run resumes next time)."""
    from .io import atomic_write_json
    from .metrics import evaluate_run
    from .training.trainer import train

    state = run_state(spec, s)
    rec: dict[str, Any] = {"variant": spec.variant, "seed": spec.seed, "run_dir": str(spec.run_dir), "state_before": state}
    if state == "failed":
        f = _read(spec.run_dir / "failed.json") or {}
        say(f"{prefix}: failed before ({f.get('error', '?')}); skipped (use --retry-failed to try again)")
        return {**rec, "status": "failed", **{k: f.get(k) for k in ("error", "error_type", "stage")}}
    if state == "done":
        say(f"{prefix}: finished before; skipped")
        return {**rec, "status": "ok", "eval": _read(spec.run_dir / "eval.json")}
    check_compatible(spec)
    t0 = time.perf_counter()
    stage = "train"
    handler = _TrainProgress(prefix, spec.phases, say)
    lg = logging.getLogger("vaelab.train")
    try:
        (spec.run_dir / "failed.json").unlink(missing_ok=True)
        if state in ("new", "resume"):
            plan_txt = ", ".join(f"{p} {_plural(e, 'epoch')}" for p, e in spec.phases)
            say(f"{prefix}: {'resuming' if state == 'resume' else 'training'} ({plan_txt})")
            lg.addHandler(handler)
            try:
                if state == "new":
                    train(spec.variant, dict(spec.model), dataclasses.replace(spec.train), spec.run_dir)
                else:
                    train(None, resume=True, run_dir=spec.run_dir)
            finally:
                lg.removeHandler(handler)
        stage = "evaluate"
        say(f"{prefix}: evaluating (samples {s.n_samples}, IWAE K={s.iwae_k} on {s.iwae_n} images)")
        ev = evaluate_run(spec.run_dir, n_samples=s.n_samples, iwae_k=s.iwae_k, iwae_n=s.iwae_n, seed=EVAL_SEED,
                          data_dir=s.data_dir, classifier=classifier, write=True, log=lambda m: say(f"{prefix}: {m}"))
    except Exception as e:  # noqa: BLE001 — one failing run must not stop the study
        err = f"{type(e).__name__}: {e}".strip()
        failure = {"error": err.splitlines()[0][:500] if err else type(e).__name__, "error_type": type(e).__name__,
                   "stage": stage, "traceback": traceback.format_exc(), "time": _now()}
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(spec.run_dir / "failed.json", failure)
        say(f"{prefix}: FAILED in {stage}: {failure['error']}")
        return {**rec, "status": "failed", "error": failure["error"], "error_type": failure["error_type"], "stage": stage,
                "wall_seconds": round(time.perf_counter() - t0, 2)}
    wall = round(time.perf_counter() - t0, 2)
    say(f"{prefix}: done in {wall:.0f}s (recon accuracy {_pct(ev.get('recon_accuracy'))})")
    return {**rec, "status": "ok", "eval": ev, "wall_seconds": wall}


def _plural(n: Any, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _pct(v: Any) -> str:
    return f"{100 * v:.1f}%" if isinstance(v, (int, float)) else "n/a"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def run_study(s: Settings, say: Callable[[str], None] | None = None, report: bool = True) -> dict[str, Any]:
    """Run (or resume) the whole study and write results.{json,csv,md} and the report. Returns the results."""
    from .io import RunLock, atomic_write_json

    say = say or _stderr
    if report:  # imported now, not after hours of training: the report then matches the code that trained
        from .report import write_report
    specs = plan(s)
    out = Path(s.out)
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out):
        study = _read(out / "study.json")
        if study and study.get("settings") != s.study_key():
            have, want = study.get("settings", {}), s.study_key()
            k = next((k for k in want if have.get(k) != want[k]), "settings")
            raise ConfigError(f"{out}: holds a study with {k}={have.get(k)!r}, this one asks {want.get(k)!r}; "
                              "use another --out")
        for spec in specs:  # refuse before training anything
            if spec.run_dir.is_dir() and (spec.run_dir / "config.json").is_file():
                check_compatible(spec)
        started = _now()
        atomic_write_json(out / "study.json", {"schema": SCHEMA, "settings": s.study_key(),
                                               "created": (study or {}).get("created", started)})
        classifier = None
        if any(run_state(sp, s) != "done" and run_state(sp, s) != "failed" for sp in specs):
            from .classifier import load_or_train

            say(f"reference classifier for {s.dataset} (trained once, then cached)")
            classifier = load_or_train(s.dataset, s.data_dir, log=say)
        t0 = time.perf_counter()
        runs = []
        for i, spec in enumerate(specs, 1):
            prefix = f"[{i}/{len(specs)}] {spec.variant} seed {spec.seed}"
            runs.append(execute(spec, s, classifier, prefix, say))
        results = collect(s, specs, runs, started=started, seconds=time.perf_counter() - t0)
        write_results(results, out)
        if report:
            say(f"writing the report to {out / 'report' / 'index.html'}")
            try:
                write_report(out, results, log=say)
            except Exception as e:  # noqa: BLE001 — the tables are written; say what broke
                say(f"report: FAILED: {type(e).__name__}: {e}")
                results["report_error"] = f"{type(e).__name__}: {e}"
                write_results(results, out)
    return results


# ----- aggregation ------------------------------------------------------------------------------------
def aggregate(evals: list[dict[str, Any]]) -> dict[str, Any]:
    """Per metric over runs: {"mean", "sd" (sample sd; None for n < 2), "n", "values"}; a metric that
    no run has as a number becomes {"available": false, "reason": the first run's reason}."""
    keys: list[str] = []
    for ev in evals:
        for k in ev:
            if k != "meta" and k not in keys:
                keys.append(k)
    out: dict[str, Any] = {}
    for k in keys:
        vals = [float(ev[k]) for ev in evals if finite_number(ev.get(k))]
        if vals:
            out[k] = {"mean": statistics.fmean(vals), "sd": statistics.stdev(vals) if len(vals) > 1 else None,
                      "n": len(vals), "values": vals}
            continue
        reasons = [ev[k].get("reason") for ev in evals if isinstance(ev.get(k), dict) and ev[k].get("available") is False]
        if reasons:
            out[k] = {"available": False, "reason": reasons[0] or "not available"}
        # lists (e.g. the sample class histogram) are kept per run only
    return out


def collect(s: Settings, specs: list[RunSpec], runs: list[dict[str, Any]], started: str, seconds: float) -> dict[str, Any]:
    by_spec = {(sp.variant, sp.seed): sp for sp in specs}
    variants: dict[str, Any] = {}
    for name in s.variants:
        rs = [r for r in runs if r["variant"] == name]
        ok = [r for r in rs if r["status"] == "ok" and isinstance(r.get("eval"), dict)]
        sp = by_spec[(name, s.seeds[0])]
        variants[name] = {
            "label": PAPER_TABLE2.get(name, {}).get("label", name),
            "n_runs": len(rs), "n_ok": len(ok), "n_failed": len(rs) - len(ok),
            "errors": [{"seed": r["seed"], "stage": r.get("stage"), "error": r.get("error")} for r in rs if r["status"] != "ok"],
            "metrics": aggregate([r["eval"] for r in ok]),
            "paper": {k: v for k, v in PAPER_TABLE2.get(name, {}).items() if k != "label"} or None,
            "model": sp.resolved_model, "model_overrides": sp.model_overrides, "phases": sp.phases,
            "train": {k: getattr(sp.train, k) for k in ("optimizer", "lr", "batch_size", "epochs", "binarize", "precision")},
            "latent_kind": _latent_kind(name),
        }
    for r in runs:
        r["run_dir"] = os.path.relpath(r["run_dir"], s.out)
    classifier_acc = next((r["eval"]["meta"].get("classifier_test_accuracy") for r in runs
                           if r["status"] == "ok" and isinstance(r.get("eval"), dict) and "meta" in r["eval"]), None)
    return {
        "schema": SCHEMA,
        "settings": {**s.to_dict(), "eval_seed": EVAL_SEED},
        "command": s.command or canonical_command(s),
        "command_equivalent": canonical_command(s),
        "started": started,
        "finished": _now(),
        "seconds": round(seconds, 1),
        "environment": environment(),
        "classifier_test_accuracy": classifier_acc,
        "compute": compute_totals(runs),
        "variants": variants,
        "runs": runs,
    }


def compute_totals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The study's compute: training seconds (metrics.jsonl) and evaluation seconds (eval.json meta)
    summed over the evaluated runs, with how many runs lack an evaluation time."""
    ok = [r["eval"] for r in runs if r["status"] == "ok" and isinstance(r.get("eval"), dict)]
    train = sum(float(ev["train_seconds"]) for ev in ok if finite_number(ev.get("train_seconds")))
    recorded = [ev.get("meta", {}).get("eval_seconds") for ev in ok]
    evaluation = sum(float(t) for t in recorded if finite_number(t))
    return {"runs": len(ok), "train_seconds": round(train, 1), "eval_seconds": round(evaluation, 1),
            "eval_seconds_missing": sum(not finite_number(t) for t in recorded), "total_seconds": round(train + evaluation, 1)}


def compute_line(results: dict[str, Any]) -> str:
    """One sentence of the study's summed compute, for results.md and the report."""
    c = results.get("compute") or compute_totals(results.get("runs", []))
    miss = f"; {c['eval_seconds_missing']} run(s) without a recorded evaluation time" if c["eval_seconds_missing"] else ""
    threads = results.get("environment", {}).get("machine", {}).get("torch_threads")
    return (f"{c['total_seconds'] / 3600:.2f} h over {_plural(c['runs'], 'run')}: training {c['train_seconds'] / 3600:.2f} h "
            f"+ evaluation {c['eval_seconds'] / 3600:.2f} h, wall time of {threads or '?'}-thread processes summed{miss}")


def _latent_kind(name: str) -> str:
    from .registry import get

    return getattr(get(name), "latent_kind", "gaussian")


# ----- the tables ---------------------------------------------------------------------------------------
#: (key, column title, scale, digits) of the main metrics, in table order.
COLUMNS = [
    ("recon_accuracy", "Recon acc. %", 100, 1),
    ("seconds_per_epoch", "s/epoch", 1, 2),
    ("fid", "FID", 1, 2),
    ("inception_score", "IS", 1, 2),
    ("precision", "Precision", 1, 3),
    ("recall", "Recall", 1, 3),
    ("neg_elbo", "−ELBO (nats)", 1, 1),
    ("iwae_nll", "IWAE NLL (nats)", 1, 1),
    ("cluster_accuracy", "Cluster ACC %", 100, 1),
    ("cluster_nmi", "NMI", 1, 3),
    ("cluster_ari", "ARI", 1, 3),
    ("cond_accuracy", "Cond. acc. %", 100, 1),
    ("parameters", "Parameters", 1, 0),
]


def fmt_metric(m: Any, scale: float = 1, digits: int = 2, sd: bool = True) -> str:
    """``mean ± sd`` (sd only for n ≥ 2), ``—`` when absent."""
    if not isinstance(m, dict) or "mean" not in m:
        return "—"
    mean = m["mean"] * scale
    if digits == 0:
        txt = f"{mean:,.0f}"
    else:
        txt = f"{mean:.{digits}f}"
    if sd and m.get("sd") is not None and digits != 0:
        txt += f" ± {m['sd'] * scale:.{digits}f}"
    return txt


def ordered(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, per-variant results) in the study's order (results.json itself is written with sorted keys)."""
    V = results["variants"]
    return [(n, V[n]) for n in results["settings"]["variants"] if n in V]


def task_metrics(v: dict[str, Any]) -> list[str]:
    """The numeric metrics of one variant's results that come from its own task (``Variant.task_metrics``,
    e.g. quadrant completion's conditional NLLs): everything outside evaluate's standard schema."""
    from .metrics.evaluate import STANDARD_KEYS

    return sorted(k for k, m in v["metrics"].items()
                  if k not in STANDARD_KEYS and "." not in k and isinstance(m, dict) and "mean" in m)


def task_rows(results: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """(variant label, [(task metric key, formatted mean ± sd)]) for every variant that has task metrics."""
    rows = [(v["label"], [(k, fmt_metric(v["metrics"][k], 1, 2)) for k in task_metrics(v)]) for _, v in ordered(results)]
    return [(label, items) for label, items in rows if items]


def metric_keys(results: dict[str, Any]) -> list[str]:
    """Every aggregated numeric metric: the main columns first, then the rest alphabetically."""
    seen = set()
    for v in results["variants"].values():
        seen |= {k for k, m in v["metrics"].items() if isinstance(m, dict) and "mean" in m}
    main = [k for k, *_ in COLUMNS if k in seen]
    return main + sorted(seen - set(main))


def write_results(results: dict[str, Any], out: Path) -> None:
    """results.json, results.csv (one row per variant: mean, sd, n of every metric) and results.md."""
    import csv
    import io

    from .io import atomic_write_json, atomic_write_text

    atomic_write_json(out / "results.json", results)
    keys = metric_keys(results)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["variant", "n_runs", "n_ok", "n_failed", *[f"{k}_{s}" for k in keys for s in ("mean", "sd", "n")],
                "paper_recon_accuracy", "paper_seconds_per_epoch", "errors"])
    for name, v in ordered(results):
        row: list[Any] = [name, v["n_runs"], v["n_ok"], v["n_failed"]]
        for k in keys:
            m = v["metrics"].get(k)
            if isinstance(m, dict) and "mean" in m:
                row += [_csv_num(m["mean"]), "" if m["sd"] is None else _csv_num(m["sd"]), m["n"]]
            else:
                row += ["", "", 0]
        p = v.get("paper") or {}
        row += [p.get("recon_accuracy", ""), p.get("seconds_per_epoch", ""),
                "; ".join(f"seed {e['seed']}: {e['error']}" for e in v["errors"])]
        w.writerow(row)
    atomic_write_text(out / "results.csv", buf.getvalue())
    atomic_write_text(out / "results.md", markdown(results))


def _csv_num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    lines = [f"# vaelab compare: {s['dataset']}, backbone {s['backbone']}, latent {s['latent_dim']}, {_plural(s['epochs'], 'epoch')}, "
             f"protocol {s['protocol']}, seeds {','.join(map(str, s['seeds']))}", "",
             f"Command: `{results.get('command') or '?'}`  ", f"Date: {results['finished']}  ",
             f"Machine: {results['environment']['machine']['summary']}  ",
             f"Compute: {compute_line(results)}", "",
             "## Table 2, reproduced (mean ± sd over seeds)", "",
             "| Variant | n | Recon acc. % | Paper % | s/epoch (this machine) | Paper s/epoch (P100) |",
             "|---|---|---|---|---|---|"]
    for name, v in ordered(results):
        m, p = v["metrics"], v.get("paper") or {}
        failed = f" ({v['n_failed']} failed)" if v["n_failed"] else ""
        lines.append(f"| {v['label']} | {v['n_ok']}{failed} | "
                     f"{fmt_metric(m.get('recon_accuracy'), 100, 1)} | {p.get('recon_accuracy', '—')} | "
                     f"{fmt_metric(m.get('seconds_per_epoch'), 1, 2)} | {p.get('seconds_per_epoch', '—')} |")
    cols = [c for c in COLUMNS if c[0] not in ("recon_accuracy", "seconds_per_epoch")]
    lines += ["", "## Further metrics", "", "| Variant | " + " | ".join(c[1] for c in cols) + " |",
              "|---" * (len(cols) + 1) + "|"]
    for name, v in ordered(results):
        lines.append(f"| {v['label']} | " + " | ".join(fmt_metric(v["metrics"].get(k), sc, d) for k, _, sc, d in cols) + " |")
    task = task_rows(results)
    if task:
        lines += ["", "## Task metrics", ""]
        lines += [f"- {label}: " + ", ".join(f"`{k}` {txt}" for k, txt in items) for label, items in task]
    failed = [(n, e) for n, v in ordered(results) for e in v["errors"]]
    if failed:
        lines += ["", "## Failed runs", ""] + [f"- {n} seed {e['seed']} ({e['stage']}): {e['error']}" for n, e in failed]
    lines += ["", "— = not defined for that variant or not available (see results.json for the reason).", ""]
    return "\n".join(lines)


# ----- environment ----------------------------------------------------------------------------------------
def environment() -> dict[str, Any]:
    """Versions, machine (platform, CPU model, cores, threads, memory) and the vaelab git commit if any."""
    import torch

    from .training.trainer import versions

    vers = dict(versions())
    for mod in ("scipy", "sklearn", "matplotlib", "PIL", "safetensors"):
        try:
            vers[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            pass
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cpu = cpu or platform.processor() or platform.machine()
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        usable = os.cpu_count()
    machine = {"platform": platform.platform(), "cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable,
               "torch_threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
               "memory_gib": mem, "hostname": socket.gethostname()}
    machine["summary"] = f"{cpu}, {usable} core(s), torch {torch.get_num_threads()} thread(s), {platform.system()} {platform.release()}"
    return {"versions": vers, "machine": machine, "git_commit": _git_commit()}


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        r = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if r.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return r.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def command_line(argv: list[str] | None = None) -> str | None:
    """The command line that started this process as ``vaelab compare ...``, or None when this process
    is not the vaelab CLI running compare (e.g. a test calling ``cli.main``)."""
    argv = list(sys.argv if argv is None else argv)
    if argv and Path(argv[0]).name in ("vaelab", "__main__.py") and "compare" in argv[1:]:
        return "vaelab " + shlex.join(argv[1:])
    return None


def canonical_command(s: Settings) -> str:
    """A ``vaelab compare`` command line with every setting spelled out, equivalent to ``s``."""
    parts = ["vaelab", "compare", "--variants", ",".join(s.variants), "--dataset", s.dataset]
    if s.data_dir:
        parts += ["--data-dir", str(s.data_dir)]
    parts += ["--backbone", s.backbone, "--latent-dim", str(s.latent_dim), "--epochs", str(s.epochs),
              "--seeds", ",".join(map(str, s.seeds)), "--protocol", s.protocol, "--binarize", s.binarize]
    if s.phase_epochs is not None:
        parts += ["--phase-epochs", str(s.phase_epochs)]
    for name, kv in s.overrides.items():
        for k, v in kv.items():
            parts += ["--set", f"{name}:{k}={json.dumps(v)}"]
    parts += ["--n-samples", str(s.n_samples), "--iwae-k", str(s.iwae_k), "--iwae-n", str(s.iwae_n),
              "--map-points", str(s.map_points), "--out", str(s.out)]
    return shlex.join(parts)


__all__ = ["Settings", "RunSpec", "plan", "run_study", "aggregate", "parse_variants", "parse_seeds", "parse_sets",
           "PAPER_TABLE2", "QUICK", "DEFAULTS", "PROTOCOLS", "write_results", "markdown", "environment"]
