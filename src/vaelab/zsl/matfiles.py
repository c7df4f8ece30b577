"""The standard ZSL benchmarks' files (Xian, Lampert, Schiele & Akata 2018, the "proposed split"):
``res101.mat`` (``features``: F × N ResNet-101 features, ``labels``: N class numbers 1..C) and
``att_splits.mat`` (``att``: A × C class attribute vectors; ``trainval_loc``, ``test_seen_loc``,
``test_unseen_loc`` and optionally ``train_loc``, ``val_loc``: 1-based indices into the N features).
CUB, AWA2, SUN and FLO ship in this layout.

Read with SciPy (MATLAB v4–v7.2 files); MATLAB v7.3 files are HDF5 and need h5py (read when it is
installed, else refused with a one-line hint). Everything is checked before use; a bad file is one
ConfigError line "FILE: field `NAME`: what is wrong".

What a method gets (:func:`mat_split`): classes renumbered 0..C−1 (label − 1); each class's attribute
vector scaled to unit length; features min–max scaled per dimension over the ``trainval_loc``
features and clipped to [0, 1]; labelled training set = ``trainval_loc``; test-seen / test-unseen =
``test_seen_loc`` / ``test_unseen_loc``; the transductive setting's unlabelled set = the
``test_unseen_loc`` features in a seeded order, without labels (the usual transductive protocol on
these benchmarks). ``val_loc``'s classes (a subset of the seen classes) are the pseudo-unseen classes
on which calibrated stacking's γ is chosen.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .features import Split, check_setting

LOCS = ("trainval_loc", "test_seen_loc", "test_unseen_loc")
OPTIONAL_LOCS = ("train_loc", "val_loc")


@dataclass
class MatBenchmark:
    """A checked pair of files: raw features (N, F), 0-based labels, unit attribute rows (C, A), 0-based index arrays."""

    features_path: str
    splits_path: str
    sha256: dict[str, str]
    x: np.ndarray
    y: np.ndarray
    attributes: np.ndarray
    locs: dict[str, np.ndarray]

    @property
    def seen(self) -> list[int]:
        return sorted(int(c) for c in np.unique(self.y[self.locs["trainval_loc"]]))

    @property
    def unseen(self) -> list[int]:
        return sorted(int(c) for c in np.unique(self.y[self.locs["test_unseen_loc"]]))

    @property
    def val_classes(self) -> list[int] | None:
        """The pseudo-unseen classes of ``val_loc``, or None when the file has none."""
        v = self.locs.get("val_loc")
        return None if v is None else sorted(int(c) for c in np.unique(self.y[v]))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_mat(path: str | Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named variables of a .mat file (those present), as NumPy arrays in MATLAB's shape."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    with open(path, "rb") as fh:
        head = fh.read(128)
    if head.startswith(b"MATLAB 7.3") or head[:8] == b"\x89HDF\r\n\x1a\n":
        try:
            import h5py
        except ImportError:
            raise ConfigError(f"{path}: a MATLAB v7.3 (HDF5) file; install h5py, or re-save it as v7 "
                              f"(MATLAB/Octave: load it, then save(FILE, '-v7'))") from None
        out = {}
        with h5py.File(path, "r") as f:
            for n in names:
                if n in f:
                    out[n] = np.asarray(f[n]).T  # HDF5 stores MATLAB's column-major arrays transposed
        return out
    from scipy.io import loadmat

    try:
        d = loadmat(str(path), variable_names=list(names))
    except Exception as e:  # noqa: BLE001 - SciPy raises many kinds on a corrupt file
        first = str(e).splitlines()[0] if str(e) else ""
        raise ConfigError(f"{path}: not a readable .mat file ({type(e).__name__}: {first})") from None
    return {n: np.asarray(d[n]) for n in names if n in d}


def _numeric(d: dict, name: str, path: Path, ndim_max: int = 2) -> np.ndarray:
    if name not in d:
        raise ConfigError(f"{path}: field `{name}`: missing")
    a = d[name]
    if a.dtype.kind not in "biuf" or a.ndim > ndim_max or a.size == 0:
        raise ConfigError(f"{path}: field `{name}`: expected a non-empty numeric matrix, got {a.dtype} of shape {a.shape}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ConfigError(f"{path}: field `{name}`: holds NaN or infinite values")
    return a


def _index_vector(d: dict, name: str, path: Path, n: int, what: str) -> np.ndarray:
    """A 1-based MATLAB index vector (any 1 × k or k × 1 shape) → 0-based int64, checked to lie in 1..n."""
    a = _numeric(d, name, path)
    if a.ndim == 2 and min(a.shape) != 1:
        raise ConfigError(f"{path}: field `{name}`: expected a vector, got shape {a.shape}")
    v = a.reshape(-1)
    if not np.all(v == np.round(v)):
        raise ConfigError(f"{path}: field `{name}`: holds non-integer values")
    v = v.astype(np.int64)
    if v.min() < 1:
        raise ConfigError(f"{path}: field `{name}`: holds {v.min()}; MATLAB indices are 1-based (1..{n} {what})")
    if v.max() > n:
        raise ConfigError(f"{path}: field `{name}`: holds {v.max()}, beyond the {n} {what}")
    return v - 1


def load_mat_benchmark(features: str | Path, splits: str | Path) -> MatBenchmark:
    """Read and check ``res101.mat``-style ``features`` and ``att_splits.mat``-style ``splits``."""
    fp, sp = Path(features), Path(splits)
    fd = read_mat(fp, ("features", "labels"))
    sd = read_mat(sp, ("att", *LOCS, *OPTIONAL_LOCS))
    _numeric(fd, "labels", fp)  # numeric, or a one-line refusal naming the field
    att = _numeric(sd, "att", sp).astype(np.float64)
    if att.ndim != 2:
        raise ConfigError(f"{sp}: field `att`: expected attributes × classes, got shape {att.shape}")
    n_classes = att.shape[1]
    y = _index_vector(fd, "labels", fp, n_classes, f"classes (columns of `att` in {sp.name})")
    n = len(y)
    feats = _numeric(fd, "features", fp)
    if feats.ndim != 2 or n not in feats.shape:
        raise ConfigError(f"{fp}: field `features`: shape {feats.shape} does not have the {n} columns of `labels` "
                          f"(expected features × examples)")
    x = (feats.T if feats.shape[1] == n else feats).astype(np.float32)  # MATLAB's features × examples, or transposed
    norms = np.linalg.norm(att, axis=0)
    if (norms == 0).any():
        raise ConfigError(f"{sp}: field `att`: class {int(np.argmax(norms == 0)) + 1} has an all-zero attribute vector")
    unit = (att / norms).T  # (C, A)
    if len({tuple(r) for r in unit.round(6)}) < n_classes:
        raise ConfigError(f"{sp}: field `att`: two classes share an attribute vector (after scaling to unit length)")
    locs = {k: _index_vector(sd, k, sp, n, f"examples of {fp.name}") for k in LOCS}
    locs.update({k: _index_vector(sd, k, sp, n, f"examples of {fp.name}") for k in OPTIONAL_LOCS if k in sd})
    for k, v in locs.items():
        if len(np.unique(v)) != len(v):
            raise ConfigError(f"{sp}: field `{k}`: lists an example twice")
    tv, ts, tu = (locs[k] for k in LOCS)
    for k in ("test_seen_loc", "test_unseen_loc"):
        if np.intersect1d(tv, locs[k]).size:
            raise ConfigError(f"{sp}: field `{k}`: shares examples with `trainval_loc` (test features must be held out)")
    seen, unseen = set(np.unique(y[tv]).tolist()), set(np.unique(y[tu]).tolist())
    both = sorted(seen & unseen)
    if both:
        raise ConfigError(f"{sp}: field `test_unseen_loc`: classes {', '.join(str(c + 1) for c in both[:5])} also in "
                          f"`trainval_loc` (seen and unseen classes must be disjoint)")
    extra = sorted(set(np.unique(y[ts]).tolist()) - seen)
    if extra:
        raise ConfigError(f"{sp}: field `test_seen_loc`: classes {', '.join(str(c + 1) for c in extra[:5])} are not seen "
                          f"(not in `trainval_loc`)")
    if len(seen) < 2:
        raise ConfigError(f"{sp}: field `trainval_loc`: covers {len(seen)} class; need at least 2 seen classes")
    if ("train_loc" in locs) != ("val_loc" in locs):
        missing = "val_loc" if "train_loc" in locs else "train_loc"
        raise ConfigError(f"{sp}: field `{missing}`: missing (train_loc and val_loc come together)")
    if "val_loc" in locs:
        tr, va = locs["train_loc"], locs["val_loc"]
        for k, v in (("train_loc", tr), ("val_loc", va)):
            if not set(np.unique(y[v]).tolist()) <= seen:
                raise ConfigError(f"{sp}: field `{k}`: holds examples of classes outside `trainval_loc`'s")
        if set(np.unique(y[tr]).tolist()) & set(np.unique(y[va]).tolist()):
            raise ConfigError(f"{sp}: field `val_loc`: shares classes with `train_loc` (validation classes are pseudo-unseen)")
    return MatBenchmark(str(fp), str(sp), {"features": _sha256(fp), "splits": _sha256(sp)}, x, y, unit, locs)


def mat_split(b: MatBenchmark, setting: str = "inductive", seed: int = 0) -> Split:
    """The data a method may use in ``setting`` (module docstring)."""
    check_setting(setting, 0)
    tv, ts, tu = (b.locs[k] for k in LOCS)
    lo, hi = b.x[tv].min(0), b.x[tv].max(0)
    span = np.where(hi > lo, hi - lo, 1.0)

    def norm(x: np.ndarray) -> np.ndarray:
        return np.clip((x - lo) / span, 0.0, 1.0).astype(np.float32)

    rng = np.random.default_rng(seed)
    return Split(seen=b.seen, unseen=b.unseen, attributes=b.attributes.astype(np.float32),
                 x_train=norm(b.x[tv]), y_train=b.y[tv],
                 x_unlabelled=norm(b.x[tu[rng.permutation(len(tu))]]) if setting == "transductive" else None,
                 x_test_seen=norm(b.x[ts]), y_test_seen=b.y[ts], x_test_unseen=norm(b.x[tu]), y_test_unseen=b.y[tu])
