"""`vaelab zsl --features res101.mat --splits att_splits.mat`: the standard benchmarks' files, read,
checked (malformed files refused in one line naming the file and the field) and run by every method."""
import hashlib
import json
import sys

import numpy as np
import pytest
import scipy.io

from vaelab.cli import main
from vaelab.errors import ConfigError
from vaelab.zsl.matfiles import load_mat_benchmark, mat_split
from vaelab.zsl.run import ZSLConfig

from zsl_synthetic import linear_data, write_mat_files


def test_the_files_are_read_with_matlab_conventions(tmp_path):
    fp, sp, splits = write_mat_files(tmp_path)
    x, y, att, unseen, val = linear_data()
    b = load_mat_benchmark(fp, sp)
    np.testing.assert_allclose(b.x, x, rtol=1e-6)  # features F × N → (N, F)
    np.testing.assert_array_equal(b.y, y)  # labels 1..C → 0..C−1
    np.testing.assert_allclose(b.attributes, att, rtol=1e-6)  # att A × C → unit rows (C, A)
    np.testing.assert_array_equal(b.locs["test_unseen_loc"], splits["test_unseen_loc"].ravel().astype(int) - 1)
    assert b.unseen == unseen and b.val_classes == val and set(b.seen) == set(range(12)) - set(unseen)
    assert b.sha256["features"] == hashlib.sha256(fp.read_bytes()).hexdigest()
    s = mat_split(b, "transductive", seed=0)
    assert s.x_train.min() == 0 and s.x_train.max() == 1 and (0 <= s.x_test_unseen).all() and (s.x_test_unseen <= 1).all()
    assert set(s.y_train.tolist()) == set(b.seen) and set(s.y_test_unseen.tolist()) == set(unseen)
    # transductive: the test-unseen features without labels, in another (seeded) order
    assert sorted(map(bytes, s.x_unlabelled)) == sorted(map(bytes, s.x_test_unseen))
    assert not np.array_equal(s.x_unlabelled, s.x_test_unseen)
    assert mat_split(b, "inductive", 0).x_unlabelled is None


def _rewrite(path, **changes):
    d = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    for k, v in changes.items():
        if v is None:
            d.pop(k)
        else:
            d[k] = v
    scipy.io.savemat(path, d)


def _bad_cases(splits):
    tv, tu, ts = splits["trainval_loc"], splits["test_unseen_loc"], splits["test_seen_loc"]
    return {
        "missing": ("att_splits.mat", "test_unseen_loc", {"test_unseen_loc": None}, "missing"),
        "zero-based": ("att_splits.mat", "trainval_loc", {"trainval_loc": tv - 1}, "1-based"),
        "out of range": ("att_splits.mat", "test_seen_loc", {"test_seen_loc": ts + 10_000}, "beyond"),
        "fractional": ("att_splits.mat", "val_loc", {"val_loc": splits["val_loc"] + 0.5}, "non-integer"),
        "duplicate": ("att_splits.mat", "trainval_loc", {"trainval_loc": np.vstack([tv, tv[:1]])}, "twice"),
        "test in training": ("att_splits.mat", "test_seen_loc", {"test_seen_loc": np.vstack([ts, tv[:1]])}, "held out"),
        "seen = unseen": ("att_splits.mat", "test_unseen_loc", {"test_unseen_loc": np.vstack([tu, ts[:1]])}, "disjoint"),
        "att columns": ("res101.mat", "labels", {"att": splits["att"][:, :-3]}, "classes"),
        "shared attributes": ("att_splits.mat", "att", {"att": np.hstack([splits["att"][:, :-1], splits["att"][:, :1]])},
                              "share"),
        "nan attributes": ("att_splits.mat", "att", {"att": np.full_like(splits["att"], np.nan)}, "NaN"),
        "val without train": ("att_splits.mat", "train_loc", {"train_loc": None}, "missing"),
    }


@pytest.mark.parametrize("case", list(_bad_cases({k: np.zeros((2, 2)) for k in
                                                  ("trainval_loc", "test_unseen_loc", "test_seen_loc", "val_loc", "att")})))
