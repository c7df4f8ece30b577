"""The fast path (bf16 autocast, fused Adam, channels-last, torch.compile) keeps the numerics that
must stay fp32 in fp32, and every registered variant trains under it."""
import json

import pytest
import torch

import vaelab
from battery import batch_for, build, one_step_each_phase, tiny_batch
from vaelab.losses.divergences import kl_normal_std, mmd
from vaelab.losses.likelihood import bernoulli_log_prob
from vaelab.training.config import TrainConfig

BF16 = dict(device_type="cpu", dtype=torch.bfloat16)


@pytest.mark.parametrize("name", vaelab.variants())
def test_bf16_losses_and_optimizer_state_are_fp32(name):
    v = build(name)
    with torch.autocast(**BF16):
        total, terms = v.loss(batch_for(v), 0)
    assert total.dtype == torch.float32, f"{name}: total loss is {total.dtype}"
    assert all(t.dtype == torch.float32 for t in terms.values()), {k: t.dtype for k, t in terms.items()}
    with torch.autocast(**BF16):
        opts = one_step_each_phase(v)
    for o in opts.values():
        for st in o.state.values():
            for k, t in st.items():
                if torch.is_tensor(t):
                    assert t.dtype == torch.float32, f"{name}: optimizer state {k} is {t.dtype}"


def test_shared_loss_pieces_return_fp32_under_autocast():
    x = torch.rand(4, 1, 28, 28)
    with torch.autocast(**BF16):
        logits = torch.nn.Linear(3, 784)(torch.randn(4, 3)).view(4, 1, 28, 28)
        assert logits.dtype == torch.bfloat16
        assert bernoulli_log_prob(logits, x).dtype == torch.float32
        mu, logvar = torch.randn(4, 5).bfloat16(), torch.randn(4, 5).bfloat16()
        assert kl_normal_std(mu, logvar).dtype == torch.float32
        z = torch.randn(16, 5).bfloat16()
        assert mmd(z, torch.randn(16, 5)).dtype == torch.float32


def test_vmf_under_autocast_is_at_least_fp32():
    from vaelab.distributions.vmf import HypersphericalUniform, VonMisesFisher

    mu = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    kappa = torch.rand(4) * 50 + 1
    with torch.autocast(**BF16):
        q = VonMisesFisher(mu.bfloat16(), kappa.bfloat16())
        z = q.rsample()
        for t in (z, q.log_prob(z), q.kl(HypersphericalUniform(8)), q.entropy()):
            assert t.dtype in (torch.float32, torch.float64), t.dtype


def _train(tmp_path, name="r", **kw):
    cfg = TrainConfig(epochs=1, progress=False, train_size=1000, **kw)
    return vaelab.train("vae", {"backbone": "small", "latent_dim": 4}, cfg, tmp_path / name)


def test_bf16_and_channels_last_runs_train(tmp_path):
    run = _train(tmp_path, precision="bf16", channels_last=True)
    rec = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert rec["train"]["loss"] < 400 and rec["test"]["loss"] < 400
    m = vaelab.load(run)  # weights saved from channels-last parameters load into a default-format model
    assert torch.isfinite(m.reconstruct(tiny_batch()["x"])).all()


def test_fused_adam_is_deterministic_and_close_to_foreach(tmp_path):
    from safetensors.torch import load_file

    a = load_file(str(_train(tmp_path, "a", fused=True) / "checkpoint.safetensors"))
    b = load_file(str(_train(tmp_path, "b", fused=True) / "checkpoint.safetensors"))
    c = load_file(str(_train(tmp_path, "c", fused=False) / "checkpoint.safetensors"))
    for k in a:
        if k.startswith("model."):
            assert torch.equal(a[k], b[k])
            assert torch.allclose(a[k], c[k], atol=1e-3, rtol=1e-3), k


def test_compile_failure_falls_back_to_eager(tmp_path, monkeypatch, caplog):
    """With no usable C compiler, --compile warns and trains eagerly instead of failing."""
    import torch._inductor.config as ic

    monkeypatch.setattr(ic.cpp, "cxx", ("/nonexistent/c++",))
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    run = _train(tmp_path, compile=True)
    assert json.loads((run / "checkpoint.json").read_text())["done"]
    assert "training continues in eager mode" in (run / "train.log").read_text()


@pytest.mark.parametrize("env, flushed", [("1", True), ("0", False)])
@pytest.mark.parametrize("pool_first", [False, True])
def test_flush_denormals_zeroes_subnormals_unless_switched_off(env, flushed, pool_first):
    """In a fresh process with 2 threads: after ``flush_denormals`` the first moment of an Adam state
    whose gradients are zero after the first step decays to exactly 0 in all of its 2M entries, whether
    torch's worker threads start after the call or were already running (``pool_first``: without
    the call on every OpenMP thread the worker's half stays subnormal); with VAELAB_FLUSH_DENORMAL=0
    every entry stays subnormal."""
    import os
    import subprocess
    import sys

    code = ("import torch; from vaelab._cpu import flush_denormals; torch.set_num_threads(2); "
            + ("torch.randn(4_000_000).mul_(2.0); " if pool_first else "")
            + "print(flush_denormals()); w = torch.nn.Parameter(torch.ones(2_000_000)); "
            "opt = torch.optim.Adam([w], lr=1e-3, fused=True)\n"
            "for step in range(900):\n"
            "    w.grad = torch.full_like(w, 1.0 if step == 0 else 0.0); opt.step()\n"
            "print(int((opt.state[w]['exp_avg'] != 0).sum()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "VAELAB_FLUSH_DENORMAL": env}).stdout.split()
    assert out == (["True", "0"] if flushed else ["False", "2000000"])


def test_on_every_openmp_thread_reaches_each_thread_once():
    import threading

    from vaelab._cpu import on_every_openmp_thread

    ids = []
    assert on_every_openmp_thread(lambda: ids.append(threading.get_ident()), 2) == 2
    assert len(set(ids)) == 2 and threading.get_ident() in ids


def test_training_flushes_subnormal_adam_moments(tmp_path):
    """Adam's first moment of a weight whose gradient is exactly zero after one nonzero step decays
    by 0.9 per step; with denormals flushed it reaches 0 instead of lingering as a slow subnormal."""
    from vaelab._cpu import flush_denormals

    assert flush_denormals()
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([w], lr=1e-3, fused=True)
    for step in range(900):
        w.grad = torch.full((3,), 1.0 if step == 0 else 0.0)
        opt.step()
    m = opt.state[w]["exp_avg"]
    assert torch.all(m == 0), m  # 0.1 * 0.9**899 ≈ 1e-42 would be subnormal
