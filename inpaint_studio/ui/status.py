"""The status bar (zoom, cursor, image size, run progress with Cancel) and the message banner
that shows errors without a modal dialog."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QStatusBar,
    QToolButton,
    QWidget,
)

from . import theme

ZOOM_PRESETS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


class StatusBar(QStatusBar):
    zoom_requested = Signal(float)  # a preset scale
    fit_requested = Signal()

    def __init__(self, cancel_action: QAction, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.progress = QProgressBar(self)
        self.progress.setMaximumWidth(180)
        self.progress.setMaximumHeight(16)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.progress_text = QLabel(self)
        self.progress_text.hide()
        # opening or saving in the background: a label and a small busy bar
        self.file_text = QLabel(self)
        self.file_text.hide()
        self.file_busy = QProgressBar(self)
        self.file_busy.setRange(0, 0)
        self.file_busy.setMaximumWidth(60)
        self.file_busy.setMaximumHeight(12)
        self.file_busy.setTextVisible(False)
        self.file_busy.hide()
        self.cancel = QToolButton(self)
        self.cancel.setDefaultAction(cancel_action)
        self.cancel.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.cancel.setAutoRaise(True)
        self.cancel.hide()
        self.cursor = QLabel("", self)
        self.cursor.setMinimumWidth(90)
        self.cursor.setToolTip("Pixel under the mouse")
        self.size_label = QLabel("", self)
        self.size_label.setToolTip("Picture size")
        self.zoom = QToolButton(self)
        self.zoom.setAutoRaise(True)
        self.zoom.setToolTip("Zoom (wheel over the picture; Ctrl+0 fits, Ctrl+1 is 100 %)")
        self.zoom.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.zoom)
        menu.addAction("Fit", self.fit_requested.emit)
        for s in ZOOM_PRESETS:
            menu.addAction(f"{s * 100:g} %", lambda s=s: self.zoom_requested.emit(s))
        self.zoom.setMenu(menu)
        for w in (
            self.file_text,
            self.file_busy,
            self.progress_text,
            self.progress,
            self.cancel,
            self.cursor,
            self.size_label,
            self.zoom,
        ):
            self.addPermanentWidget(w)
        for w in (self.progress, self.cancel):
            # showing the run's widgets must not re-lay out (and repaint) the whole window
            policy = w.sizePolicy()
            policy.setRetainSizeWhenHidden(True)
            w.setSizePolicy(policy)
        self.progress_text.setMinimumWidth(120)
        policy = self.progress_text.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.progress_text.setSizePolicy(policy)
        self.set_zoom(None)

    def set_zoom(self, scale: float | None) -> None:
        self.zoom.setText(
            "—" if scale is None else f"{scale * 100:.0f} %" if scale >= 0.1 else f"{scale * 100:.1f} %"
        )

    def set_cursor(self, pos) -> None:
        self.cursor.setText("" if pos is None else f"{pos[0]}, {pos[1]}")

    def set_size(self, width: int | None, height: int | None = None) -> None:
        self.size_label.setText("" if width is None else f"{width} × {height} px")

    def set_running(self, running: bool) -> None:
        for w in (self.progress, self.cancel, self.progress_text):
            w.setVisible(running)
        if running:
            self.progress.setRange(0, 0)  # busy until the first Progress event
            self.progress_text.setText("Starting…")

    def set_file_activity(self, text: str | None) -> None:
        """Show what file operation runs in the background (None: nothing)."""
        self.file_text.setText(text or "")
        self.file_text.setVisible(bool(text))
        self.file_busy.setVisible(bool(text))

    def set_progress(self, done: int, total: int, text: str = "") -> None:
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(min(done, total))
        else:
            self.progress.setRange(0, 0)
        self.progress_text.setText(text)


class MessageBanner(QFrame):
    """A strip above the canvas: errors stay until closed, notes fade after a few seconds."""

    COLORS = {
        "error": ("#7f1d1d", "#fde8e8", "mdi6.alert-circle"),
        "warning": ("#7a4b00", "#fff4dc", "mdi6.alert-circle"),
        "info": ("#12406e", "#e3f0ff", "mdi6.information-outline"),
    }

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.icon = QLabel(self)
        self.text = QLabel(self)
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.action_button = QToolButton(self)
        self.action_button.hide()
        self.close_button = QToolButton(self)
        self.close_button.setAutoRaise(True)
        self.close_button.setText("✕")
        self.close_button.setToolTip("Dismiss")
        self.close_button.clicked.connect(self.hide)
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 6, 6, 6)
        row.addWidget(self.icon)
        row.addWidget(self.text, 1)
        row.addWidget(self.action_button)
        row.addWidget(self.close_button)
        self._timer = QTimer(self, singleShot=True)
        self._timer.timeout.connect(self.hide)
        self.level = ""
        self.hide()

    def show_message(self, text: str, level: str = "error", action: QAction | None = None) -> None:
        fg, bg, icon_name = self.COLORS.get(level, self.COLORS["info"])
        self.level = level
        self.setStyleSheet(
            f"#banner {{ background: {bg}; border: 1px solid {fg}; border-radius: 4px; }}"
            f"#banner QLabel {{ color: {fg}; }}"
        )
        self.icon.setPixmap(theme.icon(icon_name, fg).pixmap(18, 18))
        self.text.setText(text)
        if action is not None:
            self.action_button.setDefaultAction(action)
            self.action_button.show()
        else:
            self.action_button.hide()
        self.show()
        if level == "error":
            self._timer.stop()
        else:
            self._timer.start(6000)

    @property
    def message(self) -> str:
        return self.text.text() if not self.isHidden() else ""
