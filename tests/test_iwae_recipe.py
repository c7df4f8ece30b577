"""The IWAE paper's VAE as a recipe (issue 41): the ``iwae`` backbone (Burda et al. 2016, §5: two
deterministic layers of 200 tanh units each side), the run-level ``lr_schedule=iwae`` (3^i epochs at
lr·10^(−i/7), i = 0..7) and ``adam_eps``; the other MLP backbones stay as they were."""
import json

import pytest
import torch
from torch import nn

import vaelab
from vaelab.configfile import train_config_from_file
from vaelab.errors import ConfigError
from vaelab.models.base import Variant
from vaelab.nn.backbones import Decoder, Encoder
from vaelab.optim import IWAE_EPOCHS, iwae_lr_factor, make_optimizer_factory, run_lr_factor
from vaelab.training.config import TrainConfig

TINY = dict(dataset="mnist-5k", train_size=20, batch_size=10, progress=False, eval_every=0)  # 2 updates an epoch
MODEL = {"backbone": "iwae", "latent_dim": 4}


def widths(seq: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in seq.modules() if isinstance(m, nn.Linear)]


# --- the schedule ---------------------------------------------------------------------------------

@pytest.mark.parametrize("epoch, stage", [(0, 0), (1, 1), (3, 1), (4, 2), (12, 2), (13, 3), (39, 3), (40, 4),
                                          (120, 4), (121, 5), (363, 5), (364, 6), (1092, 6), (1093, 7), (3279, 7)])
def test_iwae_schedule_stage_boundaries(epoch, stage):
    assert iwae_lr_factor(epoch) == pytest.approx(10 ** (-stage / 7), rel=1e-12)
    assert 1e-3 * iwae_lr_factor(epoch) == pytest.approx(1e-3 * 10 ** (-stage / 7), rel=1e-12)


def test_iwae_schedule_is_3280_epochs_then_keeps_the_last_rate():
    factors = [iwae_lr_factor(e) for e in range(IWAE_EPOCHS)]
    assert IWAE_EPOCHS == sum(3 ** i for i in range(8)) == 3280
    assert [factors.count(10 ** (-i / 7)) for i in range(8)] == [3 ** i for i in range(8)]
    assert factors == sorted(factors, reverse=True) and factors[0] == 1.0
    assert iwae_lr_factor(3280) == iwae_lr_factor(10 ** 6) == factors[-1] == pytest.approx(0.1, rel=1e-15)
    assert run_lr_factor("constant", 5) == 1.0 and run_lr_factor("iwae", 5) == iwae_lr_factor(5)


# --- the trainer follows it -----------------------------------------------------------------------

def record_lrs(monkeypatch) -> list[tuple[int, float, float]]:
    """(step, lr, eps) of the model's optimizer at every update of every run trained in this test."""
    seen: list[tuple[int, float, float]] = []
    original = Variant.train_step

    def train_step(self, batch, step, optimizers, phase):
        group = optimizers["model"].param_groups[0]
        seen.append((step, group["lr"], group["eps"]))
        return original(self, batch, step, optimizers, phase)

    monkeypatch.setattr(Variant, "train_step", train_step)
    return seen


