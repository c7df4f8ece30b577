"""What a run records of its training, the part of :class:`vaelab.training.trainer.Trainer` that
brings results to the host and writes them (rank 0 only):

* the loss terms of every update, kept on the device and brought to the host a window of updates
  at a time (:meth:`RunRecord._sync`): summed per epoch (with several processes, over the global
  batch in one collective), checked finite (``TrainingDiverged`` at the first non-finite update);
* each epoch's ``metrics.jsonl`` record, with the test loss (:meth:`RunRecord.evaluate_loss`) and a
  clustering variant's scores (:meth:`RunRecord.cluster_scores`), and its ``epoch`` event;
* the sample and reconstruction grids (:meth:`RunRecord._write_grids`) and their ``grids`` event.

Evaluation and pictures draw from their own seeded streams: training's random state is untouched.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any

import torch

from ..data import binarize, to_tensor
from ..errors import TrainingDiverged
from ..images import save_grid
from ..io import append_text
from ..models.base import NotAvailable
from ..nn.utils import batched, evaluating
from .. import parallel

log = logging.getLogger("vaelab.train")
EVENT = {"vaelab_event": True}  # marks a log record whose content also went to on_event


class RunRecord:
    """Mixed into the Trainer, whose attributes it reads: ``variant``, ``cfg``, ``run_dir``, ``world``,
    ``main``, ``on_event``, ``device``, ``x``/``y``, ``x_test``/``y_test``, ``metrics_path``."""

    def _sync(self, window, acc, phase, st, interrupted) -> torch.Tensor:
        """Bring the updates of ``window`` to the host: add the global batch's sums of their loss terms
        to ``acc``, raise TrainingDiverged at the first update whose terms were not finite (on any
        process), agree on Ctrl-C across the processes; return the last update's global means. (An
        update's terms may differ from the next one's, e.g. a critic's step and a generator's.)"""
        bad = torch.stack([~torch.isfinite(w[3]).all() for w in window]).double()  # (w,)
        last = window[-1][3]
        # one process: each update's sums go straight into the epoch's, in turn (the sums of before, bit for bit)
        sums = acc if self.world == 1 else {}
        if self.world > 1:  # one collective: the window's sums, the last update's, each update's finiteness, Ctrl-C
            _add_sums(sums, window)
            n_last = float(window[-1][4])
            t = parallel.sum_over_processes(torch.cat([torch.stack(list(sums.values())), last.double() * n_last, bad,
                                                       bad.new_tensor([float(interrupted["flag"]), n_last])]))
            k, n = len(sums), len(last)
            for name, val in zip(list(sums), t[:k]):
                acc[name] = acc.get(name, torch.zeros((), dtype=torch.float64, device=val.device)) + val
            last, bad = t[k:k + n] / t[-1], t[k + n:k + n + len(window)]
            interrupted["flag"] = bool(t[-2] > 0)
        bad = bad.cpu()
        if bool(bad.any()):
            step, b, names, local, _ = window[int(bad.nonzero()[0])]
            detail = ", ".join(f"{name}={float(val):.6g}" for name, val in zip(names, local))
            raise TrainingDiverged(
                f"non-finite loss at step {step} (phase {phase.name}, epoch {st.epoch + 1}, batch {b + 1}): "
                f"{detail}; the last good checkpoint in {self.run_dir} is kept")
        if self.world == 1:
            _add_sums(acc, window)
        return last.cpu()

    @torch.no_grad()
    def evaluate_loss(self, x: torch.Tensor, y: torch.Tensor, seed: int, step: int = 0, batch_size: int = 500) -> dict[str, float]:
        """Mean loss terms of the variant over (x, y), with its own RNG stream (training's is untouched)."""
        v = self.variant
        acc: dict[str, float] = {}
        with torch.random.fork_rng(devices=self._rng_devices), evaluating(v):
            torch.manual_seed(seed)
            g = torch.Generator(x.device).manual_seed(seed)
            for i in range(0, x.shape[0], batch_size):
                xb = to_tensor(x[i:i + batch_size])
                if self.cfg.binarize != "none":
                    xb = binarize(xb, self.cfg.binarize, g)
                # evaluation stays fp32 whatever the training precision
                _, terms = v.loss({"x": xb, "y": y[i:i + batch_size], "index": torch.arange(i, i + xb.shape[0], device=xb.device),
                                   "dataset_size": x.shape[0]}, step)
                for k, t in terms.items():
                    acc[k] = acc.get(k, 0.0) + float(t) * xb.shape[0]
        return {k: s / x.shape[0] for k, s in acc.items()}

    @torch.no_grad()
    def cluster_scores(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> dict[str, float]:
        """Unsupervised clustering accuracy/NMI/ARI of the variant's ``predict`` on (x, y), logged each
        epoch of a clustering variant's last phase so the curve shows whether the ELBO helps."""
        from ..metrics.clustering import clustering_scores

        v = self.variant
        g = torch.Generator(x.device).manual_seed(self.cfg.seed + 7)
        mode = self.cfg.binarize
        with evaluating(v):
            pred = batched(lambda i, j: v.predict(to_tensor(x[i:j]) if mode == "none" else binarize(to_tensor(x[i:j]), mode, g)), x.shape[0], batch_size)
        return {f"cluster_{k}": val for k, val in clustering_scores(pred.cpu(), y.cpu()).items()}

    def _end_epoch(self, phase, st) -> None:
        if not self.main:
            return
        n = max(st.acc_n, 1)
        rec: dict[str, Any] = {"phase": phase.name, "epoch": st.epoch, "step": st.step, "images": st.acc_n,
                               "seconds": round(st.elapsed, 4), "images_per_s": round(st.acc_n / max(st.elapsed, 1e-9), 2),
                               "load_avg": _load_avg()}
        rec["train"] = {k: s / n for k, s in st.acc.items()}
        if self.x_test is not None and self.cfg.eval_every and st.epoch % self.cfg.eval_every == 0:
            try:
                rec["test"] = self.evaluate_loss(self.x_test, self.y_test, seed=self.cfg.seed + 7, step=st.step)
            except NotAvailable:
                pass
            if getattr(self.variant, "clusters", False) and phase.name == self.variant.phases()[-1].name:
                rec.setdefault("test", {}).update(self.cluster_scores(self.x_test, self.y_test))
        append_text(self.metrics_path, json.dumps(rec) + "\n")
        terms = " ".join(f"{k}={val:.3f}" for k, val in rec["train"].items())
        log.info("%s epoch %d: %s | %.1fs, %.0f img/s%s", phase.name, st.epoch, terms, rec["seconds"], rec["images_per_s"],
                 (f" | test loss {rec['test'].get('loss', float('nan')):.3f}" if "test" in rec else "")
                 + (f", cluster acc {rec['test']['cluster_accuracy']:.4f}" if "cluster_accuracy" in rec.get("test", {}) else ""),
                 extra=EVENT)
        self.on_event({"event": "epoch", **rec})
        files = self._write_grids()
        if files:
            self.on_event({"event": "grids", "phase": phase.name, "epoch": st.epoch, "step": st.step, "files": files})

    def _write_grids(self) -> dict[str, str]:
        """Write samples.png (where the variant samples) and reconstructions.png; return {name: path} written."""
        v = self.variant
        files: dict[str, str] = {}
        if v.data_kind not in ("image", "sequence"):  # feature vectors have no picture
            return files
        with torch.random.fork_rng(devices=self._rng_devices), torch.no_grad(), evaluating(v):
            torch.manual_seed(1234)
            g = torch.Generator(self.device).manual_seed(1234)
            n = 8 if v.data_kind == "sequence" else 64  # a sequence takes a row of frames
            try:
                y = torch.arange(n, device=self.device) % v.config.n_classes if v.conditional else None
                save_grid(v.sample(n, y=y, generator=g), self.run_dir / "samples.png", nrow=8)
                files["samples"] = str(self.run_dir / "samples.png")
            except NotAvailable:
                pass
            src = self.x_test if self.x_test is not None else self.x
            ys = self.y_test if self.x_test is not None else self.y
            xb = to_tensor(src[:8 if v.data_kind == "sequence" else 32])
            if self.cfg.binarize != "none":
                xb = binarize(xb, "static")
            rec = v.reconstruct(xb, ys[:32] if v.conditional else None)
            pairs = torch.stack([xb, rec.to(xb.dtype)], 1).reshape(-1, *xb.shape[1:])  # original, reconstruction
            save_grid(pairs, self.run_dir / "reconstructions.png", nrow=16)
            files["reconstructions"] = str(self.run_dir / "reconstructions.png")
        return files

    @property
    def _rng_devices(self) -> list:
        """The CUDA device whose RNG an evaluation must leave untouched (none on the CPU)."""
        return [self.device] if self.device.type == "cuda" else []


def _add_sums(sums: dict[str, torch.Tensor], window) -> None:
    """Add each update's loss terms × its batch size to ``sums`` (by name, float64), update by update."""
    for _, _, names, vals, size in window:
        for name, val in zip(names, vals):
            sums[name] = sums.get(name, torch.zeros((), dtype=torch.float64, device=val.device)) + val.double() * size


def _load_avg() -> float | None:
    """The machine's 1-minute load average (how much else ran beside this epoch), None where unknown."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None
