"""Config dataclasses: the fields every variant shares, validation helpers and string overrides."""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError


def check(cond: bool, key: str, msg: str) -> None:
    """Raise a ConfigError for ``key`` unless ``cond``."""
    if not cond:
        raise ConfigError(f"{key}: {msg}")


def finite_number(v: Any) -> bool:
    """A real, finite int or float (not a bool): for config checks."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def check_int(value: Any, key: str, lo: int, *, optional: bool = False) -> None:
    """Raise a ConfigError for ``key`` unless ``value`` is an integer >= ``lo`` (a bool is not one;
    ``None`` passes when ``optional``)."""
    if optional and value is None:
        return
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= lo
    check(ok, key, f"must be {'null or ' if optional else ''}an integer >= {lo}, got {value!r}")


def check_range(value: Any, key: str, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                hi_open: bool = False, unit: str = "") -> None:
    """Raise a ConfigError for ``key`` unless ``value`` is a finite real number (not a bool) within
    [lo, hi]; ``lo_open``/``hi_open`` exclude an end, ``None`` leaves a side unbounded."""
    ok = finite_number(value) and (lo is None or (value > lo if lo_open else value >= lo)) \
        and (hi is None or (value < hi if hi_open else value <= hi))
    if lo is not None and hi is not None:
        where = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    elif lo is not None:
        where = f"{'>' if lo_open else '>='} {lo:g}"
    else:
        where = f"{'<' if hi_open else '<='} {hi:g}"
    check(ok, key, f"must be a number {where}{unit}, got {value!r}")


def check_choice(value: Any, key: str, choices: typing.Iterable[Any]) -> None:
    choices = tuple(choices)
    # type-strict, so that ``True`` is not taken for the choice ``1``
    check(any(value == c and type(value) is type(c) for c in choices), key, f"{value!r} is not valid; choose one of {', '.join(map(str, choices))}")


@dataclass
class VariantConfig:
    """Fields every variant has. Subclasses add their own and extend :meth:`validate`.

    ``data_shape`` and ``n_classes`` describe the data and are filled from the dataset at train time.
    """

    latent_dim: int = 16
    backbone: str = "paper"  # paper: the seed's Fig. 3 conv net (13M params); small: a light conv net; mlp; dec: DEC's 500-500-2000 MLP
    data_shape: tuple[int, ...] = (1, 28, 28)
    n_classes: int = 10
    likelihood: str = "bernoulli"  # decoder likelihood p(x|z) on logits: bernoulli | logistic (8-bit RGB; the default for colour data) | gaussian (fixed σ² = ½: summed squared error)

    def validate(self) -> None:
        from .nn.backbones import BACKBONES, conv_shape_ok, is_mlp, shape_error  # local: torch; keeps `vaelab --help` at 0.1 s

        check_int(self.latent_dim, "latent_dim", 1)
        check_choice(self.backbone, "backbone", BACKBONES)
        check(len(self.data_shape) in (1, 3, 4) and all(int(s) >= 1 for s in self.data_shape), "data_shape",
              f"must be (C, H, W), (T, C, H, W) or (D,), got {self.data_shape!r}")
        frame = tuple(self.data_shape[-3:])  # an image, or a sequence's frame
        if not (is_mlp(self.backbone) or len(self.data_shape) == 1 or conv_shape_ok(frame, self.backbone)):
            raise shape_error(self.backbone, frame)
        check_int(self.n_classes, "n_classes", 1)
        check_choice(self.likelihood, "likelihood", ("bernoulli", "logistic", "gaussian"))

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


def from_dict(cls: type, d: dict[str, Any]):
    """Rebuild a config dataclass from JSON (lists back to tuples where the field is a tuple)."""
    kw = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in d:
            v = d[f.name]
            if isinstance(v, list) and "tuple" in str(hints.get(f.name, "")):
                v = tuple(v)
            kw[f.name] = v
    return cls(**kw)


def parse_value(text: str) -> Any:
    """Parse a ``--set key=value`` value: JSON when it parses (numbers, true/false, lists), else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_overrides(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        k, v = item.split("=", 1)
        out[k.strip()] = parse_value(v.strip())
    return out
