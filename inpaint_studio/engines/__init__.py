"""Qt-free engines: the contract, the registry, shared framing, one module per engine."""

from .base import (
    Availability,
    Cancelled,
    Engine,
    EngineError,
    EngineInfo,
    Event,
    Preview,
    Progress,
    Request,
    Result,
    Variant,
    WeightsMissing,
)
from .followup import Followup
from .params import Param

__all__ = [
    "Availability",
    "Cancelled",
    "Engine",
    "EngineError",
    "EngineInfo",
    "Event",
    "Followup",
    "Param",
    "Preview",
    "Progress",
    "Request",
    "Result",
    "Variant",
    "WeightsMissing",
]
