"""The shared tester battery: every registered variant must pass these (see test_variants.py).

A variant's test configuration is ``tiny_config(name)``: the small backbone, a 4-d latent, plus
the variant's own overrides from ``variant_configs.config_for`` (e.g. fewer pretraining epochs).
"""
from __future__ import annotations

import dataclasses
import math

import torch

import vaelab
from vaelab.config import from_dict
from vaelab.models.base import PhaseContext
from vaelab.registry import get
from vaelab.training.checkpoint import load_model_weights, read_checkpoint, save_checkpoint
from vaelab.optim import apply_lr_scale, make_optimizer_factory
from vaelab.training.config import TrainConfig
from variant_configs import MAY_NOT_CHANGE, config_for

B = 8


def tiny_config(name: str) -> dict:
    cfg = {"backbone": "small", "latent_dim": 4}
    cfg.update(config_for(name))
    return cfg


def tiny_batch(n: int = B, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g)
    x = (x > 0.7).float() * torch.rand(n, 1, 28, 28, generator=g)
    y = torch.arange(n) % 10
    return {"x": x, "y": y, "index": torch.arange(n), "dataset_size": 1000}


def batch_for(v, n: int = B, seed: int = 0) -> dict:
    """A batch the variant takes: images, sequences of frames for sequence models, or for feature generators features in [0, 1] whose last
    quarter is unlabelled (label −1) when the variant is transductive."""
    kind = getattr(v, "data_kind", "image")
    if kind == "image":
        return tiny_batch(n, seed)
    g = torch.Generator().manual_seed(seed)
    if kind == "sequence":  # sparse ink in every frame of (n, T, C, H, W)
        shape = (n, *v.config.data_shape)
        x = (torch.rand(shape, generator=g) > 0.7).float() * torch.rand(shape, generator=g)
        return {"x": x, "y": torch.arange(n) % 10, "index": torch.arange(n), "dataset_size": 1000}
    x = torch.rand(n, *v.config.data_shape, generator=g)
    y = torch.arange(n) % 10
    if getattr(v.config, "transductive", False):
        y[n - max(n // 4, 1):] = -1
    return {"x": x, "y": y, "index": torch.arange(n), "dataset_size": 1000}


def labelled(b: dict) -> tuple[torch.Tensor, torch.Tensor]:
    keep = b["y"] >= 0
    return b["x"][keep], b["y"][keep]


def build(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return vaelab.build(name, **tiny_config(name))


def ctx(seed: int = 0, v=None) -> PhaseContext:
    b = tiny_batch(64, seed=seed + 1) if v is None else batch_for(v, 64, seed=seed + 1)
    return PhaseContext(b["x"], b["y"], seed, 16)


def enter_phase(v, phase: str, context: PhaseContext | None = None, step: int = 0) -> None:
    """Start phase ``phase`` as the trainer does: record it (``Variant.set_progress``), then ``begin_phase``."""
    v.set_progress(phase=[p.name for p in v.phases()].index(phase), steps=step, phase_steps=0)
    v.begin_phase(phase, ctx(0, v) if context is None else context)


def one_step_each_phase(v, seed: int = 0):
    """Run begin_phase + one train_step in every phase (its lr_schedule applied and its progress
    recorded as the trainer does); return the last optimizers."""
    make = make_optimizer_factory(TrainConfig(lr=1e-3))
    torch.manual_seed(seed)
    opts = {}
    step = 0
    for ph in v.phases():
        v.train()
        enter_phase(v, ph.name, ctx(seed, v), step)
        opts = v.configure_optimizers(ph.name, make)
        batch = batch_for(v)
        schedule = v.lr_schedule(ph.name)
        if schedule is not None:
            factor = schedule(batch["x"].shape[0], batch["dataset_size"])
            assert math.isfinite(factor) and factor > 0, f"{v.name} phase {ph.name}: lr factor {factor}"
            apply_lr_scale(opts.values(), factor)
        terms = v.train_step(batch, step, opts, ph.name)
        v.count_update()
        assert "loss" in terms, f"{v.name}: train_step terms lack 'loss'"
        for k, t in terms.items():
            assert torch.isfinite(t).all(), f"{v.name} phase {ph.name}: term {k} is not finite ({t})"
        step += 1
    return opts


def check_builds_and_shapes(name: str) -> None:
    v = build(name)
    x, y = labelled(batch_for(v))
    y = y if v.conditional else None
    v.eval()
    try:
        q = v.encode(x, y)
        assert q.mean.shape[0] == x.shape[0]
    except vaelab.models.base.NotAvailable:
        assert v.data_kind == "features", f"{name}: only feature generators may lack an encoder"
    rec = v.reconstruct(x, y)
    assert rec.shape == x.shape and rec.min() >= 0 and rec.max() <= 1
    emb = v.embed(x, y)
    assert emb.dim() == 2 and emb.shape[0] == x.shape[0] and torch.isfinite(emb).all()
    try:
        s = v.sample(5, y=torch.arange(5) if v.conditional else None, generator=torch.Generator().manual_seed(0))
    except vaelab.models.base.NotAvailable:
        s = None
    if s is not None:
        assert s.shape == (5, *v.config.data_shape) and s.min() >= 0 and s.max() <= 1


def check_finite_loss(name: str) -> None:
    v = build(name)
    total, terms = v.loss(batch_for(v), 0)
    assert total.dim() == 0 and torch.isfinite(total)
    assert "loss" in terms and all(t.dim() == 0 and torch.isfinite(t) for t in terms.values())


def check_every_parameter_trains(name: str) -> None:
    """Backward reaches every trainable parameter, and one step (per phase) changes each of them."""
    v = build(name)
    before = {k: p.detach().clone() for k, p in v.named_parameters() if p.requires_grad}
    one_step_each_phase(v)
    skip = MAY_NOT_CHANGE.get(name, ())
    unchanged = [k for k, p in v.named_parameters()
                 if p.requires_grad and torch.equal(p.detach(), before[k]) and not k.startswith(skip)]
    assert not unchanged, f"{name}: parameters not updated by one step: {unchanged}"


def assert_same_state(name: str, expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor], what: str) -> None:
    """``actual`` holds exactly the keys of ``expected`` (none missing, renamed or extra) and, under each,
    an equal tensor (``torch.equal``: same shape and values) of the same dtype."""
    missing, extra = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
    assert not missing and not extra, f"{name}: {what}: state keys differ: missing {missing}, extra {extra}"
    for k, a in expected.items():
        b = actual[k]
        assert a.dtype == b.dtype, f"{name}: {what}: {k} is {b.dtype}, was {a.dtype}"
        assert torch.equal(a, b), f"{name}: {what}: {k} differs"


def check_save_load(name: str, tmp_path) -> None:
    """Trained weights survive save → read → load into a model rebuilt from the JSON config: the
    checkpoint holds exactly the model's state, and the rebuilt model's state equals it key for key."""
    v = build(name)
    opts = one_step_each_phase(v)
    save_checkpoint(tmp_path, v, opts, {"torch": torch.get_rng_state()}, {"epoch": 1})
    conf = from_dict(type(v.config), v.config.to_dict())
    assert conf == v.config, "config does not survive a JSON round-trip"
    w = get(name)(conf)
    tensors, state = read_checkpoint(tmp_path)
    sv = v.state_dict()
    saved = {k[len("model."):]: t for k, t in tensors.items() if k.startswith("model.")}
    assert_same_state(name, sv, saved, "checkpoint")
    load_model_weights(w, tensors)
    assert_same_state(name, sv, w.state_dict(), "after load")
    v.eval(), w.eval()
    x, y = labelled(batch_for(v))
    y = y if v.conditional else None
    torch.manual_seed(0)
    a = v.reconstruct(x, y)
    torch.manual_seed(0)
    assert torch.equal(a, w.reconstruct(x, y))


def check_determinism(name: str) -> None:
    states = []
    for _ in range(2):
        v = build(name, seed=3)
        one_step_each_phase(v, seed=5)
        states.append({k: t.clone() for k, t in v.state_dict().items()})
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), f"{name}: {k} differs between two seeded runs"


def check_bf16_step(name: str) -> None:
    """Every phase's step runs under bf16 autocast with finite terms."""
    v = build(name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        one_step_each_phase(v)
    for k, p in v.named_parameters():
        assert p.dtype == torch.float32, f"{name}: parameter {k} is {p.dtype} after a bf16 step"


CHECKS = [check_builds_and_shapes, check_finite_loss, check_every_parameter_trains, check_determinism, check_bf16_step]
__all__ = ["CHECKS", "check_save_load", "assert_same_state", "tiny_config", "tiny_batch", "batch_for", "build", "enter_phase", "one_step_each_phase", "dataclasses"]
