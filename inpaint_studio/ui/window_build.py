"""How the main window is furnished: its actions (with icons and shortcuts), docks, menus,
toolbars and the welcome page. A mixin of :class:`MainWindow`, kept apart so that the window's
behaviour does not drown in construction code."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QLabel,
    QPushButton,
    QSpinBox,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from . import theme
from .engine_panel import EnginePanel
from .history_panel import HistoryPanel
from .layers_panel import LayersPanel
from .steps_panel import StepsPanel
from .variants_panel import VariantsPanel

log = logging.getLogger(__name__)


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

    def __init__(self, window) -> None:
        super().__init__(window)
        title = QLabel("<h2>Open a photo to start</h2>", self)
        text = QLabel(
            "Drop a picture or a project here, or open one. Paint over what should go, "
            "press <b>Fill</b> (Ctrl+Return), and keep the fill you like.",
            self,
        )
        text.setWordWrap(True)
        text.setFixedWidth(460)
        text.setMinimumHeight(text.heightForWidth(460))
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


class WindowBuilder:
    """Builds the main window's actions, docks, menus and toolbars (a mixin of MainWindow)."""

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
        # (lambdas: triggered(bool) must not reach save's ``then`` argument)
        self.act_save = A("&Save", lambda: self.save(), SK.Save, "mdi6.content-save")
        self.act_save_as = A("Save &as…", lambda: self.save_as_dialog(), SK.SaveAs)
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
        self.act_split = A(
            "&Split before / after",
            self._on_split,
            "Shift+C",
            "mdi6.compare-horizontal",
            "Before on the left of a divider, after on the right; drag the divider across the picture",
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
        self.act_models = A(
            "&Models…",
            self.show_models,
            None,
            "mdi6.download-box-outline",
            "Download and manage model weights",
        )
        # brush
        self.act_smaller = A("Smaller brush", self.brush.shrink, "[")
        self.act_larger = A("Larger brush", self.brush.grow, "]")
        self.act_softer = A(
            "Softer brush", lambda: setattr(self.brush, "hardness", self.brush.hardness - 0.1), "Shift+["
        )
        self.act_harder = A(
            "Harder brush", lambda: setattr(self.brush, "hardness", self.brush.hardness + 0.1), "Shift+]"
        )
        self.act_swap = A("Swap mask brush and eraser", self.swap_brush_eraser, "X", "mdi6.swap-horizontal")
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
            self.act_split,
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
        self.variants_dock = dock("Fills", "variants_dock", self.variants_panel, Left)
        self.steps_dock = dock("Steps", "steps_dock", self.steps_panel, Left)
        self.tabifyDockWidget(self.variants_dock, self.steps_dock)
        self.variants_dock.raise_()
        self.layers_dock = dock("Layers", "layers_dock", self.layers_panel, Right)
        self.history_dock = dock("History", "history_dock", self.history_panel, Right)
        self.splitDockWidget(self.layers_dock, self.history_dock, Qt.Orientation.Vertical)
        self.resizeDocks([self.engine_dock, self.layers_dock], [330, 270], Qt.Orientation.Horizontal)
        self.resizeDocks([self.engine_dock, self.variants_dock], [440, 340], Qt.Orientation.Vertical)
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
        m.addActions([self.act_swap, self.act_smaller, self.act_larger, self.act_softer, self.act_harder])
        m = mb.addMenu("&View")
        m.addActions([self.act_zoom_in, self.act_zoom_out, self.act_fit, self.act_100])
        m.addSeparator()
        m.addActions([self.act_compare, self.act_split])
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
        m.addSeparator()
        m.addAction(self.act_models)

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
        main.addActions(
            [
                self.act_zoom_out,
                self.act_zoom_in,
                self.act_fit,
                self.act_100,
                self.act_compare,
                self.act_split,
            ]
        )
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

    def show_models(self, catalogue=None, importer=None, endpoint=None):
        """The Models dialog (modeless); the engine list is re-read when something is installed or removed."""
        from .models_dialog import ModelsDialog

        dialog = ModelsDialog(catalogue, importer, endpoint, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.installed_changed.connect(lambda: self.engine_panel.refresh(keep=True))
        dialog.show()
        return dialog

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
