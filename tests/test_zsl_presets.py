"""`vaelab zsl --preset METHOD/DATASET`: the published recipes resolve to vaelab's config values,
explicit flags win, presets are refused on the MNIST benchmark; the generators' ReLU output option."""
import json

import pytest
import torch

from vaelab.cli import main
from vaelab.config import from_dict
from vaelab.errors import ConfigError
from vaelab.registry import get, make_config
from variant_configs import config_for
from vaelab.zsl import presets
from vaelab.zsl.presets import PRESETS, apply_preset, get_preset
from vaelab.zsl.run import ZSLConfig

from zsl_synthetic import write_mat_files

MAT = ZSLConfig(features="a.mat", splits="b.mat")


def test_a_preset_resolves_to_the_published_values():
    cfg = apply_preset(MAT, "f-vaegan-d2/cub")
    assert (cfg.method, cfg.lr, cfg.epochs, cfg.batch_size, cfg.n_synth) == ("f-vaegan-d2", 1e-4, 5 * 300, 64, 300)
    assert cfg.model == {"hidden": 4096, "output": "sigmoid", "gamma": 10.0, "n_critic": 5, "gp_weight": 10.0}
    cfg.validate()
    assert cfg.to_dict()["preset"] == "f-vaegan-d2/cub" and "preset" not in MAT.to_dict()
    c = apply_preset(MAT, "f-clswgan/flo")
    assert (c.lr, c.epochs, c.n_synth, c.model["cls_weight"], c.model["output"]) == (1e-4, 5 * 80, 1200, 0.1, "relu")
    assert get_preset("f-clswgan/sun").published_epochs == 40 and apply_preset(MAT, "eszsl/awa2").model == {}


def test_explicit_values_override_the_preset():
    mine = ZSLConfig(features="a.mat", splits="b.mat", lr=3e-3, epochs=2, model={"hidden": 16, "gamma": 1.0})
    cfg = apply_preset(mine, "f-vaegan-d2/sun", explicit=["lr", "epochs"])
    assert (cfg.lr, cfg.epochs, cfg.n_synth) == (3e-3, 2, 400)  # n_synth not given: the preset's
    assert cfg.model["hidden"] == 16 and cfg.model["gamma"] == 1.0 and cfg.model["output"] == "sigmoid"
    with pytest.raises(ConfigError, match="f-clswgan's recipe, but --method is eszsl"):
        apply_preset(ZSLConfig(features="a.mat", splits="b.mat", method="eszsl"), "f-clswgan/cub", explicit=["method"])


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_a_valid_config(name):
    p = PRESETS[name]
    cfg = apply_preset(MAT, name)
    cfg.validate()
    if p.model:
        small = {**config_for(p.method), "transductive": False, "unseen": []}
        make_config(p.method, **{**small, **p.model}).validate()
    assert p.source and p.dataset in presets.DATASETS


def test_unknown_and_unpublished_presets_are_one_line_errors():
    with pytest.raises(ConfigError, match="not a preset; choose one of") as e:
        get_preset("f-vaegan-d2/imagenet")
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="zero-vae-gan has no preset; no published recipe was found"):
        get_preset("zero-vae-gan/cub")


