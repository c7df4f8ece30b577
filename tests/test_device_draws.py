"""Correct on every device, checked without a GPU.

* Source scan (AST): no ``torch`` random factory in ``src/`` is given a ``generator`` without a
  ``device`` (on a GPU that draw lands on the CPU, or PyTorch refuses a CUDA generator), and no
  ``.numpy()`` is taken of a tensor that was not first brought to the host with ``.cpu()``.
* Runtime audit: every variant's seeded draws (sample, fix_static / fix_dynamic, the training step)
  made under a mode that flags any draw from a generator made for a device that names no device.
* The meta device: every variant moved to ``meta`` (a device that is not the CPU, available
  everywhere) trains a step, samples, reconstructs and bounds its likelihood with every output on
  ``meta``. A tensor made on the CPU where the model's device was meant shows up as a device error.
  Paths that read values (``.item()``, ``nonzero``, a GMM fit) cannot run on ``meta``; they are
  named in ``DATA_DEPENDENT`` and left to the two checks above.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

import vaelab
from battery import batch_for, build
from vaelab.models.base import NotAvailable

SRC = Path(__file__).resolve().parents[1] / "src" / "vaelab"
SIZED = {"randn", "rand", "randint", "randperm"}  # factories that take their device from an argument, not a tensor


def draws_without_device(source: str, filename: str = "<src>") -> list[str]:
    """Call sites ``torch.<factory>(..., generator=...)`` with no ``device=`` (``torch.normal`` in its
    size form too); the ``*_like`` factories and the tensor forms take their device from a tensor."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if not (isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"):
            continue
        kw = {k.arg for k in node.keywords}
        sized = node.func.attr in SIZED or (node.func.attr == "normal" and ("size" in kw or len(node.args) >= 3))
        if sized and "generator" in kw and "device" not in kw:
            found.append(f"{filename}:{node.lineno}: torch.{node.func.attr}(generator=...) without device=")
    return found


def host_arrays_without_cpu(source: str, filename: str = "<src>") -> list[str]:
    """``.numpy()`` calls whose receiver is not a ``.cpu()`` call (a CUDA tensor has no numpy view)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "numpy":
            recv = node.func.value
            if ".cpu()" not in ast.unparse(recv):
                found.append(f"{filename}:{node.lineno}: .numpy() without .cpu()")
    return found


def scan(check) -> list[str]:
    return [hit for p in sorted(SRC.rglob("*.py")) for hit in check(p.read_text(), str(p.relative_to(SRC.parent)))]


def test_no_seeded_draw_in_src_lacks_a_device():
    assert scan(draws_without_device) == []


def test_the_draw_scan_catches_a_planted_case():
    planted = ("import torch\n"
               "a = torch.randn(3, generator=g)\n"
               "b = torch.randint(0, 5, (3,), generator=g, device=d)\n"
               "c = torch.randn_like(x, generator=g)\n"
               "d = torch.normal(0.0, 1.0, (3,), generator=g)\n"
               "e = torch.multinomial(p, 1, generator=g)\n"
               "f = torch.randperm(n, generator=g)\n")
    assert [h.split(":")[1] for h in draws_without_device(planted)] == ["2", "5", "7"]


def test_no_numpy_view_of_a_device_tensor_in_src():
    assert scan(host_arrays_without_cpu) == []


def test_the_numpy_scan_catches_a_planted_case():
    planted = "a = t.numpy()\nb = t.cpu().numpy()\nc = t.detach().cpu().float().numpy()\nd = f(t).numpy()\n"
    assert [h.split(":")[1] for h in host_arrays_without_cpu(planted)] == ["1", "4"]


# ---------------------------------------------------------------------------------------------------
class _DeviceGenerator(torch.Generator):
    """A generator made with an explicit device, as the trainer and ``evaluate`` make them: on a GPU it
    would be a CUDA generator."""


class DrawAudit(TorchFunctionMode):
    """Records every sized draw from a :class:`_DeviceGenerator` that names no device."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if isinstance(kwargs.get("generator"), _DeviceGenerator) and getattr(func, "__name__", "") in SIZED \
                and kwargs.get("device") is None:
            self.found.append(func.__name__)
        return func(*args, **kwargs)


