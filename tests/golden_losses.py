"""Golden loss values: what each registered variant's objectives give on a fixed model and batch.

What is pinned, per variant and per phase of its training plan (``phases()``):

* ``loss``: the terms of ``model.loss(batch, STEP)`` once the model is in that phase;
* ``train_step``: the terms one ``train_step(batch, STEP, optimizers, phase)`` returns. For most
  variants they are ``loss``'s again; for those with several optimizers or objectives that live only
  in the step (GAN players, critics, the ZSL generators' phases) they are the step's own. Terms
  measured after an update inside the step (e.g. zero-vae-gan's ``g_adv`` against the just-updated
  discriminator) pin that update too;
* ``update``: for each optimizer of that step, ‖Δθ‖ / lr over its parameters: the gradient norm of
  the objective that optimizer minimises. It pins what no reported term shows: the weights inside
  the players' own objectives (vae-gan's γ, f-clswgan's ``cls_weight``, ...) and where gradients
  stop (a ``detach`` added or lost). The optimizers are plain SGD at ``PROBE_LR`` for this, whatever
  the variant asks of the factory (Adam, betas, its own lr), so that Δθ is the gradient and no
  optimizer implementation is pinned.

Each value comes from a fresh model: ``battery.build`` (seed 0, the variant's ``variant_configs.config_for``), in
train mode, entered into the phase, and ``battery.batch_for`` (seeded generator); the global torch
RNG is seeded (``LOSS_SEED``) just before the call, so reparameterisation noise, vMF rejection
sampling, permutations, augmentations and fake draws are the same every time.

Why float64: float32 kernels (convolutions, matmuls) sum in CPU-dependent orders (AMX on some Intel
machines, AVX2 on AMD EPYC), which moves a loss by more than the tolerance. The model is built in
float32 (so its initial weights are the library's), then cast with ``.double()`` and evaluated under
:func:`float64`, which keeps every tensor of the computation in float64. Perturbing every weight by
one float64 rounding moves the pinned values by < 1e-13 relative.

How a model enters a phase: as the trainer starts it, the phase recorded in ``Variant.progress`` (which
VaDE's, vq-vae's and cvae-quadrant's ``loss`` follow; the step counts stay 0) and then ``begin_phase(phase, ctx)``,
except that VaDE's ``begin_phase`` is not called: its ``begin_phase("train")`` also fits scikit-learn's GaussianMixture to the encoder means, whose result
belongs to scikit-learn (its version, its k-means initialisation), not to vaelab's objective. VaDE's
ELBO is pinned at the mixture prior the model is built with.

The stored values are in ``tests/golden/losses.json``, written only by ``tests/golden/regenerate.py``.
"""
from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Iterator

import torch

import battery
from vaelab.models.base import Variant
from vaelab.registry import get

GOLDEN = Path(__file__).resolve().parent / "golden" / "losses.json"
REGENERATE = "python tests/golden/regenerate.py"
#: Relative tolerance of the comparison. Rounding differences (another CPU's kernels: perturbing every
#: weight by one float64 rounding) move the values by < 1e-13, so 1e-9 leaves four orders of margin;
#: 1e-6 would let β × 1.01 in β-VAE pass (its KL is ~1e-5 of the loss at initialisation).
RTOL = 1e-9
#: Absolute tolerance, for terms that are (near) zero, e.g. an EMA codebook's loss.
ATOL = 1e-12
#: The learning rate of the SGD optimizers of the ``train_step`` probe.
PROBE_LR = 1e-3
#: The training step passed to ``loss`` / ``train_step``: past 0, so step-dependent weights (S-VAE's KL
#: warm-up) are pinned strictly between their start and end.
STEP = 7
#: Seed of the global torch RNG just before each loss / train_step call.
LOSS_SEED = 1

Terms = dict[str, float]
Case = dict[str, dict[str, Terms]]  # {phase: {"loss" | "train_step" | "update": {name: value}}}


@contextlib.contextmanager
def float64() -> Iterator[None]:
    """Evaluate in float64: tensors made without a dtype are float64, and ``Tensor.float()`` (which the
    models call to compute losses in at least float32 under bf16 autocast) gives float64, as
    ``vaelab.losses.likelihood`` and ``vaelab.losses.divergences`` already leave float64 alone."""
    original, default = torch.Tensor.float, torch.get_default_dtype()
    torch.Tensor.float = lambda self, *args, **kwargs: self.double(*args, **kwargs)
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.Tensor.float = original
        torch.set_default_dtype(default)


def _double(batch: dict) -> dict:
    return {k: v.double() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in batch.items()}


def _model_in_phase(name: str, phase: str) -> Variant:
    v = battery.build(name, seed=0).double()
    v.train()
    v.set_progress(phase=[p.name for p in v.phases()].index(phase))
    if name != "vade":  # not VaDE's begin_phase: it fits scikit-learn's GMM (see the module docstring)
        v.begin_phase(phase, battery.ctx(0, v))
    return v


