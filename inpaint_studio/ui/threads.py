"""Hand a callable from any thread to the GUI thread (through a queued signal)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QCoreApplication, QObject, Qt, Signal, Slot


class _Relay(QObject):
    call = Signal(object)

    @Slot(object)
    def _run(self, fn: Callable[[], None]) -> None:
        fn()


_relay: _Relay | None = None


def _get_relay() -> _Relay:
    global _relay
    if _relay is None:
        _relay = _Relay()
        app = QCoreApplication.instance()
        if app is not None:
            _relay.moveToThread(app.thread())
        _relay.call.connect(_relay._run, Qt.ConnectionType.QueuedConnection)
    return _relay


def init_relay() -> None:
    """Create the relay on the GUI thread (call once at start-up, before any worker runs)."""
    _get_relay()


def call_on_main_thread(fn: Callable[[], None]) -> None:
    _get_relay().call.emit(fn)
