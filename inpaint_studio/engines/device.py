"""Device choice for engines: the one rule lives in ``models.device`` (shared with training)."""

from ..models.device import DEVICE_CHOICES, DEVICE_ENV, pick_device

__all__ = ["DEVICE_CHOICES", "DEVICE_ENV", "pick_device"]
