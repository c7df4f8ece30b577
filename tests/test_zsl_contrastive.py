"""The contrastive feature extractor (vaelab.zsl.contrastive) and the benchmark's choice of extractor:
NT-Xent against an explicit float64 reference, the views' geometry, determinism, and that the
contrastive extractor is given the seen classes' images and nothing else."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from vaelab.errors import ConfigError
from vaelab.zsl import features as zfeatures
from vaelab.zsl.benchmark import fold_classes
from vaelab.zsl.config import ZSLConfig
from vaelab.zsl.contrastive import ContrastiveRecipe, augment, nt_xent, train_contrastive


def nt_xent_reference(z: np.ndarray, tau: float) -> float:
    """SimCLR's loss written out term by term in float64."""
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n2 = len(z)
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        j = (i + n) % n2
        others = [k for k in range(n2) if k != i]
        logits = np.array([z[i] @ z[k] / tau for k in others])
        total += -(z[i] @ z[j] / tau) + math.log(np.exp(logits).sum())
    return total / n2


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_nt_xent_matches_the_written_out_loss(tau):
    z = np.random.default_rng(0).standard_normal((10, 4))
    got = nt_xent(torch.from_numpy(z), tau).item()
    assert got == pytest.approx(nt_xent_reference(z, tau), rel=1e-10)


def test_nt_xent_rewards_partners_that_agree():
    a = torch.randn(8, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    together = nt_xent(torch.cat([a, a]), 0.2).item()
    apart = nt_xent(torch.cat([a, a.roll(1, 0)]), 0.2).item()
    assert together < apart
    # identical partners, otherwise orthogonal rows: the loss is log(1 + (2n − 2) e^{−1/τ}) exactly
    eye = torch.eye(8, dtype=torch.float64)
    assert nt_xent(torch.cat([eye, eye]), 0.2).item() == pytest.approx(math.log(1 + 14 * math.exp(-5)), rel=1e-12)


def test_views_without_moves_are_the_images_and_erasing_removes_one_square():
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    still = ContrastiveRecipe(rotation=0, scale=0, shift=0, erase=0)
    torch.testing.assert_close(augment(x, still, torch.Generator().manual_seed(0)), x, atol=1e-5, rtol=0)
    ones = torch.ones(6, 1, 28, 28)
    erased = augment(ones, dataclasses.replace(still, erase=8, erase_prob=1.0), torch.Generator().manual_seed(3))
    zeros = (erased < 0.5).flatten(1).sum(1)
    assert zeros.tolist() == [64] * 6  # one 8×8 square per image
    rows = (erased[:, 0] < 0.5).any(2).float().sum(1)
    assert rows.tolist() == [8.0] * 6  # ... as a square, not scattered pixels


def test_view_moves_follow_the_recipe():
    """A centred dot rotated and scaled stays where it is; shifts move it by at most shift × half the width."""
    x = torch.zeros(400, 1, 28, 28)
    x[:, :, 13:15, 13:15] = 1.0
    r = ContrastiveRecipe(rotation=0, scale=0, shift=0.2, erase=0)
    v = augment(x, r, torch.Generator().manual_seed(0))
    cols = torch.arange(28.0)
    cx = (v[:, 0].sum(1) * cols).sum(1) / v[:, 0].sum((1, 2))
    moved = cx - 13.5
    assert moved.abs().max() <= 0.2 * 14 + 0.1  # ±shift × half the width (normalised coordinates)
    assert moved.std() == pytest.approx(0.2 * 14 / math.sqrt(3), rel=0.15)  # uniform on ±2.8 px: sd 2.8/√3


def test_training_is_deterministic_and_refuses_too_few_images():
    imgs = (np.random.default_rng(0).random((40, 1, 28, 28)) * 255).astype(np.uint8)
    r = ContrastiveRecipe(epochs=2, batch_size=16)
    a, b = train_contrastive(imgs, r), train_contrastive(imgs, r)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    with torch.no_grad():
        assert a.features(torch.rand(3, 1, 28, 28)).shape == (3, 128)
    with pytest.raises(ValueError, match="fewer than one batch"):
        train_contrastive(imgs[:10], r)


def test_the_contrastive_extractor_sees_only_the_seen_classes_images(tmp_path, monkeypatch):
    monkeypatch.setenv("VAELAB_CACHE", str(tmp_path))
    given = {}

    def fake_train(images, recipe, log=None):
        given["images"] = images
        return train_contrastive(images[:32], dataclasses.replace(recipe, epochs=1, batch_size=16))

    monkeypatch.setattr(zfeatures, "train_contrastive", fake_train)
    monkeypatch.setattr(zfeatures, "train_classifier", lambda *a, **k: pytest.fail("the supervised extractor was trained"))
    f = zfeatures.load_features("mnist-5k", 0, extractor="contrastive")
    train = zfeatures.load_dataset("mnist-5k", "train")
    seen, _ = fold_classes("mnist-5k", 0)
    np.testing.assert_array_equal(given["images"], train.images[np.isin(train.labels, seen)])
    assert f.meta["extractor"] == "contrastive" and f.x_train.shape == (len(train.labels), 128)
    again = zfeatures.load_features("mnist-5k", 0, extractor="contrastive")  # from the cache: nothing retrained
    np.testing.assert_array_equal(again.x_test, f.x_test)
    with pytest.raises(ValueError, match="unknown extractor"):
        zfeatures.load_features("mnist-5k", 0, extractor="pixels")


def test_the_extractor_option_is_checked_and_recorded():
    assert "extractor" not in ZSLConfig().to_dict()  # the benchmark's own: older zsl.json files stay valid
    assert ZSLConfig(extractor="contrastive").to_dict()["extractor"] == "contrastive"
    with pytest.raises(ConfigError, match="--extractor"):
        ZSLConfig(extractor="pixels").validate()
    with pytest.raises(ConfigError, match="--extractor"):
        ZSLConfig(extractor="contrastive", features="a.mat", splits="b.mat").validate()
