"""The desktop app's entry point: ``inpaint-studio [PICTURE_OR_PROJECT ...] [--sample]``.

Thin on purpose: make the QApplication, one main window per picture asked for, run. SIGTERM,
SIGINT and SIGHUP keep unsaved work for recovery and exit with 128 + the signal's number.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="inpaint-studio",
        description="Paint over what should go, press Fill, keep the fill you like.",
    )
    p.add_argument("paths", nargs="*", help="a picture (PNG, JPEG, WebP, TIFF, ...) or an .isproj project")
    p.add_argument("--sample", action="store_true", help="open the bundled sample photo")
    p.add_argument("--theme", choices=("system", "light", "dark"), help="colour theme (remembered)")
    p.add_argument("--no-recovery", action="store_true", help="do not offer to recover autosaved work")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the app; ``argv`` are the arguments after the program name. Returns the exit code."""
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "inpaint-studio"])
    app.setApplicationName("inpaint-studio")
    app.setApplicationDisplayName("inpaint-studio")
    app.setOrganizationName("inpaint-studio")
    app.setDesktopFileName("inpaint-studio")

    from .ui import theme
    from .ui.compat import binding_problem

    problem = binding_problem()
    if problem:
        print(f"inpaint-studio: {problem}", file=sys.stderr)
        return 2
    from .ui.threads import init_relay

    init_relay()
    app.setWindowIcon(theme.icon("mdi6.auto-fix", "#3d7bd9") or QIcon())
    windows = open_windows(args)
    window = windows[0]
    from .ui.termination import end_on_signals

    relay = end_on_signals(app, main_windows, parent=app)
    # load the model library on the runner thread while the person looks at the picture
    QTimer.singleShot(1500, window.warm_up_if_useful)
    if not args.no_recovery:
        QTimer.singleShot(300, window.offer_recovery)
    try:
        return int(app.exec())
    finally:
        relay.close()


def main_windows() -> list:
    """The main windows open now (the first one and every one opened later)."""
    from PySide6.QtWidgets import QApplication

    from .ui.main_window import MainWindow

    return [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]


CASCADE_PX = 32  # each further window opens this much lower and to the right


def open_windows(args: argparse.Namespace) -> list:
    """One main window per picture or project named on the command line (one window when none
    is named), each opening its file in the background. Returns the windows, first one first."""
    from PySide6.QtCore import Qt

    from .ui.main_window import MainWindow

    paths = [None] if args.sample or not args.paths else [Path(p) for p in args.paths]
    windows: list[MainWindow] = []
    for i, path in enumerate(paths):
        window = MainWindow()
        if args.theme:
            window.set_theme(args.theme, save=i == 0)
        if i:
            first = windows[0].pos()
            window.move(first.x() + i * CASCADE_PX, first.y() + i * CASCADE_PX)
        window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, i > 0)
        window.show()
        if args.sample:
            window.open_sample()
        elif path is not None:
            window.open_path(path)
        windows.append(window)
    _OPEN.extend(windows[1:])  # the first one lives in main(); keep the others alive too
    return windows


_OPEN: list = []


if __name__ == "__main__":
    raise SystemExit(main())
