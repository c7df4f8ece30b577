import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

import vaelab
from helpers import cli, popen_cli
from vaelab.errors import RunDirError, TrainingDiverged
from vaelab.io import RunLock
from vaelab.training.config import TrainConfig

SMALL = {"backbone": "small", "latent_dim": 4}


def tensors(run):
    return load_file(str(run / "checkpoint.safetensors"))


def assert_same_weights(a, b):
    ta, tb = tensors(a), tensors(b)
    keys = [k for k in ta if k.startswith(("model.", "optim."))]
    assert keys and set(keys) == {k for k in tb if k.startswith(("model.", "optim."))}
    for k in keys:
        assert torch.equal(ta[k], tb[k]), f"{k} differs"


def test_run_directory_contents(tmp_path):
    run = vaelab.train("vae", SMALL, TrainConfig(epochs=2, progress=False, train_size=2000), tmp_path / "r")
    for f in ("config.json", "metrics.jsonl", "checkpoint.safetensors", "checkpoint.json", "samples.png",
              "reconstructions.png", "train.log"):
        assert (run / f).is_file(), f
    conf = json.loads((run / "config.json").read_text())
    assert conf["variant"] == "vae" and conf["model"]["latent_dim"] == 4 and conf["train"]["epochs"] == 2
    assert conf["versions"]["torch"] == torch.__version__
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [l["epoch"] for l in lines] == [1, 2]
    assert all(l["seconds"] > 0 and l["images_per_s"] > 0 and "kl" in l["train"] and "loss" in l["test"] for l in lines)
    assert lines[1]["train"]["loss"] < lines[0]["train"]["loss"]  # it learns
    assert not (run / ".lock").exists()
    m = vaelab.load(run)
    assert isinstance(m, vaelab.models.vae.VAE) and not m.training


@pytest.mark.parametrize("edit, what", [
    (lambda c: c["model"].update(latent_dim=0), "latent_dim: must be an integer >= 1, got 0"),
    (lambda c: c["model"].update(backbone="nope"), "backbone: 'nope' is not valid"),
    (lambda c: c["model"].update(colour="red"), "unknown config key colour"),
    (lambda c: c.update(variant="no-such-variant"), "unknown variant 'no-such-variant'"),
    (lambda c: c.pop("model"), "missing or malformed entry"),
])
def test_load_refuses_an_invalid_stored_config_in_one_line(tmp_path, edit, what):
    """load() validates config.json as build() validates a new config: a hand-edited or corrupt file
    fails with one line naming the file, for load, resume and the CLI (exit 2)."""
    run = vaelab.train("vae", SMALL, TrainConfig(epochs=1, progress=False, train_size=200, eval_every=0), tmp_path / "r")
    conf = json.loads((run / "config.json").read_text())
    edit(conf)
    (run / "config.json").write_text(json.dumps(conf))
    for call in (lambda: vaelab.load(run), lambda: vaelab.train(None, resume=True, run_dir=run, extra_epochs=2)):
        with pytest.raises(RunDirError) as e:
            call()
        msg = str(e.value)
        assert msg.startswith(f"{run / 'config.json'}: ") and what in msg and "\n" not in msg
    r = cli("sample", str(run), "--out", str(tmp_path / "s.png"))
    assert r.returncode == 2 and what in r.stderr and r.stderr.strip().count("\n") == 0


def test_trainer_reports_structured_events(tmp_path):
    """Progress goes to on_event as dicts (nothing has to parse log text): a phase event, a step event every
    STEP_EVENT_EVERY updates, one epoch event per epoch carrying the epoch's metrics.jsonl record, then
    the epoch's picture files."""
    from vaelab.training.trainer import STEP_EVENT_EVERY

    events = []
    run = vaelab.train("vae", SMALL, TrainConfig(epochs=2, progress=False, train_size=300, batch_size=10), tmp_path / "r",
                       on_event=events.append)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert STEP_EVENT_EVERY == 50  # 30 updates an epoch: one step event, at update 50 (in epoch 2)
    assert [e["event"] for e in events] == ["phase", "epoch", "grids", "step", "epoch", "grids"]
    assert events[0] == {"event": "phase", "phase": "train", "epochs": 2}
    assert [{k: v for k, v in e.items() if k != "event"} for e in events if e["event"] == "epoch"] == lines
    step = events[3]
    assert step["step"] == 50 and set(step["terms"]) == {"loss", "recon", "kl"} and step["lr"] == {"model": 1e-3}
    assert events[2]["files"] == {"samples": str(run / "samples.png"), "reconstructions": str(run / "reconstructions.png")}


def test_same_seed_bitwise_identical(tmp_path):
    cfg = dict(epochs=1, progress=False, binarize="dynamic", seed=3, train_size=1000)
    a = vaelab.train("vae", SMALL, TrainConfig(**cfg), tmp_path / "a")
    b = vaelab.train("vae", SMALL, TrainConfig(**cfg), tmp_path / "b")
    c = vaelab.train("vae", SMALL, TrainConfig(**{**cfg, "seed": 4}), tmp_path / "c")
    assert_same_weights(a, b)
    with pytest.raises(AssertionError):
        assert_same_weights(a, c)


def test_refuses_existing_run(tmp_path):
    run = vaelab.train("vae", SMALL, TrainConfig(epochs=1, progress=False, train_size=200), tmp_path / "r")
    with pytest.raises(RunDirError, match="already holds a run"):
        vaelab.train("vae", SMALL, TrainConfig(epochs=1, progress=False), run)