def test_the_draw_audit_catches_a_planted_draw():
    with DrawAudit() as audit:
        torch.randn(3, generator=_DeviceGenerator("cpu"))
        torch.randn(3, generator=_DeviceGenerator("cpu"), device="cpu")
    assert audit.found == ["randn"]


@pytest.mark.parametrize("name", vaelab.variants())
def test_every_seeded_draw_names_its_device(name):
    v = build(name).eval()
    b = batch_for(v)
    keep = b["y"] >= 0
    x, y = b["x"][keep], b["y"][keep]
    with DrawAudit() as audit:
        for call in (lambda g: v.sample(4, y=y[:4] if v.conditional else None, generator=g),
                     lambda g: v.fix_static(x, generator=g), lambda g: v.fix_dynamic(x, generator=g)):
            try:
                call(_DeviceGenerator("cpu").manual_seed(0))
            except (NotAvailable, AttributeError):
                pass
    assert audit.found == [], f"{name}: draws from a device generator without a device: {audit.found}"


# ---------------------------------------------------------------------------------------------------
DATA_DEPENDENT = ("cannot be called on meta tensors", "register_meta function for torch.nonzero",
                  "Cannot copy out of meta tensor", "with Meta tensors", "meta tensors")


def _on_meta(out) -> list[str]:
    ts = out.values() if isinstance(out, dict) else [out]
    return [str(t.device) for t in ts if torch.is_tensor(t) and t.device.type != "meta"]


def _sgd(params, lr=None, **kw):
    return torch.optim.SGD(params, lr=1e-3)


@pytest.mark.parametrize("name", vaelab.variants())
def test_on_a_device_that_is_not_the_cpu_every_output_stays_there(name):
    v = build(name)
    b = batch_for(v)
    v.to("meta")
    mb = {k: (t.to("meta") if torch.is_tensor(t) else t) for k, t in b.items()}
    yc = mb["y"] if v.conditional else None
    calls = {f"train_step[{ph.name}]": (lambda ph=ph: v.train_step(mb, 0, v.configure_optimizers(ph.name, _sgd), ph.name))
             for ph in v.phases()}
    calls.update({
        "loss": lambda: v.loss(mb, 0)[1],
        "sample": lambda: v.sample(4, y=torch.arange(4, device="meta") % v.config.n_classes if v.conditional else None),
        "log_weights": lambda: v.log_weights(mb["x"], 2, yc),
        "reconstruct": lambda: v.reconstruct(mb["x"], yc),
    })
    ran = []
    for what, call in calls.items():
        try:
            out = call()
        except NotAvailable:
            continue
        except (RuntimeError, NotImplementedError) as e:
            msg = str(e)
            if any(s in msg for s in DATA_DEPENDENT) and "expected device" not in msg and "same device" not in msg:
                continue  # reads values: the scans above cover it
            raise AssertionError(f"{name} {what} on meta: {type(e).__name__}: {msg.splitlines()[0]}") from e
        assert _on_meta(out) == [], f"{name} {what}: outputs left the model's device: {_on_meta(out)}"
        ran.append(what)
    if name in ("vae", "beta-vae", "info-vae", "wae", "cvae", "gmvae", "s3vae", "dsvae"):
        assert {"loss", "sample", "reconstruct"} <= set(ran), f"{name}: expected to run on meta, ran {ran}"


def test_the_meta_check_catches_a_prior_drawn_on_the_cpu(monkeypatch):
    """The check can fail: a VAE whose prior draws land on the CPU (the bug this file guards against)."""
    from vaelab.models.vae import VAE

    def cpu_sample(self, n, y=None, generator=None):
        return torch.sigmoid(self.decode(self.prior.sample(n, generator=generator), y).float())

    monkeypatch.setattr(VAE, "sample", cpu_sample)
    with pytest.raises(AssertionError, match="vae sample on meta"):
        test_on_a_device_that_is_not_the_cpu_every_output_stays_there("vae")
