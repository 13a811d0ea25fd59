"""What the app remembers between runs, in an INI file under the platformdirs config folder
(``INPAINT_STUDIO_HOME/config`` when that is set, so tests never touch a person's settings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings

from ..core import paths

MAX_RECENT = 10


class AppSettings:
    def __init__(self, path: str | Path | None = None) -> None:
        path = Path(path) if path else paths.config_dir() / "settings.ini"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.qsettings = QSettings(str(path), QSettings.Format.IniFormat)

    # plain values ------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        value = self.qsettings.value(key, default)
        if default is None or value is None:
            return value
        try:  # INI files give strings back; convert to the default's type
            if isinstance(default, bool):
                return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
            if isinstance(default, int):
                return int(value)
            if isinstance(default, float):
                return float(value)
        except (TypeError, ValueError):
            return default
        return value

    def set(self, key: str, value: Any) -> None:
        self.qsettings.setValue(key, value)

    def get_json(self, key: str, default: Any = None) -> Any:
        raw = self.qsettings.value(key)
        if not raw:
            return default
        try:
            return json.loads(str(raw))
        except json.JSONDecodeError:
            return default

    def set_json(self, key: str, value: Any) -> None:
        self.qsettings.setValue(key, json.dumps(value))

    def sync(self) -> None:
        self.qsettings.sync()

    # recent files ------------------------------------------------------------
    def recent_files(self) -> list[str]:
        files = self.get_json("files/recent", [])
        return [f for f in files if isinstance(f, str)]

    def add_recent(self, path: str | Path) -> list[str]:
        path = str(Path(path).resolve())
        files = [f for f in self.recent_files() if f != path]
        files.insert(0, path)
        del files[MAX_RECENT:]
        self.set_json("files/recent", files)
        return files

    def remove_recent(self, path: str) -> None:
        self.set_json("files/recent", [f for f in self.recent_files() if f != path])

    def clear_recent(self) -> None:
        self.set_json("files/recent", [])
