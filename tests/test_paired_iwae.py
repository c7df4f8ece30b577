"""Paired IWAE differences between a study's variants (vaelab.study.paired), against an oracle: fabricated
per-image files with known differences give scipy's mean and 95% t-interval; pairs not on the same
images, conditional bounds and missing files are left out with the reason."""
import json

import numpy as np
import pytest
from safetensors.numpy import save_file
from scipy import stats

from vaelab.eval_schema import PER_IMAGE_FILE
from vaelab.study.paired import paired_difference, paired_iwae, read_iwae

META = {"dataset": "mnist-5k", "n_test": "1000", "iwae_n": "50", "iwae_k": "10", "seed": "0", "binarization": "dynamic",
        "binarize_seed": "0", "inputs_sha256": "ab" * 32, "schema": "1"}


def put(tmp_path, variant, seed, values, **meta):
    d = tmp_path / f"{variant}-s{seed}"
    d.mkdir()
    save_file({"neg_elbo": np.zeros(1000), "iwae_nll": np.asarray(values, np.float64)}, str(d / PER_IMAGE_FILE),
              metadata={"meta": json.dumps({**META, "iwae_n": str(len(values)), **meta})})
    return {"variant": variant, "seed": seed, "status": "ok", "run_dir": str(d)}


def scipy_ci(d):
    d = np.asarray(d, np.float64)
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    return d.mean(), lo, hi


def test_paired_difference_is_scipys_t_interval():
    rng = np.random.default_rng(0)
    a = rng.normal(90, 5, 200)
    b = a + 1.5 + rng.normal(0, 0.5, 200)
    got = paired_difference(a, b)
    mean, lo, hi = scipy_ci(b - a)
    assert got["mean_diff"] == pytest.approx(mean, rel=1e-12)
    assert (got["ci_low"], got["ci_high"]) == (pytest.approx(lo, rel=1e-12), pytest.approx(hi, rel=1e-12))
    # a constant difference: the interval collapses onto it
    c = paired_difference(a, a + 2.0)
    assert c["mean_diff"] == pytest.approx(2.0) and c["ci_high"] - c["ci_low"] == pytest.approx(0, abs=1e-9)


def test_paired_iwae_averages_over_shared_seeds_then_differences(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.normal(95, 8, 50)
    va = {0: base + rng.normal(0, 1, 50), 1: base + rng.normal(0, 1, 50)}
    vb = {0: base - 2 + rng.normal(0, 1, 50), 1: base - 2 + rng.normal(0, 1, 50), 2: base + 100}  # seed 2: a has none
    runs = [put(tmp_path, "vae", s, x) for s, x in va.items()] + [put(tmp_path, "iwae", s, x) for s, x in vb.items()]
    runs.append({"variant": "vae", "seed": 2, "status": "failed", "run_dir": str(tmp_path / "nope")})
    out = paired_iwae(["vae", "iwae"], {"vae": False, "iwae": False}, runs)
    assert len(out) == 1 and out[0]["a"] == "vae" and out[0]["b"] == "iwae"
    rec = out[0]
    assert rec["seeds"] == [0, 1] and rec["n_images"] == 50
    d = (vb[0] + vb[1]) / 2 - (va[0] + va[1]) / 2  # per image: mean over the shared seeds, then b − a
    mean, lo, hi = scipy_ci(d)
    assert rec["mean_diff"] == pytest.approx(mean, rel=1e-12) and rec["mean_diff"] < 0
    assert rec["ci_low"] == pytest.approx(lo, rel=1e-12) and rec["ci_high"] == pytest.approx(hi, rel=1e-12)
    assert set(rec) == {"a", "b", "n_images", "seeds", "mean_diff", "ci_low", "ci_high"}


def test_pairs_not_on_the_same_images_are_left_out_with_the_reason(tmp_path):
    x = np.arange(50, dtype=np.float64)
    runs = [put(tmp_path, "vae", 0, x), put(tmp_path, "iwae", 0, x + 1, inputs_sha256="cd" * 32),
            put(tmp_path, "beta-vae", 0, x[:40]), put(tmp_path, "cvae", 0, x), put(tmp_path, "svae", 0, x + 3)]
    (tmp_path / "svae-s0" / PER_IMAGE_FILE).write_bytes(b"corrupt")
    out = paired_iwae(["vae", "iwae", "beta-vae", "cvae", "svae", "wae"],
                      {"cvae": True}, runs)
    by = {r["b"]: r for r in out}
    assert all(r["a"] == "vae" for r in out) and list(by) == ["iwae", "beta-vae", "cvae", "svae", "wae"]
    assert "inputs_sha256 differs" in by["iwae"]["reason"]
    assert "iwae_n differs (40, 50)" in by["beta-vae"]["reason"]
    assert "cvae is conditional" in by["cvae"]["reason"]
    assert by["svae"]["reason"] == by["wae"]["reason"] == "no seed with per-image IWAE values for both"
    assert all(set(r) == {"a", "b", "reason"} for r in out)
    assert read_iwae(tmp_path / "svae-s0") is None and read_iwae(tmp_path / "nowhere") is None


def test_no_per_image_files_no_records(tmp_path):
    runs = [{"variant": v, "seed": 0, "status": "ok", "run_dir": str(tmp_path / v)} for v in ("vae", "iwae")]
    assert paired_iwae(["vae", "iwae"], {}, runs) == []


def test_files_of_the_first_format_pair_and_a_file_without_the_pairing_keys_is_left_out(tmp_path):
    x = np.arange(50, dtype=np.float64)
    runs = [put(tmp_path, "vae", 0, x)]
    for name, meta in (("iwae", {**META, "iwae_n": "50"}), ("wae", {"dataset": "mnist-5k"})):
        d = tmp_path / f"{name}-s0"
        d.mkdir()
        save_file({"iwae_nll": x + 2}, str(d / PER_IMAGE_FILE), metadata=meta)  # the strings as keys, no "meta" key
        runs.append({"variant": name, "seed": 0, "status": "ok", "run_dir": str(d)})
    by = {r["b"]: r for r in paired_iwae(["vae", "iwae", "wae"], {}, runs)}
    assert read_iwae(tmp_path / "iwae-s0")[1] == {**META, "iwae_n": "50"}
    assert by["iwae"]["mean_diff"] == pytest.approx(2.0) and by["iwae"]["n_images"] == 50
    assert by["wae"]["reason"] == "cannot tell whether they are on the same test images: a file does not record n_test"
