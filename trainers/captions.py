"""The paper's captioning step as a pluggable command: ``--caption-command CMD``.

MTADiffusion captions each object mask with an open-set segmenter plus a vision-language model.
Those models are large and not ours to ship, so a person who has them wraps them in a command:
it is run as ``CMD IMAGE`` (or ``CMD IMAGE MASK`` for a row with a mask) and prints the caption on
its first non-empty stdout line. Rows that already have a caption keep it; a command that fails
or prints nothing leaves the row without one (a warning says so). Nothing downloads here.
"""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
import warnings
from collections.abc import Sequence

from .data import Record


def run_caption_command(command: str, record: Record, timeout: float = 120.0) -> str | None:
    """The caption ``command`` prints for the row's image (and mask), or None when it gives none."""
    args = [*shlex.split(command), str(record.image)]
    if record.mask is not None:
        args.append(str(record.mask))
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        warnings.warn(f"caption command failed on {record.image}: {err}", stacklevel=2)
        return None
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        why = f"exit code {done.returncode}" if done.returncode else "no output"
        warnings.warn(f"caption command gave no caption for {record.image} ({why})", stacklevel=2)
        return None
    return lines[0]


def fill_captions(records: Sequence[Record], command: str | None, timeout: float = 120.0) -> list[Record]:
    """``records`` with the command's caption where a row has none (each distinct row asked once)."""
    if not command:
        return list(records)
    asked: dict[tuple, str | None] = {}
    out = []
    for r in records:
        if r.caption is None:
            key = (r.image, r.mask)
            if key not in asked:
                asked[key] = run_caption_command(command, r, timeout)
            r = dataclasses.replace(r, caption=asked[key])
        out.append(r)
    return out
