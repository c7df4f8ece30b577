"""Named presets (``vaelab zsl --preset METHOD/DATASET``): the published training recipes of the ZSL
methods on the standard ``.mat`` benchmarks (CUB, AWA2, SUN, FLO), as values of vaelab's configs.

A preset sets the run's ``lr``, ``epochs``, ``batch_size`` and ``n_synth`` and the generator's config
(``hidden``, ``output``, ``gamma``, ``cls_weight``, ``n_critic``, ``gp_weight``, ``classifier_epochs``);
an explicitly given flag (``--lr``, ``--epochs``, ``--n-synth``, ``--set KEY=VALUE`` ...) wins over the
preset's value. Presets are for ``--features``/``--splits`` runs only: vaelab's MNIST benchmark has its
own defaults, which a study depends on. docs/zsl.md ("Presets") lists every entry beside the papers'
published GZSL figures.

Epochs: the authors' code (f-CLSWGAN's ``clswgan.py``, and TF-VAEGAN's training script built on the
same loop) makes, per epoch, one generator update per batch of the labelled features, each after
``n_critic`` = 5 critic updates on freshly drawn batches. vaelab's trainer makes one critic update per
batch and a generator update every ``n_critic``-th batch, so a published ``nepoch`` is ``5 × nepoch``
vaelab epochs (the same numbers of generator and critic updates); ``published_epochs`` keeps the
published count. The published scripts evaluate after every epoch and report the best epoch, so
``nepoch`` is where their search stopped, not necessarily the epoch reported.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..errors import ConfigError

#: The datasets presets exist for, and their numbers of classes (a check that the files match).
DATASETS = {"cub": 200, "awa2": 50, "sun": 717, "flo": 102}
#: ZSLConfig fields a preset may set (the rest of a preset's values go to the generator's config).
RUN_FIELDS = ("lr", "epochs", "batch_size", "n_synth")
#: Published epochs → vaelab epochs (module docstring).
CRITIC_STEPS = 5

_CLSWGAN_SRC = ("f-CLSWGAN's reproduce flags for clswgan.py (Xian et al. 2018), as mirrored in "
                "github.com/luca-rossi/grabzsl scripts/run_clswgan_{}_gzsl.py; the same common flags "
                "(--ngh 4096 --ndh 4096 --lambda1 10 --critic_iter 5 --batch_size 64) recur in the forks of that code")
_TFVAEGAN_SRC = ("TF-VAEGAN's inductive script (Narayan et al. 2020, built on f-VAEGAN-D2's code), "
                 "github.com/akshitac8/tfvaegan zero-shot-images/image-scripts/run_{}_tfvaegan.py (--gammaG)")


@dataclass(frozen=True)
class Preset:
    """One published recipe: the run's and the generator's values, the published epoch count and
    where the values come from (``source``) and what is not published or not taken (``notes``)."""

    method: str
    dataset: str
    run: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    published_epochs: int | None = None
    source: str = ""
    notes: str = ""

    @property
    def name(self) -> str:
        return f"{self.method}/{self.dataset}"


def _clswgan(dataset: str, script: str, lr: float, nepoch: int, syn: int, beta: float, notes: str = "") -> Preset:
    return Preset("f-clswgan", dataset, run={"lr": lr, "epochs": CRITIC_STEPS * nepoch, "batch_size": 64, "n_synth": syn},
                  model={"hidden": 4096, "output": "relu", "cls_weight": beta, "n_critic": CRITIC_STEPS, "gp_weight": 10.0,
                         "classifier_epochs": 50},
                  published_epochs=nepoch, source=_CLSWGAN_SRC.format(script),
                  notes=("the pre-trained classifier: 50 epochs as published, but at the run's lr and batch size "
                         "(published: lr 1e-3, batch 100); the final softmax classifiers are vaelab's (scikit-learn), "
                         "so the published --classifier_lr has no counterpart" + (f"; {notes}" if notes else "")))


def _vaegan(dataset: str, script: str, lr: float, nepoch: int, syn: int, gamma: float) -> Preset:
    return Preset("f-vaegan-d2", dataset, run={"lr": lr, "epochs": CRITIC_STEPS * nepoch, "batch_size": 64, "n_synth": syn},
                  model={"hidden": 4096, "output": "sigmoid", "gamma": gamma, "n_critic": CRITIC_STEPS, "gp_weight": 10.0},
                  published_epochs=nepoch, source=_TFVAEGAN_SRC.format(script),
                  notes=("f-VAEGAN-D2's own code (its project page lists a release) was not among the sources "
                         "searched; TF-VAEGAN's recipe is its closest public descendant, its feedback module and "
                         "decoder left out; TF-VAEGAN also scales the critic's loss by --gammaD (= --gammaG here), which "
                         "vaelab does not; no public transductive recipe was found: the same values are used"))


def _eszsl(dataset: str) -> Preset:
    return Preset("eszsl", dataset, source="Romera-Paredes & Torr 2015: γ and λ chosen on validation classes from "
                  "10^-3..10^3, which vaelab's ESZSL always does (zsl.methods.ESZSL_GRID)",
                  notes="no other knob: the preset changes nothing")


PRESETS: dict[str, Preset] = {p.name: p for p in (
    _clswgan("cub", "cub", 1e-4, 56, 300, 0.01),
    _clswgan("flo", "flo", 1e-4, 80, 1200, 0.1),
    _clswgan("sun", "sun", 2e-4, 40, 400, 0.01),
    _clswgan("awa2", "awa", 1e-5, 30, 1800, 0.01,
             notes="the paper and its scripts use AWA1 (not AWA2): this is the AWA1 recipe"),
    _vaegan("cub", "cub", 1e-4, 300, 300, 10.0),
    _vaegan("awa2", "awa", 1e-5, 120, 1800, 10.0),
    _vaegan("sun", "sun", 1e-3, 400, 400, 1.0),
    _vaegan("flo", "flo", 1e-4, 500, 1200, 10.0),
    *(_eszsl(d) for d in DATASETS),
)}
#: Methods with no preset, and why (a one-line refusal).
NO_PRESET = {
    "zero-vae-gan": "no preset; no published recipe was found (no public code; the paper's training details could not be checked)",
    "ridge": "no preset; it is vaelab's own lower bound, with no published recipe",
}


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (METHOD/DATASET); a one-line ConfigError when there is none."""
    method, _, dataset = str(name).partition("/")
    if method in NO_PRESET:
        raise ConfigError(f"--preset {name}: {method} has {NO_PRESET[method]}")
    if name not in PRESETS:
        raise ConfigError(f"--preset: {name!r} is not a preset; choose one of {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


def apply_preset(cfg, name: str, explicit: Iterable[str] = ()):
    """``cfg`` (a ZSLConfig) with preset ``name``'s values and ``preset=name``; the run fields named in
    ``explicit`` (and ``method``) and the generator values already in ``cfg.model`` (``--set``) are kept."""
    p = get_preset(name)
    explicit = set(explicit)
    if not cfg.on_mat:
        raise ConfigError(f"--preset {name}: presets are the published recipes for the .mat benchmarks "
                          f"(--features/--splits); vaelab's MNIST benchmark keeps its own defaults")
    if "method" in explicit and cfg.method != p.method:
        raise ConfigError(f"--preset {name} is {p.method}'s recipe, but --method is {cfg.method}")
    run = {k: v for k, v in p.run.items() if k not in explicit}
    return dataclasses.replace(cfg, method=p.method, preset=p.name, model={**p.model, **cfg.model}, **run)


def check_files(name: str, n_classes: int, where: str) -> None:
    """Refuse a preset on files whose number of classes is not its dataset's (one line)."""
    p = get_preset(name)
    if DATASETS[p.dataset] != n_classes:
        raise ConfigError(f"--preset {name}: {where} has {n_classes} classes, {p.dataset.upper()} has "
                          f"{DATASETS[p.dataset]}; pick the preset of the dataset the files hold")
