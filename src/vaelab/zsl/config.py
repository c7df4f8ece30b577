"""What defines one ``vaelab zsl`` run: :class:`ZSLConfig` (recorded in zsl.json as ``config``; a rerun
with another config is refused), the method names and the default generator epochs."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..config import check, check_choice, check_int, check_range
from ..errors import ConfigError
from .benchmark import DATASETS, fold_classes
from .features import EXTRACTORS, check_setting
from .presets import get_preset

GENERATORS = ("f-vaegan-d2", "zero-vae-gan", "f-clswgan")
METHODS = (*GENERATORS, "eszsl", "ridge")
SELF_TRAINING = ("none", "generator", "classifier", "both")
#: Default generator epochs: about 1,300–3,300 updates of batch 64 on each dataset's seen classes.
EPOCHS = {"mnist-5k": 30, "mnist": 5, "fashion-mnist": 5}
#: Default generator epochs on a ``.mat`` benchmark (about 3,300 updates of batch 64 on CUB's 7,057 trainval features).
MAT_EPOCHS = 30
#: The axes of ``--select``'s grid that ``select_grid`` (``--select-grid AXIS=V1,V2``) may replace (:mod:`vaelab.zsl.select`).
GRID_AXES = ("lr", "epochs", "gamma", "n_synth_factor", "pseudo_fraction")


@dataclass
class ZSLConfig:
    """Everything that defines one ZSL run (recorded in zsl.json; a rerun with another config is refused)."""

    dataset: str = "mnist-5k"
    method: str = "f-vaegan-d2"
    setting: str = "inductive"
    shots: int = 0
    fold: int = 0
    seed: int = 0
    data_dir: str | None = None
    epochs: int | None = None  # generator training epochs (None: EPOCHS of the dataset)
    batch_size: int = 64
    lr: float = 1e-3
    n_synth: int | None = None  # generated features per unseen class (None: synth_count's class-balanced default)
    self_training: str | None = None  # zero-vae-gan, transductive: none|generator|classifier|both (default both)
    pseudo_fraction: float = 0.5
    refine_epochs: int = 5
    model: dict[str, Any] = field(default_factory=dict)  # the generator's config overrides (--set)
    features: str | None = None  # a res101.mat-style file (with ``splits``): run on it instead of the benchmark
    splits: str | None = None  # its att_splits.mat-style file
    select: bool = False  # choose epochs, lr, γ, n_synth, pseudo_fraction on pseudo-unseen classes first (zsl/select.py)
    select_grid: dict[str, list] = field(default_factory=dict)  # axes of the selection grid replaced (GRID_AXES)
    preset: str | None = None  # the published recipe applied (zsl/presets.py: apply_preset), recorded by name
    extractor: str = "supervised"  # the benchmark's feature extractor (zsl/features.py: EXTRACTORS)

    @property
    def on_mat(self) -> bool:
        return self.features is not None or self.splits is not None

    def validate(self) -> None:
        check_choice(self.method, "--method", METHODS)
        check_setting(self.setting, self.shots)
        check_choice(self.extractor, "--extractor", EXTRACTORS)
        if self.on_mat:
            check(self.features is not None and self.splits is not None, "--features/--splits", "come together")
            check(self.extractor == "supervised", "--extractor", "chooses the features of vaelab's benchmark; "
                  "--features/--splits bring their own")
            check(self.shots == 0, "--shots", "any-shot runs are for vaelab's benchmark, not --features/--splits")
        else:
            check_choice(self.dataset, "--dataset", DATASETS)
            fold_classes(self.dataset, self.fold)
        if self.shots and self.setting != "inductive":
            raise ConfigError(f"--shots: any-shot runs ({self.shots} labelled examples per unseen class) are inductive; "
                              f"drop --shots or use --setting inductive")
        check_int(self.fold, "--fold", 0)
        check_int(self.seed, "--seed", 0)
        check_int(self.epochs, "--epochs", 1, optional=True)
        check_int(self.batch_size, "--batch-size", 1)
        check_range(self.lr, "--lr", lo=0, lo_open=True)
        check_int(self.n_synth, "--n-synth", 1, optional=True)
        check_range(self.pseudo_fraction, "--pseudo-fraction", lo=0, hi=1, lo_open=True)
        check_int(self.refine_epochs, "--refine-epochs", 1)
        if self.self_training is not None:
            check_choice(self.self_training, "--self-training", SELF_TRAINING)
            check(self.self_training == "none" or (self.method == "zero-vae-gan" and self.setting == "transductive"),
                  "--self-training", "is Zero-VAE-GAN's, in the transductive setting")
        if self.preset is not None:
            p = get_preset(self.preset)
            check(self.on_mat, "--preset", "presets are for the .mat benchmarks (--features/--splits), not vaelab's MNIST benchmark")
            check(self.method == p.method, "--preset", f"{self.preset} is {p.method}'s recipe, but the method is {self.method}")
        check(isinstance(self.select, bool), "--select", f"must be true or false, got {self.select!r}")
        check(isinstance(self.select_grid, dict), "--select-grid", "must map axes to lists of values")
        check(self.select or not self.select_grid, "--select-grid", "needs --select")
        for axis, values in self.select_grid.items():
            check_choice(axis, "--select-grid", GRID_AXES)
            check(isinstance(values, list) and bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                                    for v in values), f"--select-grid {axis}",
                  "must be a non-empty list of numbers")
            for v in values:
                if axis == "epochs":
                    check_int(v, f"--select-grid {axis}", 1)
                elif axis == "pseudo_fraction":
                    check_range(v, f"--select-grid {axis}", lo=0, hi=1, lo_open=True)
                elif axis == "gamma":
                    check_range(v, f"--select-grid {axis}", lo=0)
                else:
                    check_range(v, f"--select-grid {axis}", lo=0, lo_open=True)

    @property
    def strategy(self) -> str:
        """The self-training strategy in effect."""
        if self.self_training is not None:
            return self.self_training
        return "both" if self.method == "zero-vae-gan" and self.setting == "transductive" else "none"

    @property
    def n_epochs(self) -> int:
        if self.epochs is not None:
            return self.epochs
        return MAT_EPOCHS if self.on_mat else EPOCHS[self.dataset]

    def to_dict(self) -> dict[str, Any]:
        d = {**dataclasses.asdict(self), "epochs": self.n_epochs, "self_training": self.strategy}
        for k in ("dataset", "fold", "data_dir") if self.on_mat else ("features", "splits"):
            d.pop(k)  # a .mat run is named by its files; a benchmark run's record keeps its old keys
        if not self.select:  # nor does a run without selection gain keys (older zsl.json files stay reusable)
            d.pop("select")
            d.pop("select_grid")
        if self.preset is None:
            d.pop("preset")
        if self.extractor == "supervised":  # the benchmark's own: older zsl.json files stay reusable
            d.pop("extractor")
        return d
