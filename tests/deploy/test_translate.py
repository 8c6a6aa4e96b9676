"""inference.py: one file, folders of mixed formats, galleries, and errors."""
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, write_bad, write_kind
from PIL import Image

from cyclegan_tf.deploy.savedmodel import export
from cyclegan_tf.deploy.translate import run
from cyclegan_tf.errors import UserError


@pytest.fixture(scope="module")
def model(trained_run: Path, tmp_path_factory) -> str:
    return str(export(trained_run, "XtoY", tmp_path_factory.mktemp("exports") / "x2y"))


def test_single_file_keeps_size_and_follows_extension(model: str, tmp_path: Path) -> None:
    src = write_kind(tmp_path, "png_rgba")  # 32 × 24
    for ext, fmt in ((".jpg", "JPEG"), (".png", "PNG"), (".webp", "WEBP")):
        s = run(model, str(src), str(tmp_path / f"out{ext}"))
        assert s.written == 1
        img = Image.open(tmp_path / f"out{ext}")
        assert img.format == fmt and img.size == (32, 24)
    run(model, str(src), str(tmp_path / "square.png"), image_size=16)
    assert Image.open(tmp_path / "square.png").size == (16, 16)


def test_folder_of_mixed_formats_with_a_corrupt_file(model: str, tmp_path: Path, capsys) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for kind in ("jpg", "png_gray", "webp", "TIFF", "jpg_exif_rotated"):
        write_kind(src, kind)
    write_bad(src, "truncated")
    s = run(model, str(src), str(tmp_path / "out"), batch_size=3, side_by_side=True, write_html=True)
    assert s.written == 5 and len(s.skipped) == 1
    assert "bad_truncated" in capsys.readouterr().err
    outputs = {p.name for p in (tmp_path / "out").iterdir() if p.is_file()}
    assert {"jpg_0.jpg", "png_gray_0.png", "webp_0.webp", "TIFF_0.png", "index.html"} <= outputs
    assert Image.open(tmp_path / "out/jpg_0.jpg").size == (64, 24)  # input | output
    assert Image.open(tmp_path / "out/jpg_exif_rotated_0.jpg").size == (48, 32)  # rotated, then side by side
    page = (tmp_path / "out/index.html").read_text()
    assert page.count("<tr>") == 6 and "inputs/TIFF_0.png" in page and (tmp_path / "out/inputs/TIFF_0.png").exists()
    assert not [p for p in (tmp_path / "out").iterdir() if ".tmp-" in p.name]


def test_glob_input(model: str, tmp_path: Path) -> None:
    for i in range(3):
        write_kind(tmp_path, "jpg", seed=i)
    s = run(model, str(tmp_path / "jpg_*.jpg"), str(tmp_path / "out"), fmt="png")
    assert s.written == 3 and sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "jpg_0.png", "jpg_1.png", "jpg_2.png"]


def test_errors(model: str, tmp_path: Path) -> None:
    bad = write_bad(tmp_path, "not_an_image")
    with pytest.raises(UserError, match="not an image"):
        run(model, str(bad), str(tmp_path / "out.png"))
    assert not (tmp_path / "out.png").exists()
    with pytest.raises(UserError, match="no images match"):
        run(model, str(tmp_path / "nothing*.jpg"), str(tmp_path / "out"))
    with pytest.raises(UserError, match="no SavedModel"):
        run(str(tmp_path / "nomodel"), str(write_kind(tmp_path, "jpg")), str(tmp_path / "o.png"))
    src = tmp_path / "photos"
    src.mkdir()
    write_kind(src, "jpg")
    with pytest.raises(UserError, match="would overwrite the input"):
        run(model, str(src), str(src))
    with pytest.raises(UserError, match="use .png"):
        run(model, str(write_kind(tmp_path, "jpg")), str(tmp_path / "o.gif"))


def test_cli_vanhuyz_form(model: str, tmp_path: Path) -> None:
    src = write_kind(tmp_path, "jpg")
    cli = [sys.executable, str(ROOT / "inference.py"), f"--model={model}"]
    r = subprocess.run([*cli, f"--input={src}", "--output=out.jpg"], capture_output=True, text=True, cwd=tmp_path,
                       timeout=300)
    assert r.returncode == 0 and "translated 1 images" in r.stdout, r.stderr[-2000:]
    assert Image.open(tmp_path / "out.jpg").size == (32, 24)
    bad = write_bad(tmp_path, "empty")
    r = subprocess.run([*cli, f"--input={bad}", "--output=x.jpg"], capture_output=True, text=True, cwd=tmp_path,
                       timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == f"error: --input={bad}: empty file"
