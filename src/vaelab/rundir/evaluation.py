"""Evaluating a run (:func:`evaluate_run`: every metric, a composition of :mod:`vaelab.scoring`'s stages,
and its figures) and its figures alone (:func:`make_figures`)."""
from __future__ import annotations

import contextlib
import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import safetensors.numpy
import torch

from .. import scoring
from ..config import check_int
from ..data import binarize, dsprites, factor_sampler, load_dataset, to_tensor
from ..errors import RunDirError
from ..io import RunLock, atomic_write_bytes, atomic_write_json, read_json, read_metrics
from ..metrics.cost import cost_scores
from ..provenance import now, versions
from ..reference_classifier import load_or_train
from ..run_figures import MAP_POINTS, write_figures
from ..tensorboard_log import log_evaluation
from .records import load, run_config

if TYPE_CHECKING:  # pragma: no cover
    from ..reference_classifier import Classifier


def evaluate_run(
    run_dir: str | Path,
    n_samples: int = 10000,
    iwae_k: int = 1000,
    iwae_n: int = 1000,
    seed: int = 0,
    data_dir: str | None = None,
    classifier: "Classifier | None" = None,
    write: bool = True,
    tensorboard: bool | None = None,
    batch_size: int = 500,
    max_items: int = 512,
    log: Callable[[str], None] | None = None,
    device: str = "cpu",
    figures: bool = True,
    map_points: int = MAP_POINTS,
    disentanglement: str = "standard",
) -> dict[str, Any]:
    """Evaluate the run in ``run_dir`` and return the eval.json dict (written atomically into the run
    dir when ``write``; with ``figures`` also the figures that need the model, drawn on the CPU into
    ``RUN/figures/`` with their index: :mod:`vaelab.run_figures`, ``map_points`` test images in the
    latent map). ``classifier``: a :class:`vaelab.reference_classifier.Classifier` to use instead of the
    cached reference one of the run's dataset. ``iwae_n=0`` or ``iwae_k=0`` skips the IWAE bound.
    ``device``: where the model runs (``auto | cpu | cuda | cuda:N``); the test inputs (and their
    binarisation) are the same on every device, the model's noise comes from that device's generator,
    and the reference classifier stays on the CPU. Deterministic for a given ``seed`` and device
    (apart from the timings). ``disentanglement``: the sample counts of the disentanglement metrics on a
    dataset with ground-truth factors (dsprites), a mode of :data:`vaelab.scoring.DISENTANGLEMENT_MODES`
    (``none`` skips them)."""
    for name, val, lo in (("n_samples", n_samples, 10), ("iwae_k", iwae_k, 0), ("iwae_n", iwae_n, 0), ("seed", seed, 0),
                          ("map_points", map_points, 10)):
        check_int(val, name, lo)
    scoring.check_disentanglement_mode(disentanglement, "disentanglement")
    say = log or (lambda msg: None)
    run_dir = Path(run_dir)
    conf = run_config(run_dir)
    t_start = time.perf_counter()
    stages: dict[str, float] = {}
    last = [t_start]

    def lap(name: str) -> None:
        t = time.perf_counter()
        stages[name], last[0] = round(t - last[0], 2), t

    with (RunLock(run_dir) if write else contextlib.nullcontext()):  # no writing, no lock: a training run may go on
        v = load(run_dir, device)
        dev = v.device
        dataset, mode = conf["train"]["dataset"], conf["train"].get("binarize", "none")
        ck_path = run_dir / "checkpoint.json"
        ck_state = read_json(ck_path) if ck_path.is_file() else {}
        data_dir = data_dir if data_dir is not None else conf["train"].get("data_dir")
        image_size = conf["train"].get("image_size")
        test = load_dataset(dataset, "test", data_dir, image_size=image_size)
        has_factors = dsprites.is_spec(dataset)
        if classifier is None and test.labelled:
            classifier = load_or_train(dataset, data_dir, log=say, image_size=image_size)
        n_test = len(test)
        lap("load")
        out: dict[str, Any] = {}
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), torch.no_grad():
            torch.manual_seed(seed)

            def gen(s: int) -> torch.Generator:
                return torch.Generator(dev).manual_seed(s)

            x_grey = to_tensor(test.images)
            y = torch.as_tensor(test.labels).to(dev)
            # what the model sees: binarised on the CPU, so the same inputs on every device
            x_in = binarize(x_grey, mode, torch.Generator().manual_seed(scoring.BINARIZE_SEED)).to(dev)
            yc = y if v.conditional else None
            if classifier is None:
                out.update(scoring.unlabelled_scores(v, dataset))
            else:
                say(f"reconstructing {n_test} test images")
                rec = scoring.reconstructions(v, x_in, yc, batch_size)  # made once, scored by both stages
                out.update(scoring.reconstruction_scores(v, classifier, x_in, test.labels, yc, batch_size, rec))
                real_feats, _ = classifier.run(x_grey)
                lap("reconstruction")
                say(f"drawing {n_samples} samples")
                out.update(scoring.sample_scores(v, classifier, real_feats, test.labels, n_samples, gen(seed), batch_size))
                lap("samples")
            if classifier is not None and test.is_sequence:
                say("sequence metrics (content and motion)")
                out.update(scoring.sequence_scores(v, classifier, x_in, test.labels, test.factors["motion"],
                                                   gen(seed + 4), batch_size, rec))
                lap("sequences")
            per_image: dict[str, Any] = {}
            out.update(scoring.likelihood_scores(v, x_in, yc, iwae_k, iwae_n, seed, max_items, lap, say,
                                                 progress=log is not None, per_image=per_image))
            if classifier is not None:
                out.update(scoring.cluster_scores(v, x_in, test.labels, batch_size))
                lap("clusters")
            if classifier is not None and scoring.has_task_metrics(v):
                say("task metrics")
                out.update(scoring.task_scores(v, x_in, y, gen(seed + 3), set(out)))
                lap("task")
            if has_factors:
                say(f"disentanglement metrics ({disentanglement})")
                out.update(scoring.disentanglement_scores(v, factor_sampler(dataset), disentanglement, seed, batch_size))
                lap("disentanglement")
        if write and figures:
            say("figures")
            write_figures(v, run_dir, test, mode, map_points, say)
            lap("figures")
        out["parameters"] = int(v.num_parameters())
        try:
            out.update(cost_scores(read_metrics(run_dir / "metrics.jsonl")))
        except (RunDirError, ValueError, KeyError) as e:
            out.update({k: scoring.absent(f"no usable metrics.jsonl ({e})") for k in scoring.COST_KEYS[1:]})
        out = scoring.finite_or_absent(out)
        out["meta"] = {
            "schema": scoring.SCHEMA, "variant": v.name, "run_dir": str(run_dir), "dataset": dataset, "n_test": n_test,
            "binarization": mode, "binarize_seed": scoring.BINARIZE_SEED if mode == "dynamic" else None,
            "n_samples": n_samples, "sample_labels": "balanced (i mod n_classes)" if v.conditional else None,
            "iwae_k": iwae_k, "iwae_n": min(iwae_n, n_test), "seed": seed, "device": str(dev),
            "disentanglement": {"mode": disentanglement, "options": scoring.disentanglement_options(disentanglement)}
            if has_factors else None,
            "classifier_test_accuracy": None if classifier is None else classifier.test_accuracy,
            "classifier": None if classifier is None else {
                k: classifier.meta.get(k) for k in ("stem", "arch", "data_sha256", "recipe", "n_train", "test_accuracy", "created")},
            "checkpoint": {k: ck_state.get(k) for k in ("done", "phase", "epoch", "step")},
            "eval_seconds": round(time.perf_counter() - t_start, 2), "stage_seconds": stages,
            "created": now(), "versions": versions(),
        }
        if write:
            write_per_image(run_dir / scoring.PER_IMAGE_FILE, per_image, out["meta"], x_in)
            atomic_write_json(run_dir / "eval.json", out)
            if tensorboard or (tensorboard is None and (run_dir / "tb").is_dir()):
                log_evaluation(run_dir, out, conf)
    return out


