"""--device: where the model and the dataset live. On this CPU-only CI: ``auto`` is the CPU and trains
bitwise as ``cpu`` does, a run moves between devices on resume, and asking for CUDA where there is
none is a one-line error with exit code 2 and nothing written."""
from __future__ import annotations

import pytest
import torch

import vaelab
from vaelab.cli import main
from vaelab.errors import ConfigError
from vaelab.training.config import TrainConfig, resolve_device

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
SMALL = {"backbone": "small", "latent_dim": 4}


def test_resolve_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("gpu", "cuda:x", "cuda:", ""):
        with pytest.raises(ConfigError, match="not valid; choose auto, cpu, cuda or cuda:N"):
            resolve_device(bad)


@no_cuda
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_refused(name, tmp_path, capsys):
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve_device(name)
    for cmd in (["train", "vae", "--device", name, "--out", str(tmp_path / "r")],
                ["compare", "--variants", "vae", "--device", name, "--out", str(tmp_path / "s")]):
        assert main(cmd) == 2
        err = capsys.readouterr().err
        assert "no CUDA device" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


@no_cuda
def test_auto_trains_as_cpu_and_a_run_moves_devices_on_resume(tmp_path):
    cfg = dict(progress=False, train_size=300, batch_size=50, eval_every=0)
    a = vaelab.train("vae", SMALL, TrainConfig(epochs=2, device="auto", **cfg), tmp_path / "a")
    b = vaelab.train("vae", SMALL, TrainConfig(epochs=1, device="cpu", **cfg), tmp_path / "b")
    vaelab.train(None, resume=True, run_dir=b, extra_epochs=2, device="auto")
    assert (a / "checkpoint.safetensors").read_bytes() == (b / "checkpoint.safetensors").read_bytes()
    from vaelab.training.checkpoint import read_checkpoint

    tensors, _ = read_checkpoint(a)
    assert all(t.device.type == "cpu" for t in tensors.values())
