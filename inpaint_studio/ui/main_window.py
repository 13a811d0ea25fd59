"""The main window: the canvas in the middle, docks around it, actions, menus and toolbars.

It wires the parts together and owns the document's life (open, save, export, autosave, close);
the parts themselves (canvas, panels, fill controller) only know the document they are given.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

from PySide6.QtCore import QByteArray, QSize, Qt, QTimer, QUrl
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QColor,
    QDragEnterEvent,
    QDropEvent,
    QIcon,
    QKeySequence,
    QPixmap,
)
from PySide6.QtWidgets import (
    QApplication,
    QColorDialog,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.autosave import AutosaveStore, RecoveryEntry
from ..core.document import MASK, Document
from ..core.imageio import ImageError
from ..core.project import ProjectError
from ..engines.base import EngineError
from . import files, theme
from .autosave import Autosaver, RecoveryDialog
from .brush import BrushSettings
from .canvas import Canvas
from .catalog import EngineCatalog
from .engine_panel import EnginePanel
from .fill import FillController
from .history_panel import HistoryPanel
from .jobs import FillJob, short_title
from .layers_panel import LayersPanel
from .settings import AppSettings
from .status import MessageBanner, StatusBar
from .steps_panel import StepsPanel
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
from .variants_panel import VariantsPanel

log = logging.getLogger(__name__)

APP_TITLE = "inpaint-studio"
SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "samples" / "coffee.png"

TOOL_SPECS = (  # id, icon, shortcut, tooltip
    ("mask_brush", "mdi6.brush", "B", "Mask brush: paint the area to fill ([ ] size, Shift+[ ] hardness)"),
    ("mask_eraser", "mdi6.eraser", "E", "Mask eraser: take area out of the mask"),
    (
        "lasso",
        "mdi6.lasso",
        "L",
        "Lasso: drag a freehand outline or click corners; Shift adds, Alt/Ctrl subtracts",
    ),
    ("rectangle", "mdi6.rectangle-outline", "R", "Rectangle: drag a box; Shift adds, Alt/Ctrl subtracts"),
    (
        "paint_brush",
        "mdi6.brush-variant",
        "P",
        "Paint brush: rough colours on a paint layer for the fill to follow (Alt-click picks)",
    ),
    ("eyedropper", "mdi6.eyedropper", "I", "Eyedropper: pick the paint colour from the picture"),
    ("pan", "mdi6.hand-back-right", "H", "Pan (or hold Space, or drag with the middle button)"),
)


class Welcome(QWidget):
    """Shown while no picture is open."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        title = QLabel("<h2>Open a photo to start</h2>", self)
        text = QLabel(
            "Drop a picture or a project here, or open one. Paint over what should go, "
            "press <b>Fill</b> (Ctrl+Return), and keep the fill you like.",
            self,
        )
        text.setWordWrap(True)
        text.setMaximumWidth(460)
        text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.open_button = QPushButton("Open…", self)
        theme.set_icon(self.open_button, "mdi6.folder-open")
        self.open_button.clicked.connect(window.open_dialog)
        self.sample_button = QPushButton("Open the sample photo", self)
        theme.set_icon(self.sample_button, "mdi6.image-outline")
        self.sample_button.clicked.connect(window.open_sample)
        self.recent = QVBoxLayout()
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        for w in (title, text, self.open_button, self.sample_button):
            layout.addWidget(w, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addLayout(self.recent)
        layout.addStretch(3)
        self._window = window

    def set_recent(self, paths: list[str]) -> None:
        while self.recent.count():
            w = self.recent.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        if paths:
            self.recent.addWidget(QLabel("<b>Recent</b>", self), 0, Qt.AlignmentFlag.AlignHCenter)
        for p in paths[:6]:
            b = QPushButton(Path(p).name, self)
            b.setFlat(True)
            b.setToolTip(p)
            b.clicked.connect(lambda _=False, p=p: self._window.open_path(p))
            self.recent.addWidget(b, 0, Qt.AlignmentFlag.AlignHCenter)


class MainWindow(QMainWindow):
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
        self._make_menus()
        self._make_toolbars()
        self.status = StatusBar(self.act_cancel, self)
        self.setStatusBar(self.status)
        self._connect()
        self._restore_settings()
        self.set_document(None)

    # =================================================================== construction
    def _action(
        self, text: str, slot=None, shortcut=None, icon: str | None = None, tip: str = "", checkable=False
    ) -> QAction:
        a = QAction(text, self)
        if icon:
            theme.set_icon(a, icon)
        if shortcut:
            if isinstance(shortcut, (list, tuple)):
                a.setShortcuts([QKeySequence(k) for k in shortcut])
            else:
                a.setShortcut(QKeySequence(shortcut))
        tip = tip or text.replace("…", "").replace("&", "")
        if shortcut and not isinstance(shortcut, (list, tuple)):
            tip = f"{tip} ({QKeySequence(shortcut).toString(QKeySequence.SequenceFormat.NativeText)})"
        a.setToolTip(tip)
        a.setStatusTip(tip)
        a.setCheckable(checkable)
        if slot is not None:
            (a.toggled if checkable else a.triggered).connect(slot)
        self.addAction(a)
        return a

    def _make_actions(self) -> None:
        A = self._action
        SK = QKeySequence.StandardKey
        # files
        self.act_open = A("&Open…", self.open_dialog, SK.Open, "mdi6.folder-open")
        self.act_sample = A("Open the &sample photo", self.open_sample, None, "mdi6.image-outline")
        self.act_save = A("&Save", self.save, SK.Save, "mdi6.content-save")
        self.act_save_as = A("Save &as…", self.save_as_dialog, SK.SaveAs)
        self.act_export = A("&Export image…", lambda: self.export_dialog(None), "Ctrl+E", "mdi6.export")
        self.act_export_layer = A(
            "Export &layer…", self.export_layer_dialog, None, "mdi6.file-export-outline"
        )
        self.act_close = A("&Close picture", self.close_document, SK.Close)
        self.act_quit = A("&Quit", self.close, SK.Quit)
        # edit
        self.act_undo = A("&Undo", self.undo, SK.Undo, "mdi6.undo")
        self.act_redo = A("&Redo", self.redo, ["Ctrl+Shift+Z", "Ctrl+Y"], "mdi6.redo", "Redo (Ctrl+Shift+Z)")
        # mask
        self.act_invert = A("&Invert mask", lambda: self._mask_op("invert"), "Ctrl+I", "mdi6.invert-colors")
        self.act_clear = A("&Clear mask", lambda: self._mask_op("clear"), "Ctrl+D", "mdi6.selection-remove")
        self.act_grow = A(
            "&Grow mask", lambda: self._mask_op("grow"), "Ctrl+Shift+G", "mdi6.arrow-expand-all"
        )
        self.act_shrink = A(
            "S&hrink mask", lambda: self._mask_op("shrink"), "Ctrl+Shift+H", "mdi6.arrow-collapse-all"
        )
        self.act_feather = A("&Feather mask", lambda: self._mask_op("feather"), "Ctrl+Shift+F", "mdi6.blur")
        self.act_show_mask = A("Show &mask", self._toggle_mask_visible, "Ctrl+H", "mdi6.eye", checkable=True)
        self.act_show_mask.setChecked(True)
        self.act_mask_color = A("Mask colour…", self._pick_mask_color)
        # layers
        self.act_new_layer = A("&New paint layer", self.new_paint_layer, "Ctrl+Shift+N", "mdi6.layers-plus")
        self.act_duplicate = A("&Duplicate layer", self.duplicate_layer, "Ctrl+J", "mdi6.content-duplicate")
        self.act_delete_layer = A("De&lete layer", self.delete_layer, None, "mdi6.delete-outline")
        self.act_merge_down = A("&Merge down", self.merge_down, "Ctrl+Shift+M", "mdi6.arrow-collapse-down")
        self.act_flatten = A("&Flatten", self.flatten, None, "mdi6.layers-triple")
        # view
        self.act_zoom_in = A(
            "Zoom &in",
            lambda: self.canvas.zoom_by(2**0.5),
            ["Ctrl+=", "Ctrl++", "+"],
            "mdi6.magnify-plus-outline",
            "Zoom in (Ctrl++)",
        )
        self.act_zoom_out = A(
            "Zoom &out",
            lambda: self.canvas.zoom_by(2**-0.5),
            ["Ctrl+-", "-"],
            "mdi6.magnify-minus-outline",
            "Zoom out (Ctrl+-)",
        )
        self.act_fit = A("&Fit to window", lambda: self.canvas.fit(), "Ctrl+0", "mdi6.fit-to-screen-outline")
        self.act_100 = A("&100 %", self.canvas.zoom_100, "Ctrl+1", "mdi6.numeric-1-box-outline")
        self.act_compare = A(
            "&Before / after",
            self._on_compare,
            "C",
            "mdi6.compare",
            "Compare with the picture before any fill or paint",
            checkable=True,
        )
        # fill
        self.act_fill = A(
            "&Fill",
            self.fill,
            ["Ctrl+Return", "Ctrl+Enter"],
            "mdi6.auto-fix",
            "Fill the masked area (Ctrl+Return)",
        )
        self.act_cancel = A(
            "Cancel", self.controller.cancel, "Esc", "mdi6.stop", "Stop the running fill (Esc)"
        )
        self.act_cancel.setEnabled(False)
        # brush
        self.act_smaller = A("Smaller brush", self.brush.shrink, "[")
        self.act_larger = A("Larger brush", self.brush.grow, "]")
        self.act_softer = A(
            "Softer brush", lambda: setattr(self.brush, "hardness", self.brush.hardness - 0.1), "Shift+["
        )
        self.act_harder = A(
            "Harder brush", lambda: setattr(self.brush, "hardness", self.brush.hardness + 0.1), "Shift+]"
        )
        # tools
        self.tool_group = QActionGroup(self)
        self.tool_actions: dict[str, QAction] = {}
        for tool_id, icon, key, tip in TOOL_SPECS:
            a = A(self.tools[tool_id].title, None, key, icon, tip, checkable=True)
            a.setData(tool_id)
            self.tool_group.addAction(a)
            self.tool_actions[tool_id] = a
        self.tool_group.triggered.connect(lambda a: self.set_tool(a.data()))
        self.doc_actions = [
            self.act_save,
            self.act_save_as,
            self.act_export,
            self.act_export_layer,
            self.act_close,
            self.act_invert,
            self.act_clear,
            self.act_grow,
            self.act_shrink,
            self.act_feather,
            self.act_show_mask,
            self.act_mask_color,
            self.act_new_layer,
            self.act_duplicate,
            self.act_delete_layer,
            self.act_merge_down,
            self.act_flatten,
            self.act_zoom_in,
            self.act_zoom_out,
            self.act_fit,
            self.act_100,
            self.act_compare,
        ]

    def _make_docks(self) -> None:
        self.layers_panel = LayersPanel(
            [
                self.act_new_layer,
                self.act_duplicate,
                self.act_merge_down,
                self.act_flatten,
                self.act_export_layer,
                self.act_delete_layer,
            ],
            self,
        )
        self.history_panel = HistoryPanel(self)
        self.engine_panel = EnginePanel(self.catalog, self.settings, self.act_fill, self)
        self.variants_panel = VariantsPanel(self.controller, self.canvas, self)
        self.steps_panel = StepsPanel(self.controller, self.canvas, self)

        def dock(title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
            d = QDockWidget(title, self)
            d.setObjectName(name)
            d.setWidget(widget)
            d.setFeatures(
                QDockWidget.DockWidgetFeature.DockWidgetMovable
                | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                | QDockWidget.DockWidgetFeature.DockWidgetClosable
            )
            self.addDockWidget(area, d)
            return d

        Left, Right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        self.engine_dock = dock("Engine", "engine_dock", self.engine_panel, Left)
        self.variants_dock = dock("Variants", "variants_dock", self.variants_panel, Left)
        self.steps_dock = dock("Steps", "steps_dock", self.steps_panel, Left)
        self.tabifyDockWidget(self.variants_dock, self.steps_dock)
        self.variants_dock.raise_()
        self.layers_dock = dock("Layers", "layers_dock", self.layers_panel, Right)
        self.history_dock = dock("History", "history_dock", self.history_panel, Right)
        self.splitDockWidget(self.layers_dock, self.history_dock, Qt.Orientation.Vertical)
        self.resizeDocks([self.engine_dock, self.layers_dock], [310, 270], Qt.Orientation.Horizontal)
        self.resizeDocks([self.engine_dock, self.variants_dock], [520, 260], Qt.Orientation.Vertical)
        self.resizeDocks([self.layers_dock, self.history_dock], [480, 220], Qt.Orientation.Vertical)

    def _make_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addActions([self.act_open, self.act_sample])
        self.recent_menu = m.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        m.addSeparator()
        m.addActions([self.act_save, self.act_save_as])
        m.addSeparator()
        m.addActions([self.act_export, self.act_export_layer])
        m.addSeparator()
        m.addActions([self.act_close, self.act_quit])
        m = mb.addMenu("&Edit")
        m.addActions([self.act_undo, self.act_redo])
        m = mb.addMenu("&Mask")
        m.addActions([self.act_invert, self.act_clear])
        m.addSeparator()
        m.addActions([self.act_grow, self.act_shrink, self.act_feather])
        m.addSeparator()
        m.addActions([self.act_show_mask, self.act_mask_color])
        m = mb.addMenu("&Layer")
        m.addActions([self.act_new_layer, self.act_duplicate, self.act_delete_layer])
        m.addSeparator()
        m.addActions([self.act_merge_down, self.act_flatten])
        m.addSeparator()
        m.addAction(self.act_export_layer)
        m = mb.addMenu("&Tools")
        m.addActions(list(self.tool_actions.values()))
        m.addSeparator()
        m.addActions([self.act_smaller, self.act_larger, self.act_softer, self.act_harder])
        m = mb.addMenu("&View")
        m.addActions([self.act_zoom_in, self.act_zoom_out, self.act_fit, self.act_100])
        m.addSeparator()
        m.addAction(self.act_compare)
        m.addSeparator()
        theme_menu = m.addMenu("&Theme")
        self.theme_group = QActionGroup(self)
        for name in theme.THEMES:
            a = theme_menu.addAction(name.capitalize())
            a.setCheckable(True)
            a.setData(name)
            self.theme_group.addAction(a)
        self.theme_group.triggered.connect(lambda a: self.set_theme(a.data()))
        m.addSeparator()
        self.docks_menu = m.addMenu("&Panels")
        for d in (self.engine_dock, self.layers_dock, self.history_dock, self.variants_dock, self.steps_dock):
            self.docks_menu.addAction(d.toggleViewAction())
        m = mb.addMenu("F&ill")
        m.addActions([self.act_fill, self.act_cancel])

    def _make_toolbars(self) -> None:
        main = QToolBar("Main", self)
        main.setObjectName("main_toolbar")
        main.setIconSize(QSize(20, 20))
        main.addActions([self.act_open, self.act_save, self.act_export])
        main.addSeparator()
        main.addActions([self.act_undo, self.act_redo])
        main.addSeparator()
        main.addActions([self.act_invert, self.act_clear, self.act_grow, self.act_shrink, self.act_feather])
        main.addSeparator()
        main.addActions([self.act_zoom_out, self.act_zoom_in, self.act_fit, self.act_100, self.act_compare])
        main.addSeparator()
        main.addAction(self.act_fill)
        fill_button = main.widgetForAction(self.act_fill)
        if isinstance(fill_button, QToolButton):
            fill_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, main)
        self.main_toolbar = main

        tools = QToolBar("Tools", self)
        tools.setObjectName("tools_toolbar")
        tools.setIconSize(QSize(22, 22))
        tools.addActions(list(self.tool_actions.values()))
        self.addToolBar(Qt.ToolBarArea.LeftToolBarArea, tools)
        self.tools_toolbar = tools

        opts = QToolBar("Tool options", self)
        opts.setObjectName("options_toolbar")
        self.size_spin = QSpinBox(opts)
        self.size_spin.setRange(1, 2000)
        self.size_spin.setSuffix(" px")
        self.size_spin.setToolTip("Brush size in picture pixels ([ and ])")
        self.size_spin.valueChanged.connect(lambda v: setattr(self.brush, "size", v))
        self.hardness_spin = QSpinBox(opts)
        self.hardness_spin.setRange(0, 100)
        self.hardness_spin.setSuffix(" %")
        self.hardness_spin.setToolTip("Brush hardness (Shift+[ and Shift+])")
        self.hardness_spin.valueChanged.connect(lambda v: setattr(self.brush, "hardness", v / 100))
        self.color_button = QToolButton(opts)
        self.color_button.setToolTip("Paint colour")
        self.color_button.clicked.connect(self._pick_paint_color)
        self.mode_combo = QComboBox(opts)
        self.mode_combo.addItem("Replace", "replace")
        self.mode_combo.addItem("Add", "add")
        self.mode_combo.addItem("Subtract", "subtract")
        self.mode_combo.setToolTip(
            "What a lasso or rectangle does to the mask (Shift adds, Alt/Ctrl subtracts)"
        )
        self.mode_combo.currentIndexChanged.connect(self._on_shape_mode)
        self.radius_spin = QSpinBox(opts)
        self.radius_spin.setRange(1, 500)
        self.radius_spin.setSuffix(" px")
        self.radius_spin.setValue(self.settings.get("mask/radius", 8))
        self.radius_spin.setToolTip("How far Grow, Shrink and Feather change the mask")
        self.radius_spin.valueChanged.connect(lambda v: self.settings.set("mask/radius", v))
        self._opt_actions = {
            "size": [opts.addWidget(QLabel(" Size ", opts)), opts.addWidget(self.size_spin)],
            "hardness": [opts.addWidget(QLabel("  Hardness ", opts)), opts.addWidget(self.hardness_spin)],
            "color": [opts.addWidget(QLabel("  Colour ", opts)), opts.addWidget(self.color_button)],
            "mode": [opts.addWidget(QLabel("  Mode ", opts)), opts.addWidget(self.mode_combo)],
        }
        opts.addSeparator()
        opts.addWidget(QLabel(" Grow / shrink / feather by ", opts))
        opts.addWidget(self.radius_spin)
        self.addToolBarBreak()
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, opts)
        self.options_toolbar = opts
        self._sync_brush_controls()

    def _connect(self) -> None:
        c = self.controller
        c.job_started.connect(self._on_job_started)
        c.job_queued.connect(self._on_job_queued)
        c.progress.connect(lambda job: self.status.set_progress(*job.progress))
        c.job_finished.connect(self._on_job_finished)
        c.busy_changed.connect(self._on_busy)
        self.canvas.view_changed.connect(lambda: self.status.set_zoom(self.canvas.scale))
        self.canvas.cursor_moved.connect(self.status.set_cursor)
        self.canvas.status_message.connect(lambda m: self.statusBar().showMessage(m, 3000))
        self.status.zoom_requested.connect(lambda s: self.canvas.zoom_to(s))
        self.status.fit_requested.connect(lambda: self.canvas.fit())
        self.brush.changed.connect(self._sync_brush_controls)
        self.variants_panel.error.connect(self.show_error)
        self.autosaver.failed.connect(lambda m: self.statusBar().showMessage(m, 8000))
        self.engine_panel.availability_changed.connect(lambda ok: self._update_actions())

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
    def open_dialog(self) -> None:
        start = self.settings.get("files/last_dir", str(Path.home()))
        dialog = QFileDialog(self, "Open a picture or project", start, files.OPEN_FILTER)
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(self.open_path)
        dialog.open()

    def open_sample(self) -> bool:
        return self.open_path(SAMPLE, remember=False)

    def open_path(self, path: str | Path, remember: bool = True) -> bool:
        """Open a picture or project in place of the current document (asking to save first)."""
        path = Path(path)
        if not self.maybe_save():
            return False
        try:
            with self._busy():
                opened = files.open_document(path)
        except (ImageError, ProjectError, OSError) as err:
            self.show_error(str(err))
            if remember and not path.exists():
                self.settings.remove_recent(str(path.resolve()))
            return False
        self.set_document(opened.document, opened.project, opened.source)
        if remember:
            self.settings.add_recent(path)
            self.settings.set("files/last_dir", str(path.resolve().parent))
        self.banner.hide()
        self.statusBar().showMessage(f"Opened {path.name}", 3000)
        return True

    def save(self) -> bool:
        if self._doc is None:
            return False
        if self.project_path is None:
            return self.save_as_dialog()
        return self.save_to(self.project_path)

    def save_as_dialog(self) -> bool:
        if self._doc is None:
            return False
        base = self.project_path or (
            self.source_path.with_suffix(".isproj") if self.source_path else Path.home() / "untitled.isproj"
        )
        path, _ = QFileDialog.getSaveFileName(self, "Save project", str(base), files.PROJECT_FILTER)
        return bool(path) and self.save_to(path)

    def save_to(self, path: str | Path) -> bool:
        doc = self._doc
        if doc is None:
            return False
        try:
            with self._busy():
                saved = files.save_document(doc, path)
        except (ProjectError, OSError, ValueError) as err:
            self.show_error(f"Could not save {Path(path).name}: {err}")
            return False
        self.project_path = saved
        self.settings.add_recent(saved)
        self.autosaver.set_title(self.document_title, str(saved))
        self.autosaver.discard()
        self._update_title()
        self.statusBar().showMessage(f"Saved {saved.name}", 3000)
        return True

    def export_dialog(self, target: str | None) -> None:
        doc = self._doc
        if doc is None:
            return
        stem = (self.project_path or self.source_path or Path("untitled")).stem
        if target == MASK:
            stem += "_mask"
        elif target is not None:
            stem += "_" + doc.layer(target).name.replace(" ", "_")
        else:
            stem += "_filled"
        start = Path(self.settings.get("files/export_dir", str(Path.home()))) / f"{stem}.png"
        path, chosen = QFileDialog.getSaveFileName(
            self, "Export", str(start), ";;".join(files.EXPORT_FILTERS)
        )
        if path:
            self.export_to(files.with_suffix_for_filter(path, chosen), target)

    def export_layer_dialog(self) -> None:
        target = self.layers_panel.current_id() or (self._doc.active_layer_id if self._doc else None)
        if target is not None:
            self.export_dialog(target)

    def export_to(self, path: str | Path, target: str | None = None) -> bool:
        doc = self._doc
        if doc is None:
            return False
        try:
            with self._busy():
                saved = files.export(doc, path, target)
        except (ImageError, OSError, KeyError) as err:
            self.show_error(f"Could not export: {err}")
            return False
        self.settings.set("files/export_dir", str(Path(saved).resolve().parent))
        self.statusBar().showMessage(f"Exported {Path(saved).name}", 3000)
        return True

    def close_document(self) -> bool:
        if not self.maybe_save():
            return False
        self.set_document(None)
        return True

    def ask_unsaved(self) -> str:
        """'save', 'discard' or 'cancel' for a document with unsaved changes."""
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Unsaved changes")
        box.setText(f"Save the changes to {self.document_title}?")
        box.setInformativeText("Your changes will be lost if you don't save them.")
        box.setStandardButtons(
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel
        )
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        answer = box.exec()
        return {
            QMessageBox.StandardButton.Save: "save",
            QMessageBox.StandardButton.Discard: "discard",
        }.get(QMessageBox.StandardButton(answer), "cancel")

    def maybe_save(self) -> bool:
        """Whether it is fine to drop the current document (asks when it has unsaved work)."""
        doc = self._doc
        if doc is None or not doc.modified:
            return True
        answer = self.ask_unsaved()
        if answer == "save":
            return self.save()
        return answer == "discard"

    # recovery ----------------------------------------------------------------------
    def offer_recovery(self) -> RecoveryDialog | None:
        try:
            entries = [
                e
                for e in self.autosaver.store.recoverable()
                if not self._doc or e.document_id != self._doc.id
            ]
        except OSError as err:
            log.warning("cannot look for autosaves: %s", err)
            return None
        if not entries:
            return None
        dialog = RecoveryDialog(entries, self)
        dialog.recover_requested.connect(self.recover)
        dialog.discard_requested.connect(lambda e: self.autosaver.store.discard(e.document_id))
        dialog.open()
        self._recovery_dialog = dialog
        return dialog

    def recover(self, entry: RecoveryEntry) -> bool:
        if not self.maybe_save():
            return False
        try:
            with self._busy():
                doc = self.autosaver.store.recover(entry)
        except (ProjectError, OSError) as err:
            self.show_error(str(err))
            return False
        source = Path(entry.source) if entry.source else None
        project = source if source is not None and source.suffix == ".isproj" else None
        self.set_document(doc, project, None if project else source)
        self.autosaver.tick()  # take ownership of the autosave right away
        self.banner.show_message(f"Recovered {entry.title}. Save it to keep it.", "info")
        return True

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
        with self._busy():
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
        self.canvas.set_compare(on)

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
            with self._busy():
                doc.merge_down(lid)
        except ValueError as err:
            self.show_error(str(err))

    def flatten(self) -> None:
        if self._doc is not None and len(self._doc.layers) > 1:
            with self._busy():
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
            with self._busy():
                job = self.controller.fill(**values)
        except (EngineError, ValueError) as err:
            self.show_error(str(err))
            return None
        return job

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
        elif job.status == "done":
            secs = max(0.0, job.ended_at - job.started_at)
            if len(job.variants) > 1:
                self.variants_dock.raise_()
                self.variants_dock.show()
                self.statusBar().showMessage(
                    f"{title}: {len(job.variants)} variants in {secs:.1f} s — pick one in the Variants panel",
                    8000,
                )
            else:
                self.statusBar().showMessage(f"{title} filled in {secs:.1f} s", 5000)

    def _on_busy(self, busy: bool) -> None:
        self.act_cancel.setEnabled(busy)
        self.status.set_running(busy)

    # =================================================================== messages
    def show_error(self, text: str, level: str = "error") -> None:
        """Non-modal: a banner over the canvas, and a line in the status bar."""
        self.banner.show_message(text, level)
        log.info("%s: %s", level, text)

    # =================================================================== events
    @contextmanager
    def _busy(self):
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            yield
        finally:
            QApplication.restoreOverrideCursor()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        urls = event.mimeData().urls()
        if any(u.isLocalFile() and files.can_open(u.toLocalFile()) for u in urls):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        for u in event.mimeData().urls():
            path = u.toLocalFile() if isinstance(u, QUrl) and u.isLocalFile() else ""
            if path and files.can_open(path):
                event.acceptProposedAction()
                # open after the drop finishes, so a question dialog does not block the drag
                QTimer.singleShot(0, lambda p=path: self.open_path(p))
                return

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._closing and not self.maybe_save():
            event.ignore()
            return
        self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        """Stop the runner and autosave, forget the autosave of work that was saved or dropped."""
        if self._closing:
            return
        self._closing = True
        self.save_settings()
        self.controller.shutdown()
        self.autosaver.shutdown()
        self.autosaver.discard()
        self.canvas.set_tool(None)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_files()
        for p in recent:
            a = self.recent_menu.addAction(Path(p).name)
            a.setToolTip(p)
            a.setStatusTip(p)
            a.triggered.connect(lambda _=False, p=p: self.open_path(p))
        if recent:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", self.settings.clear_recent)
        else:
            self.recent_menu.addAction("(none yet)").setEnabled(False)