def test_malformed_splits_are_one_line_errors_naming_file_and_field(case, tmp_path, capsys):
    fp, sp, splits = write_mat_files(tmp_path)
    file, field, changes, needle = _bad_cases(splits)[case]
    _rewrite(sp, **changes)
    with pytest.raises(ConfigError, match=needle) as e:
        load_mat_benchmark(fp, sp)
    assert str(e.value).startswith(str(tmp_path / file) + ": field `" + field + "`:") and "\n" not in str(e.value)
    out = tmp_path / "o"
    assert main(["zsl", "--method", "eszsl", "--features", str(fp), "--splits", str(sp), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and file in err and f"`{field}`" in err
    assert not out.exists()


def test_malformed_features_and_unreadable_files(tmp_path, monkeypatch):
    fp, sp, _ = write_mat_files(tmp_path)
    scipy.io.savemat(tmp_path / "short.mat", {"features": scipy.io.loadmat(fp)["features"][:, :-1],
                                              "labels": scipy.io.loadmat(fp)["labels"]})
    with pytest.raises(ConfigError, match=r"short\.mat: field `features`: shape \(16, 479\)"):
        load_mat_benchmark(tmp_path / "short.mat", sp)
    scipy.io.savemat(tmp_path / "nolabels.mat", {"features": scipy.io.loadmat(fp)["features"]})
    with pytest.raises(ConfigError, match=r"nolabels\.mat: field `labels`: missing"):
        load_mat_benchmark(tmp_path / "nolabels.mat", sp)
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all" * 20)
    with pytest.raises(ConfigError, match=r"junk\.mat: not a readable \.mat file"):
        load_mat_benchmark(tmp_path / "junk.mat", sp)
    with pytest.raises(ConfigError, match=r"nope\.mat: no such file"):
        load_mat_benchmark(tmp_path / "nope.mat", sp)
    # a MATLAB v7.3 file is HDF5: without h5py, a one-line hint how to convert it
    (tmp_path / "v73.mat").write_bytes(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: x HDF5 schema 1.00 ." + bytes(400))
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ConfigError, match=r"v73\.mat: a MATLAB v7\.3 \(HDF5\) file; install h5py, or re-save it as v7"):
        load_mat_benchmark(tmp_path / "v73.mat", sp)


def test_hdf5_files_are_read_when_h5py_is_installed(tmp_path):
    h5py = pytest.importorskip("h5py")
    fp, sp, splits = write_mat_files(tmp_path)
    with h5py.File(tmp_path / "att73.mat", "w") as f:
        for k, v in splits.items():
            f[k] = np.asarray(v).T  # MATLAB writes column-major
    b, ref = load_mat_benchmark(fp, tmp_path / "att73.mat"), load_mat_benchmark(fp, sp)
    for k in ref.locs:
        np.testing.assert_array_equal(b.locs[k], ref.locs[k])


def test_benchmark_records_keep_their_old_config_keys():
    d = ZSLConfig().to_dict()
    assert "features" not in d and "splits" not in d and d["dataset"] == "mnist-5k" and d["fold"] == 0
    m = ZSLConfig(features="a.mat", splits="b.mat").to_dict()
    assert m["features"] == "a.mat" and "dataset" not in m and "fold" not in m and m["epochs"] == 30
    with pytest.raises(ConfigError, match="--features/--splits"):
        ZSLConfig(features="a.mat").validate()
    with pytest.raises(ConfigError, match="--shots"):
        ZSLConfig(features="a.mat", splits="b.mat", shots=5).validate()


@pytest.mark.parametrize("method, setting", [("eszsl", "inductive"), ("ridge", "transductive"),
                                             ("f-vaegan-d2", "transductive"), ("zero-vae-gan", "transductive"),
                                             ("f-clswgan", "inductive")])
def test_every_method_runs_on_mat_files_from_the_command_line(method, setting, tmp_path, capsys):
    fp, sp, _ = write_mat_files(tmp_path)
    out = tmp_path / "run"
    argv = ["zsl", "--features", str(fp), "--splits", str(sp), "--method", method, "--setting", setting, "--out", str(out),
            "--epochs", "1", "--n-synth", "20", "--refine-epochs", "1", "--set", "hidden=16"]
    if method == "f-clswgan":
        argv += ["--set", "classifier_epochs=1"]
    assert main(argv) == 0
    assert "AUSUC" in capsys.readouterr().out
    rec = json.loads((out / "zsl.json").read_text())
    assert rec["features"]["sha256"] == {"features": hashlib.sha256(fp.read_bytes()).hexdigest(),
                                         "splits": hashlib.sha256(sp.read_bytes()).hexdigest()}
    assert rec["config"]["features"] == str(fp) and "dataset" not in rec["config"] and "benchmark_version" not in rec
    assert rec["n_unlabelled"] == (4 * 40 if setting == "transductive" else 0)  # the 4 unseen classes' test features
    for k in ("T1", "u", "s", "H", "u_cal", "s_cal", "H_cal", "AUSUC"):
        assert 0 <= rec[k] <= 1
    assert rec["calibration"]["pseudo_unseen"] == linear_data()[4]  # val_loc's classes
    assert rec["AUSUC"] <= max(rec["s"], rec["s_cal"], 1.0)
