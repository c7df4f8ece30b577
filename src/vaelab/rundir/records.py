"""A run's records: its config.json (:func:`run_config`, validated as a new config would be) and its
trained variant (:func:`load`)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import from_dict
from ..errors import ConfigError, RunDirError
from ..io import read_json
from ..registry import get, make_config, stored_model_config
from ..training.checkpoint import load_model_weights, read_checkpoint
from ..training.config import TrainConfig, resolve_device

if TYPE_CHECKING:  # pragma: no cover
    from ..models.base import Variant


def run_config(run_dir: str | Path) -> dict[str, Any]:
    """The run's config.json; a one-line RunDirError when the directory is not a run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such run directory")
    if not (run_dir / "config.json").is_file():
        raise RunDirError(f"{run_dir}: not a vaelab run directory (no config.json)")
    return read_json(run_dir / "config.json")


def _stored(run_dir: Path, conf: dict[str, Any], with_train: bool = True) -> tuple[str, dict[str, Any], TrainConfig | None]:
    """(variant, model config, TrainConfig or None) of a stored config.json, validated as a new one
    would be; a one-line RunDirError naming the file and the bad entry."""
    where = run_dir / "config.json"
    try:
        variant = conf["variant"]
        model = stored_model_config(variant, conf["model"])
        model["data_shape"] = tuple(model["data_shape"])
        make_config(variant, **model)
        train_cfg = None
        if with_train:
            train_cfg = from_dict(TrainConfig, conf["train"])
            train_cfg.validate()
    except (KeyError, TypeError, AttributeError) as e:
        raise RunDirError(f"{where}: missing or malformed entry ({type(e).__name__}: {e})") from None
    except ConfigError as e:
        raise RunDirError(f"{where}: {e}") from None
    return variant, model, train_cfg



def load(run_dir: str | Path, device: str = "cpu") -> "Variant":
    """The trained variant of a run directory (weights from its checkpoint), in eval mode, on ``device``
    (``auto | cpu | cuda | cuda:N``; checkpoints hold CPU tensors, so any run loads anywhere). The stored
    config is validated as :func:`vaelab.build` validates a new one."""
    run_dir = Path(run_dir)
    dev = resolve_device(device)  # no CUDA where CUDA is asked for: a one-line error before reading anything
    variant, model_cfg, _ = _stored(run_dir, run_config(run_dir), with_train=False)
    v = get(variant)(from_dict(get(variant).Config, model_cfg))
    tensors, _ = read_checkpoint(run_dir)
    load_model_weights(v, tensors)
    return v.to(dev).eval()