def write_per_image(path: Path, per_image: dict[str, Any], meta: dict[str, Any], x_in: torch.Tensor) -> None:
    """The per-image likelihood values (float64 nats) as safetensors, atomically, with metadata naming
    the images (:data:`vaelab.eval_schema.PER_IMAGE_FILE`), among them a sha256 of ``x_in``, the inputs the
    model scored; a stale file is removed when there are none."""
    if not per_image:
        path.unlink(missing_ok=True)
        return
    inputs_sha256 = hashlib.sha256(memoryview(np.ascontiguousarray(x_in.float().cpu().numpy())).cast("B")).hexdigest()
    info = {k: str(meta[k]) for k in ("dataset", "n_test", "iwae_n", "iwae_k", "seed", "binarization", "binarize_seed")}
    info.update(inputs_sha256=inputs_sha256, schema=str(scoring.SCHEMA))
    tensors = {k: np.ascontiguousarray(val, dtype=np.float64) for k, val in per_image.items()}
    atomic_write_bytes(path, safetensors.numpy.save(tensors, metadata={scoring.PER_IMAGE_META: json.dumps(info, sort_keys=True)}))


def make_figures(run_dir: str | Path, map_points: int = MAP_POINTS, data_dir: str | None = None,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Only the figures of :func:`evaluate_run` (``RUN/figures/``), eval.json untouched: for a run
    evaluated before figures were saved with the evaluation. Returns their index."""
    tc = run_config(run_dir)["train"]
    with RunLock(run_dir):
        test = load_dataset(tc["dataset"], "test", tc.get("data_dir") if data_dir is None else data_dir, image_size=tc.get("image_size"))
        return write_figures(load(run_dir), run_dir, test, tc.get("binarize", "none"), map_points, log)
