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
