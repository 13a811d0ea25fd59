"""Parameter schema: one declaration drives the app's settings form and the CLI's flags."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

ParamKind = Literal["int", "float", "bool", "choice", "str", "path"]  # path: a file or folder, empty for none

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Param:
    """One tunable value of an engine.

    ``minimum``/``maximum`` bound numbers (inclusive); ``choices`` lists the values of a
    ``choice``; ``step`` is a hint for sliders and spin boxes. ``advanced``: an internal knob
    (batching, indices the app sets itself) that the settings form keeps under "Advanced".
    """

    name: str
    kind: ParamKind
    default: Any
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    step: float | None = None
    label: str = ""
    advanced: bool = False
    placeholder: str = ""  # what an empty text or path means, shown greyed in the empty field

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"parameter name {self.name!r} must be an identifier")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"choice parameter {self.name!r} needs choices")
        self.coerce(self.default)  # a schema whose default is invalid is a programming error

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    def coerce(self, value: Any) -> Any:
        """Convert ``value`` (possibly a CLI string) to this parameter's type, or raise ValueError."""
        if self.kind == "choice":
            out = str(value)
            if out not in self.choices:
                raise ValueError(f"{self.name} must be one of {', '.join(self.choices)}, not {out!r}")
            return out
        if self.kind == "str":
            return str(value)
        if self.kind == "path":  # a pasted path often brings a stray space or newline with it
            return str(value).strip()
        if self.kind == "bool":
            if isinstance(value, str):
                low = value.strip().lower()
                if low not in _TRUE | _FALSE:
                    raise ValueError(f"{self.name} expects true or false, got {value!r}")
                return low in _TRUE
            return bool(value)
        out = self._number(value)
        if self.minimum is not None and out < self.minimum:
            raise ValueError(f"{self.name} must be >= {self.minimum}, got {out}")
        if self.maximum is not None and out > self.maximum:
            raise ValueError(f"{self.name} must be <= {self.maximum}, got {out}")
        return out

    def _number(self, value: Any) -> int | float:
        noun = "an integer" if self.kind == "int" else "a number"
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name} expects {noun}, got {value!r}") from None
        if not math.isfinite(number):  # NaN passes every range check, inf breaks the engines
            raise ValueError(f"{self.name} expects a finite number, got {value!r}")
        if self.kind == "float":
            return number
        if not number.is_integer():
            raise ValueError(f"{self.name} expects {noun}, got {value!r}")
        return int(number)


def resolve_params(schema: tuple[Param, ...], values: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``values``, every value checked; unknown names are an error."""
    known = {p.name: p for p in schema}
    unknown = sorted(set(values) - set(known))
    if unknown:
        names = ", ".join(known) or "none"
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; this engine takes: {names}")
    return {name: p.coerce(values[name]) if name in values else p.default for name, p in known.items()}
