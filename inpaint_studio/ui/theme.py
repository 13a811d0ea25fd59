"""Light and dark themes (Fusion style + a palette) and theme-coloured qtawesome icons."""

from __future__ import annotations

import logging
import weakref

from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import QApplication

log = logging.getLogger(__name__)

THEMES = ("system", "light", "dark")
_current = "light"

_DARK = {
    QPalette.ColorRole.Window: "#2b2d31",
    QPalette.ColorRole.WindowText: "#e6e6e6",
    QPalette.ColorRole.Base: "#1f2023",
    QPalette.ColorRole.AlternateBase: "#2a2b2f",
    QPalette.ColorRole.ToolTipBase: "#3a3c41",
    QPalette.ColorRole.ToolTipText: "#f0f0f0",
    QPalette.ColorRole.PlaceholderText: "#8c8f96",
    QPalette.ColorRole.Text: "#e6e6e6",
    QPalette.ColorRole.Button: "#35373c",
    QPalette.ColorRole.ButtonText: "#e6e6e6",
    QPalette.ColorRole.BrightText: "#ff6b6b",
    QPalette.ColorRole.Link: "#6cb2ff",
    QPalette.ColorRole.Highlight: "#3d7bd9",
    QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.Mid: "#44464c",
    QPalette.ColorRole.Dark: "#1a1b1e",
    QPalette.ColorRole.Light: "#4a4c52",
}
_LIGHT = {
    QPalette.ColorRole.Window: "#efeff1",
    QPalette.ColorRole.WindowText: "#1d1d1f",
    QPalette.ColorRole.Base: "#ffffff",
    QPalette.ColorRole.AlternateBase: "#f5f5f7",
    QPalette.ColorRole.ToolTipBase: "#ffffdc",
    QPalette.ColorRole.ToolTipText: "#1d1d1f",
    QPalette.ColorRole.PlaceholderText: "#8a8a8e",
    QPalette.ColorRole.Text: "#1d1d1f",
    QPalette.ColorRole.Button: "#f7f7f9",
    QPalette.ColorRole.ButtonText: "#1d1d1f",
    QPalette.ColorRole.BrightText: "#c62828",
    QPalette.ColorRole.Link: "#1a64c8",
    QPalette.ColorRole.Highlight: "#2f6fd0",
    QPalette.ColorRole.HighlightedText: "#ffffff",
}
CANVAS_BACKGROUND = {"dark": QColor("#232427"), "light": QColor("#b9babd")}


def resolve(name: str) -> str:
    """'system' becomes light or dark after the desktop's colour scheme."""
    if name in ("light", "dark"):
        return name
    try:
        from PySide6.QtCore import Qt

        scheme = QGuiApplication.styleHints().colorScheme()
        return "dark" if scheme == Qt.ColorScheme.Dark else "light"
    except Exception:
        return "light"


def apply_theme(app: QApplication, name: str) -> str:
    """Set the Fusion style and the palette; returns the theme in use ('light' or 'dark')."""
    global _current
    theme = resolve(name if name in THEMES else "system")
    app.setStyle("Fusion")
    palette = QPalette()
    for role, color in (_DARK if theme == "dark" else _LIGHT).items():
        palette.setColor(role, QColor(color))
    disabled = QColor("#6f7278") if theme == "dark" else QColor("#a0a0a5")
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    app.setPalette(palette)
    changed = theme != _current
    _current = theme
    if changed:
        _refresh_icons()
    return theme


def current() -> str:
    return _current


def icon_color() -> QColor:
    return QColor("#d8d8dc") if _current == "dark" else QColor("#3a3a3f")


_themed: list[tuple[weakref.ref, str]] = []


def set_icon(widget, name: str) -> None:
    """Give a button or action a theme-coloured icon that follows later theme changes."""
    widget.setIcon(icon(name))
    _themed.append((weakref.ref(widget), name))


def _refresh_icons() -> None:
    alive = []
    for ref, name in _themed:
        obj = ref()
        if obj is None:
            continue
        try:
            obj.setIcon(icon(name))
        except RuntimeError:  # the Qt object is gone
            continue
        alive.append((ref, name))
    _themed[:] = alive


def icon(name: str, color: QColor | str | None = None) -> QIcon:
    """A qtawesome icon in the theme's colour (an empty icon if the font lacks it)."""
    try:
        import qtawesome as qta

        c = QColor(color) if color is not None else icon_color()
        disabled = QColor(c)
        disabled.setAlpha(90)
        return qta.icon(name, color=c, color_disabled=disabled)
    except Exception as err:  # a missing glyph must not stop the app
        log.debug("icon %s unavailable: %s", name, err)
        return QIcon()
