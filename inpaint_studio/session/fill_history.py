"""The history of fills (Krita's history strip): every fill's results, grouped per fill, until cleared.

A plain Fill opens a new group; a follow-up ("More like this", "Vary from this step") joins the
group of the fill it came from, however deep the chain. Each result gets one name, used
everywhere the person meets it (thumbnail, canvas badge, tooltip, layer, undo history):
``"<group>.<n>"``, where ``n`` counts the group's results in the order they arrived, so a
follow-up's variants continue the numbering instead of restarting it (a fill with one single
result is just ``"<group>"``). A fill that makes a single
result (no variants) is one entry too, so it can be re-applied later like any variant.

Qt-free: the Fills panel shows it and asks it for names.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .jobs import FillJob, VariantFrame, short_title

RESULT = -1  # the entry index of a fill's single result (a fill without variants)
PROMPT_IN_TITLE = 32  # characters of the prompt a group's title shows (the tooltip has it whole)


@dataclass
class FillEntry:
    """One browsable result: a variant of a job, or a job's single result (``index == RESULT``)."""

    job: FillJob
    index: int
    number: int  # 1, 2, ... within its group
    group: FillGroup

    @property
    def name(self) -> str:
        if self.index == RESULT and self.number == 1:  # a plain single fill: just its number
            return str(self.group.number)
        return f"{self.group.number}.{self.number}"

    @property
    def frame(self) -> VariantFrame | None:
        return (
            None
            if self.index == RESULT
            else next((v for v in self.job.variants if v.index == self.index), None)
        )

    @property
    def seed(self) -> int:
        frame = self.frame
        return frame.seed if frame is not None else self.job.seed

    @property
    def image(self):
        frame = self.frame
        if frame is not None:
            return frame.image
        return self.job.result.image if self.job.result is not None else None

    @property
    def key(self) -> tuple[int, int]:
        return (self.job.id, self.index)


@dataclass
class FillGroup:
    """A fill and its follow-ups: one engine, one set of settings, one seed to start from."""

    number: int
    root: FillJob
    jobs: list[FillJob] = field(default_factory=list)
    entries: list[FillEntry] = field(default_factory=list)

    @property
    def title(self) -> str:
        """``Fill 2 · MTA · “a blue mug” · seed 7``: with a prompt, the prompt tells fills apart; a fill
        that ended empty says so right after the engine, where a narrow strip does not cut it off; an
        engine that ignores seeds shows none."""
        outcome = f" · {self.outcome}" if self.outcome else ""
        prompt = f" · “{_elide(self.root.prompt, PROMPT_IN_TITLE)}”" if self.root.prompt else ""
        engine = short_title(self.root.engine_title)
        seed = f" · seed {self.root.seed}" if self.root.seeded else ""
        return f"Fill {self.number} · {engine}{outcome}{prompt}{seed}"

    @property
    def outcome(self) -> str:
        """ "failed" or "cancelled" when the fill ended without a result to browse, else ""."""
        if self.entries or self.root.status not in ("failed", "cancelled"):
            return ""
        return self.root.status

    @property
    def settings_text(self) -> str:
        """The settings, one ``name=value`` each (the prompt first when there is one)."""
        parts = [f"prompt “{self.root.prompt}”"] if self.root.prompt else []
        parts += [f"{k}={_short(v)}" for k, v in self.root.params.items()]
        return ", ".join(parts)


class FillHistory:
    """Every fill's results for one document, newest group last."""

    def __init__(self) -> None:
        self.groups: list[FillGroup] = []
        self._by_job: dict[int, FillGroup] = {}
        self._next = 1

    def clear(self) -> None:
        """Forget every fill (numbering starts again at 1)."""
        self.groups.clear()
        self._by_job.clear()
        self._next = 1

    def add_job(self, job: FillJob) -> FillGroup:
        """Record a started job: a follow-up joins its parent's group, a plain fill opens one."""
        group = self._by_job.get(job.id)
        if group is not None:
            return group
        group = self._by_job.get(job.parent_id) if job.parent_id is not None else None
        if group is None:
            group = FillGroup(self._next, job)
            self._next += 1
            self.groups.append(group)
        group.jobs.append(job)
        self._by_job[job.id] = group
        return group

    def group_of(self, job: FillJob) -> FillGroup | None:
        return self._by_job.get(job.id)

    def add_result(self, job: FillJob, index: int = RESULT) -> FillEntry | None:
        """Record a variant (``index``) or a job's single result; None for an unknown job.
        Adding the same one twice returns the first entry."""
        group = self._by_job.get(job.id)
        if group is None:
            return None
        existing = self.entry(job, index)
        if existing is not None:
            return existing
        entry = FillEntry(job, index, len(group.entries) + 1, group)
        group.entries.append(entry)
        return entry

    def entry(self, job: FillJob, index: int) -> FillEntry | None:
        group = self._by_job.get(job.id)
        if group is None:
            return None
        return next((e for e in group.entries if e.job is job and e.index == index), None)

    def name(self, job: FillJob, index: int) -> str | None:
        """The one name of a variant (or of a single result, ``RESULT``), or None if unknown."""
        entry = self.entry(job, index)
        return entry.name if entry is not None else None

    def entries(self) -> Iterator[FillEntry]:
        for group in self.groups:
            yield from group.entries

    def __len__(self) -> int:
        return sum(len(g.entries) for g in self.groups)


def _elide(text: str, n: int) -> str:
    text = " ".join(text.split())  # a prompt's newlines would break the one-line title
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Mapping):
        return "{…}"
    return str(value)
