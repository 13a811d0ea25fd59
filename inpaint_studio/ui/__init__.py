"""PySide6 user interface: main window, canvas, tools, panels, the background runner."""
