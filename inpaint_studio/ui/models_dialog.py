"""The Models dialog: for every engine, the public checkpoints it can use and what is installed, with
Download (progress bar, Cancel) and Remove.

All the work is the model manager's (``inpaint_studio.hub``), shared with ``inpaint-studio models``.
Downloads and sha256 digests run on a background thread; progress reaches the window through the
GUI-thread relay, at most a few times a second, so the window stays responsive. Nothing downloads
unless the person presses Download.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..hub import store
from ..hub.catalogue import Catalogue, CatalogueEntry, ManualSource, builtin
from ..hub.download import DownloadCancelled, human_size
from ..hub.install import FileProgress, Importer, InstallResult, install, manual_instructions
from . import theme
from .runner import run_in_thread
from .threads import call_on_main_thread

KIND_ROLE = Qt.ItemDataRole.UserRole
ENGINE_TITLES = {
    "mat": "MAT",
    "mae": "MAE (a part other models build on)",
    "maskgit": "MaskGIT",
    "sd15": "Stable Diffusion 1.5 inpainting",
    "mta": "MTA (BrushNet-style branch)",
    "asuka": "ASUKA",
    "asuka-prior": "ASUKA MAE prior",
    "inpnet": "InP-Net",
}
PROGRESS_INTERVAL_S = 0.1
STATE_LABELS = {
    "installed": "installed",
    "downloaded": "downloaded, not imported",
    "partial": "partly downloaded",
    "missing": "not installed",
}


class ModelsDialog(QDialog):
    """``catalogue``, ``importer`` and ``endpoint`` can be injected (tests point them at a loopback server)."""

    download_finished = Signal(
        str, str
    )  # entry id, "done" | "cancelled" | "failed" (a download or an import)
    installed_changed = Signal()

    def __init__(
        self,
        catalogue: Catalogue | None = None,
        importer: Importer | None = None,
        endpoint: str | None = None,
        parent: QWidget | None = None,
        chunk_size: int | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.setObjectName("models_dialog")
        self.catalogue = catalogue or builtin()
        self.importer = importer if importer is not None else _default_importer()
        self.endpoint = endpoint
        self.chunk_size = chunk_size
        self.confirm: Callable[[str], bool] = self._ask
        self.choose_file: Callable[[CatalogueEntry], Path | None] = self._pick_file
        self._cancel = threading.Event()
        self._active: str | None = None  # entry id being downloaded
        self._last_progress = 0.0
        self._installed: list[store.Installed] = []
        self._alive = True
        self._thread: threading.Thread | None = None
        self._digesting = self._digest_again = False
        self._build()
        self.refresh()
        self.resize(1000, 620)

    # ------------------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.tree = QTreeWidget()
        self.tree.setObjectName("models_tree")
        self.tree.setHeaderLabels(["Model", "Id", "Size", "Checked against", "License", "Status"])
        self.tree.setAlternatingRowColors(True)
        self.tree.setRootIsDecorated(True)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in (1, 2, 3, 4, 5):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.currentItemChanged.connect(lambda *_: self._update_buttons())

        self.details = QLabel()
        self.details.setObjectName("models_details")
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.RichText)
        self.details.setOpenExternalLinks(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.details)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.tree)
        split.addWidget(scroll)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([380, 200])

        self.download_btn = QPushButton("Download")
        self.download_btn.setObjectName("download_button")
        theme.set_icon(self.download_btn, "mdi6.download")
        self.download_btn.clicked.connect(self.download_selected)
        self.cancel_btn = QPushButton("Cancel download")
        self.cancel_btn.setObjectName("cancel_button")
        theme.set_icon(self.cancel_btn, "mdi6.close-circle-outline")
        self.cancel_btn.clicked.connect(self.cancel_download)
        self.remove_btn = QPushButton("Remove")
        self.remove_btn.setObjectName("remove_button")
        theme.set_icon(self.remove_btn, "mdi6.delete-outline")
        self.remove_btn.clicked.connect(self.remove_selected)
        self.import_btn = QPushButton("Import file…")
        self.import_btn.setObjectName("import_button")
        self.import_btn.setToolTip(
            "Import a checkpoint you already have (or fetched by hand) for the selected model"
        )
        theme.set_icon(self.import_btn, "mdi6.file-import-outline")
        self.import_btn.clicked.connect(self.import_file)

        self.progress = QProgressBar()
        self.progress.setObjectName("models_progress")
        self.progress.setTextVisible(True)
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.status = QLabel("Nothing is downloaded unless you press Download.")
        self.status.setObjectName("models_status")
        self.status.setWordWrap(True)

        row = QHBoxLayout()
        row.addWidget(self.download_btn)
        row.addWidget(self.cancel_btn)
        row.addWidget(self.remove_btn)
        row.addWidget(self.import_btn)
        row.addWidget(self.progress, 1)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        row.addWidget(close)

        layout = QVBoxLayout(self)
        layout.addWidget(split, 1)
        layout.addWidget(self.status)
        layout.addLayout(row)

    # ------------------------------------------------------------------------------ content
    def refresh(self) -> None:
        """Rebuild the tree from the catalogue and the store (sizes now, sha256 in the background)."""
        keep = self._selected_key()
        self._installed = store.list_installed(sha256=False)
        self.tree.clear()
        bold = QFont(self.font())
        bold.setBold(True)
        shown = [i for i in self._installed if not self._is_listed(i)]
        engines = self.catalogue.engines() + sorted({i.engine for i in shown} - set(self.catalogue.engines()))
        select = None
        for engine in engines:
            top = QTreeWidgetItem([ENGINE_TITLES.get(engine, engine)])
            top.setFont(0, bold)
            top.setFirstColumnSpanned(True)
            top.setData(0, KIND_ROLE, ("engine", engine))
            self.tree.addTopLevelItem(top)
            for entry in self.catalogue.for_engine(engine):
                status = store.entry_status(entry, self._installed)
                text = STATE_LABELS[status.state]
                if not entry.downloadable and status.state == "missing":
                    text = "manual download"
                item = QTreeWidgetItem(
                    [
                        entry.title,
                        entry.id,
                        entry.size_text,
                        entry.check_text,
                        _short(entry.license),
                        text,
                    ]
                )
                item.setToolTip(0, entry.title)
                item.setToolTip(4, entry.license or "not stated")
                item.setToolTip(5, status.text)
                item.setData(0, KIND_ROLE, ("entry", entry.id))
                top.addChild(item)
                if keep == ("entry", entry.id):
                    select = item
            for inst in (i for i in shown if i.engine == engine):
                label = {"weights": "installed", "download": "raw download", "partial": "partial download"}[
                    inst.kind
                ]
                item = QTreeWidgetItem([inst.name, "", human_size(inst.size), "", "", label])
                item.setData(0, KIND_ROLE, ("installed", f"{inst.engine}/{inst.name}"))
                font = QFont(self.font())
                font.setItalic(True)
                item.setFont(0, font)
                top.addChild(item)
                if keep == ("installed", f"{inst.engine}/{inst.name}"):
                    select = item
        self.tree.expandAll()
        if select is not None:
            self.tree.setCurrentItem(select)
        self._update_buttons()
        self._digest_in_background()

    def _is_listed(self, inst: store.Installed) -> bool:
        """Installed items that belong to a catalogue row are shown in that row's details."""
        return inst.catalogue_id is not None and any(e.id == inst.catalogue_id for e in self.catalogue)

    def _digest_in_background(self) -> None:
        """sha256 of the installed files (cached beside them) off the GUI thread; one pass at a time."""
        if self._digesting:
            self._digest_again = True
            return
        self._digesting, self._digest_again = True, False

        def work():
            return store.list_installed(sha256=True)

        def done(result, error) -> None:
            self._digesting = False
            if not self._alive:
                return
            if error is None and result is not None and not self._digest_again:
                self._installed = result
                self._update_buttons()
            if self._digest_again:
                self._digest_in_background()

        run_in_thread(work, done)

    def _selected_key(self) -> tuple[str, str] | None:
        item = self.tree.currentItem() if hasattr(self, "tree") else None
        return item.data(0, KIND_ROLE) if item is not None else None

    def selected_entry(self) -> CatalogueEntry | None:
        key = self._selected_key()
        return self.catalogue.get(key[1]) if key and key[0] == "entry" else None

    def _selected_installed(self) -> list[store.Installed]:
        key = self._selected_key()
        if not key:
            return []
        if key[0] == "entry":
            return [i for i in self._installed if i.catalogue_id == key[1]]
        if key[0] == "installed":
            return [i for i in self._installed if f"{i.engine}/{i.name}" == key[1]]
        return []

    def select(self, entry_id: str) -> None:
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            for j in range(top.childCount()):
                child = top.child(j)
                if child.data(0, KIND_ROLE) == ("entry", entry_id):
                    self.tree.setCurrentItem(child)
                    return
        raise KeyError(entry_id)

    def _update_buttons(self) -> None:
        entry = self.selected_entry()
        busy = self._active is not None
        self.download_btn.setEnabled(not busy and entry is not None and entry.downloadable)
        self.cancel_btn.setEnabled(busy)
        self.remove_btn.setEnabled(not busy and bool(self._selected_installed()))
        self.import_btn.setEnabled(not busy and entry is not None and entry.import_target is not None)
        self.details.setText(self._details_html())

    def _details_html(self) -> str:
        entry = self.selected_entry()
        parts: list[str] = []
        if entry is not None:
            status = store.entry_status(entry, self._installed)
            parts.append(f"<b>{_h(entry.title)}</b> &nbsp; <code>{_h(entry.id)}</code> — {_h(status.text)}")
            parts.append(
                f"License: {_h(entry.license or 'not stated')} · "
                f"<a href='{_h(entry.homepage)}'>{_h(entry.homepage)}</a>"
            )
            if not entry.downloadable:
                parts.append(_h(manual_instructions(entry)) + " — or press <b>Import file…</b> here.")
            for f in entry.files:
                facts = [
                    human_size(f.size)
                    if f.size is not None
                    else (f"~{f.approx_size}" if f.approx_size else "size ?")
                ]
                facts.append(
                    f"sha256 {f.sha256}"
                    if f.sha256
                    else f"md5 {f.md5}"
                    if f.md5
                    else f"checked: {f.check_text}"
                )
                parts.append(
                    f"&nbsp;&nbsp;{_h(f.path)} — {_h(', '.join(facts))}<br>&nbsp;&nbsp;&nbsp;&nbsp;from {_h(f.source.describe())}"
                )
            if entry.notes:
                parts.append(f"<i>{_h(entry.notes)}</i>")
        for inst in self._selected_installed():
            parts.append(f"<b>{_h(inst.kind)}</b>: {_h(inst.engine)}/{_h(inst.name)} — {_h(str(inst.path))}")
            for f in inst.files:
                digest = f"sha256 {f.sha256}" if f.sha256 else "sha256 …"
                parts.append(f"&nbsp;&nbsp;{_h(f.name)} — {_h(human_size(f.size))}, {_h(digest)}")
        text = "<br>".join(parts) if parts else "Select a model to see its files, checksums and license."
        for page in {
            f.source.page for f in (entry.files if entry else ()) if isinstance(f.source, ManualSource)
        }:
            text = text.replace(_h(page), f"<a href='{_h(page)}'>{_h(page)}</a>")  # open it in a browser
        return text

    # ------------------------------------------------------------------------------ actions
    def download_selected(self) -> None:
        entry = self.selected_entry()
        if entry is None or self._active is not None:
            return
        if not entry.downloadable:
            self.status.setText(manual_instructions(entry))
            return
        self._active = entry.id
        self._cancel.clear()
        current = self.tree.currentItem()
        if current is not None:
            current.setText(5, "downloading…")
        self.progress.setValue(0)
        self.progress.setFormat(f"{entry.id}: starting…")
        self.status.setText(f"Downloading {entry.title}…")
        self._update_buttons()
        kwargs = {"chunk_size": self.chunk_size} if self.chunk_size else {}

        def work() -> InstallResult:
            return install(
                entry,
                importer=self.importer,
                progress=self._on_progress_thread,
                cancel=self._cancel.is_set,
                endpoint=self.endpoint,
                **kwargs,
            )

        self._thread = run_in_thread(work, lambda result, error: self._finished(entry, result, error))

    def _on_progress_thread(self, p: FileProgress) -> None:
        """Runs on the download thread: forward at most every PROGRESS_INTERVAL_S (and every file's end)."""
        now = time.monotonic()
        final = p.total is not None and p.done >= p.total
        if not final and now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        self._last_progress = now
        call_on_main_thread(lambda: self._show_progress(p))

    def _show_progress(self, p: FileProgress) -> None:
        if not self._alive or self._active != p.entry_id:
            return
        name = p.path.rsplit("/", 1)[-1]
        prefix = f"[{p.index + 1}/{p.count}] " if p.count > 1 else ""
        if p.total:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * p.done / p.total))
            self.progress.setFormat(f"{prefix}{name}: {human_size(p.done)} of {human_size(p.total)} (%p%)")
        else:
            self.progress.setRange(0, 0)  # busy indicator: the size is not known
            self.progress.setFormat(f"{prefix}{name}: {human_size(p.done)}")

    def cancel_download(self) -> None:
        if self._active is not None:
            self._cancel.set()
            self.status.setText("Cancelling… (what has arrived is kept; Download resumes it)")

    def _finished(
        self, entry: CatalogueEntry, result: InstallResult | None, error: BaseException | None
    ) -> None:
        if not self._alive:
            return
        self._active = None
        self.progress.setRange(0, 1000)
        if error is None and result is not None:
            self.progress.setValue(1000)
            self.progress.setFormat(f"{entry.id}: done")
            self.status.setText(result.message)
            outcome = "done"
        elif isinstance(error, DownloadCancelled):
            self.progress.setFormat(f"{entry.id}: cancelled")
            self.status.setText(f"Cancelled: {error}")
            outcome = "cancelled"
        else:
            self.progress.setFormat(f"{entry.id}: failed")
            self.status.setText(f"Download failed: {error}")
            outcome = "failed"
        self.refresh()
        self.installed_changed.emit()
        self.download_finished.emit(entry.id, outcome)

    def remove_selected(self) -> None:
        items = self._selected_installed()
        if not items or self._active is not None:
            return
        names = ", ".join(f"{i.engine}/{i.name}" for i in items)
        if not self.confirm(
            f"Delete {names} ({human_size(sum(i.size for i in items))}) from the model store?"
        ):
            return
        removed: list[Path] = []
        for inst in items:
            removed += store.remove(inst.engine, inst.name)
        self.status.setText("Removed " + ", ".join(str(p) for p in removed))
        self.refresh()
        self.installed_changed.emit()

    def import_file(self) -> None:
        """Import a file the person has (a manual download, say) through the entry's import step."""
        entry = self.selected_entry()
        if entry is None or entry.import_target is None or self._active is not None:
            return
        source = self.choose_file(entry)
        if source is None:
            return
        target, dest = entry.import_target, store.weights_dir(entry.import_target, entry.id)
        self._active = entry.id
        self.progress.setRange(0, 0)
        self.progress.setFormat(f"importing {Path(source).name}…")
        self.status.setText(f"Importing {source} as {target} weights…")
        self._update_buttons()

        def work() -> Path:
            written = Path(self.importer(target, Path(source), dest))
            store.write_json(
                written / store.ORIGIN_NAME,
                {"catalogue_id": entry.id, "engine": entry.engine, "imported": str(source)},
            )
            return written

        def done(result: Path | None, error: BaseException | None) -> None:
            if not self._alive:
                return
            self._active = None
            self.progress.setRange(0, 1000)
            self.progress.setValue(1000 if error is None else 0)
            self.progress.setFormat("")
            self.status.setText(f"Imported as {result}" if error is None else f"Import failed: {error}")
            self.refresh()
            if error is None:
                self.installed_changed.emit()
            self.download_finished.emit(entry.id, "done" if error is None else "failed")

        self._thread = run_in_thread(work, done)

    def _pick_file(self, entry: CatalogueEntry) -> Path | None:
        names = " ".join(f"*{Path(f.name).suffix}" for f in entry.files if Path(f.name).suffix)
        path, _ = QFileDialog.getOpenFileName(
            self,
            f"Import a checkpoint for {entry.title}",
            str(Path.home()),
            f"Checkpoints ({names or '*'});;All files (*)",
        )
        return Path(path) if path else None

    def _ask(self, question: str) -> bool:
        answer = QMessageBox.question(self, "Remove model", question)
        return answer == QMessageBox.StandardButton.Yes

    # ------------------------------------------------------------------------------ closing
    def done(self, result: int) -> None:  # Close, Esc or the window button
        self._cancel.set()  # a running download stops at its next chunk; its .part stays for later
        self._alive = False
        super().done(result)


def _default_importer() -> Importer:
    from ..model_import import import_checkpoint

    return import_checkpoint


def _h(text: str) -> str:
    return html.escape(text, quote=True)


def _short(text: str | None, n: int = 24) -> str:
    if not text:
        return "not stated"
    return text if len(text) <= n else text[: n - 1] + "…"