def _train_args(out, epochs=3):
    return ["train", "vae", "--backbone", "small", "--latent-dim", "4", "--epochs", str(epochs), "--seed", "1",
            "--train-size", "1500", "--binarize", "dynamic", "--checkpoint-every", "0.2", "--no-progress", "--out", out]


def _wait_for(pred, timeout=120):
    t0 = time.time()
    while not pred():
        if time.time() - t0 > timeout:
            raise TimeoutError
        time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_resume_after_kill_is_bitwise_identical(tmp_path, sig):
    """A run killed mid-epoch (SIGKILL, or Ctrl-C) and resumed ends identical to an uninterrupted run."""
    ref = tmp_path / "ref"
    r = cli(*_train_args(ref))
    assert r.returncode == 0, r.stderr
    run = tmp_path / "run"
    p = popen_cli(*_train_args(run))
    _wait_for(lambda: (run / "metrics.jsonl").exists() or p.poll() is not None)
    _wait_for(lambda: (run / "checkpoint.json").exists() and json.loads((run / "checkpoint.json").read_text()).get("batch", 0) > 0
              or p.poll() is not None)
    p.send_signal(sig)
    rc = p.wait(60)
    assert p.poll() is not None
    state = json.loads((run / "checkpoint.json").read_text())
    assert not state["done"], "the run finished before it was interrupted"
    if sig == signal.SIGINT:
        assert rc == 130 and "interrupted" in p.stderr.read()
    r = cli("train", "--resume", run)
    assert r.returncode == 0, r.stderr
    assert json.loads((run / "checkpoint.json").read_text())["done"]
    assert_same_weights(ref, run)
    epochs = [json.loads(l)["epoch"] for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs[-1] == 3


def test_lock_refuses_second_process(tmp_path):
    run = tmp_path / "r"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run.mkdir()
        (run / ".lock").write_text(f"{os.uname().nodename} {sleeper.pid}")
        with pytest.raises(RunDirError, match=r"in use by process"):
            vaelab.train("vae", SMALL, TrainConfig(epochs=1, progress=False), run)
        r = cli("train", "vae", "--out", run, "--epochs", "1")
        assert r.returncode == 2 and "in use by process" in r.stderr
    finally:
        sleeper.kill()
        sleeper.wait()
    # the holder is gone: the lock is stale and taken over
    vaelab.train("vae", SMALL, TrainConfig(epochs=1, progress=False, train_size=200), run)
    assert not (run / ".lock").exists()


def test_lock_is_exclusive_in_process(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunDirError):
            RunLock(tmp_path).acquire()


def test_non_finite_loss_stops_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    from vaelab.models.vae import VAE

    orig = VAE.regularizer

    def poisoned(self, q, z, batch, step):
        kl, terms = orig(self, q, z, batch, step)
        if step >= 45:
            kl = kl * float("nan")
            terms = {"kl": kl}
        return kl, terms

    monkeypatch.setattr(VAE, "regularizer", poisoned)
    run = tmp_path / "r"
    with pytest.raises(TrainingDiverged, match=r"non-finite loss at step 45 \(phase train, epoch 3, batch 6\): loss=nan, recon=[0-9.]+, kl=nan"):
        vaelab.train("vae", SMALL, TrainConfig(epochs=4, progress=False, train_size=2000), run)
    state = json.loads((run / "checkpoint.json").read_text())
    assert state["epoch"] == 2 and state["step"] == 40  # the epoch-2 checkpoint is kept
    assert all(torch.isfinite(t).all() for k, t in tensors(run).items() if k.startswith("model."))
    assert not (run / ".lock").exists()


def test_resume_can_extend_epochs_identically(tmp_path):
    """1 epoch, then resumed to 2 from the epoch-boundary checkpoint == 2 epochs straight."""
    cfg = dict(progress=False, binarize="dynamic", train_size=1000)
    ref = vaelab.train("vae", SMALL, TrainConfig(epochs=2, **cfg), tmp_path / "ref")
    run = vaelab.train("vae", SMALL, TrainConfig(epochs=1, **cfg), tmp_path / "r")
    vaelab.train(None, resume=True, run_dir=run, extra_epochs=2)
    assert [json.loads(l)["epoch"] for l in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert json.loads((run / "config.json").read_text())["train"]["epochs"] == 2
    assert_same_weights(ref, run)


def test_the_training_images_stay_uint8_and_static_binarisation_is_the_float_threshold(tmp_path):
    """The trainer holds uint8 images (a quarter of float32's memory) and converts each batch; the
    uint8 form of static binarisation equals thresholding the float images at 0.5 for every grey level."""
    from vaelab.data import binarize, load_dataset, to_tensor
    from vaelab.training.trainer import Trainer

    u = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(to_tensor((u >= 128).to(torch.uint8) * 255), binarize(to_tensor(u), "static"))
    train, test = load_dataset("mnist-5k", "train"), load_dataset("mnist-5k", "test")
    v = vaelab.build("vae", backbone="mlp", latent_dim=2, data_shape=(1, 28, 28))
    for mode in ("none", "static"):
        t = Trainer(v, TrainConfig(binarize=mode), tmp_path, train, test)
        assert t.x.dtype == torch.uint8 and t.x_test.dtype == torch.uint8
        want = to_tensor(train.images[:5])
        assert torch.equal(to_tensor(t.x[:5]), want if mode == "none" else binarize(want, "static"))
