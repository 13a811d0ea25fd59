"""The main window: the canvas in the middle, docks around it, actions, menus and toolbars.

It wires the parts together and owns the document's life (open, save, export, autosave, close);
the parts themselves (canvas, panels, fill controller) only know the document they are given.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import QByteArray, QEvent, QObject, Qt
from PySide6.QtGui import (
    QCloseEvent,
    QColor,
    QIcon,
    QPixmap,
)
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QColorDialog,
    QComboBox,
    QLineEdit,
    QMainWindow,
    QPlainTextEdit,
    QStackedWidget,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from ..core.autosave import AutosaveStore
from ..core.document import MASK, Document
from ..engines.base import EngineError
from ..session.catalog import EngineCatalog
from ..session.jobs import FillJob, short_title
from . import theme
from .autosave import Autosaver
from .brush import BrushSettings
from .canvas import Canvas
from .file_ops import FileOp, FileOps
from .fill import FillController
from .settings import AppSettings
from .status import MessageBanner, StatusBar
from .tools import (
    EyedropperTool,
    LassoTool,
    MaskBrushTool,
    MaskEraserTool,
    PaintBrushTool,
    PanTool,
    RectangleTool,
    Tool,
)
from .window_build import Welcome, WindowBuilder
from .window_files import SAMPLE, FileCommands, busy_cursor

log = logging.getLogger(__name__)

__all__ = ["APP_TITLE", "SAMPLE", "MainWindow"]

APP_TITLE = "inpaint-studio"


class MainWindow(WindowBuilder, FileCommands, QMainWindow):
    def __init__(
        self,
        settings: AppSettings | None = None,
        catalog: EngineCatalog | None = None,
        autosave_store: AutosaveStore | None = None,
    ) -> None:
        super().__init__()
        self.setObjectName("MainWindow")
        self.settings = settings or AppSettings()
        self.catalog = catalog or EngineCatalog()
        self.project_path: Path | None = None
        self.source_path: Path | None = None
        self._doc: Document | None = None
        self._closing = False
        self._close_when_idle = False  # closing waits for a running save
        self._fast_jobs: set[int] = set()  # fills started by fast remove (they clear their mask)

        s = self.settings
        app = QApplication.instance()
        if isinstance(app, QApplication):  # before any widget exists, so icons get the right colours
            theme.apply_theme(app, s.get("view/theme", "system"))
        self.brush = BrushSettings(
            size=s.get("brush/size", 60.0),
            hardness=s.get("brush/hardness", 0.8),
            color=QColor(s.get("brush/color", "#c83c28")),
        )
        self.canvas = Canvas(self.brush, self)
        self.canvas.empty_text = ""
        self.banner = MessageBanner(self)
        self.welcome = Welcome(self)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.welcome)
        self.stack.addWidget(self.canvas)
        central = QWidget(self)
        cl = QVBoxLayout(central)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(0)
        cl.addWidget(self.banner)
        cl.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)

        self.controller = FillController(self.catalog, self)
        self.file_ops = FileOps(self)
        self.autosaver = Autosaver(autosave_store, s.get("autosave/interval_s", 60), self)
        self.tools: dict[str, Tool] = {
            "mask_brush": MaskBrushTool(self.brush),
            "mask_eraser": MaskEraserTool(self.brush),
            "lasso": LassoTool(),
            "rectangle": RectangleTool(),
            "paint_brush": PaintBrushTool(self.brush),
            "eyedropper": EyedropperTool(),
            "pan": PanTool(),
        }

        self._make_actions()
        self._make_docks()
        self.engine_panel.set_model_manager(lambda _engine_id: self.show_models())
        self._make_menus()
        self._make_toolbars()
        self.status = StatusBar(self.act_cancel, self)
        self.setStatusBar(self.status)
        self._connect()
        self._restore_settings()
        self.set_document(None)
        self._space_watched: QWidget | None = None
        if isinstance(app, QApplication):  # Space pans wherever the keyboard focus is in this window
            app.focusChanged.connect(self._on_focus_changed)

    # =================================================================== construction
    def _connect(self) -> None:
        c = self.controller
        c.job_started.connect(self._on_job_started)
        c.job_queued.connect(self._on_job_queued)
        c.progress.connect(lambda job: self.status.set_progress(*job.progress))
        c.job_finished.connect(self._on_job_finished)
        c.busy_changed.connect(self._on_busy)
        c.result_landed.connect(self._on_result_landed)
        self.canvas.mask_stroke_finished.connect(self._on_mask_stroke)
        self.canvas.view_changed.connect(lambda: self.status.set_zoom(self.canvas.scale))
        self.canvas.cursor_moved.connect(self.status.set_cursor)
        self.canvas.status_message.connect(lambda m: self.statusBar().showMessage(m, 3000))
        self.status.zoom_requested.connect(lambda s: self.canvas.zoom_to(s))
        self.status.fit_requested.connect(lambda: self.canvas.fit())
        self.brush.changed.connect(self._sync_brush_controls)
        self.variants_panel.error.connect(self.show_error)
        self.steps_panel.error.connect(self.show_error)
        self.autosaver.failed.connect(lambda m: self.statusBar().showMessage(m, 8000))
        self.engine_panel.availability_changed.connect(lambda ok: self._update_actions())
        self.file_ops.started.connect(lambda op: self.status.set_file_activity(op.text))
        self.file_ops.finished.connect(self._on_file_op_finished)

    # =================================================================== settings
    def _restore_settings(self) -> None:
        s = self.settings
        self.set_theme(s.get("view/theme", "system"), save=False)
        geometry = s.get("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1500, 920)
        state = s.get("window/state")
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)
        tool = s.get("tools/current", "mask_brush")
        self.set_tool(tool if tool in self.tools else "mask_brush")
        self.mode_combo.setCurrentIndex(
            max(0, self.mode_combo.findData(s.get("tools/shape_mode", "replace")))
        )
        self.welcome.set_recent(s.recent_files())

    def save_settings(self) -> None:
        s = self.settings
        s.set("window/geometry", self.saveGeometry())
        s.set("window/state", self.saveState())
        s.set("brush/size", self.brush.size)
        s.set("brush/hardness", self.brush.hardness)
        s.set("brush/color", self.brush.color.name())
        s.sync()

    def set_theme(self, name: str, save: bool = True) -> None:
        app = QApplication.instance()
        used = theme.apply_theme(app, name) if isinstance(app, QApplication) else "light"
        self.canvas.background = theme.CANVAS_BACKGROUND[used]
        for a in self.theme_group.actions():
            a.setChecked(a.data() == name)
        if save:
            self.settings.set("view/theme", name)
        self.canvas.update()

    # =================================================================== document
    @property
    def document(self) -> Document | None:
        return self._doc

    def set_document(
        self, doc: Document | None, project: Path | None = None, source: Path | None = None
    ) -> None:
        old = self._doc
        if old is not None:
            old.history.changed.disconnect(self._on_history)
            old.layers_changed.disconnect(self._update_actions)
            old.active_layer_changed.disconnect(self._on_active_layer)
            old.mask_style_changed.disconnect(self._on_mask_style)
            self.autosaver.discard()
        self.act_compare.setChecked(False)
        self.act_split.setChecked(False)
        self._fast_jobs.clear()
        self._doc = doc
        self.project_path, self.source_path = project, source
        self.controller.set_document(doc)
        self.variants_panel.clear()
        self.canvas.set_document(doc)
        self.layers_panel.set_document(doc)
        self.history_panel.set_document(doc)
        self.autosaver.set_document(doc, self.document_title, str(source or project or "") or None)
        if doc is not None:
            doc.history.changed.connect(self._on_history)
            doc.layers_changed.connect(self._update_actions)
            doc.active_layer_changed.connect(self._on_active_layer)
            doc.mask_style_changed.connect(self._on_mask_style)
            self.stack.setCurrentWidget(self.canvas)
            self.canvas.setFocus()
            self.status.set_size(doc.width, doc.height)
            self.status.set_zoom(self.canvas.scale)
            self.act_show_mask.setChecked(doc.mask_style.visible)
        else:
            self.stack.setCurrentWidget(self.welcome)
            self.welcome.set_recent(self.settings.recent_files())
            self.status.set_size(None)
            self.status.set_zoom(None)
        self._update_title()
        self._update_actions()

    @property
    def document_title(self) -> str:
        path = self.project_path or self.source_path
        return path.name if path else ("Untitled" if self._doc is not None else "")

    def _on_history(self) -> None:
        self._update_title()
        self._update_actions()

    def _on_active_layer(self, _layer_id) -> None:
        self._update_actions()

    def _on_mask_style(self) -> None:
        if self._doc is not None:
            self.act_show_mask.blockSignals(True)
            self.act_show_mask.setChecked(self._doc.mask_style.visible)
            self.act_show_mask.blockSignals(False)

    def _update_title(self) -> None:
        doc = self._doc
        if doc is None:
            self.setWindowTitle(APP_TITLE)
            self.setWindowModified(False)
            return
        self.setWindowTitle(f"{self.document_title}[*] — {APP_TITLE}")
        self.setWindowModified(doc.modified)

    def _update_actions(self) -> None:
        doc = self._doc
        has = doc is not None
        for a in self.doc_actions:
            a.setEnabled(has)
        h = doc.history if doc else None
        self.act_undo.setEnabled(bool(h and h.can_undo))
        self.act_redo.setEnabled(bool(h and h.can_redo))
        self.act_undo.setText(f"&Undo {h.undo_label}" if h and h.can_undo else "&Undo")
        self.act_redo.setText(f"&Redo {h.redo_label}" if h and h.can_redo else "&Redo")
        active = doc.active_layer if doc else None
        n = len(doc.layers) if doc else 0
        self.act_duplicate.setEnabled(active is not None)
        self.act_delete_layer.setEnabled(active is not None and n > 1)
        self.act_merge_down.setEnabled(active is not None and doc is not None and doc.index_of(active.id) > 0)
        self.act_flatten.setEnabled(n > 1)
        entry = self.engine_panel.entry
        self.act_fill.setEnabled(has and bool(entry and entry.availability.ok))

    # =================================================================== files
    # =================================================================== editing
    def undo(self) -> None:
        if self._doc is not None and not self.canvas.busy:
            self._doc.undo()

    def redo(self) -> None:
        if self._doc is not None and not self.canvas.busy:
            self._doc.redo()

    def _mask_op(self, op: str) -> None:
        doc = self._doc
        if doc is None or self.canvas.busy:
            return
        r = self.radius_spin.value()
        with busy_cursor():
            changed = {
                "invert": doc.invert_mask,
                "clear": doc.clear_mask,
                "grow": lambda: doc.grow_mask(r),
                "shrink": lambda: doc.shrink_mask(r),
                "feather": lambda: doc.feather_mask(r),
            }[op]()
        if changed and not doc.mask_style.visible and op != "clear":
            doc.set_mask_style(visible=True)

    def _toggle_mask_visible(self, on: bool) -> None:
        if self._doc is not None and self._doc.mask_style.visible != on:
            self._doc.set_mask_style(visible=on)

    def _pick_mask_color(self) -> None:
        self.layers_panel._pick_mask_color()

    def _pick_paint_color(self) -> None:
        dialog = QColorDialog(self.brush.color, self)
        dialog.setWindowTitle("Paint colour")
        dialog.colorSelected.connect(lambda c: setattr(self.brush, "color", c))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def _on_compare(self, on: bool) -> None:
        if on and self.act_split.isChecked():
            self.act_split.setChecked(False)
        self.canvas.set_compare(on)

    def _on_split(self, on: bool) -> None:
        if on and self.act_compare.isChecked():
            self.act_compare.setChecked(False)
        self.canvas.set_split(0.5 if on else None)

    def _target_layer(self) -> str | None:
        doc = self._doc
        if doc is None:
            return None
        current = self.layers_panel.current_id()
        return current if current not in (None, MASK) else doc.active_layer_id

    def new_paint_layer(self) -> None:
        if self._doc is not None:
            from .tools import _next_paint_name

            self._doc.new_layer(_next_paint_name(self._doc), "paint")

    def duplicate_layer(self) -> None:
        lid = self._target_layer()
        if lid:
            self._doc.duplicate_layer(lid)

    def delete_layer(self) -> None:
        doc, lid = self._doc, self._target_layer()
        if doc is not None and lid and len(doc.layers) > 1:
            doc.remove_layer(lid)

    def merge_down(self) -> None:
        doc, lid = self._doc, self._target_layer()
        if doc is None or not lid:
            return
        try:
            with busy_cursor():
                doc.merge_down(lid)
        except ValueError as err:
            self.show_error(str(err))

    def flatten(self) -> None:
        if self._doc is not None and len(self._doc.layers) > 1:
            with busy_cursor():
                self._doc.flatten()

    # =================================================================== tools
    def set_tool(self, tool_id: str) -> None:
        tool = self.tools[tool_id]
        self.canvas.set_tool(tool)
        a = self.tool_actions[tool_id]
        if not a.isChecked():
            a.setChecked(True)
        self.settings.set("tools/current", tool_id)
        brushy = tool_id in ("mask_brush", "mask_eraser", "paint_brush")
        for key, visible in (
            ("size", brushy),
            ("hardness", brushy),
            ("color", tool_id in ("paint_brush", "eyedropper")),
            ("mode", tool_id in ("lasso", "rectangle")),
        ):
            for act in self._opt_actions[key]:
                act.setVisible(visible)

    def swap_brush_eraser(self) -> None:
        """X: the mask brush becomes the eraser and back (from any other tool: the brush)."""
        current = self.canvas.tool.id if self.canvas.tool is not None else ""
        self.set_tool("mask_eraser" if current == "mask_brush" else "mask_brush")

    def _on_shape_mode(self) -> None:
        mode = self.mode_combo.currentData()
        for tid in ("lasso", "rectangle"):
            self.tools[tid].default_mode = mode
        self.settings.set("tools/shape_mode", mode)

    def _sync_brush_controls(self) -> None:
        for w, v in (
            (self.size_spin, round(self.brush.size)),
            (self.hardness_spin, round(self.brush.hardness * 100)),
        ):
            w.blockSignals(True)
            w.setValue(v)
            w.blockSignals(False)
        pm = QPixmap(18, 18)
        pm.fill(self.brush.color)
        self.color_button.setIcon(QIcon(pm))

    # =================================================================== filling
    def fill(self) -> FillJob | None:
        doc = self._doc
        if doc is None:
            return None
        if not doc.mask.any():
            self.show_error(
                "Nothing to fill yet: paint over the area with the mask brush (B), or draw it with the "
                "lasso (L) or the rectangle (R).",
                "warning",
            )
            return None
        values = self.engine_panel.request_values()
        try:
            with busy_cursor():
                job = self.controller.fill(**values)
        except (EngineError, ValueError) as err:
            self.show_error(str(err))
            return None
        return job

    # fast remove: fill when a mask stroke ends, then clear that mask; one undo step
    def _on_mask_stroke(self, kind: str) -> None:
        if kind == "add" and self.engine_panel.fast_remove_on():
            self.fast_remove()

    def fast_remove(self) -> FillJob | None:
        """Fill the mask now with one result (no variants to pick); when it lands the mask it
        filled is cleared, and the layer plus the clearing undo as one step."""
        doc = self._doc
        if doc is None or not doc.mask.any():
            return None
        values = {**self.engine_panel.request_values(), "variants": 1}
        try:
            job = self.controller.fill(**values)
        except (EngineError, ValueError) as err:
            self.show_error(str(err))
            return None
        self._fast_jobs.add(job.id)
        return job

    def _on_result_landed(self, job: FillJob, layer) -> None:
        if job.id not in self._fast_jobs:
            return
        self._fast_jobs.discard(job.id)
        doc = job.document
        start = doc.history.index - 1  # the result layer, just added
        doc.set_mask(np.where(job.mask > 0, 0, doc.mask).astype(np.uint8), "Clear mask")
        doc.history.fold_since(start, f"Remove ({short_title(job.engine_title)})")

    def _on_focus_changed(self, old: QWidget | None, new: QWidget | None) -> None:
        """Watch the focused widget of this window for Space (only that one: a filter on the
        whole application would send every event of the app through Python)."""
        watched = self._space_watched
        if watched is not None:
            with contextlib.suppress(RuntimeError):  # the widget may be gone already
                watched.removeEventFilter(self)
            self._space_watched = None
        if new is not None and new is not self.canvas and new.window() is self and not _types_text(new):
            new.installEventFilter(self)
            self._space_watched = new

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Space held pans the canvas wherever the keyboard focus is inside this window (a list
        would otherwise toggle an item), except in text and number fields."""
        kind = event.type()
        if (
            watched is self._space_watched
            and kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease)
            and self._doc is not None
            and event.key() == Qt.Key.Key_Space
        ):
            if not event.isAutoRepeat():
                self.canvas.set_space_held(kind == QEvent.Type.KeyPress)
            return True
        return super().eventFilter(watched, event)

    def _on_job_started(self, job: FillJob) -> None:
        if self.banner.level == "error":
            self.banner.hide()
        self.status.set_running(True)
        self.status.set_progress(0, 0, f"{short_title(job.engine_title)}…")
        if self._doc is not None and self._doc.mask_style.visible:
            pass

    def _on_job_queued(self, job: FillJob) -> None:
        self.statusBar().showMessage(
            "A fill is running; this one starts when it ends (Esc cancels both)", 5000
        )

    def _on_job_finished(self, job: FillJob) -> None:
        title = short_title(job.engine_title)
        if job.status == "failed":
            self.show_error(f"{title} could not fill: {job.error}")
        elif job.status == "cancelled":
            self.statusBar().showMessage(f"{title} fill cancelled", 4000)
        if job.status != "done":
            self._fast_jobs.discard(job.id)
            if job.document is self._doc:
                self.canvas.wake_mask()  # nothing to look at: the mask comes back
        else:
            secs = max(0.0, job.ended_at - job.started_at)
            if job.variants_asked <= 1 and job.parent_id is None:
                self.engine_panel.record_fill_time(job.engine_id, secs)
            if len(job.variants) > 1:
                self.variants_dock.raise_()
                self.variants_dock.show()
                self.statusBar().showMessage(
                    f"{title}: {len(job.variants)} variants in {secs:.1f} s — pick one in the Fills panel",
                    8000,
                )
            else:
                self.statusBar().showMessage(f"{title} filled in {secs:.1f} s", 5000)

    def _on_busy(self, busy: bool) -> None:
        self.act_cancel.setEnabled(busy)
        self.status.set_running(busy)

    def warm_up_if_useful(self) -> bool:
        """Load the model library on the runner thread now, if some model engine can run, so the
        first fill does not pause the window while it loads (a one-off, shortly after start)."""
        if any(
            e.availability.ok and e.info is not None and e.info.needs_weights
            for e in self.engine_panel.entries
        ):
            self.controller.runner.warm_up()
            return True
        return False

    # =================================================================== messages
    def show_error(self, text: str, level: str = "error") -> None:
        """Non-modal: a banner over the canvas, and a line in the status bar."""
        self.banner.show_message(text, level)
        log.info("%s: %s", level, text)

    # =================================================================== events
    def _busy(self):
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            yield
        finally:
            QApplication.restoreOverrideCursor()

    def _on_file_op_finished(self, op: FileOp) -> None:
        self.status.set_file_activity(None)
        if self._close_when_idle:
            self._close_when_idle = False
            self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        op = self.file_ops.current
        if op is not None and not self._closing:
            # nothing is lost: a save (or open) in progress finishes first, then the window closes
            self._close_when_idle = True
            self.statusBar().showMessage(f"{op.text} The window closes when it is done.", 10000)
            event.ignore()
            return
        if not self._closing and not self.maybe_save(self.close):
            event.ignore()
            return
        self.shutdown()
        event.accept()

    def end_session(self) -> None:
        """The app is told to end (SIGTERM, logout) with nobody to ask "Save?": a save in progress
        finishes, the unsaved work is autosaved now and kept, so the next launch offers it back."""
        if self._closing:
            return
        self.file_ops.wait()
        self.autosaver.flush()
        self.shutdown(keep_autosave=True)

    def shutdown(self, keep_autosave: bool = False) -> None:
        """Stop the runner and autosave; forget the autosave of work that was saved or dropped
        (unless ``keep_autosave``: the session ends without asking)."""
        if self._closing:
            return
        self._closing = True
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.focusChanged.disconnect(self._on_focus_changed)
        self._on_focus_changed(None, None)
        self.file_ops.wait()
        self.save_settings()
        self.controller.shutdown()
        self.autosaver.shutdown()
        if not keep_autosave:
            self.autosaver.discard()
        self.canvas.set_tool(None)


def _types_text(widget: QWidget) -> bool:
    """Whether Space is a character for ``widget`` (text and number fields, editable combos)."""
    if isinstance(widget, (QLineEdit, QPlainTextEdit, QTextEdit, QAbstractSpinBox)):
        return True
    return isinstance(widget, QComboBox) and widget.isEditable()
