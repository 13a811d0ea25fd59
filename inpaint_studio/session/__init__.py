"""Qt-free app state the widgets show: the engine catalogue, fill jobs, file work, what to redraw.

Everything here is plain Python and numpy, testable without a display; ``ui/`` wraps it in widgets.
"""
