"""The desktop app (PySide6): main window, canvas, tools, panels and the engine runner."""
