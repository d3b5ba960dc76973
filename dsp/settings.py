"""Checks declared on a settings dataclass's fields, and the one validator that enforces them.

A closed choice is typed `Literal[...]` (the CLI lists its values in the flag's help and refuses any other);
a numeric bound is field metadata (`at_least(8, 1)`, `above(2e-5, 0)`, `within(0.0, 0, 1)`). `check_settings`
checks both for every field, with a one-line message naming the flag, so a config's `__post_init__` keeps only
the rules that tie fields together. Imports neither torch nor typer.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from dsp.errors import DSPError


@dataclass(frozen=True)
class Bounds:
    """The values a number may take: from `low` to `high`, each end included unless it is `open`."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def phrase(self, whole: bool) -> str:
        """How a message says it: "positive" (a count), "above 0", "0 or more", "at least 1", "in [0, 1]"."""
        if self.high is not None:
            if self.low is None:
                return f"at most {self.high:g}" if not self.high_open else f"below {self.high:g}"
            return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low_open:
            return "positive" if whole and self.low == 0 else f"above {self.low:g}"
        return "0 or more" if self.low == 0 else f"at least {self.low:g}"


def _bounded(default: Any, bounds: Bounds, flag: str | None) -> Any:
    metadata = {"bounds": bounds, **({"flag": flag} if flag else {})}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def at_least(default: Any, low: float, *, flag: str | None = None) -> Any:
    """A field whose value (when not None) is `low` or more."""
    return _bounded(default, Bounds(low=low), flag)


def above(default: Any, low: float, *, flag: str | None = None) -> Any:
    """A field whose value (when not None) is more than `low` (`above(8, 0)` on an int: a positive count)."""
    return _bounded(default, Bounds(low=low, low_open=True), flag)


def within(default: Any, low: float, high: float, *, open: bool = False, flag: str | None = None) -> Any:
    """A field whose value is from `low` to `high`, both included, or both left out with `open`."""
    return _bounded(default, Bounds(low, high, low_open=open, high_open=open), flag)


def flag_name(f: dataclasses.Field) -> str:
    """The flag that sets a field: its metadata's `flag`, else `--field-name`."""
    return f.metadata.get("flag") or f"--{f.name.replace('_', '-')}"


def base_type(tp: Any) -> tuple[Any, bool]:
    """(the type inside Optional[...], whether None is allowed)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def choices(tp: Any) -> tuple[Any, ...] | None:
    """The values of a closed choice (`Literal[...]`, optional or not), else None."""
    base, _ = base_type(tp)
    return typing.get_args(base) if typing.get_origin(base) is Literal else None


def check_choice(flag: str, value: Any, tp: Any) -> None:
    """Raise DSPError unless `value` is one of the closed choice `tp`'s values (or None, where `tp` allows it)."""
    allowed = choices(tp)
    if allowed is not None and value not in allowed and not (value is None and base_type(tp)[1]):
        raise DSPError(f"{flag} must be one of {', '.join(map(str, allowed))}, not '{value}'")


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_settings(settings: Any) -> None:
    """Raise DSPError, naming the flag, for the first field outside its choices or its bounds (None passes where
    the field allows it)."""
    hints = field_types(type(settings))
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if value is None:
            continue
        check_choice(flag_name(f), value, hints[f.name])
        bounds: Bounds | None = f.metadata.get("bounds")
        if bounds is not None and not bounds.holds(value):
            whole = base_type(hints[f.name])[0] is int
            raise DSPError(f"{flag_name(f)} must be {bounds.phrase(whole)}, not {value}")
