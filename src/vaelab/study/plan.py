"""The plan of a study: one :class:`RunSpec` per (variant, seed), and the state of each run on disk."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..config import check_int
from ..errors import ConfigError
from ..eval_schema import check_disentanglement_mode
from ..io import read_json
from ..registry import get, make_config, stored_model_config
from .settings import (EVAL_SEED, EXPERIMENT_KEYS, FAST_TRAIN, PAPER_TRAIN, PROTOCOLS, RunSpec, Settings, config_fields,
                       phase_budget_keys)


def train_settings(s: Settings) -> dict[str, Any]:
    """The TrainConfig values of the study's protocol."""
    return dict(PAPER_TRAIN if s.protocol == "paper" else FAST_TRAIN)


def plan(s: Settings) -> list[RunSpec]:
    """The runs of the study, in order (variant-major), each config validated: a bad value raises
    ConfigError before anything is trained."""
    import torch

    from ..data import load_dataset  # local: torch; keeps `vaelab --help` at 0.1 s
    from ..rundir import data_defaults  # local: torch; keeps `vaelab --help` at 0.1 s
    from ..training.config import TrainConfig  # local: torch; keeps `vaelab --help` at 0.1 s

    if s.protocol not in PROTOCOLS:
        raise ConfigError(f"--protocol: {s.protocol!r} is not valid; choose one of {', '.join(PROTOCOLS)}")
    for name, val, lo in (("--epochs", s.epochs, 1), ("--latent-dim", s.latent_dim, 1), ("--n-samples", s.n_samples, 10),
                          ("--iwae-k", s.iwae_k, 0), ("--iwae-n", s.iwae_n, 0), ("--map-points", s.map_points, 10)):
        check_int(val, name, lo)
    check_int(s.phase_epochs, "--phase-epochs", 0, optional=True)
    check_int(s.image_size, "--image-size", 4, optional=True)
    check_int(s.train_size, "--train-size", 0)
    check_disentanglement_mode(s.disentanglement)
    test = load_dataset(s.dataset, "test", s.data_dir, image_size=s.image_size)  # fails early (exit 2) on missing data
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
            conf = make_config(name, **data_defaults(name, model, test))
        except ConfigError as e:
            raise ConfigError(f"{name}: {e}") from None
        with torch.random.fork_rng(devices=[]):
            phases = [(p.name, s.epochs if p.epochs is None else int(p.epochs)) for p in cls(conf).phases()]
        tdict = train_settings(s)
        for seed in s.seeds:
            tc = TrainConfig(dataset=s.dataset, data_dir=s.data_dir, image_size=s.image_size, epochs=s.epochs, seed=seed,
                             train_size=s.train_size, binarize=s.binarize,
                             progress=s.progress, device=s.device, **tdict)
            tc.validate()
            specs.append(RunSpec(name, seed, Path(s.out) / "runs" / f"{name}-s{seed}", dict(model), conf.to_dict(), tc,
                                 phases, extra))
    return specs


# ----- the state of a run on disk ------------------------------------------------------------------
def _read(path: Path) -> Any:
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
    dis = m.get("disentanglement")  # null for a dataset without factors
    return ((dis is None or dis.get("mode") == s.disentanglement) and m.get("n_samples") == s.n_samples and m.get("iwae_k") == s.iwae_k and m.get("seed") == EVAL_SEED
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


