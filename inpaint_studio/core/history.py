"""Undo history. Pixel edits store only the 64x64 tiles they changed, so memory follows the
pixels touched, not the image size; undo and redo of a pixel edit are the same tile swap.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING

import numpy as np

from .geometry import Rect
from .signals import Signal

if TYPE_CHECKING:
    from .document import Document

TILE = 64
DEFAULT_LIMIT_BYTES = 1 << 30  # 1 GiB of undo data before the oldest steps are dropped
DEFAULT_LIMIT_STEPS = 500


class Command(abc.ABC):
    """One undoable step. ``merge_key``: consecutive commands with the same key fold into one."""

    label: str = ""
    merge_key: Hashable | None = None

    @abc.abstractmethod
    def undo(self, doc: Document) -> None: ...

    @abc.abstractmethod
    def redo(self, doc: Document) -> None: ...

    @property
    def nbytes(self) -> int:
        return 0

    def merge(self, newer: Command) -> bool:
        """Absorb ``newer`` (already applied) into self; return False when not possible."""
        return False


def tiles_in(rect: Rect) -> list[tuple[int, int]]:
    if rect.empty:
        return []
    ty0, tx0 = rect.y // TILE, rect.x // TILE
    ty1, tx1 = (rect.bottom - 1) // TILE, (rect.right - 1) // TILE
    return [(ty, tx) for ty in range(ty0, ty1 + 1) for tx in range(tx0, tx1 + 1)]


def tile_slices(ty: int, tx: int) -> tuple[slice, slice]:
    return slice(ty * TILE, (ty + 1) * TILE), slice(tx * TILE, (tx + 1) * TILE)


def tile_rect(keys: list[tuple[int, int]], shape: tuple[int, ...]) -> Rect:
    rect = Rect(0, 0, 0, 0)
    for ty, tx in keys:
        rect = rect.union(Rect(tx * TILE, ty * TILE, TILE, TILE))
    return rect.clipped(shape)


def changed_tiles(before: np.ndarray, after: np.ndarray) -> list[tuple[int, int]]:
    """Tiles where two same-shaped arrays differ (vectorised over the whole image)."""
    diff = before != after
    if diff.ndim == 3:
        diff = diff.any(axis=2)
    h, w = diff.shape
    th, tw = -(-h // TILE), -(-w // TILE)
    padded = np.zeros((th * TILE, tw * TILE), bool)
    padded[:h, :w] = diff
    hit = padded.reshape(th, TILE, tw, TILE).any(axis=(1, 3))
    return [(int(ty), int(tx)) for ty, tx in zip(*np.nonzero(hit), strict=True)]


class PixelEdit(Command):
    """The other state of the changed tiles of one target (a layer id or the mask)."""

    def __init__(self, target: str, tiles: dict[tuple[int, int], np.ndarray], label: str) -> None:
        self.target = target
        self.tiles = tiles
        self.label = label

    def _swap(self, doc: Document) -> None:
        arr = doc.pixels(self.target)
        for key, stored in self.tiles.items():
            view = arr[tile_slices(*key)]
            current = view.copy()
            view[...] = stored
            self.tiles[key] = current
        doc.pixels_changed.emit(self.target, tile_rect(list(self.tiles), arr.shape))

    undo = _swap
    redo = _swap

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tiles.values())


class FunctionCommand(Command):
    """A structural change expressed as a pair of callables (layer add/remove/move/props)."""

    def __init__(
        self,
        label: str,
        do: Callable[[Document], None],
        undo: Callable[[Document], None],
        nbytes: int = 0,
        merge_key: Hashable | None = None,
    ) -> None:
        self.label = label
        self._do, self._undo = do, undo
        self._nbytes = nbytes
        self.merge_key = merge_key

    def undo(self, doc: Document) -> None:
        self._undo(doc)

    def redo(self, doc: Document) -> None:
        self._do(doc)

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def merge(self, newer: Command) -> bool:
        if (
            self.merge_key is None
            or newer.merge_key != self.merge_key
            or not isinstance(newer, FunctionCommand)
        ):
            return False
        self._do = newer._do  # keep our undo (the state before the first step), take the latest do
        return True


class CompoundCommand(Command):
    """Several commands that undo and redo as one step (e.g. merge down)."""

    def __init__(self, label: str, parts: list[Command]) -> None:
        self.label = label
        self.parts = parts

    def undo(self, doc: Document) -> None:
        for part in reversed(self.parts):
            part.undo(doc)

    def redo(self, doc: Document) -> None:
        for part in self.parts:
            part.redo(doc)

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.parts)


class History:
    """Linear undo stack with a clean mark (the saved state) and a memory budget."""

    def __init__(
        self, limit_bytes: int = DEFAULT_LIMIT_BYTES, limit_steps: int = DEFAULT_LIMIT_STEPS
    ) -> None:
        self._commands: list[Command] = []
        self._index = 0  # commands[:index] are applied
        self._clean: int | None = 0
        self.limit_bytes = limit_bytes
        self.limit_steps = limit_steps
        self.changed = Signal()  # emitted after every push / undo / redo / clean change

    # --------------------------------------------------------------- state
    @property
    def index(self) -> int:
        return self._index

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self._commands]

    @property
    def can_undo(self) -> bool:
        return self._index > 0

    @property
    def can_redo(self) -> bool:
        return self._index < len(self._commands)

    @property
    def undo_label(self) -> str:
        return self._commands[self._index - 1].label if self.can_undo else ""

    @property
    def redo_label(self) -> str:
        return self._commands[self._index].label if self.can_redo else ""

    @property
    def is_clean(self) -> bool:
        return self._clean == self._index

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self._commands)

    def mark_clean(self) -> None:
        self._clean = self._index
        self.changed.emit()

    def mark_dirty(self) -> None:
        """No state of this history is saved anywhere (e.g. a recovered document)."""
        self._clean = None
        self.changed.emit()

    # --------------------------------------------------------------- changes
    def push(self, command: Command, merge: bool = True) -> None:
        """Record an already-applied command; drops any redo steps."""
        if self._index < len(self._commands):
            del self._commands[self._index :]
            if self._clean is not None and self._clean > self._index:
                self._clean = None  # the saved state can no longer be reached
        last = self._commands[-1] if self._commands else None
        if merge and last is not None and self._clean != self._index and last.merge(command):
            self.changed.emit()
            return
        self._commands.append(command)
        self._index += 1
        self._trim()
        self.changed.emit()

    def undo(self, doc: Document) -> bool:
        if not self.can_undo:
            return False
        self._index -= 1
        self._commands[self._index].undo(doc)
        self.changed.emit()
        return True

    def redo(self, doc: Document) -> bool:
        if not self.can_redo:
            return False
        self._commands[self._index].redo(doc)
        self._index += 1
        self.changed.emit()
        return True

    def jump_to(self, doc: Document, index: int) -> None:
        """Undo or redo until ``index`` steps are applied (the history panel's click)."""
        index = max(0, min(index, len(self._commands)))
        while self._index > index:
            self.undo(doc)
        while self._index < index:
            self.redo(doc)

    def fold_since(self, start: int, label: str) -> None:
        """Turn the commands pushed since index ``start`` into one step labelled ``label``."""
        folded = self._commands[start : self._index]
        if len(folded) <= 1:
            if folded:
                folded[0].label = label
            self.changed.emit()
            return
        del self._commands[start:]
        self._index = start
        self.push(CompoundCommand(label, folded), merge=False)

    def clear(self) -> None:
        self._commands.clear()
        self._index = 0
        self._clean = 0
        self.changed.emit()

    def _trim(self) -> None:
        while len(self._commands) > 1 and (
            len(self._commands) > self.limit_steps or self.nbytes > self.limit_bytes
        ):
            self._commands.pop(0)
            self._index -= 1
            if self._clean is not None:
                self._clean = self._clean - 1 if self._clean > 0 else None
