"""TensorBoard logging of a run (``--tensorboard``): a subscriber to the trainer's events that writes
``RUN/tb/`` through ``torch.utils.tensorboard`` (needs the ``tensorboard`` package: the
``vaelab[tensorboard]`` extra).

What is written: every loss term of the training batch and every optimizer's learning rate each
``STEP_EVENT_EVERY`` updates (tags ``train_step/<term>``, ``lr/<optimizer>``); per epoch the epoch's
mean loss terms (``train/<term>``), the test loss terms (``test/<term>``), ``cost/seconds_per_epoch``
and ``cost/images_per_s``; the sample and reconstruction grids after each epoch (``images/samples``,
``images/reconstructions``); and after ``vaelab evaluate`` the evaluation's numbers (``eval/<key>``)
and an hparams record of the run's config against them. A study writes one such directory per run, so
``tensorboard --logdir STUDY`` shows the runs side by side.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError
from .eval_schema import is_available

TB_DIR = "tb"


def check_available() -> None:
    """A one-line ConfigError now (before any run starts) when TensorBoard is not installed."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise ConfigError("--tensorboard needs the tensorboard package: pip install 'vaelab[tensorboard]' "
                          "(or pip install tensorboard)") from None


def _writer(log_dir: Path):
    check_available()
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(log_dir))


class TensorBoardLogger:
    """Callable on trainer events; writes to ``run_dir/tb``. Close it (or use it as a context manager)."""

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir) / TB_DIR
        self.w = _writer(self.dir)

    def __call__(self, ev: dict[str, Any]) -> None:
        kind, step = ev.get("event"), ev.get("step", 0)
        if kind == "step":
            for k, v in ev["terms"].items():
                self.w.add_scalar(f"train_step/{k}", v, step)
            for k, v in ev.get("lr", {}).items():
                self.w.add_scalar(f"lr/{k}", v, step)
        elif kind == "epoch":
            for part in ("train", "test"):
                for k, v in ev.get(part, {}).items():
                    self.w.add_scalar(f"{part}/{k}", v, step)
            self.w.add_scalar("cost/seconds_per_epoch", ev["seconds"], step)
            self.w.add_scalar("cost/images_per_s", ev["images_per_s"], step)
        elif kind == "grids":
            from PIL import Image

            for name, path in ev["files"].items():
                img = np.asarray(Image.open(path).convert("RGB"))
                self.w.add_image(f"images/{name}", img, step, dataformats="HWC")
        self.w.flush()

    def close(self) -> None:
        self.w.close()

    def __enter__(self) -> "TensorBoardLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def log_evaluation(run_dir: str | Path, res: dict[str, Any], config: dict[str, Any]) -> None:
    """Write an evaluation's available numbers as ``eval/<key>`` scalars and one hparams record."""
    nums = {k: float(v) for k, v in res.items() if is_available(v) and isinstance(v, (int, float)) and not isinstance(v, bool)}
    step = int((res.get("checkpoint") or {}).get("step") or 0)
    w = _writer(Path(run_dir) / TB_DIR)
    try:
        for k, v in nums.items():
            w.add_scalar(f"eval/{k}", v, step)
        hp = {"variant": config.get("variant", "?")}
        for part in ("model", "train"):
            for k, v in config.get(part, {}).items():
                if isinstance(v, (int, float, str, bool)):
                    hp[f"{part}.{k}"] = v
        w.add_hparams(hp, {f"hparam/{k}": v for k, v in nums.items()}, run_name=".")
    finally:
        w.close()
