"""The data doctor (data/doctor.py) finds each planted problem, one line naming the file, and stays quiet on
clean data; --fix_out writes a cleaned copy and leaves the inputs alone."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import ROOT
from PIL import Image

from cyclegan_tf.data import convert, doctor, synthetic


def _domain(folder: Path, seed: int, n: int = 24) -> list[Path]:
    """Colour photos of generated scenes (synthetic.textures has grey ones among colour: the doctor says so)."""
    synthetic.write_folder(synthetic.scenes(n, 64, seed)[1], folder)
    return sorted(folder.iterdir())


def _planted(tmp_path: Path) -> tuple[Path, Path]:
    x, y = tmp_path / "X", tmp_path / "Y"
    xs = _domain(x, 0)
    _domain(y, 1)
    others = iter(synthetic.scenes(4, 64, 7)[1])  # pictures unlike the domains' own, one per planted problem
    Image.fromarray(next(others)[..., 0]).save(x / "grey.png")  # one channel among colour ones
    Image.fromarray(np.repeat(next(others)[..., :1], 3, -1)).save(x / "grey_rgb.jpg", quality=98)  # grey as RGB
    Image.fromarray(next(others)[:40, :40]).save(x / "small.png")  # under the 48 px crop
    rgb = next(others)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[:10, :10, 3] = 0
    Image.fromarray(rgba).save(x / "alpha.png")
    Image.fromarray(np.zeros_like(rgb)).save(x / "black.png")
    Image.open(xs[1]).convert("RGB").save(x / "copy_of_first.png")  # a near-duplicate within X
    Image.open(xs[2]).convert("RGB").save(y / "also_in_x.png")  # the same image in both domains
    (x / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    return x, y


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cyclegan_tf.doctor", *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def test_each_planted_problem_is_one_line_naming_its_file(tmp_path: Path) -> None:
    x, y = _planted(tmp_path)
    r = _run(str(x), str(y), "--image_size", "48")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    expected = {"grey.png": "grey (one channel) in a colour domain", "grey_rgb.jpg": "grey (stored as RGB) in a colour",
                "small.png": "40×40, smaller than the crop (48 px)", "alpha.png": "has transparent pixels",
                "black.png": "nearly black", "broken.jpg": "build_data.py skips it",
                "copy_of_first.png": "a near-duplicate in X", "also_in_x.png": "the same image in X and Y"}
    for name, says in expected.items():
        assert any(line.startswith(str(x / name) if name != "also_in_x.png" else str(y / name)) and says in line
                   for line in lines), (name, r.stdout)
    assert lines[0].startswith(f"X: {x}: 31 images (") and "1 unreadable" in lines[0]
    assert lines[-1] == f"{len(lines) - 3} finding(s)"
    assert not [line for line in lines[1:] if "/0000" in line.split(": ")[0]], r.stdout  # the scenes themselves


def test_clean_domains_give_no_findings_and_records_are_read(tmp_path: Path) -> None:
    _domain(tmp_path / "X", 0)
    _domain(tmp_path / "Y", 1)
    convert.build_folder("X", str(tmp_path / "X"), str(tmp_path / "X.tfrecords"))
    r = _run(str(tmp_path / "X.tfrecords"), str(tmp_path / "Y"), "--image_size", "48")
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == "0 finding(s)", r.stdout


def test_fix_out_writes_a_cleaned_copy_and_touches_no_input(tmp_path: Path) -> None:
    x, y = _planted(tmp_path)
    before = {p: p.stat().st_mtime_ns for p in [*x.iterdir(), *y.iterdir()]}
    out = tmp_path / "clean"
    r = _run(str(x), str(y), "--image_size", "48", "--fix_out", str(out))
    assert r.returncode == 0, r.stderr
    assert {p: p.stat().st_mtime_ns for p in [*x.iterdir(), *y.iterdir()]} == before
    names = {p.name for p in (out / "X").iterdir()}
    assert not {"small.png", "broken.jpg", "copy_of_first.png"} & names and {"grey.png", "alpha.png"} <= names
    assert Image.open(out / "X" / "alpha.png").mode == "RGB" and Image.open(out / "X" / "grey.png").mode == "RGB"
    assert "also_in_x.png" not in {p.name for p in (out / "Y").iterdir()}
    r = _run(str(x), str(y), "--fix_out", str(out))
    assert r.returncode == 2 and r.stderr.strip() == f"error: --fix_out={out}: {out / 'X'} exists and is not empty; " \
                                                      "choose a new folder"


def test_bad_arguments_are_one_line(tmp_path: Path) -> None:
    r = _run(str(tmp_path / "nowhere"))
    assert r.returncode == 2 and r.stderr.strip() == f"error: {tmp_path / 'nowhere'}: no such folder or TFRecord file"
    assert doctor.duplicates(doctor.Domain("X", "x", [], []), None, 4) == []
