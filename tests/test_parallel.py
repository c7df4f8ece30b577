"""Data-parallel training (vaelab.parallel): two gloo processes sharing each global batch train as one
process does on the whole batch, a checkpoint taken by two processes resumes in one, only rank 0
writes, and what cannot be shared is refused in one line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers import REPO, cli, env
from vaelab import parallel
from vaelab.cli import main

WORKER = str(REPO / "tests" / "dp_worker.py")
SHARED = "vae,beta-vae,cvae,cvae-quadrant,gmvae,vae-gan,vq-vae"


def worker(nproc: int, *args) -> None:
    launch = [sys.executable, WORKER] if nproc == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", WORKER]
    r = subprocess.run([*launch, *map(str, args)], capture_output=True, text=True, env=env(OMP_NUM_THREADS=1), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]


def weights(run: Path) -> dict[str, torch.Tensor]:
    return {k: t for k, t in load_file(run / "checkpoint.safetensors").items() if k.startswith("model.")}


def assert_close_runs(a: Path, b: Path, atol: float) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        if wa[k].is_floating_point():
            torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=atol, msg=lambda m: f"{a.name} {k}: {m}")
        else:
            assert torch.equal(wa[k], wb[k]), f"{a.name} {k}"
    ra, rb = load_file(a / "checkpoint.safetensors"), load_file(b / "checkpoint.safetensors")
    for k in ("rng.torch", "rng.binarize", "rng.shuffle"):  # the random streams stay where one process's are
        assert torch.equal(ra[k], rb[k]), f"{a.name} {k}"


def test_two_processes_train_as_one_on_the_global_batch(tmp_path):
    """SGD, whose step is linear in the gradient: every shareable variant (VAE-GAN's three players and
    balance rule, VQ-VAE's EMA codebook, dead-code restarts and PixelCNN phase among them) ends within
    rounding of the one-process run; a wrong share weight, unsynchronised noise or a per-process
    batch statistic moves weights by orders of magnitude more."""
    worker(1, tmp_path / "one", "sgd", SHARED)
    worker(2, tmp_path / "two", "sgd", SHARED)
    for name in SHARED.split(","):
        assert_close_runs(tmp_path / "one" / name, tmp_path / "two" / name, atol=5e-5 if name == "vq-vae" else 1e-6)
        one = (tmp_path / "one" / name / "metrics.jsonl").read_text().splitlines()
        two = (tmp_path / "two" / name / "metrics.jsonl").read_text().splitlines()
        assert len(two) == len(one)  # one record per epoch: rank 1 wrote none


def test_a_two_process_checkpoint_resumes_in_one_process(tmp_path):
    worker(2, tmp_path / "split", "sgd", "vae,vae-gan", 1)
    worker(1, tmp_path / "split", "sgd", "vae,vae-gan", 2, "resume")
    worker(1, tmp_path / "whole", "sgd", "vae,vae-gan", 2)
    for name in ("vae", "vae-gan"):
        assert_close_runs(tmp_path / "split" / name, tmp_path / "whole" / name, atol=1e-6)


def test_nproc_on_the_command_line_with_adam(tmp_path):
    """`vaelab train --nproc 2` (torch.distributed.run underneath) with the run's Adam: the same losses
    and, within Adam's amplification of rounding where a gradient is near zero, the same weights."""
    args = ["train", "vae-gan", "--backbone", "small", "--latent-dim", "8", "--train-size", "120", "--batch-size", "40",
            "--epochs", "1", "--binarize", "dynamic", "--seed", "3", "--no-progress", "--device", "cpu"]
    r1 = cli(*args, "--out", tmp_path / "one")
    r2 = cli(*args, "--out", tmp_path / "two", "--nproc", "2", OMP_NUM_THREADS=1)
    assert r1.returncode == 0 and r2.returncode == 0, r2.stderr[-3000:]
    assert r2.stdout.strip() == str(tmp_path / "two")  # printed once, by rank 0
    assert_close_runs(tmp_path / "one", tmp_path / "two", atol=1e-4)
    import json

    m1, m2 = (json.loads((tmp_path / d / "metrics.jsonl").read_text()) for d in ("one", "two"))
    for k, val in m1["train"].items():
        assert m2["train"][k] == pytest.approx(val, rel=1e-5, abs=1e-6), k
    log = (tmp_path / "two" / "train.log").read_text()
    assert "data-parallel: 2 processes (gloo), this is rank 0" in log and "rank 1" not in log


def test_only_rank_0_writes(tmp_path, monkeypatch):
    """A process that is not rank 0 trains but writes nothing: no run directory, no files."""
    import vaelab
    from vaelab.training.config import TrainConfig

    monkeypatch.setattr(parallel, "rank", lambda: 1)
    tc = TrainConfig(dataset="mnist-5k", train_size=60, batch_size=30, epochs=1, progress=False, device="cpu")
    out = tmp_path / "run"
    vaelab.train("vae", {"backbone": "small", "latent_dim": 4}, tc, out)
    assert not out.exists() or list(out.iterdir()) == []


def test_share_of_a_batch_and_the_identity_outside_a_group():
    """Shares tile the batch in rank order; with one process the helpers change nothing; the whole
    batch (vaelab.share.WHOLE, what a model computes with outside data-parallel training) draws plainly."""
    from vaelab.share import WHOLE

    assert parallel.world_size() == 1 and parallel.is_main()
    assert parallel.share_of(7) == parallel.Share(0, 7, 7)
    t = torch.arange(6.0).view(3, 2)
    for share in (WHOLE, parallel.Share(0, 3, 3), parallel.Share(2, 5, 8)):
        assert share.gather(t) is t and share.sum(t)[0] is t
        assert share.mean(torch.tensor(2.5)) == 2.5
    g = torch.Generator().manual_seed(0)
    part = parallel.Share(2, 5, 8)  # batch noise: the global batch's rows 2..4
    torch.manual_seed(1)
    drawn = part.randn((3, 4), 0)
    torch.manual_seed(1)
    whole = torch.randn(8, 4)
    assert torch.equal(drawn, whole[2:5])
    torch.manual_seed(1)
    mine = WHOLE.randn((3, 4), 0)
    torch.manual_seed(1)
    assert torch.equal(mine, torch.randn(3, 4))  # one process: the batch's own draws
    assert part.randn((3, 4), 0, generator=g).shape == (3, 4)  # an explicit generator: not batch noise
    assert torch.equal(part.randn((3, 4), 0, generator=torch.Generator().manual_seed(0)),
                       WHOLE.randn((3, 4), 0, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("args,msg", [
    (["info-vae", "--nproc", "2"], "info-vae: cannot be trained by 2 processes: its MMD penalty"),
    (["s-vae", "--nproc", "2"], "s-vae: cannot be trained by 2 processes"),
    (["vae", "--nproc", "3", "--batch-size", "2"], "--batch-size 2 is smaller than the 3 processes"),
    (["vae", "--nproc", "2", "--batch-size", "40", "--train-size", "121"], "the last batch of each epoch would hold 1"),
    (["vae", "--nproc", "0"], "--nproc: 0 is not valid"),
    (["nosuch", "--nproc", "2"], "nosuch"),
])
def test_what_cannot_be_shared_is_refused(args, msg, tmp_path, capsys):
    assert main(["train", *args, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_nproc_on_cuda_without_cuda_is_refused(tmp_path, capsys):
    assert main(["train", "vae", "--nproc", "2", "--device", "cuda", "--out", str(tmp_path / "r")]) == 2
    assert "no CUDA device" in capsys.readouterr().err
