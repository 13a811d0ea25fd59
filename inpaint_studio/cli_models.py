"""``inpaint-studio models``: the public checkpoints per engine and what is installed (list),
``download ID``, ``import TARGET FILE`` and ``remove ENGINE NAME``.

Exit codes: 0 done; 1 a failure (network, checksum, a refused import); 2 bad input (unknown id,
missing file, an entry that must be downloaded by hand); 130 Ctrl+C (a partial download is kept and
the same command resumes it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .hub import store
from .hub.catalogue import Catalogue, builtin
from .hub.download import DownloadError, human_size
from .hub.install import FileProgress, ImportFailed, ManualOnly, install

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _err(text: str) -> None:
    print(f"inpaint-studio: error: {text}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="inpaint-studio models",
        description="Public checkpoints each engine can use, and the weights installed in the model store. "
        "Nothing is downloaded unless you run `models download ID`.",
    )
    sub = p.add_subparsers(dest="action")
    ls = sub.add_parser("list", help="the catalogue and what is installed (the default)")
    for q in (p, ls):
        q.add_argument("--engine", help="only this engine")
        q.add_argument("--json", action="store_true", help="machine-readable output")
        q.add_argument("--no-sha256", action="store_true", help="skip computing the installed files' sha256")
    dl = sub.add_parser("download", help="download a catalogue entry (resumable) and import it")
    dl.add_argument("id", help="catalogue id (see `inpaint-studio models`)")
    dl.add_argument("--keep-download", action="store_true", help="keep the raw download after importing it")
    dl.add_argument("--no-import", action="store_true", help="download and verify only")
    dl.add_argument("--endpoint", help="Hugging Face endpoint (default: $HF_ENDPOINT or huggingface.co)")
    dl.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    im = sub.add_parser("import", help="convert a checkpoint you already have into the model store")
    im.add_argument("target", help="engine id (or `mae`)")
    im.add_argument(
        "file",
        type=Path,
        help="checkpoint file, the folder a release unpacked into, or a trained RUN/weights",
    )
    im.add_argument(
        "--name", help="name in the store (default: the file's stem; RUN/weights: the run's name)"
    )
    rm = sub.add_parser("remove", help="delete installed weights (and their raw download)")
    rm.add_argument("engine")
    rm.add_argument("name")
    return p


def main(argv: Sequence[str], catalogue: Catalogue | None = None) -> int:
    args = _parser().parse_args(list(argv))
    cat = catalogue or builtin()
    action = args.action or "list"
    if action == "list":
        return cmd_list(cat, args.engine, args.json, not args.no_sha256)
    if action == "download":
        return cmd_download(cat, args.id, args.keep_download, args.no_import, args.endpoint, args.quiet)
    if action == "import":
        return cmd_import(args.target, args.file, args.name)
    return cmd_remove(args.engine, args.name)


# ------------------------------------------------------------------------------------ list
def _entry_dict(entry, status) -> dict:
    return {
        "id": entry.id,
        "engine": entry.engine,
        "title": entry.title,
        "size": entry.size,
        "checksum": entry.checksum_known,
        "checked_against": entry.check_text,
        "license": entry.license,
        "source": entry.source_text,
        "downloadable": entry.downloadable,
        "import_target": entry.import_target,
        "status": status.state,
        "status_text": status.text,
        "files": [
            {
                "path": f.path,
                "source": f.source.describe(),
                "size": f.size,
                "sha256": f.sha256,
                "md5": f.md5,
                "approx_size": f.approx_size or None,
            }
            for f in entry.files
        ],
        "notes": entry.notes,
    }


def cmd_list(cat: Catalogue, engine: str | None, as_json: bool, sha256: bool) -> int:
    installed = [i for i in store.list_installed(sha256=sha256) if engine in (None, store.section_of(i, cat))]
    engines = [e for e in cat.engines() if engine in (None, e)]
    engines += sorted({store.section_of(i, cat) for i in installed} - set(engines))
    if engine is not None and not engines:
        _err(f"no catalogue entry and nothing installed for engine {engine!r}")
        return EXIT_USAGE
    if as_json:
        out = {
            "catalogue": [
                _entry_dict(e, store.entry_status(e, installed)) for e in cat if e.engine in engines
            ],
            "installed": [
                {
                    "engine": i.engine,
                    "name": i.name,
                    "kind": i.kind,
                    "path": str(i.path),
                    "size": i.size,
                    "catalogue_id": i.catalogue_id,
                    "files": [{"name": f.name, "size": f.size, "sha256": f.sha256} for f in i.files],
                }
                for i in installed
            ],
        }
        print(json.dumps(out, indent=2))
        return EXIT_OK
    for eng in engines:
        entries = cat.for_engine(eng)
        print(f"[{eng}]")
        for e in entries:
            status = store.entry_status(e, installed)
            print(f"  {e.id:<28} {e.size_text:>10}  checked: {e.check_text:<22} {status.text}")
            print(f"      {e.title}")
            print(f"      license: {e.license or 'not stated'}")
            print(f"      source: {e.source_text}")
        mine = [i for i in installed if store.section_of(i, cat) == eng]
        if not entries:
            print("  (no public checkpoints in the catalogue)")
        for i in mine:
            label = {"weights": "installed", "download": "raw download", "partial": "partial download"}[
                i.kind
            ]
            print(f"  {label}: {i.engine}/{i.name}  {human_size(i.size)}  {i.path}")
            for f in i.files:
                digest = f"sha256 {f.sha256}" if f.sha256 else "(sha256 not computed)"
                print(f"      {f.name}  {human_size(f.size)}  {digest}")
        print()
    print("Download one with `inpaint-studio models download ID`; nothing is downloaded otherwise.")
    return EXIT_OK


# ------------------------------------------------------------------------------------ download
class _Bar:
    """One tqdm bar per file on stderr."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet or not sys.stderr.isatty()
        self.bar = None
        self.key: tuple[str, int] | None = None

    def __call__(self, p: FileProgress) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if self.key != (p.path, p.index):
            self.close()
            self.key = (p.path, p.index)
            name = p.path.rsplit("/", 1)[-1]
            desc = name if p.count == 1 else f"[{p.index + 1}/{p.count}] {name}"
            self.bar = tqdm(
                total=p.total,
                initial=p.done,
                desc=desc,
                unit="B",
                unit_scale=True,
                file=sys.stderr,
                leave=True,
            )
        assert self.bar is not None
        if p.total is not None and self.bar.total != p.total:
            self.bar.total = p.total
        self.bar.update(p.done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def cmd_download(
    cat: Catalogue, entry_id: str, keep: bool, no_import: bool, endpoint: str | None, quiet: bool
) -> int:
    try:
        entry = cat.get(entry_id)
    except KeyError as err:
        _err(str(err.args[0]))
        return EXIT_USAGE
    from .model_import import import_checkpoint

    bar = _Bar(quiet)
    try:
        result = install(
            entry,
            importer=None if no_import else import_checkpoint,
            progress=bar,
            endpoint=endpoint,
            keep_download=keep,
        )
    except ManualOnly as err:
        bar.close()
        _err(str(err))
        return EXIT_USAGE
    except (DownloadError, ImportFailed) as err:
        bar.close()
        _err(str(err))
        return EXIT_FAILURE
    except OSError as err:  # the store or download folder cannot be written
        bar.close()
        _err(f"{getattr(err, 'filename', None) or 'the model store'}: {err.strerror or err}")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        bar.close()
        folder = store.entry_download_dir(entry.id)
        print(
            f"inpaint-studio: download cancelled; what arrived is kept in {folder}: "
            f"run `inpaint-studio models download {entry.id}` again to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    bar.close()
    print(result.message)
    return EXIT_OK


# ------------------------------------------------------------------------------------ import / remove
def cmd_import(target: str, file: Path, name: str | None) -> int:
    from .model_import import destination, import_checkpoint

    if not file.exists():
        _err(f"{file}: no such file or folder")
        return EXIT_USAGE
    try:
        dest = destination(target, file, name)
        written = import_checkpoint(target, file, dest)
    except ValueError as err:
        _err(str(err))
        return EXIT_USAGE
    except ImportFailed as err:
        _err(str(err))
        return EXIT_FAILURE
    print(written)
    return EXIT_OK


def cmd_remove(engine: str, name: str) -> int:
    try:
        removed = store.remove(engine, name)
    except (ValueError, FileNotFoundError) as err:
        _err(str(err))
        return EXIT_USAGE
    for path in removed:
        print(f"removed {path}")
    return EXIT_OK
