"""Brush settings shared by the mask brush, the mask eraser and the paint brush."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QColor

MIN_SIZE, MAX_SIZE = 1, 2000


class BrushSettings(QObject):
    """Size in image pixels, hardness 0..1, the paint colour. ``changed`` after any change."""

    changed = Signal()

    def __init__(self, size: float = 60.0, hardness: float = 0.8, color: QColor | None = None) -> None:
        super().__init__()
        self._size = float(size)
        self._hardness = float(hardness)
        self._color = QColor(color) if color is not None else QColor(200, 60, 40)
        self.spacing = 0.12  # dab distance as a fraction of the size

    @property
    def size(self) -> float:
        return self._size

    @size.setter
    def size(self, value: float) -> None:
        value = float(min(MAX_SIZE, max(MIN_SIZE, value)))
        if value != self._size:
            self._size = value
            self.changed.emit()

    @property
    def hardness(self) -> float:
        return self._hardness

    @hardness.setter
    def hardness(self, value: float) -> None:
        value = float(min(1.0, max(0.0, value)))
        if value != self._hardness:
            self._hardness = value
            self.changed.emit()

    @property
    def color(self) -> QColor:
        return QColor(self._color)

    @color.setter
    def color(self, value: QColor) -> None:
        value = QColor(value)
        if value != self._color:
            self._color = value
            self.changed.emit()

    @property
    def rgb(self) -> tuple[int, int, int]:
        return self._color.red(), self._color.green(), self._color.blue()

    def grow(self) -> None:
        """``]``: about 15 % larger, at least one pixel."""
        self.size = max(self._size + 1, round(self._size * 1.15))

    def shrink(self) -> None:
        """``[``: about 15 % smaller, at least one pixel."""
        self.size = min(self._size - 1, round(self._size / 1.15))