def test_the_optimizer_follows_the_iwae_schedule_through_a_resume(tmp_path, monkeypatch):
    """Epochs 0..4 (two updates each) at 1e-3·10^(−stage/7): epoch 0 stage 0, epochs 1–3 stage 1, epoch 4
    stage 2; trained 2 epochs then resumed to 5, the lrs and the weights equal 5 epochs straight."""
    seen = record_lrs(monkeypatch)
    cfg = dict(TINY, lr_schedule="iwae", adam_eps=1e-4)
    ref = vaelab.train("vae", MODEL, TrainConfig(epochs=5, **cfg), tmp_path / "ref")
    straight = list(seen)
    assert [s for s, _, _ in straight] == list(range(10))
    assert [lr for _, lr, _ in straight] == pytest.approx([1e-3 * iwae_lr_factor(s // 2) for s in range(10)], rel=1e-12)
    assert {eps for _, _, eps in straight} == {1e-4}
    seen.clear()
    run = vaelab.train("vae", MODEL, TrainConfig(epochs=2, **cfg), tmp_path / "r")
    vaelab.train(None, resume=True, run_dir=run, extra_epochs=5)
    assert seen == straight
    a = json.loads((ref / "config.json").read_text())["train"]
    assert a["lr_schedule"] == "iwae" and a["adam_eps"] == 1e-4
    from safetensors.torch import load_file

    ta, tb = load_file(str(ref / "checkpoint.safetensors")), load_file(str(run / "checkpoint.safetensors"))
    assert all(torch.equal(ta[k], tb[k]) for k in ta if k.startswith(("model.", "optim.")))


def test_the_run_schedule_multiplies_the_variants_own(tmp_path, monkeypatch):
    seen = record_lrs(monkeypatch)
    monkeypatch.setattr(vaelab.registry.get("vae"), "lr_schedule", lambda self, phase: lambda seen_, n: 0.5)
    vaelab.train("vae", MODEL, TrainConfig(epochs=2, lr_schedule="iwae", **TINY), tmp_path / "r")
    assert [lr for _, lr, _ in seen] == pytest.approx([5e-4, 5e-4, 5e-4 * iwae_lr_factor(1), 5e-4 * iwae_lr_factor(1)], rel=1e-12)


def test_the_constant_schedule_leaves_the_lr_alone(tmp_path, monkeypatch):
    seen = record_lrs(monkeypatch)
    vaelab.train("vae", MODEL, TrainConfig(epochs=2, **TINY), tmp_path / "r")
    assert {(lr, eps) for _, lr, eps in seen} == {(1e-3, 1e-8)}


# --- adam_eps and bad values ----------------------------------------------------------------------

def test_adam_eps_reaches_the_optimizer():
    params = [nn.Parameter(torch.zeros(3))]
    assert make_optimizer_factory(TrainConfig())(params).param_groups[0]["eps"] == 1e-8
    assert make_optimizer_factory(TrainConfig(adam_eps=1e-4))(params).param_groups[0]["eps"] == 1e-4
    assert make_optimizer_factory(TrainConfig(adam_eps=1e-4, fused=False))(params, adam_betas=(0.5, 0.9)).param_groups[0]["eps"] == 1e-4
    assert make_optimizer_factory(TrainConfig(optimizer="rmsprop", adam_eps=1e-4))(params).param_groups[0]["eps"] == 1e-7


@pytest.mark.parametrize("key, value", [("lr_schedule", "cosine"), ("lr_schedule", 1), ("adam_eps", 0.0), ("adam_eps", "1e-4")])
def test_a_bad_value_is_one_line_naming_the_key(key, value):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**{key: value}).validate()
    assert str(e.value).startswith(f"{key}: ") and "\n" not in str(e.value)
    if key == "lr_schedule":
        assert "choose one of constant, iwae" in str(e.value)


def test_a_config_file_takes_the_new_keys(tmp_path):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps({"variant": "vae", "train": {"lr_schedule": "iwae", "adam_eps": 1e-4, "eval_every": 10}}))
    bad.write_text(json.dumps({"variant": "vae", "train": {"lr_schedule": "step"}}))
    assert train_config_from_file(good)[2] == {"lr_schedule": "iwae", "adam_eps": 1e-4, "eval_every": 10}
    with pytest.raises(ConfigError, match=r"bad.json: train.lr_schedule: 'step' is not valid"):
        train_config_from_file(bad)


def test_the_cli_flags_reach_the_train_config(tmp_path, monkeypatch):
    """--lr-schedule, --adam-eps, --eval-every land in TrainConfig (the training itself is stubbed)."""
    from vaelab import cli, rundir

    got = {}
    monkeypatch.setattr(rundir, "train", lambda variant, model, tc, out, **kw: got.update(tc=tc, model=model) or tmp_path)
    monkeypatch.setattr("vaelab.commands.train.summary", lambda run_dir, seconds: "")
    assert cli.main(["train", "vae", "--backbone", "iwae", "--lr-schedule", "iwae", "--adam-eps", "1e-4", "--eval-every", "50",
              "--no-progress", "--out", str(tmp_path)]) == 0
    tc = got["tc"]
    assert (tc.lr_schedule, tc.adam_eps, tc.eval_every, got["model"]["backbone"]) == ("iwae", 1e-4, 50, "iwae")


# --- the backbone ---------------------------------------------------------------------------------

def test_the_iwae_backbone_is_200_200_tanh_both_ways():
    v = vaelab.build("vae", backbone="iwae", latent_dim=50)
    assert widths(v.encoder) == [(784, 200), (200, 200)] and (v.head.in_features, v.head.out_features) == (200, 100)
    assert widths(v.decoder) == [(50, 200), (200, 200), (200, 784)]
    assert [type(m) for m in v.encoder.fc] == [nn.Linear, nn.Tanh, nn.Linear, nn.Tanh]
    assert [type(m) for m in v.decoder.fc] == [nn.Linear, nn.Tanh, nn.Linear, nn.Tanh] and type(v.decoder.head) is nn.Linear
    enc = 784 * 200 + 200 + 200 * 200 + 200
    dec = 50 * 200 + 200 + 200 * 200 + 200 + 200 * 784 + 784
    assert sum(p.numel() for p in v.encoder.parameters()) == enc == 197_200
    assert sum(p.numel() for p in v.decoder.parameters()) == dec == 207_984
    assert v.num_parameters() == enc + dec + 200 * 100 + 100
    x = torch.rand(3, 1, 28, 28)
    h = v.encoder(x)
    assert h.shape == (3, 200) and h.abs().max() < 1
    assert v.decode(torch.randn(3, 50)).shape == (3, 1, 28, 28)


@pytest.mark.parametrize("backbone, hidden", [("mlp", (512, 512)), ("dec", (500, 500, 2000)), ("svae", (256, 128))])
def test_the_relu_mlp_backbones_are_unchanged(backbone, hidden):
    """Parameters and outputs bitwise equal to plain Linear+ReLU stacks built from the same seed, in the
    order the backbones have always built them (encoder trunk; decoder trunk, then its output layer)."""
    shape, z_dim = (1, 28, 28), 6

    def stack(ws):
        layers = []
        for a, b in zip(ws[:-1], ws[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        return nn.Sequential(*layers)

    torch.manual_seed(0)
    enc, dec = Encoder(shape, backbone), Decoder(shape, z_dim, backbone)
    torch.manual_seed(0)
    ref_enc = stack((784, *hidden))
    ref_dec, ref_out = stack((z_dim, *hidden[::-1])), nn.Linear(hidden[0], 784)
    ours = list(enc.parameters()) + list(dec.parameters())
    ref = list(ref_enc.parameters()) + list(ref_dec.parameters()) + list(ref_out.parameters())
    assert len(ours) == len(ref) and all(torch.equal(a, b) for a, b in zip(ours, ref))
    x, z = torch.rand(4, *shape), torch.randn(4, z_dim)
    assert torch.equal(enc(x), ref_enc(x.flatten(1)))
    assert torch.equal(dec(z), ref_out(ref_dec(z)).view(-1, *shape))
