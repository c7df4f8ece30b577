"""Run-config files (``vaelab train --config FILE``, ``vaelab compare --config FILE``): JSON, or YAML
(``.yaml``/``.yml``, needs PyYAML: the ``vaelab[yaml]`` extra), read into the same keys as the
command line. Flags given on the command line override the file.

* ``train``: the keys of a run's ``config.json`` — ``variant``, ``model`` (the variant's config),
  ``train`` (:class:`vaelab.TrainConfig` fields) — so any run's ``config.json`` re-creates that run.
  Its record-only keys (``versions``, ``parameters``, ``command``, ``created``) are ignored.
* ``compare``: the study's settings by their option names (``variants``, ``dataset``, ``data_dir``, ``image_size``,
  ``backbone``, ``latent_dim``, ``epochs``, ``seeds``, ``protocol``, ``binarize``, ``phase_epochs``,
  ``set``, ``n_samples``, ``iwae_k``, ``iwae_n``, ``map_points``, ``out``, ``quick``), flat or under
  ``settings`` as in a study's ``study.json``.

Every problem is one ConfigError line naming the file and the key.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from .errors import ConfigError

RECORD_KEYS = {"versions", "parameters", "command", "created"}
COMPARE_KEYS = {"variants": (str, list), "dataset": (str,), "data_dir": (str,), "image_size": (int,), "backbone": (str,), "latent_dim": (int,),
                "epochs": (int,), "seeds": (str, list), "protocol": (str,), "binarize": (str,), "phase_epochs": (int,),
                "set": (list, dict), "n_samples": (int,), "iwae_k": (int,), "iwae_n": (int,), "map_points": (int,),
                "train_size": (int,), "disentanglement": (str,), "out": (str,), "quick": (bool,)}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a JSON or YAML file; a one-line ConfigError for anything else."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot read the config file ({type(e).__name__}: {e})") from None
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"{p}: reading YAML needs PyYAML: pip install 'vaelab[yaml]' (or use JSON)") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML ({' '.join(str(e).split())})") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: must hold a mapping of keys to values, got {type(data).__name__}")
    return data


def train_config_from_file(path: str | Path) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    """(variant, model config, train config fields) of a run-config file, checked key by key."""
    from .training.config import TrainConfig  # local: torch; keeps `vaelab --help` at 0.1 s

    data = read_config_file(path)
    unknown = sorted(set(data) - {"variant", "model", "train"} - RECORD_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r}; a run config has variant, model, train")
    variant = data.get("variant")
    if variant is not None and not isinstance(variant, str):
        raise ConfigError(f"{path}: variant: must be a string, got {variant!r}")
    model, train = data.get("model", {}), data.get("train", {})
    for key, val in (("model", model), ("train", train)):
        if not isinstance(val, dict):
            raise ConfigError(f"{path}: {key}: must be a mapping, got {type(val).__name__}")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    bad = sorted(set(train) - fields)
    if bad:
        raise ConfigError(f"{path}: train.{bad[0]}: unknown key; valid: {', '.join(sorted(fields))}")
    try:
        TrainConfig(**train).validate()
    except ConfigError as e:
        raise ConfigError(f"{path}: train.{e}") from None
    model = dict(model)
    if "data_shape" in model:  # a list in the file: a tuple from here on, as a model config holds it
        model["data_shape"] = tuple(model["data_shape"])
    return variant, model, dict(train)


def compare_settings_from_file(path: str | Path) -> dict[str, Any]:
    """The study options of a compare config file (flat, or a study.json's ``settings``), type-checked."""
    data = read_config_file(path)
    if "settings" in data and isinstance(data["settings"], dict):
        data = {**{k: v for k, v in data.items() if k not in ("settings", "schema", "created")}, **data["settings"]}
    out = {}
    for key, val in data.items():
        if key not in COMPARE_KEYS:
            raise ConfigError(f"{path}: unknown key {key!r}; valid: {', '.join(sorted(COMPARE_KEYS))}")
        if val is None:
            continue
        types = COMPARE_KEYS[key]
        if not isinstance(val, types) or (isinstance(val, bool) and bool not in types):
            raise ConfigError(f"{path}: {key}: must be {' or '.join(t.__name__ for t in types)}, got {val!r}")
        if key == "variants" and isinstance(val, list):
            val = ",".join(map(str, val))
        if key == "seeds" and isinstance(val, list):
            val = ",".join(map(str, val))
        if key == "set" and isinstance(val, dict):
            val = [f"{v}:{k}={json.dumps(x)}" for v, kv in val.items() for k, x in kv.items()]
        out[key] = val
    return out
