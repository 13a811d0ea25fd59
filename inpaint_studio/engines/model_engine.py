"""Base for framed engines that run a model from a weights folder: one way to find the weights,
pick the device and precision, and share the loaded model through the component cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from ..models.components import ComponentKey, shared_cache
from .base import Availability
from .framed import FramedEngine, Params
from .runtime import Runtime, resolve_runtime
from .weights import require_weights, weights_availability


class ModelEngine(FramedEngine):
    """Subclasses set ``hint`` (how a person gets weights) and call :meth:`component` in ``load``."""

    hint: ClassVar[str] = ""

    def __init__(self, weights: str | Path | None = None, device: str | None = None) -> None:
        super().__init__(weights, device)
        self._model: Any = None
        self._runtime: Runtime | None = None

    @classmethod
    def availability(cls, weights: str | Path | None = None) -> Availability:
        return weights_availability(cls.info.id, cls.info.title, weights, cls.hint)

    def component(self, params: Params, part: str, loader: Callable[[Path, Runtime], Any]) -> Any:
        """The ``part`` of this engine's weights on the asked-for device and precision, loaded by
        ``loader(path, runtime)`` once and shared with every engine that asks for the same part.

        Sets ``self._model`` and ``self._runtime``; raises one-line errors for missing weights and
        for a device or precision this machine cannot use.
        """
        runtime = resolve_runtime(params, self.device_preference)
        path = require_weights(self.info.id, self.info.title, self.weights, self.hint)
        key = ComponentKey(str(path), part, runtime.precision, runtime.device)
        self._model = shared_cache().get(key, lambda: loader(path, runtime))
        self._runtime = runtime
        return self._model
