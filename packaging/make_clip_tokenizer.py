"""Write the CLIP BPE tokenizer files (vocab.json, merges.txt) of the SD-1.5 skeleton in resources/.

Why a script: SD-1.5 single-file checkpoints hold no tokenizer, and the app must never fetch one. The
vocabulary is OpenAI CLIP's byte-level BPE (MIT licence); its one published source file,
``bpe_simple_vocab_16e6.txt.gz``, ships in the ``open_clip_torch`` wheel (MIT). This script rebuilds the
two files transformers' ``CLIPTokenizer`` reads, with CLIP's own construction: the 256 byte symbols, the
same with ``</w>``, one entry per merge, then the start and end tokens (49,408 entries, 48,894 merges).

Usage (once, by a maintainer; the output is committed):
    pip download --no-deps open_clip_torch==3.3.0 -d /tmp/oc
    python packaging/make_clip_tokenizer.py /tmp/oc/open_clip_torch-3.3.0-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import gzip
import json
import zipfile
from pathlib import Path

MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"
BPE_SIZE = 49152  # CLIP keeps the first 49152 - 256 - 2 merges of the file
OUT = Path(__file__).resolve().parents[1] / "resources" / "sd15" / "tokenizer"


def byte_symbols() -> list[str]:
    """CLIP's byte-to-unicode symbols: printable bytes stand for themselves, the others map above 255."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    keep += list(range(ord("®"), ord("ÿ") + 1))
    codes = {b: b for b in keep}  # insertion order is the vocabulary order: printable bytes first
    extra = 0
    for b in range(256):
        if b not in codes:
            codes[b] = 256 + extra
            extra += 1
    return [chr(c) for c in codes.values()]


def build(bpe_text: str) -> tuple[dict[str, int], list[str]]:
    lines = bpe_text.split("\n")
    merges = lines[1 : BPE_SIZE - 256 - 2 + 1]  # the first line is a header
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols]
    tokens += ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="the open_clip_torch wheel (pip download --no-deps)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    with zipfile.ZipFile(args.wheel) as wheel:
        text = gzip.decompress(wheel.read(MEMBER)).decode("utf-8")
    vocab, merges = build(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (args.out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    print(f"wrote {len(vocab)} tokens and {len(merges)} merges to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
