"""Checks for Qt binding bugs that would crash the app later in a confusing way.

PySide6 6.12.0 drops one reference to ``True`` on every ``Signal.emit()`` called from Python;
after a few hundred emits CPython aborts with "bool_dealloc: deallocating True or False".
The app refuses to start on such a binding, with a message that says what to install.
"""

from __future__ import annotations

import sys


def emit_leaks_references(n: int = 64) -> bool:
    """Whether ``Signal.emit`` changes the reference counts of True/False/None (a broken binding)."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal(int)

    probe = _Probe()
    probe.ping.connect(lambda _v: None)
    before = (sys.getrefcount(True), sys.getrefcount(False), sys.getrefcount(None))
    results = [probe.ping.emit(i) for i in range(n)]
    del results
    after = (sys.getrefcount(True), sys.getrefcount(False), sys.getrefcount(None))
    leaked = False
    for obj, b, a in zip((True, False, None), before, after, strict=True):
        if b - a >= n // 2:
            leaked = True
            _give_back(obj, b - a)  # undo the probe's own damage so the process can exit cleanly
    return leaked


def _give_back(obj: object, count: int) -> None:
    import ctypes

    for _ in range(count):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))


def binding_problem() -> str | None:
    """A one-line reason when the installed Qt binding cannot run the app, else None."""
    import PySide6

    if emit_leaks_references():
        return (
            f"PySide6 {PySide6.__version__} has a reference-counting bug in Signal.emit that crashes this app; "
            "install another version: pip install 'PySide6-Essentials!=6.12.0'"
        )
    return None
