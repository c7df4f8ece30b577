"""Run-config files: a run's config.json re-creates it bitwise; YAML works; flags override the file;
bad files are one-line errors naming the file and key, with nothing written."""
import json

import pytest
from safetensors.torch import load_file

from vaelab.cli import main

TINY = ["--backbone", "small", "--latent-dim", "4", "--epochs", "1", "--train-size", "300", "--no-progress"]


def _weights(run):
    return {k: v for k, v in load_file(str(run / "checkpoint.safetensors")).items() if k.startswith("model.")}


def test_a_runs_config_json_recreates_it_bitwise(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", "vae", *TINY, "--seed", "3", "--set", "likelihood=bernoulli", "--out", str(a)]) == 0
    assert main(["train", "--config", str(a / "config.json"), "--out", str(b), "--no-progress"]) == 0
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)
    ca, cb = json.loads((a / "config.json").read_text()), json.loads((b / "config.json").read_text())
    assert ca["model"] == cb["model"] and ca["train"] == cb["train"]


def test_yaml_and_flags_override_the_file(tmp_path):
    pytest.importorskip("yaml")
    f = tmp_path / "run.yaml"
    f.write_text("variant: vae\nmodel:\n  backbone: small\n  latent_dim: 3\ntrain:\n  epochs: 1\n  train_size: 200\n  seed: 5\n")
    assert main(["train", "--config", str(f), "--seed", "6", "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    c = json.loads((tmp_path / "r" / "config.json").read_text())
    assert c["model"]["latent_dim"] == 3 and c["train"]["seed"] == 6 and c["train"]["train_size"] == 200


@pytest.mark.parametrize("content, needle", [
    ("{not json", "not valid JSON"),
    ('["vae"]', "must hold a mapping"),
    ('{"variant": "vae", "colour": 1}', "unknown key 'colour'"),
    ('{"variant": "vae", "train": {"lr": "fast"}}', "train.lr"),
    ('{"variant": "vae", "train": {"epochz": 1}}', "train.epochz"),
    ('{"variant": "vae", "model": {"latent_dim": 0}}', "latent_dim"),
    ('{"variant": "vae", "model": {"wings": 2}}', "wings"),
])
def test_bad_run_config_files_are_one_line_errors(tmp_path, capsys, content, needle):
    f = tmp_path / "c.json"
    f.write_text(content)
    assert main(["train", "--config", str(f), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(f) in err and needle in err
    assert not (tmp_path / "r").exists()


def test_a_missing_config_file_is_named(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "nope.json")]) == 2
    assert "nope.json" in capsys.readouterr().err


def test_compare_reads_its_options_from_a_file(tmp_path, capsys, monkeypatch):
    from vaelab.commands import compare

    seen = {}
    monkeypatch.setattr("vaelab.commands.compare.run_study", lambda s, finish=None: seen.setdefault("s", s) and {"variants": {}})
    f = tmp_path / "study.json"
    f.write_text(json.dumps({"schema": 1, "settings": {"dataset": "mnist-5k", "backbone": "small", "latent_dim": 8, "epochs": 2,
                                                       "protocol": "fast", "binarize": "none", "phase_epochs": 1},
                             "variants": ["vae", "cvae"], "seeds": [0, 1]}))
    main(["compare", "--config", str(f), "--epochs", "3", "--out", str(tmp_path / "o")])
    s = seen["s"]
    assert (s.dataset, s.backbone, s.latent_dim, s.epochs, s.protocol, s.phase_epochs) == ("mnist-5k", "small", 8, 3, "fast", 1)
    assert s.variants == ["vae", "cvae"] and s.seeds == (0, 1)
    f.write_text(json.dumps({"latent_dim": "big"}))
    assert main(["compare", "--config", str(f), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "latent_dim" in err and str(f) in err
    assert compare  # the module under test
