"""Checkpoints as one safetensors file: tensors (model, optimizer state, RNG states) plus a JSON
state in the file's metadata, written atomically. Never pickle.

Keys: ``model.<name>``, ``optim.<opt>.<param index>.<key>``, ``rng.<name>``; metadata
``{"state": <json>}`` with epoch, step, phase, optimizer hyperparameters and non-tensor state.
A readable copy of the JSON state goes to ``checkpoint.json`` beside it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..errors import RunDirError
from ..io import atomic_write_bytes, atomic_write_json

CHECKPOINT = "checkpoint.safetensors"


def _optim_to_flat(name: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    sd = opt.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{name}.{idx}.{k}"] = v.detach().cpu().clone().contiguous()
            else:
                scalars.setdefault(str(idx), {})[k] = v
    return {"param_groups": sd["param_groups"], "scalars": scalars}


def _optim_from_flat(name: str, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    prefix = f"optim.{name}."
    for key, v in tensors.items():
        if key.startswith(prefix):
            idx, k = key[len(prefix):].split(".", 1)
            state.setdefault(int(idx), {})[k] = v
    for idx, d in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(d)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    run_dir: str | Path,
    model: torch.nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    rng: dict[str, torch.Tensor],
    state: dict[str, Any],
) -> Path:
    tensors = {f"model.{k}": v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    state = dict(state)
    state["optimizers"] = {n: _optim_to_flat(n, o, tensors) for n, o in optimizers.items()}
    for k, v in rng.items():
        tensors[f"rng.{k}"] = v.cpu().clone().contiguous()
    blob = st_save(tensors, metadata={"state": json.dumps(state)})
    path = Path(run_dir) / CHECKPOINT
    atomic_write_bytes(path, blob)
    atomic_write_json(Path(run_dir) / "checkpoint.json", {k: v for k, v in state.items() if k != "optimizers"})
    return path


def read_checkpoint(run_dir: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, state) of a run's checkpoint; a clear RunDirError if absent or unreadable."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise RunDirError(f"{path}: no checkpoint (has this run trained an epoch?)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = st_load(path.read_bytes())
        state = json.loads(meta["state"])
    except Exception as e:  # corrupt file, missing metadata
        raise RunDirError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e})") from None
    return tensors, state


def load_model_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Load the ``model.*`` tensors strictly, as the model reads a stored state (a variant's
    ``stored_state``: retired keys dropped, an older version's phase and step counts carried over)."""
    sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    stored_state = getattr(model, "stored_state", None)
    model.load_state_dict(stored_state(sd) if stored_state is not None else sd, strict=True)


def load_optimizers(optimizers: dict[str, torch.optim.Optimizer], tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    for name, opt in optimizers.items():
        if name not in state["optimizers"]:
            raise RunDirError(f"checkpoint has no state for optimizer {name!r}")
        opt.load_state_dict(_optim_from_flat(name, state["optimizers"][name], tensors))


def rng_states(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len("rng."):]: v for k, v in tensors.items() if k.startswith("rng.")}


def load_checkpoint(run_dir: str | Path, model: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer] | None = None):
    """Restore model (and optimizers) in place; return (state, rng tensors)."""
    tensors, state = read_checkpoint(run_dir)
    load_model_weights(model, tensors)
    load_optimizers(optimizers or {}, tensors, state)
    return state, rng_states(tensors)
