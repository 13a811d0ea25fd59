"""Where each engine's public checkpoint comes from, for the person whose engine is greyed out.

The facts come from the model manager's catalogue (``hub/catalogue.py``), so the engine panel, its
tooltips and the Models dialog never disagree. Nothing here downloads.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..hub.catalogue import Catalogue, builtin

# engines whose public checkpoint is one part of their model, under that part's catalogue id
_PART = {"inpnet": ("mae", "its light decoder is then fitted with `inpaint-studio-train inpnet`")}


@dataclass(frozen=True)
class CheckpointSource:
    what: str  # the checkpoint, as the catalogue names it
    where: str  # its publisher's page
    note: str = ""

    @property
    def text(self) -> str:
        line = f"Public checkpoint: {self.what}, from {self.where}."
        if not self.note:
            return line
        note = f"{self.note[0].upper()}{self.note[1:]}"
        return f"{line} {note}" if note.endswith(("…", ".")) else f"{line} {note}."


def source_of(engine_id: str, catalogue: Catalogue | None = None) -> CheckpointSource | None:
    """The first catalogue entry for an engine (or for the part it is built on), or None."""
    part, note = _PART.get(engine_id, (engine_id, ""))
    entries = (catalogue or builtin()).for_engine(part)
    if not entries:
        return None
    first = entries[0]
    more = len(entries) - 1
    if more:
        note = f"{note}; " if note else ""
        note += f"{more} more in Models…"
    return CheckpointSource(first.title, first.homepage, note)
