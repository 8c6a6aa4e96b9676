"""The data doctor (data/doctor.py) finds each planted problem, one line naming the file, and stays quiet on
clean data; --fix_out writes a cleaned copy and leaves the inputs alone."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import ROOT
from PIL import Image

from cyclegan_tf.data import convert, doctor, shapescapes, synthetic


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


def _planted_pairs(tmp_path: Path) -> tuple[Path, Path]:
    """ShapeScapes label maps (A) and photos (B) matched by name, with a pair whose photo is shifted by 6 px and
    one whose photo belongs to another layout."""
    shapescapes.generate(tmp_path / "pairs", 64, train=12, test=1, seed=0, paired=True)
    a, b = tmp_path / "pairs" / "trainA", tmp_path / "pairs" / "trainB"
    photo = np.asarray(Image.open(b / "00003.png"))
    Image.fromarray(np.roll(photo, 6, axis=1)).save(b / "00003.png")  # moved right: B must move by −6 to fit
    (b / "00007.png").write_bytes((b / "00002.png").read_bytes())  # another scene's photo
    return a, b


def test_paired_finds_shifted_and_wrong_pairs_in_folders_side_by_side_and_records(tmp_path: Path) -> None:
    a, b = _planted_pairs(tmp_path)
    side = tmp_path / "AB"
    side.mkdir()
    for f in sorted(a.iterdir()):
        both = np.concatenate([np.asarray(Image.open(f).convert("RGB")), np.asarray(Image.open(b / f.name))], 1)
        Image.fromarray(both).save(side / f.name)
    records = tmp_path / "pairs.tfrecords"
    convert.build_paired(str(a), str(b), str(records))
    for args in ([str(a), str(b)], [str(side)], [str(records)]):
        r = _run("--paired", *args)
        assert r.returncode == 0, r.stderr
        found = r.stdout.splitlines()[1:-1]
        assert r.stdout.splitlines()[-1] == "2 finding(s)", r.stdout
        shifted = next(line for line in found if "00003" in line.split(": ")[0])
        assert "lines up with A only when moved by about -6, +0 px" in shifted, r.stdout
        wrong = next(line for line in found if "00007" in line.split(": ")[0])
        assert "the halves do not look like one scene" in wrong, r.stdout


def test_paired_clean_pairs_give_no_findings_and_bad_use_is_one_line(tmp_path: Path) -> None:
    shapescapes.generate(tmp_path / "pairs", 64, train=12, test=1, seed=1, paired=True)
    a, b = tmp_path / "pairs" / "trainA", tmp_path / "pairs" / "trainB"
    r = _run("--paired", str(a), str(b))
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == "0 finding(s)", r.stdout
    unpaired = tmp_path / "X.tfrecords"
    convert.build_folder("X", str(a), str(unpaired))
    r = _run("--paired", str(unpaired))
    assert r.returncode == 2 and r.stderr.strip() == f"error: {unpaired}: records of one domain, not pairs (build " \
                                                      "them with build_data.py --paired, or drop --paired)"
    r = _run("--paired", str(a), str(b), "--fix_out", str(tmp_path / "out"))
    assert r.returncode == 2 and "--fix_out cleans two domains" in r.stderr


def test_short_form_reads_sizes_and_hashes_from_the_records(tmp_path: Path) -> None:
    """train.py's start: images under the crop and the same image in both domains, from the records' keys."""
    from cyclegan_tf.data import records

    x, y = tmp_path / "X", tmp_path / "Y"
    xs = _domain(x, 0, n=6)
    _domain(y, 1, n=6)
    Image.fromarray(synthetic.scenes(1, 64, 7)[1][0][:40, :40]).save(x / "small.png")
    (x / "again.png").write_bytes(xs[0].read_bytes())
    (y / "from_x.png").write_bytes(xs[1].read_bytes())
    for d in (x, y):
        convert.build_folder(d.name, str(d), str(tmp_path / f"{d.name}.tfrecords"))
    surveys = {d: (str(tmp_path / f"{d}.tfrecords"), records.survey([str(tmp_path / f"{d}.tfrecords")]))
               for d in "XY"}
    assert surveys["X"][1].count == 7 and sorted(surveys["X"][1].short_sides)[:2] == [40, 64]  # the copy: once
    lines = doctor.short_form(surveys, 48, across=True)
    assert lines == [f"note: data: 1 of the 7 images of X ({tmp_path / 'X.tfrecords'}) are smaller than the 48 px "
                     "crop: upscaled, blurry",
                     "note: data: 1 images are in both X and Y (the same bytes): they teach the translation nothing",
                     f"note: data: python -m cyclegan_tf.doctor {tmp_path / 'X.tfrecords'} {tmp_path / 'Y.tfrecords'}"
                     " --image_size 48 names them and looks for more (grey, alpha, near-duplicates)"]
    assert doctor.short_form(surveys, 48, across=False)[-1].endswith("checks that each pair's halves line up")
    assert doctor.short_form(surveys, 32, across=False) == []