def _values(terms: dict[str, torch.Tensor], where: str) -> Terms:
    out = {}
    for k, t in terms.items():
        assert t.dim() == 0, f"{where}: term {k!r} is not a scalar (shape {tuple(t.shape)})"
        out[k] = float(t)
    return out


def overrides_train_step(name: str) -> bool:
    """Whether the variant's ``train_step`` is its own rather than ``Variant``'s (loss, one optimizer)."""
    return get(name).train_step is not Variant.train_step


def _sgd(params, lr=None, adam_betas=None, **kwargs) -> torch.optim.Optimizer:
    """The probe's optimizer factory: plain SGD at PROBE_LR, whatever the variant asks for."""
    return torch.optim.SGD(params, lr=PROBE_LR)


def _gradient_norms(optimizers: dict[str, torch.optim.Optimizer], before: dict[torch.Tensor, torch.Tensor]) -> Terms:
    """{optimizer: ‖Δθ / lr‖ over its parameters} since ``before`` (parameter → its value then)."""
    out = {}
    for name, opt in optimizers.items():
        sq = 0.0
        for group in opt.param_groups:
            for p in group["params"]:
                sq += float(((p.detach() - before[p]) / group["lr"]).pow(2).sum())
        out[name] = math.sqrt(sq)
    return out


def compute(name: str) -> Case:
    """{phase: {"loss": terms, "train_step": terms, "update": gradient norms}} of variant ``name``."""
    out: Case = {}
    for phase in [p.name for p in battery.build(name).phases()]:
        v = _model_in_phase(name, phase)  # built in float32 (the library's initial weights), then cast
        batch = _double(battery.batch_for(v))
        torch.manual_seed(LOSS_SEED)
        with float64():
            _, terms = v.loss(batch, STEP)
        out[phase] = {"loss": _values(terms, f"{name}/{phase}/loss")}

        v = _model_in_phase(name, phase)
        optimizers = v.configure_optimizers(phase, _sgd)
        before = {p: p.detach().clone() for opt in optimizers.values() for g in opt.param_groups for p in g["params"]}
        torch.manual_seed(LOSS_SEED)
        with float64():
            terms = v.train_step(batch, STEP, optimizers, phase)
        out[phase]["train_step"] = _values(terms, f"{name}/{phase}/train_step")
        out[phase]["update"] = _gradient_norms(optimizers, before)
    return out


def compare(name: str, expected: Case | None, actual: Case, rtol: float = RTOL, atol: float = ATOL) -> list[str]:
    """One line per difference between stored and computed values of variant ``name``: a phase or a
    source (loss / train_step / update) or a term (optimizer) that appeared or disappeared, or a value off by more than
    ``rtol`` (relative) and ``atol``. Empty when they agree."""
    if expected is None:
        return [f"{name}: no golden values stored (a new variant?)"]
    problems = []
    for key in sorted(set(expected) | set(actual)):
        if key not in actual:
            problems.append(f"{name}: phase {key!r} disappeared (it has golden values)")
        elif key not in expected:
            problems.append(f"{name}: phase {key!r} appeared (no golden values)")
    for phase in sorted(set(expected) & set(actual)):
        for source in sorted(set(expected[phase]) | set(actual[phase])):
            where, noun = (f"{name}, phase {phase!r}, {source}()", "term") if source != "update" else \
                (f"{name}, phase {phase!r}, update (gradient norm)", "optimizer")
            if source not in actual[phase]:
                problems.append(f"{where}: no longer computed (it has golden values)")
                continue
            if source not in expected[phase]:
                problems.append(f"{where}: newly computed (no golden values)")
                continue
            exp, act = expected[phase][source], actual[phase][source]
            for term in sorted(set(exp) | set(act)):
                if term not in act:
                    problems.append(f"{where}: {noun} {term!r} disappeared (golden value {exp[term]!r})")
                elif term not in exp:
                    problems.append(f"{where}: {noun} {term!r} appeared (value {act[term]!r}, no golden value)")
                elif not math.isclose(act[term], exp[term], rel_tol=rtol, abs_tol=atol):
                    rel = abs(act[term] - exp[term]) / max(abs(exp[term]), atol)
                    problems.append(f"{where}: {noun} {term!r} is {act[term]!r}, golden value {exp[term]!r} "
                                    f"(relative difference {rel:.2e} > {rtol:g})")
    return problems


def load() -> dict[str, Case]:
    """The stored values, {variant: case}."""
    return json.loads(GOLDEN.read_text())["variants"]


def failure_message(problems: list[str]) -> str:
    return ("golden loss values differ:\n  " + "\n  ".join(problems)
            + f"\nIf the objective changed on purpose, run `{REGENERATE}` and commit tests/golden/losses.json "
              "with the change (its diff shows every moved value).")
