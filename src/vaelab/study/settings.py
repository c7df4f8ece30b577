"""What defines a study (``vaelab compare``): the seed's study (Table 2, Figs 5, 16, 17, 18) as a
controlled experiment.

Every (variant, seed) is trained with the same backbone, latent size, epoch budget, batch and
optimizer, evaluated by :func:`vaelab.rundir.evaluate_run`, and summarised per variant (mean ± sd
over seeds) in ``results.json``, ``results.csv``, ``results.md`` and the HTML report
(:mod:`vaelab.report`). Layout of the output directory ``OUT``::

    OUT/study.json                the settings of the study (checked again on every invocation)
    OUT/runs/<variant>-s<seed>/   one vaelab run dir each (config.json, checkpoint, metrics.jsonl, eval.json)
                                  plus failed.json when that run failed
    OUT/results.{json,csv,md}     per-variant aggregates and per-run records
    OUT/report/index.html         the report (images beside it in report/img/)

Protocols: ``paper`` trains every variant with the seed's Table 1 settings (RMSprop, lr 1e-3, batch
100); ``fast`` with Adam, lr 1e-3, batch 100.

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
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = 1
PROTOCOLS = ("paper", "fast")
PAPER_TRAIN = {"optimizer": "rmsprop", "lr": 1e-3, "batch_size": 100}  # the seed's Table 1
FAST_TRAIN = {"optimizer": "adam", "lr": 1e-3, "batch_size": 100}

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

#: Display names of the variants outside the seed's Table 2 (those inside use its names).
LABELS = {"cvae": "CVAE", "cvae-quadrant": "CVAE (quadrants)", "wae": "WAE", "beta-tcvae": "β-TCVAE",
          "factor-vae": "FactorVAE", "dip-vae": "DIP-VAE"}


def variant_label(name: str) -> str:
    """A variant's display name in tables and figures."""
    return PAPER_TABLE2.get(name, {}).get("label") or LABELS.get(name, name)


#: ``--quick``: every registered variant on mnist-5k, small backbone, one seed, with budgets chosen so
#: that the whole study and its report fit in under 15 minutes on 2 CPU cores (measured run times:
#: docs/results/quick-study.md).
QUICK = {"dataset": "mnist-5k", "backbone": "small", "epochs": 10, "seeds": (0,), "phase_epochs": 5,
         "n_samples": 2000, "iwae_k": 100, "iwae_n": 200, "map_points": 1000, "disentanglement": "quick"}
#: Defaults of the full study (the evaluation sizes are evaluate_run's).
DEFAULTS = {"dataset": "mnist", "backbone": "paper", "epochs": 10, "seeds": (0,), "phase_epochs": None,
            "n_samples": 10000, "iwae_k": 1000, "iwae_n": 1000, "map_points": 2000, "disentanglement": "standard"}
EVAL_SEED = 0  # every run is evaluated with the same sample seed
#: The TrainConfig fields that define a run's experiment: an existing run dir must agree on them to be
#: resumed or reused (speed knobs such as fused/compile/channels_last and progress may differ).
EXPERIMENT_KEYS = ("dataset", "image_size", "train_size", "epochs", "batch_size", "lr", "optimizer", "seed", "binarize", "precision")


@dataclass
class Settings:
    """Everything that defines a study. ``overrides``: per-variant model config values (``--set``)."""

    variants: list[str]
    out: Path
    dataset: str = "mnist"
    data_dir: str | None = None
    image_size: int | None = None  # folder:/npz: datasets: resize every image to this square size
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
    train_size: int = 0  # train on the first N training images only (0 = all; dsprites: a uniform random N)
    disentanglement: str = "standard"  # the disentanglement metrics' counts on a dataset with factors (vaelab.scoring)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    quick: bool = False
    retry_failed: bool = False
    progress: bool = True
    tensorboard: bool = False  # each run also logs to its run dir's tb/ (tensorboard --logdir OUT)
    device: str = "auto"  # where runs train (auto: CUDA when available); not part of the experiment
    command: str | None = None

    def study_key(self) -> dict[str, Any]:
        """The settings that make runs comparable; recorded in study.json."""
        key = {"dataset": self.dataset, "backbone": self.backbone, "latent_dim": self.latent_dim, "epochs": self.epochs,
               "protocol": self.protocol, "binarize": self.binarize, "phase_epochs": self.phase_epochs}
        if self.image_size is not None:
            key["image_size"] = self.image_size
        if self.train_size:
            key["train_size"] = self.train_size
        return key

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


def order_variants(names: list[str]) -> list[str]:
    """The seed's Table 2 order for its variants, then the others alphabetically."""
    paper = [n for n in PAPER_TABLE2 if n in names]
    return paper + sorted(n for n in names if n not in PAPER_TABLE2)


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


def canonical_command(s: Settings) -> str:
    """A ``vaelab compare`` command line with every setting spelled out, equivalent to ``s``."""
    parts = ["vaelab", "compare", "--variants", ",".join(s.variants), "--dataset", s.dataset]
    if s.data_dir:
        parts += ["--data-dir", str(s.data_dir)]
    if s.image_size is not None:
        parts += ["--image-size", str(s.image_size)]
    if s.train_size:
        parts += ["--train-size", str(s.train_size)]
    parts += ["--backbone", s.backbone, "--latent-dim", str(s.latent_dim), "--epochs", str(s.epochs),
              "--seeds", ",".join(map(str, s.seeds)), "--protocol", s.protocol, "--binarize", s.binarize]
    if s.phase_epochs is not None:
        parts += ["--phase-epochs", str(s.phase_epochs)]
    for name, kv in s.overrides.items():
        for k, v in kv.items():
            parts += ["--set", f"{name}:{k}={json.dumps(v)}"]
    parts += ["--n-samples", str(s.n_samples), "--iwae-k", str(s.iwae_k), "--iwae-n", str(s.iwae_n),
              "--map-points", str(s.map_points)]
    if s.disentanglement != "standard":
        parts += ["--disentanglement", s.disentanglement]
    parts += ["--out", str(s.out)]
    return shlex.join(parts)

