"""TensorBoard logging: the event files of a short run hold the expected scalars and images, read back
with TensorBoard's own event reader; evaluation adds its numbers; a missing package is a clean error."""
import builtins

import pytest

from vaelab.cli import main

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def _tags(run):
    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc.Tags(), acc


def test_a_one_epoch_run_writes_scalars_and_grids(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "vae", "--backbone", "small", "--epochs", "1", "--batch-size", "40", "--train-size", "2000",
                 "--out", str(run), "--tensorboard", "--no-progress"]) == 0
    tags, acc = _tags(run)
    scalars = set(tags["scalars"])
    assert {"train_step/loss", "train_step/recon", "train_step/kl", "lr/model", "train/loss", "test/loss",
            "cost/seconds_per_epoch", "cost/images_per_s"} <= scalars
    assert [e.step for e in acc.Scalars("train_step/loss")] == [50]  # 2000 / 40 = 50 updates
    assert acc.Scalars("lr/model")[0].value == pytest.approx(1e-3)
    assert {"images/samples", "images/reconstructions"} <= set(tags["images"])
    img = acc.Images("images/samples")[0]
    assert img.width > 100 and img.height > 100
    assert main(["evaluate", str(run), "--n-samples", "100", "--iwae-k", "2", "--iwae-n", "10", "--quiet"]) == 0
    tags, acc = _tags(run)
    assert {"eval/recon_accuracy", "eval/fid", "eval/neg_elbo"} <= set(tags["scalars"])


def test_without_the_package_it_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    real = builtins.__import__

    def no_tb(name, *a, **k):
        if name == "tensorboard" or name.startswith("tensorboard.") or name == "torch.utils.tensorboard":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_tb)
    assert main(["train", "vae", "--out", str(tmp_path / "r"), "--tensorboard", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install" in err
    assert not (tmp_path / "r").exists()
