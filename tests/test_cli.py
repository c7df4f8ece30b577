import pytest
from PIL import Image

import vaelab
from helpers import cli
from vaelab.cli import main
from vaelab.training.config import TrainConfig


def test_list(capsys):
    assert main(["list", "-v"]) == 0
    out = capsys.readouterr().out
    assert "vae" in out and "latent_dim = 16" in out


@pytest.mark.parametrize("cmd", [[], ["train"], ["sample"], ["list"]])
def test_help_everywhere(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([*cmd, "--help"])
    assert e.value.code == 0 and "usage: vaelab" in capsys.readouterr().out


@pytest.mark.parametrize("args, pattern", [
    (["train", "nope"], "unknown variant 'nope'"),
    (["train", "vae", "--optimizer", "sgd"], "optimizer: 'sgd' is not valid; choose one of adam, rmsprop"),
    (["train", "vae", "--epochs", "-1"], "epochs: must be an integer >= 0"),
    (["train", "vae", "--set", "beta=4"], "unknown config key beta"),
    (["train", "vae", "--latent-dim", "0"], "latent_dim: must be an integer >= 1"),
    (["train", "vae", "--dataset", "cifar10"], "dataset: 'cifar10' is not valid"),
    (["train"], "VARIANT is required"),
    (["sample", "/nonexistent/run"], "/nonexistent/run: no such run directory"),
])
def test_bad_input_exit_2_one_line(args, pattern, capsys, tmp_path):
    assert main(args + ["--out", str(tmp_path / "r")] if args[0] == "train" and len(args) > 1 else args) == 2
    err = capsys.readouterr().err
    assert pattern in err and err.count("\n") == 1


def test_sample_and_label_errors(tmp_path, capsys):
    run = vaelab.train("vae", {"backbone": "small", "latent_dim": 4}, TrainConfig(epochs=1, progress=False, train_size=500), tmp_path / "r")
    out = tmp_path / "g.png"
    assert main(["sample", str(run), "--n", "10", "--nrow", "5", "--out", str(out)]) == 0
    img = Image.open(out)
    assert img.size == ((5 * 30 + 2) * 2, (2 * 30 + 2) * 2)
    assert main(["sample", str(run), "--label", "3"]) == 2
    assert "not a conditional variant" in capsys.readouterr().err
    assert main(["sample", str(run), "--n", "0"]) == 2


def test_console_entry_point_runs():
    r = cli("--version")
    assert r.returncode == 0 and "vaelab" in r.stdout


def test_train_piped_prints_epochs_and_a_summary_and_resume_of_a_finished_run_says_so(tmp_path):
    """With stderr not a terminal (piped), `vaelab train` prints one line per epoch and a closing summary;
    resuming a finished run says it is complete instead of exiting silently."""
    run = tmp_path / "r"
    r = cli("train", "vae", "--backbone", "small", "--latent-dim", "2", "--epochs", "2", "--train-size", "300", "--out", run)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(run)
    assert "train epoch 1/2: train loss" in r.stderr and "train epoch 2/2: train loss" in r.stderr
    assert "vae: 2 epoch(s) in" in r.stderr and "final loss: train" in r.stderr and str(run / "samples.png") in r.stderr
    r = cli("train", "--resume", run)
    assert r.returncode == 0 and "already complete (2 epochs)" in r.stderr and "--epochs" in r.stderr


def test_train_without_data_leaves_no_run_directory(tmp_path):
    """Missing data (no files, no network) fails in one line, exit 2, and creates no --out directory."""
    out = tmp_path / "never"
    r = cli("train", "vae", "--dataset", "mnist", "--data-dir", tmp_path / "empty", "--out", out,
            VAELAB_CACHE=tmp_path / "cache", VAELAB_DATA=tmp_path / "nodata", VAELAB_MNIST_MIRRORS="http://127.0.0.1:9/")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert not out.exists()
