"""The headless CLI: the acceptance of the foundation issue, run as a person would."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from inpaint_studio.cli import main


def _photo(path, h=96, w=128):
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.dstack([xx * 2, yy * 2, (xx + yy) % 256]).astype(np.uint8)
    Image.fromarray(img).save(path)
    return img


def _mask(path, h=96, w=128, box=(30, 40, 60, 80)):
    m = np.zeros((h, w), np.uint8)
    y0, x0, y1, x1 = box
    m[y0:y1, x0:x1] = 255
    Image.fromarray(m).save(path)
    return m


def test_fill_changes_the_hole_and_nothing_else(tmp_path, capsys):
    img = _photo(tmp_path / "photo.png")
    m = _mask(tmp_path / "mask.png")
    img_with_object = img.copy()
    img_with_object[m > 0] = (255, 0, 255)
    Image.fromarray(img_with_object).save(tmp_path / "photo.png")
    assert (
        main(
            [
                "fill",
                str(tmp_path / "photo.png"),
                "--mask",
                str(tmp_path / "mask.png"),
                "-o",
                str(tmp_path / "out.png"),
            ]
        )
        == 0
    )
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert np.array_equal(out[m == 0], img_with_object[m == 0])
    assert (out[m > 0] != img_with_object[m > 0]).any(axis=1).mean() > 0.95
    assert str(tmp_path / "out.png") in capsys.readouterr().out


@pytest.mark.parametrize(
    "case, expected",
    [
        ("corrupt", "corrupt or truncated"),
        ("zero", "empty"),
        ("size", "but the image is"),
        ("param", "radius must be"),
        ("engine", "unknown engine"),
    ],
)
def test_bad_input_gives_one_line_and_nonzero_exit(tmp_path, capsys, case, expected):
    _photo(tmp_path / "photo.png")
    _mask(tmp_path / "mask.png")
    image, mask, extra = tmp_path / "photo.png", tmp_path / "mask.png", []
    if case == "corrupt":
        data = (tmp_path / "photo.png").read_bytes()
        (tmp_path / "bad.png").write_bytes(data[: len(data) // 3])
        image = tmp_path / "bad.png"
    elif case == "zero":
        Image.fromarray(np.zeros((96, 128), np.uint8)).save(tmp_path / "zero.png")
        mask = tmp_path / "zero.png"
    elif case == "size":
        Image.fromarray(np.full((10, 10), 255, np.uint8)).save(tmp_path / "small.png")
        mask = tmp_path / "small.png"
    elif case == "param":
        extra = ["--radius", "0"]
    else:
        extra = ["--engine", "nope"]
    code = main(["fill", str(image), "--mask", str(mask), "-o", str(tmp_path / "o.png"), *extra])
    err = capsys.readouterr().err.strip()
    assert code != 0 and expected in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o.png").exists()


def test_variants_steps_and_set(tmp_path):
    _photo(tmp_path / "p.png")
    _mask(tmp_path / "m.png")
    code = main(
        [
            "fill",
            str(tmp_path / "p.png"),
            "--mask",
            str(tmp_path / "m.png"),
            "-o",
            str(tmp_path / "v.png"),
            "--variants",
            "3",
            "--set",
            "method=ns",
            "--save-steps",
            str(tmp_path / "steps"),
        ]
    )
    assert code == 0
    assert sorted(p.name for p in tmp_path.glob("v_*.png")) == ["v_0.png", "v_1.png", "v_2.png"]


def test_batch_continues_past_bad_files(tmp_path, capsys):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ("a", "b", "c"):
        _photo(tmp_path / "imgs" / f"{name}.png")
    (tmp_path / "imgs" / "b.png").write_bytes(b"broken")
    _mask(tmp_path / "masks" / "a.png")
    _mask(tmp_path / "masks" / "b.png")
    _mask(tmp_path / "masks" / "c_mask.png")
    code = main(
        ["fill", str(tmp_path / "imgs"), "--mask", str(tmp_path / "masks"), "-o", str(tmp_path / "out")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "1 of 3 file(s) failed" in err and "b.png" in err  # bad input only: 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]


def test_engines_lists_availability_and_params(capsys):
    assert main(["engines", "--json"]) == 0
    entries = {e["id"]: e for e in json.loads(capsys.readouterr().out)}
    assert entries["classical"]["available"] is True
    assert {p["name"] for p in entries["classical"]["params"]} >= {"method", "radius", "strategy"}
    for e in entries.values():
        assert e["available"] or e["reason"]
    assert main(["engines"]) == 0
    assert "classical" in capsys.readouterr().out


def test_import_refuses_unknown_engine_and_missing_file(tmp_path, capsys):
    assert main(["import", "nope", str(tmp_path / "x.pkl")]) == 2
    assert main(["import", "classical", str(tmp_path / "x.pkl")]) == 2
    (tmp_path / "x.pkl").write_bytes(b"x")
    assert main(["import", "classical", str(tmp_path / "x.pkl")]) == 1
    assert "no importer" in capsys.readouterr().err


def test_module_entry_point_runs(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "inpaint_studio", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout.startswith("inpaint-studio ")


def _broken_engine(error: Exception):
    from inpaint_studio.engines.base import Engine, EngineInfo

    class Broken(Engine):
        info = EngineInfo(id="broken", title="Broken", description="raises", needs_weights=False)

        def run(self, request, cancel=lambda: False):
            yield from ()
            raise error

    return Broken


@pytest.mark.parametrize(
    "error, code, says",
    [
        (
            ValueError("CUDA was asked for but no CUDA GPU is available; use --device cpu"),
            2,
            "CUDA was asked",
        ),
        (RuntimeError("CUDA error: an illegal memory access"), 1, "Broken failed: RuntimeError"),
        (AssertionError(), 1, "Broken failed: AssertionError"),
    ],
)
def test_engine_and_device_errors_are_one_line(tmp_path, capsys, monkeypatch, error, code, says):
    from inpaint_studio.engines import registry

    real = registry.engine_class
    monkeypatch.setattr(
        registry, "engine_class", lambda i: _broken_engine(error) if i == "broken" else real(i)
    )
    _photo(tmp_path / "p.png")
    _mask(tmp_path / "m.png")
    args = ["fill", str(tmp_path / "p.png"), "--mask", str(tmp_path / "m.png"), "-o", str(tmp_path / "o.png")]
    assert main([*args, "--engine", "broken", "-q"]) == code
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_batch_shows_a_counter_with_eta_on_a_terminal(tmp_path, capsys, monkeypatch):
    (tmp_path / "i").mkdir(), (tmp_path / "m").mkdir()
    for name in ("a", "b", "c"):
        _photo(tmp_path / "i" / f"{name}.png")
        _mask(tmp_path / "m" / f"{name}.png")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["fill", str(tmp_path / "i"), "--mask", str(tmp_path / "m"), "-o", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "3/3" in err and "<" in err  # tqdm's n/N and its elapsed<remaining estimate


def test_import_of_a_branch_trained_on_another_computer(tmp_path, capsys):
    """RUN/weights copied over from a GPU box: into the store under the run's name, with a note that its
    base model is not here; the same folder for another engine is bad input (exit 2, one line)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from inpaint_studio.core import paths
    from inpaint_studio.models.bundle import save_bundle

    run = tmp_path / "mugs-gpu-run"
    extra = {"base_model": {"path": "/gpu-box/models/sd15", "kind": "sd15"}}
    save_bundle(run / "weights", "mta", {"edge_head": True}, {"w": torch.zeros(3)}, extra)
    assert main(["import", "mta", str(run / "weights")]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(paths.engine_models_dir("mta") / "mugs-gpu-run")
    assert err.strip().splitlines() == [err.strip()] and "note:" in err and "/gpu-box/models/sd15" in err
    assert "base_model" in err
    assert main(["import", "mta", str(run / "weights")]) == 2  # the name is taken: nothing replaced
    assert main(["import", "mat", str(run / "weights")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 2
    assert "already holds weights" in err and "weights for mta, not mat" in err


def test_import_of_a_non_checkpoint_and_an_empty_folder(tmp_path, capsys):
    (tmp_path / "notes.pth").write_text("hello")
    assert main(["import", "mat", str(tmp_path / "notes.pth"), "--out", str(tmp_path / "w")]) == 2
    (tmp_path / "release").mkdir()
    assert main(["import", "maskgit", str(tmp_path / "release")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 2
    assert "notes.pth" in err and "is an empty folder" in err and "does not exist" not in err
