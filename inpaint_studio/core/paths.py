"""Where inpaint-studio keeps models, settings and autosaves.

Everything lives under the platformdirs user data directory unless the environment variable
``INPAINT_STUDIO_HOME`` points elsewhere (tests and portable installs use it).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "inpaint-studio"
HOME_ENV = "INPAINT_STUDIO_HOME"


def data_dir() -> Path:
    """Root folder for user data (models, autosaves, recent files)."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def models_dir() -> Path:
    """The model store: ``models/<engine>/<name>/`` with config.json + model.safetensors."""
    return data_dir() / "models"


def engine_models_dir(engine_id: str) -> Path:
    return models_dir() / engine_id


def autosave_dir() -> Path:
    return data_dir() / "autosave"


def config_dir() -> Path:
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser() / "config"
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))
