import pytest

import vaelab
from vaelab.config import parse_overrides
from vaelab.errors import ConfigError
from vaelab.models.vae import VAE
from vaelab.registry import register


def test_variants_lists_vae():
    assert "vae" in vaelab.variants()
    assert vaelab.variants() == sorted(vaelab.variants())


def test_unknown_variant_lists_valid():
    with pytest.raises(ConfigError, match=r"unknown variant 'vea'; valid: .*vae"):
        vaelab.build("vea")


@pytest.mark.parametrize("cfg, pattern", [
    ({"latnet_dim": 3}, r"unknown config key latnet_dim; valid: .*latent_dim"),
    ({"latent_dim": 0}, r"latent_dim: must be an integer >= 1, got 0"),
    ({"latent_dim": 2.5}, r"latent_dim"),
    ({"backbone": "resnet"}, r"backbone: 'resnet' is not valid; choose one of paper, small, dcgan, dcgan-bn, dcgan-bn32, mlp"),
    ({"data_shape": (1, 0, 28)}, r"data_shape"),
])
def test_invalid_config(cfg, pattern):
    with pytest.raises(ConfigError, match=pattern):
        vaelab.build("vae", **cfg)


def test_duplicate_name_is_an_error():
    with pytest.raises(ValueError, match="already registered"):
        @register("vae")
        class Other(VAE):
            pass


def test_parse_overrides():
    assert parse_overrides(["beta=4", "mode=gan", "flag=true", "dims=[1,2]"]) == {"beta": 4, "mode": "gan", "flag": True, "dims": [1, 2]}
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_overrides(["beta"])


def test_paper_backbone_size():
    """The seed's Fig. 3 network: about 13.2M parameters at latent 16; small is >= 5x cheaper."""
    paper = vaelab.build("vae", backbone="paper").num_parameters()
    small = vaelab.build("vae", backbone="small").num_parameters()
    assert 13.0e6 < paper < 13.4e6
    assert paper / small >= 5


def test_dec_backbone_is_dec_and_vades_mlp():
    """784-500-500-2000 encoder and its mirror 2000-500-500-784 decoder (Xie et al. 2016, Jiang et al. 2017)."""
    import torch

    v = vaelab.build("vade", backbone="dec", latent_dim=10)
    widths = lambda seq: [(m.in_features, m.out_features) for m in seq.modules() if isinstance(m, torch.nn.Linear)]  # noqa: E731
    assert widths(v.encoder) == [(784, 500), (500, 500), (500, 2000)]
    assert widths(v.decoder) == [(10, 2000), (2000, 500), (500, 500), (500, 784)]
    assert v.decode(torch.randn(3, 10)).shape == (3, 1, 28, 28)


def test_svae_backbone_is_the_s_vae_authors_mlp():
    """784-256-128 encoder (+ the variant's head) and 128-256-784 decoder (Davidson et al. 2018's code)."""
    import torch

    v = vaelab.build("s-vae", backbone="svae", latent_dim=11)
    widths = lambda seq: [(m.in_features, m.out_features) for m in seq.modules() if isinstance(m, torch.nn.Linear)]  # noqa: E731
    assert widths(v.encoder) == [(784, 256), (256, 128)] and v.head.in_features == 128
    assert widths(v.decoder) == [(11, 128), (128, 256), (256, 784)]


@pytest.mark.parametrize("backbone, first, last", [("dcgan-bn", 64, 512), ("dcgan-bn32", 32, 256)])
def test_the_sequence_papers_frame_networks(backbone, first, last):
    """64×64 frames: four stride-2 convolutions (first → last channels, doubling) to 4×4 maps, batch norm
    after all but the first; the decoder maps z straight to the 4×4 maps, then mirrors the trunk with
    batch norm after all but its last layer."""
    import torch

    from vaelab.nn import make_decoder, make_encoder

    enc, dec = make_encoder((1, 64, 64), backbone), make_decoder((1, 64, 64), 40, backbone)
    convs = [m.out_channels for m in enc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs == [first, 2 * first, 4 * first, last]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in enc.modules()) == 3
    deconvs = [(m.in_channels, m.out_channels) for m in dec.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert deconvs == [(last, 4 * first), (4 * first, 2 * first), (2 * first, first), (first, 1)]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in dec.modules()) == 3
    assert [(m.in_features, m.out_features) for m in dec.modules() if isinstance(m, torch.nn.Linear)] == [(40, last * 16)]
    assert dec(torch.randn(3, 40)).shape == (3, 1, 64, 64) and enc(torch.rand(3, 1, 64, 64)).shape == (3, 256)


def test_mlp_backbone_takes_flat_inputs():
    import torch

    v = vaelab.build("vae", backbone="mlp", data_shape=(20,), latent_dim=3)
    total, terms = v.loss({"x": torch.rand(4, 20)}, 0)
    assert torch.isfinite(total) and v.sample(3).shape == (3, 20)


def _int_fields(config_cls):
    import dataclasses
    import typing

    hints = typing.get_type_hints(config_cls)
    return [f.name for f in dataclasses.fields(config_cls) if hints[f.name] in (int, typing.Optional[int], int | None)]


@pytest.mark.parametrize("name", vaelab.variants())
def test_integer_keys_refuse_a_bool(name):
    """JSON ``true`` is a Python int; every integer key of every variant must refuse it, by name
    (an integer choice such as cvae-quadrant's ``given_quadrants`` says the valid choices)."""
    from vaelab.registry import get

    keys = _int_fields(get(name).Config)
    assert "latent_dim" in keys and "n_classes" in keys
    for key in keys:
        with pytest.raises(ConfigError, match=rf"^{key}: (must be (null or )?an integer >= \d+, got True|True is not valid; choose one of .*)$"):
            vaelab.build(name, **{key: True})


def test_train_config_integer_keys_refuse_a_bool():
    from vaelab.training.config import TrainConfig

    keys = _int_fields(TrainConfig)
    assert {"epochs", "batch_size", "seed"} <= set(keys)
    for key in keys:
        with pytest.raises(ConfigError, match=rf"^{key}: must be (null or )?an integer >= \d+, got True$"):
            TrainConfig(**{key: True}).validate()


def _float_fields(config_cls):
    import dataclasses
    import typing

    hints = typing.get_type_hints(config_cls)
    return [f.name for f in dataclasses.fields(config_cls) if hints[f.name] in (float, typing.Optional[float], float | None)]


@pytest.mark.parametrize("bad", [True, float("inf"), float("nan"), "x"])
def test_number_keys_refuse_non_numbers(bad):
    """Every float key of every variant and of the training config refuses a bool, a non-finite
    number and a string with a ConfigError naming the key (not a TypeError from a comparison)."""
    from vaelab.registry import get
    from vaelab.training.config import TrainConfig

    checked = 0
    for name in vaelab.variants():
        for key in _float_fields(get(name).Config):
            with pytest.raises(ConfigError, match=rf"^{key}: "):
                vaelab.build(name, **{key: bad})
            checked += 1
    for key in _float_fields(TrainConfig):
        with pytest.raises(ConfigError, match=rf"^{key}: "):
            TrainConfig(**{key: bad}).validate()
        checked += 1
    assert checked > 20
