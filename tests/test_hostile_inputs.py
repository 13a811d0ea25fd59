"""The hostile-input corpus through the CLI: 0 tracebacks, 0 hangs, one line and the documented
exit code per refusal (reliability issue, acceptance). Most cases run in-process; a few run as
real processes (a FIFO import that once hung, SIGTERM in a batch)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from inpaint_studio.cli import main

sys.path.insert(0, str(Path(__file__).parent))
import hostile_corpus  # noqa: E402

CASE_TIMEOUT_S = 20
REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="the corpus uses FIFOs (POSIX)")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    return folder, {c.name: c for c in hostile_corpus.build(folder)}


@contextlib.contextmanager
def _deadline(seconds: int):
    """Fail instead of hanging: SIGALRM interrupts a blocking open() or a runaway loop."""

    def on_alarm(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _run_case(case, capsys, monkeypatch) -> tuple[int | str, str]:
    with monkeypatch.context() as mp:
        for key, value in case.env.items():
            mp.setenv(key, value)
        try:
            with _deadline(CASE_TIMEOUT_S):
                code = main(list(case.argv))
        except TimeoutError:
            code = "hang"
        except BaseException as err:  # noqa: BLE001  an escaped exception is a traceback for the person
            code = f"raised {type(err).__name__}"
    return code, capsys.readouterr().err


def _problem(case, code, err: str, folder: Path) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if code == "hang" or isinstance(code, str):
        return str(code)
    if "Traceback" in err or "internal error" in err:
        return "traceback"
    if code != case.code:
        return f"exit {code}, expected {case.code}"
    if not all(ln.startswith(("inpaint-studio:", "  ")) for ln in lines):
        return "stray output"
    if case.code != 0 and "batch" not in case.name and len(lines) != 1:
        return f"{len(lines)} lines"
    if case.says and case.says not in err:
        return f"does not say {case.says!r}"
    if list(folder.rglob("*.istmp")):
        return "temp file left"
    return ""


def test_hostile_corpus(corpus, capsys, monkeypatch):
    """Every case: no traceback, no hang, its exit code, one line per refusal. Prints the table."""
    folder, cases = corpus
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.is_symlink()}
    start = time.perf_counter()
    problems, refused = {}, 0
    for case in cases.values():
        code, err = _run_case(case, capsys, monkeypatch)
        problem = _problem(case, code, err, folder)
        if problem:
            problems[case.name] = f"{problem}: {err.strip()[-300:]}"
        elif case.code != 0:
            refused += 1
    elapsed = time.perf_counter() - start
    lost = [p.name for p, data in before.items() if not p.is_file() or p.read_bytes() != data]
    hangs = sum("hang" in p for p in problems.values())
    tracebacks = sum(p.startswith(("traceback", "raised")) for p in problems.values())
    with capsys.disabled():
        print(
            f"\nhostile corpus: {len(cases)} inputs tried, {refused} refused cleanly, "
            f"{len(cases) - refused - len(problems)} accepted, {tracebacks} tracebacks, {hangs} hangs, "
            f"{len(lost)} files lost or changed, {len(problems)} problems, {elapsed:.1f} s"
        )
    assert not problems, "\n".join(f"{k}: {v}" for k, v in problems.items())
    assert not lost, f"inputs changed or lost: {lost}"
    assert not Path("/tmp/inpaint_studio_pwned").exists()
    assert elapsed < 60


def test_corpus_inputs_are_never_changed(corpus):
    folder, _ = corpus
    assert (folder / "photo.png").is_file() and (folder / "imgs" / "a.png").is_file()
    before = {p: p.read_bytes() for p in (folder / "imgs").iterdir()}
    main(["fill", str(folder / "imgs"), "--mask", str(folder / "masks"), "-o", str(folder / "imgs"), "-q"])
    assert {p: p.read_bytes() for p in (folder / "imgs").iterdir()} == before


def test_float_tiff_with_inf_is_not_black(corpus):
    folder, cases = corpus
    from inpaint_studio.core.imageio import load_image

    out = load_image(folder / "float_inf.tif")
    assert out[-1, -1, 0] == 255 and out[H // 2, W // 2, 0] > 100


H, W = hostile_corpus.H, hostile_corpus.W


# ------------------------------------------------------------------------------- real processes
def _cli(*args: str, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "inpaint_studio", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def test_fifo_tar_import_does_not_hang_in_a_real_process(corpus, tmp_path):
    folder, _ = corpus
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    proc = _cli(
        "import",
        "mat",
        str(folder / "fifo.pth"),
        "--out",
        str(tmp_path / "w"),
        env={"TMPDIR": str(private_tmp)},
    )
    assert proc.returncode == 2 and "not a regular file" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert list(private_tmp.iterdir()) == []  # no extraction folder left behind


def test_corrupt_image_in_a_real_process(corpus, tmp_path):
    folder, _ = corpus
    proc = _cli(
        "fill", str(folder / "g4.tif"), "--mask", str(folder / "mask.png"), "-o", str(tmp_path / "o.png")
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "o.png").exists()


def test_sigterm_in_a_batch_leaves_no_temp_files(tmp_path):
    """A slow writer (patched in a child process) is terminated mid-save: no .istmp file remains."""
    imgs, masks, out = tmp_path / "imgs", tmp_path / "masks", tmp_path / "out"
    imgs.mkdir(), masks.mkdir()
    photo = hostile_corpus._photo()
    for i in range(3):
        Image.fromarray(photo).save(imgs / f"p{i}.png")
        Image.fromarray(hostile_corpus._mask()).save(masks / f"p{i}.png")
    script = (
        "import sys, time\n"
        "from PIL import Image\n"
        "orig = Image.Image.save\n"
        "def slow(self, fp, *a, **k):\n"
        "    fp.write(b'partial'); fp.flush(); print('writing', flush=True); time.sleep(30)\n"
        "Image.Image.save = slow\n"
        "from inpaint_studio.cli import main\n"
        f"sys.exit(main(['fill', {str(imgs)!r}, '--mask', {str(masks)!r}, '-o', {str(out)!r}, '-q']))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "writing"
        assert list(out.glob(".*.istmp")), "the temp file should exist while writing"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 143
    assert not list(out.iterdir()), "temp file left behind after SIGTERM"


def test_batch_stops_with_a_summary_when_the_disk_fills(tmp_path, capsys, monkeypatch):
    import errno

    from inpaint_studio.core import imageio

    imgs, masks = tmp_path / "imgs", tmp_path / "masks"
    imgs.mkdir(), masks.mkdir()
    for i in range(4):
        Image.fromarray(hostile_corpus._photo()).save(imgs / f"p{i}.png")
        Image.fromarray(hostile_corpus._mask()).save(masks / f"p{i}.png")
    real_write = imageio.atomic_write
    calls = []

    @contextlib.contextmanager
    def filling_disk(path):
        calls.append(path)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        with real_write(path) as f:
            yield f

    monkeypatch.setattr(imageio, "atomic_write", filling_disk)
    code = main(["fill", str(imgs), "--mask", str(masks), "-o", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "1 written" in err and "stopped with 2 not started" in err and "no space left" in err
    assert len(calls) == 2  # it stopped at the first full write
