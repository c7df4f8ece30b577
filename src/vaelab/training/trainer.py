"""The one trainer for every variant.

The dataset lives in memory as one tensor — or, for images drawn on demand (dSprites'
:class:`vaelab.data.LazyImages`), is drawn a batch at a time; batches are index slices of a seeded
permutation (no DataLoader workers). The variant declares its phases, optimizers, update step and learning-rate
schedule (times the run's own, ``TrainConfig.lr_schedule``, by epoch); the trainer runs them, writes
``metrics.jsonl`` per epoch, sample/reconstruction grids, and a checkpoint each epoch (and on Ctrl-C,
and every ``checkpoint_every_s`` seconds). A checkpoint records the position inside the epoch and every
RNG state, so a resumed run — even after SIGKILL — ends bitwise identical to an uninterrupted one on CPU.

With several processes (torchrun; :mod:`vaelab.parallel`) each process trains its share of every
global batch, gradients and batch statistics are combined across them, and only rank 0 writes
files; the checkpoint is the same whatever the number of processes, so a run may resume on another.

Progress is reported as structured events to ``on_event`` (a callable taking a dict):
``{"event": "phase", "phase", "epochs"}`` when a phase starts, ``{"event": "step", "phase", "step",
"terms", "lr"}`` every ``STEP_EVENT_EVERY`` updates (the batch's loss terms, each optimizer's lr),
``{"event": "epoch", ...}`` with the epoch's metrics.jsonl record when an epoch ends, and
``{"event": "grids", "phase", "epoch", "step", "files"}`` once its picture files are written.

The trainer also tells the variant where training stands (``Variant.progress``, checkpointed with the
weights): the phase and the step count when a phase begins and when a run resumes, the run's step
before each update, one more update of the run and of the phase after it. It hands the variant the
part of the global batch each update trains on (``Variant.share``: :data:`vaelab.share.WHOLE` in one
process, a :class:`vaelab.parallel.Share` in several), and applies a phase's declared augmentation
(``Phase.affine``) to the batch before the update.

Beside this module: :mod:`.record` (the loss terms brought to the host, the epoch's record, its
evaluation and pictures: :class:`~vaelab.training.record.RunRecord`, which the Trainer extends),
:mod:`.device_data` (the training images on the device), :mod:`.checkpoint`, :mod:`.config`.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..data import Dataset, binarize, to_tensor
from ..data.augment import random_affine
from ..models.base import PhaseContext, Variant
from .. import parallel, rng
from ..optim import apply_lr_scale, make_optimizer_factory, run_lr_factor
from ..share import WHOLE
from .checkpoint import CHECKPOINT, load_model_weights, load_optimizers, read_checkpoint, rng_states, save_checkpoint
from .config import TrainConfig
from .runtime import Runtime
from .device_data import OnDemand, device_images
from .record import EVENT, RunRecord

log = logging.getLogger("vaelab.train")
STEP_EVENT_EVERY = 50  # updates between two "step" events
SYNC_EVERY = 50  # updates between two host synchronisations (STEP_EVENT_EVERY is a multiple of it)


@dataclass
class State:
    """Where training stands; saved in every checkpoint (with the run's TrainConfig) and restored on resume."""

    phase: int = 0  # index into the variant's phases()
    epoch: int = 0  # epochs completed in the current phase
    batch: int = 0  # batches completed in the current epoch
    step: int = 0  # updates so far, all phases
    phase_started: bool = False  # begin_phase has run for the current phase
    acc: dict[str, float] = field(default_factory=dict)  # the epoch's summed loss terms (× batch size) so far
    acc_n: int = 0  # examples in those sums
    elapsed: float = 0.0  # seconds of the epoch so far
    done: bool = False
    completed: dict[str, int] = field(default_factory=dict)  # epochs completed per phase name


class _Interrupted(Exception):
    pass


class Trainer(RunRecord):
    """Trains ``variant`` on ``train_set`` into ``run_dir`` (which must be locked by the caller)."""

    def __init__(self, variant: Variant, cfg: TrainConfig, run_dir: str | Path, train_set: Dataset, test_set: Dataset | None = None,
                 on_event: Callable[[dict[str, Any]], None] | None = None, runtime: Runtime | None = None):
        self.variant, self.cfg, self.run_dir = variant, cfg, Path(run_dir)
        self.runtime = runtime if runtime is not None else Runtime.resolve(cfg)
        self.world, self.main = self.runtime.world, self.runtime.main  # (rundir.train checks the variant can be shared)
        self.on_event = (on_event if self.main else None) or (lambda ev: None)  # only rank 0 reports and writes
        self.device = self.runtime.device
        if self.device.type == "cuda":  # cuDNN's deterministic algorithms (cheap for these nets); atomic adds remain
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        variant.to(self.device)  # the model and the whole dataset live on the device; checkpoints hold CPU tensors
        # the data stay as stored (uint8 images: a quarter of float32's memory) and become float per batch
        self.x = device_images(train_set.images, self.device, static=cfg.binarize == "static")
        self.y = torch.as_tensor(train_set.labels).to(self.device)
        self.x_test = None if test_set is None else torch.as_tensor(test_set.images[:10000]).to(self.device)
        self.y_test = None if test_set is None else torch.as_tensor(test_set.labels[:10000]).to(self.device)
        self.make = make_optimizer_factory(cfg)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.memory_format = torch.channels_last if cfg.channels_last and self.x.dim() == 4 else None
        if self.memory_format is not None:
            variant.to(memory_format=self.memory_format)
        parallel.broadcast_module(variant)  # every process starts from rank 0's weights
        self._compiled = False
        if cfg.compile:
            for m in variant.children():
                m.compile()
            self._compiled = True

    def _uncompile(self, err: Exception) -> None:
        """Fall back to eager mode after torch.compile failed (e.g. no C compiler for inductor)."""
        import torch._dynamo

        for m in self.variant.children():
            m._compiled_call_impl = None
        torch._dynamo.reset()
        self._compiled = False
        log.warning("torch.compile failed (%s: %s); training continues in eager mode", type(err).__name__, str(err).splitlines()[0][:200])

    def _step(self, batch, st, opts, phase):
        """One train_step under the run's precision; on a compile failure, redo it eagerly."""
        rng = torch.get_rng_state() if self._compiled else None
        try:
            with self.runtime.autocast():
                return self.variant.train_step(batch, st.step, opts, phase.name)
        except Exception as e:  # only compile failures are retried
            if not self._compiled or not _is_compile_error(e):
                raise
            self._uncompile(e)
            torch.set_rng_state(rng)
            for o in opts.values():
                o.zero_grad(set_to_none=True)
            with self.runtime.autocast():
                return self.variant.train_step(batch, st.step, opts, phase.name)

    # ----------------------------------------------------------------------------------------
    def _phase_epochs(self, phase) -> int:
        return self.cfg.epochs if phase.epochs is None else phase.epochs

    def fit(self, resume: bool = False) -> State:
        from .._cpu import tune_process

        tune_process()
        cfg, v = self.cfg, self.variant
        phases = v.phases()
        g_shuffle = torch.Generator().manual_seed(cfg.seed)
        g_bin = torch.Generator(self.device).manual_seed(cfg.seed + 1)
        st = State()
        opts: dict[str, torch.optim.Optimizer] = {}
        epoch_start_state = g_shuffle.get_state()
        if resume and (self.run_dir / CHECKPOINT).exists():
            tensors, saved = read_checkpoint(self.run_dir)
            st = State(**{f.name: saved[f.name] for f in dataclasses.fields(State) if f.name in saved})
            last = phases[-1]
            if st.phase >= len(phases) and st.completed.get(last.name, 0) < self._phase_epochs(last):
                # a finished run resumed with more epochs: re-enter its last phase
                st.phase, st.epoch, st.phase_started, st.done = len(phases) - 1, st.completed[last.name], True, False
            load_model_weights(v, tensors)
            v.set_progress(steps=st.step)  # (a checkpoint of an older version may lack the model's progress)
            if st.phase < len(phases) and st.phase_started:
                v.set_progress(phase=st.phase)
                opts = v.configure_optimizers(phases[st.phase].name, self.make)
                load_optimizers(opts, tensors, saved)
            rng = rng_states(tensors)
            torch.set_rng_state(rng["torch"])
            if self.device.type == "cuda" and "cuda" in rng:
                torch.cuda.set_rng_state(rng["cuda"], self.device)
            try:
                g_bin.set_state(rng["binarize"])
            except RuntimeError:  # saved on another kind of device: a fresh binarisation stream from here on
                log.warning("resumed on %s from a checkpoint of another device: the binarisation noise restarts", self.device)
            if "shuffle" in rng:  # early checkpoints lack it; mid-epoch ones regenerate the permutation below
                g_shuffle.set_state(rng["shuffle"])
            epoch_start_state = rng["epoch_start"]
            log.info("resumed at phase %d epoch %d batch %d (step %d)", st.phase, st.epoch, st.batch, st.step)
        else:
            torch.manual_seed(cfg.seed)  # the noise stream (weights were initialised at build)

        def checkpoint():
            if not self.main:
                return
            rng = {"torch": torch.get_rng_state(), "binarize": g_bin.get_state(), "shuffle": g_shuffle.get_state(),
                   "epoch_start": epoch_start_state}
            if self.device.type == "cuda":
                rng["cuda"] = torch.cuda.get_rng_state(self.device)
            save_checkpoint(self.run_dir, v, opts, rng, {**dataclasses.asdict(st), "train": dataclasses.asdict(cfg)})

        interrupted = {"flag": False}

        def on_sigint(signum, frame):
            interrupted["flag"] = True

        old = signal.signal(signal.SIGINT, on_sigint) if _main_thread() else None
        try:
            while st.phase < len(phases):
                phase = phases[st.phase]
                n_epochs = self._phase_epochs(phase)
                if not st.phase_started and n_epochs > 0:
                    v.train()
                    v.set_progress(phase=st.phase, steps=st.step, phase_steps=0)
                    v.begin_phase(phase.name, PhaseContext(self.x.scaled() if isinstance(self.x, OnDemand) else to_tensor(self.x), self.y, cfg.seed, cfg.batch_size))
                    parallel.broadcast_module(v)  # a phase's one-off initialisation: rank 0's
                    opts = v.configure_optimizers(phase.name, self.make)
                    st.phase_started = True
                    log.info("phase %s: %d epochs", phase.name, n_epochs, extra=EVENT)
                    self.on_event({"event": "phase", "phase": phase.name, "epochs": n_epochs})
                while st.epoch < n_epochs:
                    if st.batch == 0:
                        epoch_start_state = g_shuffle.get_state()
                    else:
                        g_shuffle.set_state(epoch_start_state)
                    self._run_epoch(phase, n_epochs, st, opts, g_shuffle, g_bin, interrupted, checkpoint)
                    st.epoch += 1
                    st.batch = 0
                    st.completed[phase.name] = st.epoch
                    self._end_epoch(phase, st)
                    st.acc, st.acc_n, st.elapsed = {}, 0, 0.0
                    if st.epoch < n_epochs:
                        checkpoint()
                st.phase += 1  # phase done: the checkpoint points at the next one
                st.epoch = 0
                st.phase_started = False
                checkpoint()
            st.done = True
            checkpoint()
            if self.main:
                self._write_grids()
        except _Interrupted:
            checkpoint()
            log.warning("interrupted at step %d: checkpoint saved; resume with `vaelab train --resume %s`", st.step, self.run_dir)
            raise KeyboardInterrupt from None
        finally:
            if old is not None:
                signal.signal(signal.SIGINT, old)
        return st

    def _run_epoch(self, phase, n_epochs, st, opts, g_shuffle, g_bin, interrupted, checkpoint) -> None:
        """One epoch (or the rest of one). The hot path does not wait for the device: the loss terms
        stay there and are brought to the host, checked for finiteness and (with several processes)
        combined in one collective every SYNC_EVERY updates, at the epoch's end, and before any
        checkpoint (:meth:`_sync`)."""
        cfg, v = self.cfg, self.variant
        n = self.x.shape[0]
        perm = rng.randperm(n, g_shuffle, self.device)  # the CPU stream (checkpoints resume anywhere), moved once
        n_batches = math.ceil(n / cfg.batch_size)
        acc = {k: torch.tensor(val, dtype=torch.float64, device=self.device) for k, val in st.acc.items()}
        bar = None
        if cfg.progress and self.main:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_batches, initial=st.batch, leave=False, dynamic_ncols=True, disable=None, mininterval=0.5,
                       desc=f"{v.name} {phase.name} {st.epoch + 1}/{n_epochs}")
        schedule = v.lr_schedule(phase.name)
        run_factor = run_lr_factor(cfg.lr_schedule, st.epoch)  # the run's schedule: by epoch, times the variant's
        if schedule is None and cfg.lr_schedule != "constant":  # (a resumed epoch too: the factor is the epoch's)
            apply_lr_scale(opts.values(), run_factor)
        v.train()
        t0 = time.perf_counter()
        last_ckpt = time.monotonic()
        window: list[tuple[int, int, tuple[str, ...], torch.Tensor, int]] = []  # (step, batch, term names, means, size) since the last sync
        while st.batch < n_batches:
            b = st.batch
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            x = to_tensor(self.x[idx])
            if cfg.binarize == "dynamic":
                x = binarize(x, "dynamic", g_bin)  # the whole global batch's noise, so every process's stream stays in step
            bsz = idx.shape[0]
            share = parallel.share_of(bsz) if self.world > 1 else None
            if share is not None:  # this process's rows of the global batch
                idx, x = idx[share.lo:share.hi], x[share.lo:share.hi]
            if self.memory_format is not None:
                x = x.contiguous(memory_format=self.memory_format)
            if phase.affine:  # the phase's augmentation (e.g. VaDE's pretraining), drawn right before the update
                x = random_affine(x, *phase.affine)
            batch = {"x": x, "y": self.y[idx], "index": idx, "dataset_size": n}
            if schedule is not None:  # examples of this phase seen once this batch is done
                apply_lr_scale(opts.values(), run_factor * schedule(st.epoch * n + b * cfg.batch_size + bsz, n))
            v.set_progress(steps=st.step)
            v.share = WHOLE if share is None else share  # the model's noise, batch statistics and gradients: this share's
            try:
                terms = self._step(batch, st, opts, phase)
            finally:
                v.share = WHOLE
            v.count_update()
            vals = torch.stack([t.detach().float() for t in terms.values()])  # this process's batch means, on the device
            window.append((st.step, b, tuple(terms), vals, bsz if share is None else share.hi - share.lo))
            st.acc_n += bsz
            st.batch += 1
            st.step += 1
            if bar is not None:
                bar.update(1)
            due = bool(cfg.checkpoint_every_s) and time.monotonic() - last_ckpt > cfg.checkpoint_every_s
            # several processes sync only at steps they all know (the sync is a collective; a clock or a
            # Ctrl-C seen by one process waits for the next one); only rank 0 writes the checkpoint
            if st.step % SYNC_EVERY == 0 or st.batch == n_batches or (self.world == 1 and (due or interrupted["flag"])):
                last_vals = self._sync(window, acc, phase, st, interrupted)
                window = []
                if st.step % STEP_EVENT_EVERY == 0:
                    self.on_event({"event": "step", "phase": phase.name, "step": st.step,
                                   "terms": {k: float(t) for k, t in zip(terms, last_vals)},
                                   "lr": {name: o.param_groups[0]["lr"] for name, o in opts.items()}})
                if bar is not None:
                    bar.set_postfix({k: f"{float(t):.2f}" for k, t in zip(terms, last_vals)}, refresh=False)
                if interrupted["flag"] or due:
                    st.elapsed += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    st.acc = {k: float(t) for k, t in acc.items()}
                    if interrupted["flag"]:
                        if bar is not None:
                            bar.close()
                        raise _Interrupted
                    checkpoint()
                    last_ckpt = time.monotonic()
        st.elapsed += time.perf_counter() - t0
        st.acc = {k: float(t) for k, t in acc.items()}
        if bar is not None:
            bar.close()


def _is_compile_error(e: Exception) -> bool:
    mod = type(e).__module__ or ""
    return mod.startswith(("torch._dynamo", "torch._inductor")) or "BackendCompilerFailed" in type(e).__name__ \
        or "CppCompileError" in type(e).__name__ or "InductorError" in type(e).__name__


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


