import gzip
import hashlib
import shutil

import numpy as np
import pytest
import torch

from helpers import FULL_MNIST, LocalServer, cli
from vaelab.data import SHA256, binarize, idx, load_dataset, to_tensor
from vaelab.errors import ConfigError, DataError

needs_mnist = pytest.mark.skipif(FULL_MNIST is None, reason="full MNIST not found: set VAELAB_DATA to a directory holding mnist/")


def idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_pair(d, n_img=5, n_lab=5, hw=(28, 28), gz=False, split="train"):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(n_img, *hw), dtype=np.uint8)
    labs = rng.integers(0, 10, size=(n_lab,), dtype=np.uint8)
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte") if split == "train" else ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    for stem, arr in zip(stems, (imgs, labs)):
        data = idx_bytes(arr)
        if gz:
            (d / (stem + ".gz")).write_bytes(gzip.compress(data))
        else:
            (d / stem).write_bytes(data)
    return imgs, labs


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    imgs, labs = write_pair(tmp_path, gz=gz)
    ds = load_dataset("mnist", "train", data_dir=tmp_path)
    assert ds.images.dtype == np.uint8 and ds.images.shape == (5, 1, 28, 28)
    assert ds.labels.dtype == np.int64
    np.testing.assert_array_equal(ds.images[:, 0], imgs)
    np.testing.assert_array_equal(ds.labels, labs)


def test_wrong_magic(tmp_path):
    write_pair(tmp_path)
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(b"\x12\x34" + p.read_bytes()[2:])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: wrong magic number"):
        load_dataset("mnist", "train", data_dir=tmp_path)


def test_truncated(tmp_path):
    write_pair(tmp_path)
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: truncated file"):
        load_dataset("mnist", "train", data_dir=tmp_path)


def test_truncated_header(tmp_path):
    write_pair(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: truncated file"):
        load_dataset("mnist", "train", data_dir=tmp_path)


def test_count_mismatch(tmp_path):
    write_pair(tmp_path, n_img=5, n_lab=4)
    with pytest.raises(DataError, match=r"count mismatch: 4 labels for 5 images"):
        load_dataset("mnist", "train", data_dir=tmp_path)


def test_wrong_dims(tmp_path):
    write_pair(tmp_path, hw=(20, 20))
    with pytest.raises(DataError, match=r"wrong dims"):
        load_dataset("mnist", "train", data_dir=tmp_path)
    # a labels file whose header says 3 dimensions
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((5, 28, 28))))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros((5, 1, 1))))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: wrong dims: header says 3"):
        load_dataset("mnist", "train", data_dir=tmp_path)


def test_missing_file_and_bad_names(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte: file not found"):
        load_dataset("mnist", "train", data_dir=tmp_path)
    with pytest.raises(ConfigError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")
    with pytest.raises(ConfigError, match="split"):
        load_dataset("mnist-5k", "valid")


def test_error_is_one_line_exit_2_from_cli(tmp_path):
    write_pair(tmp_path)
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(b"\x12\x34" + p.read_bytes()[2:])
    r = cli("train", "vae", "--data-dir", tmp_path, "--dataset", "mnist", "--out", tmp_path / "run", "--epochs", "1")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "wrong magic number" in r.stderr and "Traceback" not in r.stderr


def test_mnist5k_split():
    tr, te = load_dataset("mnist-5k", "train"), load_dataset("mnist-5k", "test")
    assert (len(tr), len(te)) == (4000, 1000)
    assert np.bincount(tr.labels).tolist() == [400] * 10 and np.bincount(te.labels).tolist() == [100] * 10
    # deterministic, and train/test disjoint
    again = load_dataset("mnist-5k", "train")
    assert np.array_equal(tr.images, again.images)
    trh = {hashlib.sha1(im.tobytes()).hexdigest() for im in tr.images}
    assert not any(hashlib.sha1(im.tobytes()).hexdigest() in trh for im in te.images[:200])


@needs_mnist
def test_full_mnist_from_dir():
    ds = load_dataset("mnist", "test", data_dir=FULL_MNIST)
    assert ds.images.shape == (10000, 1, 28, 28) and ds.labels[:5].tolist() == [7, 2, 1, 0, 4]


@needs_mnist
def test_download_verifies_and_writes_atomically(tmp_path, monkeypatch):
    good = tmp_path / "good"
    shutil.copytree(FULL_MNIST, good)
    cache = tmp_path / "cache"
    monkeypatch.setenv("VAELAB_CACHE", str(cache))
    monkeypatch.delenv("VAELAB_DATA", raising=False)
    with LocalServer(tmp_path / "nowhere") as dead, LocalServer(good) as srv:
        monkeypatch.setenv("VAELAB_MNIST_MIRRORS", f"{dead.url},{srv.url}")  # first mirror 404s
        ds = load_dataset("mnist", "test")
    assert ds.images.shape == (10000, 1, 28, 28)
    files = sorted(p.name for p in (cache / "data" / "mnist").iterdir())
    assert files == ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    for f in files:
        assert hashlib.sha256((cache / "data" / "mnist" / f).read_bytes()).hexdigest() == SHA256["mnist"][f]


@needs_mnist
def test_corrupt_download_leaves_nothing(tmp_path, monkeypatch):
    bad = tmp_path / "bad"
    shutil.copytree(FULL_MNIST, bad)
    raw = bytearray(gzip.decompress((bad / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    raw[100] ^= 0xFF  # one flipped byte: a valid IDX file with the wrong checksum
    (bad / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(raw)))
    cache = tmp_path / "cache"
    monkeypatch.setenv("VAELAB_CACHE", str(cache))
    monkeypatch.delenv("VAELAB_DATA", raising=False)
    with LocalServer(bad) as srv:
        monkeypatch.setenv("VAELAB_MNIST_MIRRORS", srv.url)
        with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: download failed.*sha256 mismatch"):
            load_dataset("mnist", "test")
    left = [p.name for p in (cache / "data" / "mnist").iterdir()] if (cache / "data" / "mnist").exists() else []
    assert "t10k-labels-idx1-ubyte" not in left and not any(n.endswith(".tmp") for n in left)


def test_unreachable_mirror_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("VAELAB_CACHE", str(tmp_path))
    monkeypatch.delenv("VAELAB_DATA", raising=False)
    monkeypatch.setenv("VAELAB_MNIST_MIRRORS", "http://127.0.0.1:9/")
    with pytest.raises(DataError, match="download failed from every mirror"):
        load_dataset("mnist", "test")
    assert not (tmp_path / "data" / "mnist").exists() or not any((tmp_path / "data" / "mnist").iterdir())


def test_to_tensor_and_binarize():
    u8 = np.array([[[[0, 128, 255]]]], dtype=np.uint8)
    x = to_tensor(u8)
    assert x.dtype == torch.float32 and x.min() == 0 and x.max() == 1
    assert torch.equal(binarize(x, "none"), x)
    assert binarize(x, "static").tolist() == [[[[0.0, 1.0, 1.0]]]]
    g = torch.Generator().manual_seed(0)
    p = torch.full((20000,), 0.3)
    d1 = binarize(p, "dynamic", g)
    d2 = binarize(p, "dynamic", g)
    assert set(d1.unique().tolist()) <= {0.0, 1.0} and abs(d1.mean().item() - 0.3) < 0.02
    assert not torch.equal(d1, d2)  # resampled on every call
    with pytest.raises(ConfigError, match="binarize"):
        binarize(x, "dither")
