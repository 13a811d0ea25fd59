"""The desktop app's entry point: ``inpaint-studio [PICTURE_OR_PROJECT] [--sample]``.

Thin on purpose: make the QApplication, the main window, open what was asked for, run.
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
    from .ui.main_window import MainWindow
    from .ui.threads import init_relay

    init_relay()
    window = MainWindow()
    if args.theme:
        window.set_theme(args.theme)
    app.setWindowIcon(theme.icon("mdi6.auto-fix", "#3d7bd9") or QIcon())
    window.show()
    if args.sample:
        window.open_sample()
    elif args.paths:
        path = Path(args.paths[0])
        window.open_path(path)
        if len(args.paths) > 1:
            window.statusBar().showMessage("One picture per window: opened the first one", 5000)
    # load the model library on the runner thread while the person looks at the picture
    QTimer.singleShot(1500, window.warm_up_if_useful)
    if not args.no_recovery:
        QTimer.singleShot(300, window.offer_recovery)
    return int(app.exec())


if __name__ == "__main__":
    raise SystemExit(main())
