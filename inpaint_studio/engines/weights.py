"""Finding an engine's weights: an explicit path, or the newest bundle in the model store."""

from __future__ import annotations

from pathlib import Path

from ..core import paths
from ..models.bundle import is_bundle, list_bundles, read_config
from .base import Availability, WeightsMissing


def store_dir(engine_id: str) -> Path:
    return paths.engine_models_dir(engine_id)


def find_weights(engine_id: str, weights: str | Path | None = None) -> Path | None:
    """The weights folder to use: ``weights`` if given, else the newest one in the store."""
    if weights:
        return Path(weights).expanduser()
    found = list_bundles(store_dir(engine_id))
    return found[0] if found else None


def weights_availability(engine_id: str, title: str, weights: str | Path | None, hint: str) -> Availability:
    """Cheap check (reads config.json only) shared by every engine that needs weights."""
    path = find_weights(engine_id, weights)
    if path is None:
        return Availability(False, f"no {title} weights in {store_dir(engine_id)}; {hint}")
    if not path.exists():
        return Availability(False, f"weights path {path} does not exist")
    if not is_bundle(path):
        return Availability(False, f"{path} is not a weights folder (config.json + .safetensors); {hint}")
    try:
        engine = read_config(path).get("engine")
    except ValueError as err:
        return Availability(False, str(err))
    if engine != engine_id:
        return Availability(False, f"{path} holds '{engine}' weights, not {title}")
    return Availability(True, weights=path)


def require_weights(engine_id: str, title: str, weights: str | Path | None, hint: str) -> Path:
    """Like :func:`weights_availability` but raises :class:`WeightsMissing` with the reason."""
    avail = weights_availability(engine_id, title, weights, hint)
    if not avail.ok or avail.weights is None:
        raise WeightsMissing(avail.reason)
    return avail.weights
