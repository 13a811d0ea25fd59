"""Ending the app from outside (``kill``, a logout, Ctrl+C in the terminal) without losing work.

While Qt's event loop runs, Python's own signal handlers wait for the interpreter to get control,
which it may not for a long time: a SIGTERM would either be ignored or, with the default action,
end the process before the unsaved picture is kept. So the C-level handler writes the signal's
number into a socket (``signal.set_wakeup_fd``) and a ``QSocketNotifier`` hands it to the GUI
thread as an ordinary Qt signal, where the windows can write their autosave (offered back at the
next launch) and the app exits with 128 + the signal's number, as a shell reports it.
"""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import Callable, Iterable

from PySide6.QtCore import QObject, QSocketNotifier, Signal

#: SIGTERM (kill, logout), SIGINT (Ctrl+C in the terminal), SIGHUP (the terminal closed): where the OS has them
ENDING_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name)
)


class SignalRelay(QObject):
    """Re-emits the given OS signals on the GUI thread as ``received(signal_number)``.

    Installs a Python handler for each (so the C handler writes the wake-up byte) and restores the
    previous handlers and wake-up fd on :meth:`close`. Only from the main thread, as Python requires.
    """

    received = Signal(int)

    def __init__(self, signals: Iterable[int] = ENDING_SIGNALS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._signals = tuple(signals)
        self._reader, self._writer = socket.socketpair()
        for end in (self._reader, self._writer):
            end.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        self._previous = {s: signal.signal(s, _ignore) for s in self._signals}
        self._notifier = QSocketNotifier(self._reader.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._drain)

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            for number in self._reader.recv(256):
                if number in self._signals:
                    self.received.emit(number)

    def close(self) -> None:
        """Give the signals back to whoever had them before."""
        self._notifier.setEnabled(False)
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        signal.set_wakeup_fd(self._previous_fd)
        self._reader.close()
        self._writer.close()


def _ignore(signum: int, frame: object) -> None:
    """The Python-level handler: the work happens on the GUI thread, through the wake-up byte."""


def end_on_signals(app, windows: Callable[[], Iterable], parent: QObject | None = None) -> SignalRelay:
    """On a termination signal every window keeps its unsaved work for recovery, then ``app`` exits
    with 128 + the signal's number. ``windows()`` lists the open main windows at that moment."""
    from ..core.atomic import remove_active_temps

    def end(number: int) -> None:
        for window in windows():
            window.end_session()
        remove_active_temps()
        app.exit(128 + number)

    relay = SignalRelay(parent=parent)
    relay.received.connect(end)
    return relay
