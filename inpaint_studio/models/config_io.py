"""One JSON round trip for every architecture config (``arch`` of a weights bundle, task state).

Configs are frozen dataclasses; tuples travel as JSON lists and come back as tuples, and an
unknown key is an error so that a typo or a newer file never passes silently. A field whose
metadata says ``{"saved": False}`` stays out of the dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, ClassVar, TypeVar

C = TypeVar("C", bound="SavedConfig")


class SavedConfig:
    """Mixin for frozen dataclass configs: ``to_dict`` / ``from_dict``."""

    config_name: ClassVar[str] = "model"  # names the config in error messages ("unknown MAT config key")

    @classmethod
    def saved_fields(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.metadata.get("saved", True)]  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in self.saved_fields()}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        unknown = sorted(set(data) - set(cls.saved_fields()))
        if unknown:
            raise ValueError(f"unknown {cls.config_name} config key(s): {', '.join(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
