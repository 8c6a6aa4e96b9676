"""inference.py on every fault path: damaged exports, images too small for an older export, a full disk,
Ctrl-C, leftovers of killed runs, file names that are not UTF-8, TensorFlow's start-up chatter."""
from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import write_kind
from harness import ENV, cli, command, dead_pid, error_line, fill, quiet, small_disk, temporaries
from PIL import Image

from cyclegan_tf.deploy.savedmodel import export
from cyclegan_tf.deploy.translate import run, timed_run
from cyclegan_tf.errors import UserError

DEAD_PID = dead_pid()  # the id of a process that is gone


@pytest.fixture(scope="module")
def model(trained_run: Path, tmp_path_factory) -> Path:
    return export(trained_run, "XtoY", tmp_path_factory.mktemp("exports") / "x2y")


class _OldTranslator(tf.Module):
    """Pads as exports before this version did: tf.pad SYMMETRIC, which refuses a pad larger than the side."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
    def translate(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        x = tf.pad(images, [[0, 0], [2, 2], [2, 2], [0, 0]], mode="SYMMETRIC")
        return {"images": 255.0 - x[:, 2:-2, 2:-2, :]}


@pytest.fixture(scope="module")
def old_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("old") / "old_export"
    module = _OldTranslator()
    tf.saved_model.save(module, str(path), signatures={"translate": module.translate})
    return path


def _png(path: Path | bytes, h: int, w: int) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(h * w).integers(0, 256, (h, w, 3), np.uint8)).save(buf, "PNG")
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


DAMAGES = {
    "variables/ missing": lambda m: shutil.rmtree(m / "variables"),
    "variables.data truncated": lambda m: _truncate(m / "variables" / "variables.data-00000-of-00001", 0.5),
    "saved_model.pb truncated": lambda m: _truncate(m / "saved_model.pb", 0.5),
    "saved_model.pb empty": lambda m: _truncate(m / "saved_model.pb", 0),
    "saved_model.pb missing": lambda m: (m / "saved_model.pb").unlink(),
}


def damaged(model: Path, folder: Path, kind: str) -> Path:
    copy = folder / kind.replace(" ", "_").replace("/", "")
    shutil.copytree(model, copy)
    DAMAGES[kind](copy)
    return copy


def test_damaged_exports_are_one_line_errors(model: Path, tmp_path: Path) -> None:
    src = write_kind(tmp_path, "jpg")
    for kind in DAMAGES:
        bad = damaged(model, tmp_path, kind)
        with pytest.raises(UserError, match=re.escape(f"--model={bad}: damaged export: {bad}")):
            run(str(bad), str(tmp_path), str(tmp_path / "out"))
        assert not (tmp_path / "out").exists(), kind  # checked before anything is written
    with pytest.raises(UserError, match="no saved_model.pb"):
        run(str(tmp_path / "saved_model.pb_missing"), str(src), str(tmp_path / "o.png"))


def test_cli_damaged_export_is_one_line(model: Path, tmp_path: Path) -> None:
    bad = damaged(model, tmp_path, "variables.data truncated")
    r = cli("inference.py", f"--model={bad}", f"--input={write_kind(tmp_path, 'jpg')}", "--output=o.png", cwd=tmp_path)
    error_line(r, f"error: --model={bad}: damaged export")
    assert not (tmp_path / "o.png").exists()


def test_images_under_the_generators_size(model: Path, old_model: Path, tmp_path: Path, capsys) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for name, (h, w) in {"tiny.png": (1, 1), "thin.png": (1, 3), "fine.png": (8, 8)}.items():
        _png(src / name, h, w)
    s = run(str(model), str(src), str(tmp_path / "new"))  # this version's exports take any size
    assert s.written == 3 and Image.open(tmp_path / "new/tiny.png").size == (1, 1)
    # an older export: folder mode skips what it refuses and goes on; one file is a one-line error
    s = run(str(old_model), str(src), str(tmp_path / "old"), batch_size=4)
    assert s.written == 1 and len(s.skipped) == 2
    err = capsys.readouterr().err
    assert "tiny.png: skipped, the model cannot translate a 1×1 image" in err and "thin.png: skipped" in err
    with pytest.raises(UserError, match=r"--input=.*tiny.png: the model cannot translate a 1×1 image"):
        run(str(old_model), str(src / "tiny.png"), str(tmp_path / "o.png"))
    assert not (tmp_path / "o.png").exists()


def test_full_disk_and_unwritable_output(model: Path, tmp_path: Path) -> None:
    src = write_kind(tmp_path, "jpg")
    (tmp_path / "a_file").write_text("")
    with pytest.raises(UserError, match=re.escape(f"--output={tmp_path}/a_file/o.png: cannot create")):
        run(str(model), str(src), str(tmp_path / "a_file" / "o.png"))
    with small_disk(tmp_path / "disk", "1m") as disk:
        run(str(model), str(src), str(disk / "out.png"))
        before = (disk / "out.png").read_bytes()
        fill(disk)
        with pytest.raises(OSError, match="No space left on device") as e:
            run(str(model), str(src), str(disk / "out.png"))
        assert e.value.filename == str(disk / "out.png")  # the output's name, not its temporary one
        assert (disk / "out.png").read_bytes() == before and temporaries(disk) == []


def test_cli_full_disk_is_one_line(model: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_kind(src, "jpg")
    with small_disk(tmp_path / "disk", "1m") as disk:
        fill(disk)
        r = cli("inference.py", f"--model={model}", f"--input={src}", f"--output={disk}/out", "--html", cwd=tmp_path)
        error_line(r, f"{disk}/out", "No space left on device")
        assert temporaries(disk) == []


def test_a_killed_runs_leftovers_are_removed(model: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_kind(src, "jpg")
    out = tmp_path / "out"
    (out / "inputs").mkdir(parents=True)
    ours = [out / f".jpg_0.jpg.tmp-{DEAD_PID}", out / f".index.html.tmp-{DEAD_PID}",
            out / "inputs" / f".jpg_0.jpg.tmp-{DEAD_PID}"]
    theirs = [out / f".holiday.jpg.tmp-{DEAD_PID}", out / "inputs" / f".holiday.jpg.tmp-{DEAD_PID}"]
    for p in ours + theirs:
        p.write_text("left by a killed run")
    run(str(model), str(src), str(out), write_html=True)
    assert not any(p.exists() for p in ours) and all(p.exists() for p in theirs)
    single = tmp_path / f".o.png.tmp-{DEAD_PID}"
    single.write_text("")
    run(str(model), str(src / "jpg_0.jpg"), str(tmp_path / "o.png"))
    assert not single.exists()


def test_a_name_that_is_not_utf8(model: Path, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    name = b"caf\xe9.png"
    _png(os.path.join(os.fsencode(tmp_path / "in"), name), 20, 12)
    single = os.fsdecode(os.path.join(os.fsencode(tmp_path), name))
    line = timed_run(model=str(model), input_pattern=os.fsdecode(os.path.join(os.fsencode(tmp_path / "in"), name)),
                     output=single)
    assert "output:" in line and line.encode("utf-8") and Path(single).exists()  # printable: no lone surrogates
    r = cli("inference.py", f"--model={model}", "--input=in", "--output=out", "--html", cwd=tmp_path)
    quiet(r)  # also: none of TensorFlow's start-up lines
    assert "translated 1 images" in r.stdout
    out = os.fsencode(tmp_path / "out")
    assert name in os.listdir(out) and name in os.listdir(os.path.join(out, b"inputs"))
    page = (tmp_path / "out" / "index.html").read_bytes().decode("utf-8")  # valid UTF-8, as its meta tag says
    links = [urllib.parse.unquote_to_bytes(u) for u in re.findall(r"src='([^']+)'", page)]
    assert links == [b"inputs/" + name, name] and all(os.path.exists(os.path.join(out, u)) for u in links)


@pytest.mark.slow  # the interrupt races a short write: under load it can come too late
def test_ctrl_c_leaves_whole_outputs_only(model: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(200):
        _png(src / f"{i:03}.png", 64, 64 + i % 2)
    out = tmp_path / "out"
    p = subprocess.Popen(command("inference.py", f"--model={model}", f"--input={src}", f"--output={out}",
                                 "--batch_size=1"), cwd=tmp_path, env=ENV, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out.is_dir() and any(out.glob("*.png"))) and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=120)
    r = subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)
    assert r.returncode == 130, r.stdout + r.stderr
    error_line(r, "interrupted")
    written = sorted(out.iterdir())
    assert 0 < len(written) < 200 and temporaries(out) == []
    for f in written:
        Image.open(f).load()  # whole files only


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_whole_outputs_and_a_rerun_cleans_up(model: Path, tmp_path: Path) -> None:
    from harness import kill_after, moments

    src = tmp_path / "in"
    src.mkdir()
    for i in range(120):
        _png(src / f"{i:03}.png", 48, 48 + i % 3)
    out = tmp_path / "out"
    args = (f"--model={model}", f"--input={src}", f"--output={out}", "--batch_size=2")
    for moment in moments(seed=5, n=3, low=0.0, high=1.5):
        status = kill_after("inference.py", *args, cwd=tmp_path, delay=moment,
                            ready=lambda: out.is_dir() and any(out.glob("*.png")))
        assert status is None, "inference ended before it was killed"
        for f in out.glob("*.png"):
            Image.open(f).load()  # every file under a final name is whole
    r = cli("inference.py", *args, cwd=tmp_path)
    quiet(r)
    assert temporaries(out) == [] and len(list(out.glob("*.png"))) == 120
