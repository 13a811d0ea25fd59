"""The engine dock: pick an engine, set it up, and Fill.

Engines that cannot run are still listed, greyed, with the reason as a tooltip; choosing one
shows the reason and the ways to fix it (point at a weights folder, import an official
checkpoint, or read how to train one). The settings form comes from the engine's parameter
schema; values are remembered per engine.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QFileSystemWatcher, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core import paths
from ..session.catalog import CatalogEntry, EngineCatalog
from ..session.checkpoints import source_of
from . import theme
from .param_form import ParamForm
from .runner import run_in_thread
from .settings import AppSettings

ID_ROLE = Qt.ItemDataRole.UserRole + 1
MAX_SEED = 2**31 - 1
DEVICES = (("Automatic", ""), ("CPU", "cpu"), ("CUDA GPU", "cuda"), ("Apple MPS", "mps"))
MIN_WIDTH = 300
FAST_FILL_S = 2.0  # engines that fill faster than this get fast remove on by default
WATCH_DELAY_MS = 400  # the model store settles (a bundle is several files) before a re-check


class EnginePanel(QWidget):
    engine_changed = Signal(str)
    availability_changed = Signal(bool)  # whether the chosen engine can run

    def __init__(
        self,
        catalog: EngineCatalog,
        settings: AppSettings,
        fill_action: QAction,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.catalog = catalog
        self.settings = settings
        self.fill_action = fill_action
        self._entries: dict[str, CatalogEntry] = {}
        self._engine_id = ""

        self.combo = QComboBox(self)
        self.combo.setModel(QStandardItemModel(self.combo))
        self.combo.currentIndexChanged.connect(self._on_combo)
        self.refresh_button = QToolButton(self)
        theme.set_icon(self.refresh_button, "mdi6.refresh")
        self.refresh_button.setToolTip("Look for engines and weights again")
        self.refresh_button.setAutoRaise(True)
        self.refresh_button.clicked.connect(lambda: self.refresh(keep=True))
        top = QHBoxLayout()
        top.addWidget(self.combo, 1)
        top.addWidget(self.refresh_button)
        # which weights the engine uses: the newest in the store unless the person picks one
        self.weights_combo = QComboBox(self)
        self.weights_combo.setToolTip(
            "Which weights this engine uses (the newest in the model store by default)"
        )
        self.weights_combo.activated.connect(self._on_weights_picked)
        self.import_menu = QMenu(self)
        self.import_menu.addAction("Checkpoint file…", lambda: self.import_checkpoint(folder=False))
        self.import_menu.addAction(
            "Folder (a release, or a trained RUN/weights)…", lambda: self.import_checkpoint(folder=True)
        )
        self.import_more = QToolButton(self)  # more weights for an engine that already runs
        theme.set_icon(self.import_more, "mdi6.file-import-outline")
        self.import_more.setToolTip(
            "Import weights: a checkpoint file, or a folder (a release, or a trained RUN/weights)"
        )
        self.import_more.setAutoRaise(True)
        self.import_more.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.import_more.setMenu(self.import_menu)
        self.weights_row = QWidget(self)
        wr = QHBoxLayout(self.weights_row)
        wr.setContentsMargins(0, 0, 0, 0)
        wr.addWidget(QLabel("Weights", self.weights_row))
        wr.addWidget(self.weights_combo, 1)
        wr.addWidget(self.import_more)

        self.description = QLabel(self)
        self.description.setWordWrap(True)
        self.description.setEnabled(False)
        # an engine that runs but wants something set first (e.g. MTA's base model moved away)
        self.note = QLabel(self)
        self.note.setWordWrap(True)
        self.note.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.LinksAccessibleByMouse
        )
        self.note.linkActivated.connect(lambda _link: self._open_model_manager())
        self.note.hide()

        # what is wrong, and how to fix it
        self.fix_box = QFrame(self)
        self.fix_box.setFrameShape(QFrame.Shape.StyledPanel)
        self.reason = QLabel(self.fix_box)
        self.reason.setWordWrap(True)
        self.reason.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.weights_button = QPushButton("Weights folder…")
        theme.set_icon(self.weights_button, "mdi6.folder-search-outline")
        self.weights_button.clicked.connect(self.choose_weights_folder)
        self.import_button = QPushButton("Import…")
        theme.set_icon(self.import_button, "mdi6.file-import-outline")
        self.import_button.setMenu(self.import_menu)
        self.train_button = QPushButton("How to train…")
        theme.set_icon(self.train_button, "mdi6.school-outline")
        self.train_button.clicked.connect(self.show_training)
        self.weights_button.setToolTip("Use the weights in a folder you choose")
        self.import_button.setToolTip(
            "Import a public checkpoint you have (converted into the model store), or weights trained elsewhere"
        )
        self.source_label = QLabel(self.fix_box)  # where the public checkpoint comes from
        self.source_label.setWordWrap(True)
        self.source_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.models_button = QPushButton("Models…")  # shown once set_model_manager is called
        theme.set_icon(self.models_button, "mdi6.download-box-outline")
        self.models_button.clicked.connect(self._open_model_manager)
        self.models_button.setToolTip("Download a public checkpoint in the Models dialog")
        self.models_button.hide()
        self._model_manager: Callable[[str], object] | None = None
        fix = QVBoxLayout(self.fix_box)
        fix.addWidget(self.reason)
        fix.addWidget(self.source_label)
        fix_buttons = QGridLayout()  # two a row: the dock stays narrow, the panel scrolls only down
        for k, b in enumerate(
            (self.import_button, self.models_button, self.weights_button, self.train_button)
        ):
            fix_buttons.addWidget(b, k // 2, k % 2)
        fix.addLayout(fix_buttons)
        self.weights_label = QLabel(self)
        self.weights_label.setWordWrap(True)
        self.weights_label.setEnabled(False)

        self.form = ParamForm(self)
        self.form.changed.connect(self._save_params)
        self.reset_button = QPushButton("Defaults", self)
        self.reset_button.setToolTip("Put this engine's settings back to their defaults")
        self.reset_button.clicked.connect(self.form.reset)
        settings_box = QGroupBox("Settings", self)
        sb = QVBoxLayout(settings_box)
        sb.addWidget(self.form)
        sb.addWidget(self.reset_button, 0, Qt.AlignmentFlag.AlignRight)

        # seed, variants, device
        self.seed = QSpinBox(self)
        self.seed.setRange(0, MAX_SEED)
        self.seed.setValue(settings.get("engine/seed", 1234))
        self.seed.setToolTip("The same seed, settings and mask give the same fill")
        self.dice = QToolButton(self)
        theme.set_icon(self.dice, "mdi6.dice-5")
        self.dice.setToolTip("A new random seed")
        self.dice.setAutoRaise(True)
        self.dice.clicked.connect(self.roll_seed)
        self.new_seed = QCheckBox("new each fill", self)
        self.new_seed.setChecked(settings.get("engine/new_seed", True))
        self.new_seed.setToolTip("Roll a new seed before every fill (the seed used is kept in the layer)")
        self._seed_widgets = (self.seed, self.dice, self.new_seed)
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.dice)
        seed_row.addWidget(self.new_seed)
        self.variants = QSpinBox(self)
        self.variants.setRange(1, 32)
        self.variants.setValue(settings.get("engine/variants", 4))
        self.variants.setToolTip("How many alternative fills to make; browse them in the Variants panel")
        self.device = QComboBox(self)
        for title, dev in DEVICES:
            self.device.addItem(title, dev)
        self.device.setCurrentIndex(max(0, self.device.findData(settings.get("engine/device", ""))))
        self.device.currentIndexChanged.connect(self._on_device)
        self._on_device()
        self.fast_remove = QCheckBox("Fill when the stroke ends", self)
        self.fast_remove.setToolTip(
            "Fast remove: each mask stroke is filled as soon as it ends and the mask is cleared "
            "(one undo step). On by default for engines that fill within a couple of seconds."
        )
        self.fast_remove.toggled.connect(self._on_fast_remove)
        general = QFormLayout()
        general.addRow("Seed", seed_row)
        general.addRow("Variants", self.variants)
        general.addRow("Device", self.device)

        self.prompt = QPlainTextEdit(self)
        self.prompt.setPlaceholderText("Describe what should appear in the hole")
        self.prompt.setMaximumHeight(70)
        self.prompt_label = QLabel("Prompt", self)
        self.negative_prompt = QPlainTextEdit(self)
        self.negative_prompt.setPlaceholderText("What the fill should avoid (optional)")
        self.negative_prompt.setMaximumHeight(46)
        self.negative_label = QLabel("Negative prompt", self)

        self.fill_button = QToolButton(self)
        self.fill_button.setDefaultAction(fill_action)
        self.fill_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.fill_button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.fill_button.setMinimumHeight(36)
        font = self.fill_button.font()
        font.setBold(True)
        self.fill_button.setFont(font)
        self.fill_button.setObjectName("fill_button")
        self.fill_button.setStyleSheet(
            "#fill_button { background: #2f6fd0; color: white; border: 1px solid #2559a8;"
            " border-radius: 5px; padding: 4px 12px; }"
            "#fill_button:hover { background: #3a7ee0; }"
            "#fill_button:pressed { background: #2559a8; }"
            "#fill_button:disabled { background: #7d8796; color: #e8e8e8; border-color: #6b7482; }"
        )

        # everything but the Fill button scrolls, so a long settings list never squeezes the
        # docks below (the Fills strip keeps its room)
        content = QWidget(self)
        body = QVBoxLayout(content)
        body.setContentsMargins(0, 0, 0, 0)
        body.addWidget(self.description)
        body.addWidget(self.note)
        body.addWidget(self.fix_box)
        body.addWidget(self.weights_label)
        body.addWidget(self.prompt_label)
        body.addWidget(self.prompt)
        body.addWidget(self.negative_label)
        body.addWidget(self.negative_prompt)
        body.addWidget(settings_box)
        body.addLayout(general)
        body.addStretch(1)
        self.scroll = QScrollArea(self)
        self.scroll.setWidget(content)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Ignored)
        self.scroll.setMinimumWidth(MIN_WIDTH)  # the seed row beside a scroll bar, unclipped

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top)
        layout.addWidget(self.weights_row)
        layout.addWidget(self.fast_remove)
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.fill_button)

        # weights trained or imported while the app runs show up without pressing refresh
        self.watcher = QFileSystemWatcher(self)
        self._watch_timer = QTimer(self, singleShot=True, interval=WATCH_DELAY_MS)
        self._watch_timer.timeout.connect(self._on_store_changed)
        self.watcher.directoryChanged.connect(lambda _path: self._watch_timer.start())

        self.catalog.weights.update(settings.get_json("engine/weights", {}) or {})
        self.refresh(select=settings.get("engine/id", ""))
        self._watch_store()

    # ------------------------------------------------------------------ engines
    @property
    def engine_id(self) -> str:
        return self._engine_id

    @property
    def entries(self) -> list[CatalogEntry]:
        return list(self._entries.values())

    @property
    def entry(self) -> CatalogEntry | None:
        return self._entries.get(self._engine_id)

    def refresh(self, select: str | None = None, keep: bool = False) -> None:
        """Re-read the engine list and every engine's availability."""
        from ..engines.registry import DEFAULT_ENGINE

        want = self._engine_id if keep else (select or self._engine_id or DEFAULT_ENGINE)
        entries = self.catalog.entries()
        self._entries = {e.id: e for e in entries}
        model: QStandardItemModel = self.combo.model()
        self.combo.blockSignals(True)
        model.clear()
        disabled = self.palette().color(self.palette().ColorGroup.Disabled, self.palette().ColorRole.Text)
        for e in entries:
            title = e.title if e.availability.ok else f"{e.title} — unavailable"
            item = QStandardItem(title)
            item.setData(e.id, ID_ROLE)
            if e.availability.ok:
                item.setToolTip(e.info.description if e.info else "")
            else:
                item.setForeground(disabled)
                source = source_of(e.id)
                tip = e.availability.reason
                if source is not None:
                    tip += f"\n\n{source.text}\nGet it in Models…, or import a copy you have (Import…)."
                item.setToolTip(tip)
            model.appendRow(item)
        ids = [e.id for e in entries]
        if want not in ids:
            from ..engines.registry import DEFAULT_ENGINE as default

            want = default if default in ids else (ids[0] if ids else "")
        self.combo.setCurrentIndex(ids.index(want) if want in ids else -1)
        self.combo.blockSignals(False)
        self._show(want)

    def select(self, engine_id: str) -> None:
        for i in range(self.combo.count()):
            if self.combo.itemData(i, ID_ROLE) == engine_id:
                self.combo.setCurrentIndex(i)
                return
        raise KeyError(engine_id)

    def _on_combo(self, index: int) -> None:
        engine_id = self.combo.itemData(index, ID_ROLE) if index >= 0 else ""
        self._show(engine_id or "")

    def _show(self, engine_id: str) -> None:
        self._engine_id = engine_id
        entry = self._entries.get(engine_id)
        info = entry.info if entry else None
        ok = bool(entry and entry.availability.ok)
        self.description.setText(info.description if info else "")
        self.fix_box.setVisible(entry is not None and not ok)
        note = entry.availability.reason if entry is not None and ok else ""
        self.note.setVisible(bool(note))
        # a runnable engine's note is about a part it lacks (a base model, a decoder): where parts come from
        models = ' <a href="models">Models…</a>' if self._model_manager is not None else ""
        self.note.setText(f"<b>Note:</b> {_html(note)}{models}" if note else "")
        if entry is not None and not ok:
            self.reason.setText(f"<b>{entry.title} cannot run.</b><br>{_html(entry.availability.reason)}")
            needs = bool(info and info.needs_weights)
            source = source_of(engine_id)
            self.source_label.setVisible(source is not None)
            self.source_label.setText(f"<b>Where to get weights.</b> {_html(source.text)}" if source else "")
            self.weights_button.setVisible(needs)
            self.import_button.setVisible(needs and entry.engine_class is not None)
            self.models_button.setVisible(needs and self._model_manager is not None)
            self.train_button.setVisible(bool(info and info.training_hint) or needs)
        self._fill_weights_combo(entry)
        self.fast_remove.blockSignals(True)
        self.fast_remove.setChecked(self.fast_remove_default(engine_id))
        self.fast_remove.blockSignals(False)
        chosen = self.catalog.weights.get(engine_id)
        self.weights_label.setVisible(bool(chosen))
        self.weights_label.setText(f"Weights: {chosen}" if chosen else "")
        shown = tuple(p for p in info.params if p.name != "device") if info else ()  # the Device row sets it
        self.form.set_schema(shown, self.settings.get_json(f"engine/params/{engine_id}", {}))
        self.form.setEnabled(info is not None)
        takes_prompt = bool(info and info.takes_prompt)
        for widget in (self.prompt, self.prompt_label):
            widget.setEnabled(takes_prompt)
        for widget in (self.negative_prompt, self.negative_label):
            widget.setVisible(takes_prompt)  # shown only where it means something
        self.prompt.setPlaceholderText(
            "Describe what should appear in the hole"
            if takes_prompt
            else "This engine does not take a prompt"
        )
        self.variants.setEnabled(bool(info and info.yields_variants))
        for widget in self._seed_widgets:
            widget.setEnabled(bool(info and info.seeded))
        self.fill_action.setEnabled(ok)
        self.fill_action.setToolTip(
            "Fill the masked area (Ctrl+Return)" if ok else (entry.availability.reason if entry else "")
        )
        if engine_id:
            self.settings.set("engine/id", engine_id)
        self.engine_changed.emit(engine_id)
        self.availability_changed.emit(ok)

    # ------------------------------------------------------------------ weights picker, store watch
    def _fill_weights_combo(self, entry: CatalogEntry | None) -> None:
        needs = bool(entry and entry.info and entry.info.needs_weights)
        folders = self.catalog.weights_choices(entry.id) if entry is not None and needs else []
        chosen = self.catalog.weights.get(entry.id) if entry is not None else None
        combo = self.weights_combo
        combo.blockSignals(True)
        combo.clear()
        combo.addItem(f"Newest: {folders[0].name}" if folders else "Newest", "")
        for folder in folders:
            combo.addItem(folder.name, str(folder))
            combo.setItemData(combo.count() - 1, str(folder), Qt.ItemDataRole.ToolTipRole)
        if chosen and combo.findData(chosen) < 0:
            combo.addItem(Path(chosen).name, chosen)
        combo.setCurrentIndex(max(0, combo.findData(chosen or "")))
        combo.blockSignals(False)
        self.weights_row.setVisible(needs and (bool(folders) or bool(chosen)))
        self.import_more.setVisible(entry is not None and entry.engine_class is not None)

    def _on_weights_picked(self, index: int) -> None:
        folder = self.weights_combo.itemData(index) or None
        if self._engine_id and folder != self.catalog.weights.get(self._engine_id):
            self.set_weights_folder(self._engine_id, folder)

    def _watch_store(self) -> None:
        """Watch the model store, each engine's folder in it and each weights folder."""
        root = paths.models_dir()
        try:
            root.mkdir(parents=True, exist_ok=True)
            engines = [p for p in root.iterdir() if p.is_dir()]
            wanted = [root, *engines, *(b for d in engines for b in d.iterdir() if b.is_dir())]
        except OSError:
            return
        have = set(self.watcher.directories())
        new = [str(p) for p in wanted if str(p) not in have]
        if new:
            self.watcher.addPaths(new)

    def _on_store_changed(self) -> None:
        self._watch_store()
        self.refresh(keep=True)

    def set_model_manager(self, open_manager: Callable[[str], object] | None) -> None:
        """Offer "Models…" (the model manager) beside Import for engines without weights; ``open_manager``
        gets the engine id (the hook for ``ui/models_dialog.py``'s ModelsDialog)."""
        self._model_manager = open_manager
        self._show(self._engine_id)

    def _open_model_manager(self) -> None:
        if self._model_manager is not None:
            self._model_manager(self._engine_id)

    # ------------------------------------------------------------------ fast remove
    def fast_remove_default(self, engine_id: str) -> bool:
        """The person's choice for this engine, else on for the classical engine and for any
        engine whose last single fill took under FAST_FILL_S."""
        chosen = self.settings.get(f"engine/fast_remove/{engine_id}", None)
        if chosen is not None:
            return str(chosen).lower() in ("true", "1")
        if engine_id == "classical":
            return True
        took = self.settings.get(f"engine/fill_s/{engine_id}", None)
        try:
            return took is not None and float(took) < FAST_FILL_S
        except (TypeError, ValueError):
            return False

    def record_fill_time(self, engine_id: str, seconds: float) -> None:
        """Remember how long a single fill took (it decides fast remove's default)."""
        self.settings.set(f"engine/fill_s/{engine_id}", round(float(seconds), 3))
        if self._engine_id == engine_id:
            self.fast_remove.blockSignals(True)
            self.fast_remove.setChecked(self.fast_remove_default(engine_id))
            self.fast_remove.blockSignals(False)

    def _on_fast_remove(self, on: bool) -> None:
        if self._engine_id:
            self.settings.set(f"engine/fast_remove/{self._engine_id}", bool(on))

    def fast_remove_on(self) -> bool:
        """Whether a finished mask stroke should be filled at once."""
        entry = self.entry
        return self.fast_remove.isChecked() and bool(entry and entry.availability.ok)

    # ------------------------------------------------------------------ values
    def roll_seed(self) -> int:
        self.seed.setValue(random.randint(0, MAX_SEED))
        return self.seed.value()

    def request_values(self) -> dict[str, Any]:
        """Everything FillController.fill needs (rolls the seed first when asked to)."""
        if self.new_seed.isChecked() and self.seed.isEnabled():  # a deterministic engine keeps it
            self.roll_seed()
        self.settings.set("engine/seed", self.seed.value())
        self.settings.set("engine/new_seed", self.new_seed.isChecked())
        self.settings.set("engine/variants", self.variants.value())
        return {
            "engine_id": self._engine_id,
            "prompt": self.prompt.toPlainText().strip() if self.prompt.isEnabled() else "",
            "negative_prompt": self.negative_prompt.toPlainText().strip() if self.prompt.isEnabled() else "",
            "seed": self.seed.value(),
            "variants": self.variants.value() if self.variants.isEnabled() else 1,
            "params": self.form.values(),
        }

    def _save_params(self) -> None:
        if self._engine_id:
            self.settings.set_json(f"engine/params/{self._engine_id}", self.form.values())

    def _on_device(self) -> None:
        dev = self.device.currentData() or None
        if dev != self.catalog.device:
            self.catalog.device = dev
            self.catalog.forget()
        self.settings.set("engine/device", dev or "")

    # ------------------------------------------------------------------ fixing
    def set_weights_folder(self, engine_id: str, folder: str | None) -> None:
        self.catalog.set_weights(engine_id, folder)
        self.settings.set_json("engine/weights", dict(self.catalog.weights))
        self.refresh(keep=True)

    def choose_weights_folder(self) -> None:
        engine_id = self._engine_id
        start = str(paths.engine_models_dir(engine_id))
        dialog = QFileDialog(
            self, f"Weights folder for {self.entry.title if self.entry else engine_id}", start
        )
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(lambda folder: self.set_weights_folder(engine_id, folder))
        dialog.open()

    def import_checkpoint(self, folder: bool = False) -> None:
        """Ask for a checkpoint file, or a folder (a release unpacked, or weights trained elsewhere)."""
        entry = self.entry
        if entry is None or entry.engine_class is None:
            return
        what = "folder" if folder else "checkpoint"
        dialog = QFileDialog(self, f"Import a {entry.title} {what}", str(Path.home()))
        if folder:
            dialog.setFileMode(QFileDialog.FileMode.Directory)
            dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
        else:
            dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
            dialog.setNameFilter("Checkpoints (*.pkl *.pth *.pt *.ckpt *.safetensors);;All files (*)")
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(lambda f: self.run_import(entry, Path(f)))
        dialog.open()

    def run_import(self, entry: CatalogEntry, source: Path) -> None:
        """Convert ``source`` into the model store on a background thread (weights inpaint-studio
        trained elsewhere are checked and copied)."""
        from ..model_import import destination, import_engine_weights

        assert entry.engine_class is not None
        try:
            dest = destination(entry.id, source)
        except ValueError as err:
            self._import_failed(str(err))
            return
        self.import_button.setEnabled(False)
        self.import_more.setEnabled(False)
        self.reason.setText(f"Importing {source.name}…")
        if not self.fix_box.isVisibleTo(self):  # the engine runs: say it where the person looks
            self.note.setText(f"Importing {_html(source.name)}…")
            self.note.show()
        cls = entry.engine_class

        def done(result, error) -> None:
            self.import_button.setEnabled(True)
            self.import_more.setEnabled(True)
            if error is not None:
                self.refresh(keep=True)
                self._import_failed(str(error))
                return
            self.set_weights_folder(entry.id, None)  # the store's newest bundle is used
            self.refresh(keep=True)

        self._import_thread = run_in_thread(lambda: import_engine_weights(cls, source, dest), done)

    def _import_failed(self, error: str) -> None:
        if self.fix_box.isVisibleTo(self):
            self.reason.setText(f"<b>Import failed.</b><br>{_html(error)}")
            return
        # the engine runs on other weights and the fix box is hidden: say it in a box
        box = QMessageBox(QMessageBox.Icon.Warning, "Import failed", error, parent=self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def show_training(self) -> None:
        entry = self.entry
        if entry is None:
            return
        hint = entry.info.training_hint if entry.info and entry.info.training_hint else ""
        text = (
            f"<p>{_html(entry.availability.reason)}</p>"
            + (f"<p>{_html(hint)}</p>" if hint else "")
            + f"<p>Trained or imported weights go to <code>{_html(str(paths.engine_models_dir(entry.id)))}</code>,"
            " where the app finds them as soon as they are written.</p>"
        )
        box = QMessageBox(QMessageBox.Icon.Information, f"Getting {entry.title} to run", text, parent=self)
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()


def _html(text: str) -> str:
    import html

    # a zero-width space after each slash lets a long path wrap inside the narrow dock
    return html.escape(text).replace("`", "").replace("/", "/\u200b")
