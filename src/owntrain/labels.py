"""Label values: cleaning, the ``--label-map`` syntax, and the class order.

A label map such as ``"1-2=negative,4-5=positive"`` maps numeric ratings (single values or
inclusive ranges) or exact strings (``"pos=positive"``) to class names. A value that the map does
not cover is rejected with its reason and reported, never silently lost.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from owntrain.errors import InputError

_INTEGRAL = re.compile(r"^[+-]?[0-9]{1,15}(?:\.0*)?$")


def clean_label(value: object) -> str | None:
    """The label as a string, or None when it is missing. ``1``, ``1.0`` and ``" 1 "`` give ``"1"``."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    text = str(value).strip()
    if not text:
        return None
    if _INTEGRAL.match(text):
        return str(int(float(text)))
    return text


@dataclass(frozen=True)
class _Rule:
    low: float | None
    high: float | None
    exact: str | None
    name: str

    def matches(self, value: str, number: float | None) -> bool:
        if self.exact is not None:
            return value == self.exact
        return number is not None and self.low <= number <= self.high  # type: ignore[operator]


class LabelMap:
    """Parsed ``--label-map``: ``SPEC=NAME`` pairs, comma-separated; SPEC is ``3``, ``1-2`` or a string."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.rules: list[_Rule] = []
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            if "=" not in part:
                raise InputError(
                    f"--label-map entry {part!r} has no '='. Write SPEC=NAME pairs separated by commas, "
                    "e.g. --label-map '1-2=negative,4-5=positive'."
                )
            key, name = (s.strip() for s in part.rsplit("=", 1))
            if not key or not name:
                raise InputError(f"--label-map entry {part!r} needs both a value and a class name.")
            self.rules.append(self._parse_rule(key, name))
        if not self.rules:
            raise InputError("--label-map is empty. Example: --label-map '1-2=negative,4-5=positive'.")

    @staticmethod
    def _parse_rule(key: str, name: str) -> _Rule:
        low, sep, high = key.partition("-") if not key.startswith("-") else (key, "", "")
        try:
            if sep:
                lo, hi = float(low), float(high)
                if lo > hi:
                    raise InputError(f"--label-map range {key!r} runs backwards; write it low-high.")
                return _Rule(lo, hi, None, name)
            number = float(key)
            return _Rule(number, number, None, name)
        except ValueError:
            return _Rule(None, None, key, name)

    def map(self, value: str) -> str | None:
        try:
            number: float | None = float(value)
        except ValueError:
            number = None
        for rule in self.rules:
            if rule.matches(value, number):
                return rule.name
        return None

    def as_dict(self) -> dict[str, str]:
        return {self.spec: ""} if not self.rules else {
            (r.exact if r.exact is not None else (f"{r.low:g}" if r.low == r.high else f"{r.low:g}-{r.high:g}")): r.name
            for r in self.rules
        }


def class_order(labels: set[str] | list[str]) -> list[str]:
    """Class names in index order: numerically when all labels are numbers, else alphabetically.

    For two classes index 1 is the positive class: ``negative``/``positive``, ``neg``/``pos`` and
    ``0``/``1`` all put the positive label second.
    """
    labels = list(set(labels))
    try:
        return sorted(labels, key=lambda s: (float(s), s))
    except ValueError:
        return sorted(labels, key=lambda s: (s.casefold(), s))
