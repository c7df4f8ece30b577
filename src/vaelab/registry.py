"""The variant registry: ``@register("name")`` on a Variant subclass, ``variants()``, ``build()``.

Variant modules in :mod:`vaelab.models` are imported on first use, so a new variant is one new
file with a ``@register`` decorator and nothing else to edit.
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .models.base import Variant

_REGISTRY: dict[str, type] = {}
_discovered = False


def register(name: str):
    """Class decorator adding a variant under ``name``; a duplicate name is an error."""

    def deco(cls):
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"variant name {name!r} is already registered by {_REGISTRY[name].__qualname__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    from . import models as pkg  # local: the variant modules import register from here (a cycle), and torch

    for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if not mod.name.startswith("_") and mod.name != "base":
            importlib.import_module(f"{pkg.__name__}.{mod.name}")
    _discovered = True


def variants() -> list[str]:
    """Names of all registered variants, sorted."""
    _discover()
    return sorted(_REGISTRY)


def get(name: str) -> type["Variant"]:
    _discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown variant {name!r}; valid: {', '.join(sorted(_REGISTRY))}") from None


def make_config(name: str, **cfg: Any):
    """The variant's config dataclass from keyword values; unknown keys and bad values raise ConfigError."""
    cls = get(name)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = sorted(set(cfg) - fields)
    if unknown:
        raise ConfigError(
            f"{name}: unknown config key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(fields))}"
        )
    try:
        conf = cls.Config(**cfg)
    except TypeError as e:
        raise ConfigError(f"{name}: {e}") from None
    conf.validate()
    return conf


def stored_model_config(name: str, model: dict[str, Any]) -> dict[str, Any]:
    """A stored run's model config with the keys it predates filled in as that run was trained
    (``Variant.stored_defaults``), so that a later change of default does not change an old run."""
    return {**{k: v for k, v in get(name).stored_defaults.items() if k not in model}, **model}


def build(name: str, **cfg: Any) -> "Variant":
    """Build variant ``name`` with config values ``cfg`` (see ``vaelab list`` for keys)."""
    cls = get(name)
    return cls(make_config(name, **cfg))
