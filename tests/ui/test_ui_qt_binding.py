"""The installed Qt binding must not leak references on Signal.emit (PySide6 6.12.0 does,
which crashes the app after a few hundred signals)."""

from __future__ import annotations

from inpaint_studio.ui.compat import binding_problem, emit_leaks_references


def test_signal_emit_keeps_reference_counts(qapp):
    assert not emit_leaks_references(512), binding_problem()