@pytest.mark.parametrize("extra", [[], ["--study"]])
def test_a_preset_on_the_mnist_benchmark_is_refused(extra, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["zsl", "--preset", "f-vaegan-d2/cub", "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--preset" in err and not out.exists()
    with pytest.raises(ConfigError, match="--preset"):
        ZSLConfig(preset="f-vaegan-d2/cub").validate()


def test_a_preset_runs_on_mat_files_and_is_recorded(tmp_path, monkeypatch):
    fp, sp, _ = write_mat_files(tmp_path)  # 12 classes
    out = tmp_path / "run"
    argv = ["zsl", "--features", str(fp), "--splits", str(sp), "--preset", "f-clswgan/cub", "--out", str(out)]
    assert main(argv) == 2  # CUB has 200 classes, the files 12
    monkeypatch.setitem(presets.DATASETS, "cub", 12)
    assert main(argv + ["--epochs", "1", "--n-synth", "20", "--set", "hidden=16", "--set", "classifier_epochs=1"]) == 0
    conf = json.loads((out / "zsl.json").read_text())["config"]
    assert conf["preset"] == "f-clswgan/cub" and conf["method"] == "f-clswgan"
    assert (conf["lr"], conf["epochs"], conf["n_synth"]) == (1e-4, 1, 20)  # lr the preset's; the flags win
    assert conf["model"] == {"hidden": 16, "output": "relu", "cls_weight": 0.01, "n_critic": 5, "gp_weight": 10.0,
                             "classifier_epochs": 1}
    model = json.loads((out / "generator" / "config.json").read_text())["model"]
    assert model["output"] == "relu" and model["hidden"] == 16


# ----- the generators' output layer ------------------------------------------------------------------
def test_relu_output_is_nonnegative_and_unbounded_and_round_trips():
    cls = get("f-clswgan")
    conf = make_config("f-clswgan", **{**config_for("f-clswgan"), "output": "relu"})
    again = from_dict(type(conf), json.loads(json.dumps(conf.to_dict())))
    assert again.output == "relu" and again == conf
    torch.manual_seed(0)
    v = cls(again)
    with torch.no_grad():
        v.generator[-1].bias.fill_(0.5)  # push some pre-activations past 1
        v.generator[-1].weight.mul_(20)
    x = v.sample(500, generator=torch.Generator().manual_seed(0))
    assert x.min() == 0 and x.max() > 1  # ReLU: clipped at 0, not at 1
    s = cls(make_config("f-clswgan", **config_for("f-clswgan"))).sample(500, generator=torch.Generator().manual_seed(0))
    assert make_config("f-clswgan", **config_for("f-clswgan")).output == "sigmoid" and 0 < s.min() and s.max() < 1


def test_the_vae_generators_refuse_a_relu_output_and_unknown_outputs_are_refused():
    for name in ("f-vaegan-d2", "zero-vae-gan"):
        with pytest.raises(ConfigError, match="needs the sigmoid output"):
            get(name)(make_config(name, **{**config_for(name), "output": "relu"}))
    with pytest.raises(ConfigError, match="output"):
        make_config("f-clswgan", output="tanh")


def _one_generator_step(**cfg):
    from vaelab.optim import make_optimizer_factory
    from vaelab.training.config import TrainConfig

    torch.manual_seed(0)
    v = get("f-vaegan-d2")(make_config("f-vaegan-d2", **{**config_for("f-vaegan-d2"), **cfg}))
    opts = v.configure_optimizers("train", make_optimizer_factory(TrainConfig(lr=1e-2, optimizer="adam")))
    batch = {"x": torch.rand(8, 12, generator=torch.Generator().manual_seed(1)), "y": torch.tensor([0, 1, -1, -1, 2, -1, 3, -1])}
    torch.manual_seed(1)
    v.train_step(batch, 0, opts, "train")  # step 0 is a generator turn
    return torch.cat([p.detach().flatten() for p in v.generator.parameters()])


def test_gamma_unlabelled_weighs_d2_on_its_own_and_round_trips():
    conf = make_config("f-vaegan-d2", **{**config_for("f-vaegan-d2"), "gamma_unlabelled": 1.0})
    assert from_dict(type(conf), json.loads(json.dumps(conf.to_dict()))).gamma_unlabelled == 1.0
    assert make_config("f-vaegan-d2").gamma_unlabelled is None  # default: γ weighs both terms (as before)
    with pytest.raises(ConfigError, match="gamma_unlabelled"):
        make_config("f-vaegan-d2", gamma_unlabelled=-1.0)
    same = _one_generator_step(gamma=10.0)
    torch.testing.assert_close(_one_generator_step(gamma=10.0, gamma_unlabelled=10.0), same)
    assert not torch.allclose(_one_generator_step(gamma=10.0, gamma_unlabelled=0.0), same)


def test_zero_vae_gan_refuses_the_wgan_knobs_it_does_not_use():
    """gp_weight and n_critic belong to the WGAN critics of f-CLSWGAN and f-VAEGAN-D2; set on Zero-VAE-GAN they
    would change nothing, so they are refused by name (the defaults, which stored runs carry, still load)."""
    base = config_for("zero-vae-gan")
    assert make_config("zero-vae-gan", **base).gp_weight == 10.0
    for key, value in (("gp_weight", 1.0), ("n_critic", 2)):
        with pytest.raises(ConfigError, match=rf"^{key}: zero-vae-gan does not use it"):
            make_config("zero-vae-gan", **{**base, key: value})
