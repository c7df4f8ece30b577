"""Random affine augmentation: exact on moves that need no interpolation, bounded, reproducible."""
import pytest
import torch

from vaelab.data.augment import affine, random_affine
from vaelab.errors import ConfigError


def _batch(b=3, h=8, w=8):
    g = torch.Generator().manual_seed(0)
    return torch.rand(b, 1, h, w, generator=g)


def test_zero_move_is_identity():
    x = _batch()
    z = torch.zeros(3)
    torch.testing.assert_close(affine(x, z, z, z), x, atol=1e-6, rtol=0)
    assert random_affine(x, 0.0, 0.0) is x


def test_whole_pixel_shift_moves_rows_and_columns_and_fills_zeros():
    x = _batch()
    out = affine(x, torch.zeros(3), torch.tensor([1.0, 0.0, -2.0]), torch.tensor([0.0, 2.0, 1.0]))
    torch.testing.assert_close(out[0, :, :, 1:], x[0, :, :, :-1], atol=1e-6, rtol=0)  # right by one
    assert out[0, :, :, 0].abs().max() == 0
    torch.testing.assert_close(out[1, :, 2:, :], x[1, :, :-2, :], atol=1e-6, rtol=0)  # down by two
    assert out[1, :, :2, :].abs().max() == 0
    torch.testing.assert_close(out[2, :, 1:, :-2], x[2, :, :-1, 2:], atol=1e-6, rtol=0)  # left 2, down 1


@pytest.mark.parametrize("h,w", [(8, 8), (6, 10)])
def test_quarter_turns_match_rot90(h, w):
    x = _batch(2, h, h)  # a quarter turn keeps the frame only for square images
    out = affine(x, torch.tensor([90.0, -90.0]), torch.zeros(2), torch.zeros(2))
    torch.testing.assert_close(out[0], torch.rot90(x[0], 1, dims=(1, 2)), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], torch.rot90(x[1], -1, dims=(1, 2)), atol=1e-5, rtol=0)
    y = _batch(1, h, w)  # a half turn keeps any frame: the aspect-ratio terms must be right
    torch.testing.assert_close(affine(y, torch.tensor([180.0]), torch.zeros(1), torch.zeros(1))[0],
                               torch.rot90(y[0], 2, dims=(1, 2)), atol=1e-5, rtol=0)


def test_rotation_then_shift_moves_a_dot_where_expected():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 6] = 1.0  # two pixels right of the centre (4, 4)
    out = affine(x, torch.tensor([90.0]), torch.tensor([1.0]), torch.tensor([0.0]))
    # a counter-clockwise quarter turn takes it two pixels above the centre, (2, 4); then one to the right
    assert out[0, 0].argmax().item() == 2 * 9 + 5
    assert out.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_random_moves_stay_in_bounds_and_follow_the_seed():
    x = torch.zeros(64, 1, 21, 21)
    x[:, 0, 10, 10] = 1.0
    torch.manual_seed(3)
    a = random_affine(x, 0.1, 0.0)
    torch.manual_seed(3)
    assert torch.equal(a, random_affine(x, 0.1, 0.0))
    rows, cols = torch.meshgrid(torch.arange(21.0), torch.arange(21.0), indexing="ij")
    mass = a.sum((1, 2, 3))
    cy = (a[:, 0] * rows).sum((1, 2)) / mass
    cx = (a[:, 0] * cols).sum((1, 2)) / mass
    assert (cx - 10).abs().max() <= 2.1 + 1e-4 and (cy - 10).abs().max() <= 2.1 + 1e-4  # 0.1 × 21 pixels
    assert (cx - 10).abs().max() > 1.0  # and they do move
    assert not torch.equal(a[0], a[1])


def test_non_image_batches_are_config_errors():
    with pytest.raises(ConfigError, match="image batches"):
        random_affine(torch.zeros(4, 12), 0.1, 0.0)
