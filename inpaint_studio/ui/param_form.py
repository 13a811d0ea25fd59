"""A settings form generated from an engine's parameter schema (the same schema the CLI's
``--set NAME=VALUE`` flags come from): numbers with bounds get a slider and a spin box,
choices a combo box, flags a check box, text a line edit, a path a line edit with a Browse menu (a
file or a folder: a Stable Diffusion model is either). Help texts become tooltips."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..engines.params import Param

SLIDER_STEPS = 1000


class _Field:
    """One parameter's editor: ``widget`` goes in the form; get/set speak the param's type."""

    def __init__(self, param: Param, on_change) -> None:
        self.param = param
        # editors' signals carry their value (textChanged(str), toggled(bool)); ``on_change`` takes none
        self._on_change = lambda *_value: on_change()
        self.widget = self._build()
        self.widget.setToolTip(param.help)

    def _build(self) -> QWidget:
        p = self.param
        if p.kind == "bool":
            self.editor = QCheckBox()
            self.editor.toggled.connect(self._on_change)
            return self.editor
        if p.kind == "choice":
            self.editor = QComboBox()
            self.editor.addItems(list(p.choices))
            self.editor.currentIndexChanged.connect(self._on_change)
            return self.editor
        if p.kind in ("str", "path"):
            self.editor = QLineEdit()
            self.editor.setPlaceholderText(p.placeholder or ("none" if p.kind == "path" else ""))
            self.editor.textChanged.connect(self._on_change)
            return self.editor if p.kind == "str" else self._with_browse(self.editor)
        if p.kind == "int":
            self.editor = QSpinBox()
            self.editor.setRange(
                int(p.minimum) if p.minimum is not None else -(2**31) + 1,
                int(p.maximum) if p.maximum is not None else 2**31 - 1,
            )
            if p.step:
                self.editor.setSingleStep(max(1, int(p.step)))
        else:
            self.editor = QDoubleSpinBox()
            step = p.step or _nice_step(p)
            self.editor.setDecimals(_decimals(step, p.default))
            self.editor.setSingleStep(step)
            self.editor.setRange(
                p.minimum if p.minimum is not None else -1e9, p.maximum if p.maximum is not None else 1e9
            )
        self.editor.setKeyboardTracking(False)
        self.editor.valueChanged.connect(self._spin_changed)
        self.slider: QSlider | None = None
        if p.minimum is None or p.maximum is None or p.maximum <= p.minimum:
            return self.editor
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setToolTip(p.help)
        if p.kind == "int":
            self.slider.setRange(int(p.minimum), int(p.maximum))
        else:
            self.slider.setRange(0, SLIDER_STEPS)
        self.slider.valueChanged.connect(self._slider_changed)
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.slider, 1)
        row.addWidget(self.editor)
        self.editor.setMinimumWidth(70)
        return box

    def _with_browse(self, edit: QLineEdit) -> QWidget:
        edit.setClearButtonEnabled(True)
        self.browse = QToolButton()
        self.browse.setText("…")
        self.browse.setToolTip(f"Choose the {self.param.title.lower()}")
        self.browse.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.browse)
        menu.addAction("File…", lambda: self._browse(folder=False))
        menu.addAction("Folder…", lambda: self._browse(folder=True))
        self.browse.setMenu(menu)
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(edit, 1)
        row.addWidget(self.browse)
        return box

    def _browse(self, folder: bool) -> None:
        title = f"Choose the {self.param.title.lower()}"
        start = self.editor.text().strip()
        if folder:
            chosen = QFileDialog.getExistingDirectory(self.widget, title, start)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self.widget, title, start)
        if chosen:
            self.editor.setText(chosen)  # textChanged: saved and used like a typed path

    def _slider_changed(self, v: int) -> None:
        p = self.param
        value = v if p.kind == "int" else p.minimum + (p.maximum - p.minimum) * v / SLIDER_STEPS
        self.editor.blockSignals(True)
        self.editor.setValue(value)
        self.editor.blockSignals(False)
        self._on_change()

    def _spin_changed(self, value) -> None:
        self._sync_slider(value)
        self._on_change()

    def _sync_slider(self, value) -> None:
        s = getattr(self, "slider", None)
        if s is None:
            return
        p = self.param
        pos = (
            int(value)
            if p.kind == "int"
            else round((value - p.minimum) / (p.maximum - p.minimum) * SLIDER_STEPS)
        )
        s.blockSignals(True)
        s.setValue(pos)
        s.blockSignals(False)

    def get(self) -> Any:
        p = self.param
        if p.kind == "bool":
            return self.editor.isChecked()
        if p.kind == "choice":
            return self.editor.currentText()
        if p.kind == "str":
            return self.editor.text()
        if p.kind == "path":
            return p.coerce(self.editor.text())
        return int(self.editor.value()) if p.kind == "int" else float(self.editor.value())

    def set(self, value: Any) -> None:
        p = self.param
        try:
            value = p.coerce(value)
        except ValueError:
            value = p.default
        self.editor.blockSignals(True)
        try:
            if p.kind == "bool":
                self.editor.setChecked(bool(value))
            elif p.kind == "choice":
                self.editor.setCurrentIndex(max(0, list(p.choices).index(value)))
            elif p.kind in ("str", "path"):
                self.editor.setText(str(value))
            else:
                self.editor.setValue(value)
                self._sync_slider(value)
        finally:
            self.editor.blockSignals(False)


def _decimals(step: float, default: float) -> int:
    """Enough decimals for the step and for the default (0.25 with a 0.1 step shows as 0.25)."""
    need = max(0, -math.floor(math.log10(step))) if step > 0 else 2
    text = repr(float(default))
    if "e" not in text and "." in text:
        need = max(need, len(text.split(".")[1].rstrip("0")))
    return min(6, need)


def _nice_step(p: Param) -> float:
    if p.minimum is not None and p.maximum is not None and p.maximum > p.minimum:
        span = p.maximum - p.minimum
        return 10 ** math.floor(math.log10(span / 100)) if span > 0 else 0.01
    return 0.01


class ParamForm(QWidget):
    """``values()`` gives a dict that ``Engine.resolve`` accepts; ``changed`` on every edit."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self._layout = QFormLayout()
        self._layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        outer.addLayout(self._layout)
        # internal knobs (Param.advanced) stay folded away until asked for
        self.advanced_toggle = QToolButton(self)
        self.advanced_toggle.setText("Advanced")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setAutoRaise(True)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_toggle.toggled.connect(self._show_advanced)
        self.advanced_box = QWidget(self)
        self._advanced = QFormLayout(self.advanced_box)
        self._advanced.setContentsMargins(12, 0, 0, 0)
        self._advanced.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        outer.addWidget(self.advanced_toggle)
        outer.addWidget(self.advanced_box)
        self.advanced_box.hide()
        self.advanced_toggle.hide()
        self._fields: dict[str, _Field] = {}
        self._empty = QLabel("This engine has no settings.")
        self._empty.setEnabled(False)

    def set_schema(self, params: Sequence[Param], values: Mapping[str, Any] | None = None) -> None:
        for form in (self._layout, self._advanced):
            while form.rowCount():
                form.removeRow(0)
        self._fields.clear()
        for p in params:
            field = _Field(p, self.changed.emit)
            field.set(p.default)
            label = QLabel(p.title)
            label.setToolTip(p.help)
            (self._advanced if p.advanced else self._layout).addRow(label, field.widget)
            self._fields[p.name] = field
        self.advanced_toggle.setVisible(any(p.advanced for p in params))
        if not params:
            self._empty = QLabel("This engine has no settings.")
            self._empty.setEnabled(False)
            self._layout.addRow(self._empty)
        if values:
            self.set_values(values)

    def values(self) -> dict[str, Any]:
        return {name: f.get() for name, f in self._fields.items()}

    def set_values(self, values: Mapping[str, Any]) -> None:
        for name, value in values.items():
            if name in self._fields:
                self._fields[name].set(value)

    def reset(self) -> None:
        for f in self._fields.values():
            f.set(f.param.default)
        self.changed.emit()

    def editor(self, name: str) -> QWidget:
        return self._fields[name].editor

    def advanced_names(self) -> list[str]:
        """The parameters kept under Advanced."""
        return [n for n, f in self._fields.items() if f.param.advanced]

    def _show_advanced(self, on: bool) -> None:
        self.advanced_toggle.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        self.advanced_box.setVisible(on)
