"""The contract every variant implements, so one trainer, one evaluator and one report serve all.

A variant is an ``nn.Module`` built from a config dataclass (its ``Config``; the ``__init__``
arguments *are* the config, saved as JSON and rebuilt on load). It declares:

* ``encode(x, y)`` → a posterior distribution object (``rsample``, ``log_prob``, ``mean``),
  ``decode(z, y)`` → logits of p(x|z);
* ``loss(batch, step)`` → (total, terms): the scalar to minimise and named per-sample means
  (likelihood terms in nats). ``terms`` always includes ``"loss"``;
* ``reconstruct``, ``sample``, ``embed``, and where defined ``log_weights`` (for ELBO/IWAE),
  ``predict`` (clusters), ``sample_per_cluster`` and ``task_metrics``;
* its training plan: ``phases()`` (e.g. VaDE: pretrain then train; VQ-VAE: train then prior),
  ``begin_phase``, ``configure_optimizers(phase, make)`` (one or several optimizers),
  ``lr_schedule(phase)`` (a learning-rate multiplier the trainer applies) and ``train_step`` (how
  one batch updates the optimizers, through :func:`vaelab.optim.update`; VAE-GAN overrides it for
  its three players).

Where training stands is kept here, for every variant, in one buffer ``progress`` (so a checkpoint
restores it and a loaded run knows what it reached) and set only by the trainer
(:mod:`vaelab.training.trainer`, through :meth:`Variant.set_progress` and :meth:`Variant.count_update`):
when a phase begins, when a run resumes, and around each update. Variants read it through
``phase`` (the current phase's name), ``trained_steps`` (updates so far in the run) and
``phase_steps`` (updates so far in the current phase); none keeps a counter or phase of its own.

The part of the batch an update trains on is handed in the same way: the trainer sets ``share`` (a
:class:`vaelab.share.BatchShare`) for each update and puts back :data:`vaelab.share.WHOLE`, the whole
batch in one process, after it; outside training it is ``WHOLE``. A variant reaches the batch's noise
and batch statistics only through it, passing it on explicitly: to its reparameterised draws
(``q.rsample(share=self.share)``), prior draws of one per example, batch statistics
(``share.sum``/``mean``/``gather``) and every :func:`vaelab.optim.update`. Under data-parallel training
(:class:`vaelab.parallel.Share`) these are the global batch's, so N processes train as one does.
The model layer imports nothing of the data, the processes or the study: a phase that trains on
augmented inputs declares it (``Phase.affine``) and the trainer moves the images before the update.

Class attributes: ``name``, ``Config``, ``conditional``, ``data_kind``, ``clusters``, ``latent_kind``,
``stored_defaults``, ``retired_state``, ``retired_progress``, ``loss_labels``, ``likelihoods``, ``data_parallel``;
the attribute ``share`` (above). Every hook a caller uses is declared here.

All state that training changes must live in parameters or buffers, so a checkpoint restores it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from .. import rng
from ..config import VariantConfig
from ..optim import MakeOptimizer, update
from ..share import WHOLE, BatchShare

Batch = dict[str, Any]  # {"x": (B, *shape) float, "y": (B,) int64, "index": (B,) int64, "dataset_size": int}
#: The fields of ``Variant.progress``, in order.
PROGRESS = ("phase", "steps", "phase_steps")
#: lr multiplier of a phase: f(seen, dataset_size), ``seen`` = examples of the phase once the batch is done
LRSchedule = Callable[[int, int], float]


@dataclass(frozen=True)
class Phase:
    """One stage of training. ``epochs=None`` means the run's ``--epochs``. ``affine``: (max shift as a
    fraction of the width/height, max rotation in degrees) of the random moves the trainer applies to
    each training batch of image data before the update (:func:`vaelab.data.augment.random_affine`);
    None, or (0, 0), trains on the images as they are."""

    name: str
    epochs: int | None = None
    affine: tuple[float, float] | None = None


@dataclass
class PhaseContext:
    """What ``begin_phase`` may look at: the training images (float, not binarized), labels, seed."""

    images: torch.Tensor
    labels: torch.Tensor
    seed: int
    batch_size: int


class NotAvailable(NotImplementedError):
    """A capability the variant does not have (e.g. no tractable likelihood); the message says why."""


class Variant(nn.Module):
    name: ClassVar[str] = "?"
    Config: ClassVar[type] = VariantConfig
    #: Needs class labels: encode/decode/sample take ``y``.
    conditional: ClassVar[bool] = False
    #: Implements ``predict(x)`` (cluster assignments).
    clusters: ClassVar[bool] = False
    #: What the variant models: "image" (the study's datasets) or "features" (feature vectors of
    #: classes from attribute vectors: the zero-shot generators, trained by ``vaelab zsl``).
    data_kind: ClassVar[str] = "image"
    #: Latent geometry, for reports: "gaussian" (traversals make sense), "sphere", "discrete".
    latent_kind: ClassVar[str] = "gaussian"
    #: Config keys added later with a default that changes behaviour, mapped to the value a stored
    #: run's config.json that lacks the key was trained with (read by ``stored_model_config``).
    stored_defaults: ClassVar[dict[str, Any]] = {}
    #: State-dict keys that checkpoints of older versions hold and this version no longer has;
    #: dropped when such a checkpoint is loaded.
    retired_state: ClassVar[tuple[str, ...]] = ()
    #: State-dict keys with which older versions kept their own phase or step count, each mapped to
    #: the ``progress`` field it is loaded into ("phase", "steps" or "phase_steps") and a number
    #: added to its value (:meth:`stored_state`).
    retired_progress: ClassVar[dict[str, tuple[str, int]]] = {}
    #: What ``terms["loss"]`` is in each phase, for the axes of loss curves; a phase not listed is "−ELBO (nats/image)".
    loss_labels: ClassVar[dict[str, str]] = {}
    #: The decoder likelihoods it can be trained with (``likelihood``); the first is for greyscale,
    #: "logistic" the default for RGB data where listed (:mod:`vaelab.losses.likelihood`).
    likelihoods: ClassVar[tuple[str, ...]] = ("bernoulli", "logistic", "gaussian")
    #: Data-parallel training over several processes (:mod:`vaelab.parallel`): True where the loss is a
    #: mean of per-example terms and every random draw and state update of training goes through
    #: ``share``, so N processes train as one does; otherwise the reason it is refused.
    data_parallel: ClassVar[bool | str] = "its training has not been made data-parallel"
    #: The part of the batch the current update trains on; set by the trainer around each update.
    share: BatchShare = WHOLE

    def __init__(self, config: VariantConfig):
        super().__init__()
        self.config = config
        # where training stands: [phase (index into phases(), -1 before any), trained steps, steps of the phase]
        self.register_buffer("progress", torch.tensor([-1, 0, 0], dtype=torch.int64))

    # ----- the model -------------------------------------------------------------------------
    def condition(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """Labels → one-hot condition vectors (B, n_classes); float vectors pass through."""
        if y is None or not self.conditional:
            return None
        if y.dtype in (torch.int64, torch.int32):
            return nn.functional.one_hot(y, self.config.n_classes).float()
        return y.float()

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None):
        raise NotImplementedError

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Decoded posterior mean, as probabilities in [0, 1]."""
        return torch.sigmoid(self.decode(self.encode(x, y).mean, y).float())

    def sample_labels(self, n: int, y: torch.Tensor | None, generator: torch.Generator | None = None) -> torch.Tensor:
        """The labels of ``sample(n, y)`` for a conditional variant: ``y`` checked to hold n labels, or n
        drawn uniformly over the classes when it is None."""
        if y is None:
            y = rng.randint(0, self.config.n_classes, (n,), generator, self.device)
        if y.shape[0] != n:
            raise ValueError(f"{self.name}: sample(n={n}) got {y.shape[0]} labels")
        return y

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws from the model's generative distribution, as probabilities in [0, 1]."""
        raise NotAvailable(f"{self.name}: no sampling")

    @torch.no_grad()
    def embed(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """A (B, D) latent representation of x (posterior mean), for latent maps."""
        return self.encode(x, y).mean

    def log_weights(self, x: torch.Tensor, k: int, y: torch.Tensor | None = None) -> torch.Tensor:
        """(k, B) log importance weights log p(x, z_k) − log q(z_k|x), z_k ~ q(z|x).

        Their mean is the ELBO; logmeanexp over k is the IWAE bound (Burda et al. 2016)."""
        raise NotAvailable(f"{self.name}: no tractable likelihood bound")

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        raise NotAvailable(f"{self.name}: does not assign clusters")

    @torch.no_grad()
    def sample_per_cluster(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws from each cluster's component in turn: (K·n, *data_shape) probabilities (clustering variants)."""
        raise NotAvailable(f"{self.name}: has no clusters to sample from")

    def task_metrics(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, float]:
        """Figures of the variant's own task on test images ``x`` (labels ``y``) that ``vaelab evaluate``
        adds to eval.json, e.g. quadrant completion's conditional NLL; none for most variants."""
        return {}

    # ----- the training plan -----------------------------------------------------------------
    def phases(self) -> list[Phase]:
        return [Phase("train")]

    def begin_phase(self, phase: str, ctx: PhaseContext) -> None:
        """Called once when a phase starts (not when resuming inside it)."""

    def configure_optimizers(self, phase: str, make: MakeOptimizer) -> dict[str, torch.optim.Optimizer]:
        return {"model": make(self.parameters())}

    def lr_schedule(self, phase: str) -> LRSchedule | None:
        """The phase's learning-rate multiplier, applied by the trainer to every param group's initial
        lr before each update; None (the default) keeps the lr constant."""
        return None

    def train_step(self, batch: Batch, step: int, optimizers: dict[str, torch.optim.Optimizer], phase: str) -> dict[str, torch.Tensor]:
        """One update on one batch; returns detached loss terms including ``"loss"``."""
        total, terms = self.loss(batch, step)
        update(total, optimizers["model"], share=self.share)
        return terms

    # ----- where training stands (set by the trainer) ------------------------------------------
    @property
    def phase(self) -> str | None:
        """The name of the phase training is in (or ended in); None before any phase began."""
        i = int(self.progress[0])
        return None if i < 0 else self.phases()[i].name

    @property
    def trained_steps(self) -> int:
        """Updates so far in the run, all phases (inside ``train_step``: those before this one, i.e.
        its ``step``)."""
        return int(self.progress[1])

    @property
    def phase_steps(self) -> int:
        """Updates so far in the current phase (inside ``train_step``: those before this one)."""
        return int(self.progress[2])

    @torch.no_grad()
    def set_progress(self, phase: int | None = None, steps: int | None = None, phase_steps: int | None = None) -> None:
        """The trainer's: record the phase (an index into ``phases()``), the run's update count and the
        phase's; None leaves a field as it is."""
        for i, value in enumerate((phase, steps, phase_steps)):
            if value is not None:
                self.progress[i] = value

    @torch.no_grad()
    def count_update(self) -> None:
        """The trainer's, after each update: one more of the run's and of the phase's."""
        self.progress[1:] += 1

    @classmethod
    def stored_state(cls, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A checkpoint's state dict made loadable: the ``retired_state`` keys dropped and, in a checkpoint
        of a version without ``progress``, the keys of ``retired_progress`` carried into it (the other
        fields at their start: no phase, no steps; the trainer sets phase and steps when it resumes)."""
        state = {k: t for k, t in state.items() if k not in cls.retired_state}
        if "progress" not in state:
            progress = torch.tensor([-1, 0, 0], dtype=torch.int64)
            for key, (field, add) in cls.retired_progress.items():
                if key in state:
                    progress[PROGRESS.index(field)] = int(state.pop(key)) + add
            state["progress"] = progress
        return state

    @classmethod
    def loss_label(cls, phase: str) -> str:
        """What the phase's ``loss`` term measures, with its unit."""
        return cls.loss_labels.get(phase, "−ELBO (nats/image)")

    # ----- helpers ---------------------------------------------------------------------------
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self) -> torch.device:
        """Where the variant's parameters live."""
        return next(iter(self.parameters())).device
