"""The model manager: the public checkpoints each engine can use, downloads that happen only when a
person asks (progress, resume, checksum, cancel) and the installed weights in the model store.

Qt-free and torch-free (an import-linter contract guards it), so the CLI and the Models dialog share it.
Turning a download into store weights needs the engines' importers; callers pass that step in.
"""
