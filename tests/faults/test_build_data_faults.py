"""build_data.py on every fault path: bad inputs, clashing flags, Ctrl-C, SIGKILL, a full or read-only disk.

The rule checked throughout: one `error:` line, the previous outputs byte-identical, no temporaries left.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import write_bad, write_kind
from harness import ENV, cli, command, error_line, kill_after, moments, quiet, small_disk, temporaries, tree
from PIL import Image

from cyclegan_tf.data import convert, records
from cyclegan_tf.data.imagefiles import load_image
from cyclegan_tf.errors import UserError

TOOL = "build_data.py"


def images(folder: Path, n: int, kind: str = "jpg", seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_kind(folder, kind, seed=seed + i)
    return folder


def noise_png(path: Path, size: int, seed: int) -> Path:
    """Noise does not compress: a PNG of about size*size*3 bytes, slow to decode."""
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), np.uint8)).save(path)
    return path


def previous(out: Path) -> dict[str, str]:
    """Good X and Y outputs of an earlier build in `out` (built in this process: no TensorFlow start-up)."""
    for d, seed in (("x", 50), ("y", 60)):
        convert.build_folder(d, str(images(out.parent / f"prev_{d}", 2, seed=seed)), str(out / f"{d}.tfrecords"))
    return tree(out)


def outputs(out: Path, *extra: str) -> list[str]:
    return [f"--X_output_file={out / 'x.tfrecords'}", f"--Y_output_file={out / 'y.tfrecords'}", *extra]


def file_names(path: Path) -> list[bytes]:
    return [tf.train.Example.FromString(raw.numpy()).features.feature["image/file_name"].bytes_list.value[0]
            for raw in tf.data.TFRecordDataset(str(path))]


# 1. A failed rebuild keeps both previous outputs.
@pytest.mark.parametrize("y_input,needle", [("missing", "no such folder"), ("no_images", "no image files")])
def test_failed_rebuild_keeps_both_previous_outputs(tmp_path: Path, y_input: str, needle: str) -> None:
    out = tmp_path / "out"
    before = previous(out)
    x, y = images(tmp_path / "X", 2), tmp_path / "Y"
    if y_input == "no_images":
        y.mkdir()
        (y / "notes.txt").write_text("no image here")
    listing = sorted(tmp_path.rglob("*"))
    r = cli(TOOL, f"--X_input_dir={x}", f"--Y_input_dir={y}", *outputs(out), cwd=tmp_path)
    error_line(r, needle, "--Y_input_dir")
    assert tree(out) == before and sorted(tmp_path.rglob("*")) == listing


def test_no_usable_image_in_y_keeps_both_previous_outputs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = previous(out)
    x, y = images(tmp_path / "X", 2), tmp_path / "Y"
    y.mkdir()
    write_bad(y, "truncated"), write_bad(y, "not_an_image")
    listing = sorted(tmp_path.rglob("*"))
    plans = [convert.plan_folder("X", str(x), str(out / "x.tfrecords")),  # as build_data.py does for X and Y
             convert.plan_folder("Y", str(y), str(out / "y.tfrecords"))]
    with pytest.raises(UserError, match="Y: no usable image"):
        convert.build_all(plans)
    assert tree(out) == before and sorted(tmp_path.rglob("*")) == listing


def test_failed_build_removes_the_folders_it_made(tmp_path: Path) -> None:
    good, bad = images(tmp_path / "X", 2), tmp_path / "Y"
    bad.mkdir()
    write_bad(bad, "empty")
    plans = [convert.plan_folder("X", str(good), str(tmp_path / "new/x.tfrecords")),
             convert.plan_folder("Y", str(bad), str(tmp_path / "new/deeper/y.tfrecords"))]
    with pytest.raises(UserError, match="no usable image"):
        convert.build_all(plans)
    assert not (tmp_path / "new").exists()


# 2. X and Y written to one file.
def test_same_file_for_x_and_y_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = previous(out)
    (tmp_path / "alias").symlink_to(out)
    x = images(tmp_path / "X", 2)
    r = cli(TOOL, f"--X_input_dir={x}", f"--Y_input_dir={x}", "--X_output_file=out/x.tfrecords",
            "--Y_output_file=./alias/../alias/x.tfrecords", cwd=tmp_path)
    error_line(r, "--X_output_file=out/x.tfrecords", "--Y_output_file=", "both write")
    assert tree(out) == before


@pytest.mark.parametrize("a,b,shards", [("o/a", "o/a", 3), ("o/a", "o/a-00001-of-00002", 1),
                                        ("o/a-00000-of-00002", "o/a", 1)])
def test_outputs_sharing_a_shard_are_refused(tmp_path: Path, a: str, b: str, shards: int) -> None:
    with pytest.raises(UserError, match="both write"):
        convert.check_outputs([("--X_output_file", str(tmp_path / a)), ("--Y_output_file", str(tmp_path / b))], shards)
    convert.check_outputs([("--X_output_file", str(tmp_path / "o/a")), ("--Y_output_file", str(tmp_path / "o/ab"))], 2)


# 3. More shards than images.
def test_more_shards_than_files_is_refused_before_writing(tmp_path: Path) -> None:
    x, y = images(tmp_path / "X", 3), images(tmp_path / "Y", 4, seed=10)
    r = cli(TOOL, f"--X_input_dir={x}", f"--Y_input_dir={y}", *outputs(tmp_path / "out", "--num_shards=4"),
            cwd=tmp_path)
    error_line(r, "--num_shards=4", "3 images")
    assert not (tmp_path / "out").exists()


def test_more_shards_than_usable_images_keeps_the_previous_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = previous(out)
    x = images(tmp_path / "X", 1)
    write_bad(x, "truncated"), write_bad(x, "empty")
    with pytest.raises(UserError, match="only 1 usable image"):
        convert.build_folder("X", str(x), str(out / "x.tfrecords"), num_shards=2)
    assert tree(out) == before and not temporaries(out)


# 4. Palette BMPs: TensorFlow reads their palette indexes as grey.
def test_palette_bmp_keeps_its_colours(tmp_path: Path) -> None:
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 128, 255], [90, 30, 10]], np.uint8)
    index = (np.arange(32)[None, :] // 6 + np.arange(24)[:, None] // 12) % len(colours)
    img = Image.fromarray(index.astype(np.uint8), mode="P")
    img.putpalette(colours.ravel().tolist())
    img.save(tmp_path / "palette.bmp")
    assert Image.open(tmp_path / "palette.bmp").mode == "P"
    records.write_records(str(tmp_path / "p.tfrecords"), [records.to_example(load_image(tmp_path / "palette.bmp"))])
    raw = next(iter(tf.data.TFRecordDataset(str(tmp_path / "p.tfrecords"))))
    encoded = tf.train.Example.FromString(raw.numpy()).features.feature["image/encoded_image"].bytes_list.value[0]
    assert np.array_equal(tf.io.decode_image(encoded, channels=3).numpy(), colours[index])


# 5. File names that are not UTF-8; 12. a successful run prints nothing of TensorFlow's.
def test_file_name_not_utf8_is_stored_as_its_bytes(tmp_path: Path) -> None:
    x, y = images(tmp_path / "X", 1), images(tmp_path / "Y", 2, seed=10)
    folder = os.fsencode(x)
    os.rename(write_kind(x, "png_gray", seed=5), os.path.join(folder, b"caf\xe9.png"))
    fd = os.open(os.path.join(folder, b"mauvais\xe9.jpg"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"not an image")
    os.close(fd)
    r = cli(TOOL, f"--X_input_dir={x}", f"--Y_input_dir={y}", *outputs(tmp_path / "out"), cwd=tmp_path)
    quiet(r)
    assert "mauvais\ufffd.jpg: skipped, not an image" in r.stderr
    assert b"caf\xe9.png" in file_names(tmp_path / "out/x.tfrecords")


# 6. Broken symlinks.
def test_broken_symlink_is_a_warning_and_counted(tmp_path: Path, capsys) -> None:
    x = images(tmp_path / "X", 2)
    (x / "gone.png").symlink_to(tmp_path / "deleted.png")
    summary = convert.build_folder("X", str(x), str(tmp_path / "x.tfrecords"))
    assert summary.written == 2 and summary.skipped == {"broken symlink": 1} and "skipped 1" in summary.line()
    warnings = [line for line in capsys.readouterr().err.splitlines() if "gone.png" in line]
    assert len(warnings) == 1 and "broken symlink" in warnings[0] and "skipped" in warnings[0]


# 7. --paired with vanhuyz's output flags.
def test_paired_writes_to_x_output_file(tmp_path: Path) -> None:
    ab = images(tmp_path / "AB", 2)
    r = cli(TOOL, "--paired", f"--X_input_dir={ab}", "--X_output_file=pairs.tfrecords", cwd=tmp_path)
    quiet(r)
    assert records.count_records([str(tmp_path / "pairs.tfrecords")]) == 2 and not (tmp_path / "data").exists()


def test_paired_refuses_y_output_file(tmp_path: Path) -> None:
    ab = images(tmp_path / "AB", 2)
    r = cli(TOOL, "--paired", f"--X_input_dir={ab}", "--X_output_file=a.tfrecords", "--Y_output_file=b.tfrecords",
            cwd=tmp_path)
    error_line(r, "--Y_output_file", "one file", "--output_file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["AB"]


def slow_inputs(tmp_path: Path, links: int) -> tuple[Path, Path]:
    """X and Y that take seconds to decode: a big noise PNG hard-linked many times (stored once), plus 3 images."""
    folders = []
    for d, seed in (("X", 0), ("Y", 10)):
        folder = images(tmp_path / d, 3, seed=seed)
        big = noise_png(folder / "big.png", 512, seed)
        for i in range(links):
            os.link(big, folder / f"big_{i:03d}.png")
        folders.append(folder)
    return folders[0], folders[1]


# 8. Ctrl-C while writing Y, when X is written but must not replace the previous X yet.
@pytest.mark.slow  # the interrupt races a short write: under load it can come too late
def test_ctrl_c_keeps_previous_outputs_and_leaves_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = previous(out)
    x, y = slow_inputs(tmp_path, 60)
    p = subprocess.Popen(command(TOOL, f"--X_input_dir={x}", f"--Y_input_dir={y}", *outputs(out)), cwd=tmp_path,
                         env=ENV, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any("y.tfrecords" in t.name for t in temporaries(out)) and p.poll() is None:
        assert time.monotonic() < deadline, "build_data.py never started writing Y"
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=120)
    r = subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)
    error_line(r, "interrupted")
    assert r.returncode == 130 and tree(out) == before and not temporaries(out)


# 9. Temporaries of a killed run.
def test_dead_runs_temporaries_are_removed_and_nothing_else(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    out = tmp_path / "out"
    out.mkdir()
    stale = [f"{name}.tmp-{dead.pid}" for name in (".x.tfrecords", "x.tfrecords", "x.tfrecords-00000-of-00002")]
    kept = [f".other.tfrecords.tmp-{dead.pid}", ".x.tfrecords.tmp-1", "x.tfrecords.notes"]  # pid 1 is alive
    for name in stale + kept:
        (out / name).write_bytes(b"left over")
    convert.build_folder("X", str(images(tmp_path / "X", 2)), str(out / "x.tfrecords"))
    assert sorted(p.name for p in out.iterdir()) == sorted([*kept, "x.tfrecords"])


# 10. A full disk and a read-only one.
def test_full_disk_is_one_line_and_keeps_previous_outputs(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "300k") as disk:
        before = previous(disk)
        x = tmp_path / "X"
        x.mkdir()
        for i in range(40):  # 40 × 12 kB of noise: more than the disk holds
            noise_png(x / f"noise_{i:02d}.png", 64, i)
        y = images(tmp_path / "Y", 2, seed=10)
        r = cli(TOOL, f"--X_input_dir={x}", f"--Y_input_dir={y}", *outputs(disk), cwd=tmp_path)
        line = error_line(r, "x.tfrecords: No space left")
        assert ".tmp-" not in line  # the file the user named, not our temporary
        assert tree(disk) == before and not temporaries(disk)


def test_read_only_disk_is_one_line(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "300k") as disk:
        before = previous(disk)
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        x = images(tmp_path / "X", 2)
        r = cli(TOOL, f"--X_input_dir={x}", f"--Y_input_dir={x}", *outputs(disk), cwd=tmp_path)
        error_line(r, "x.tfrecords", "not writable")
        assert tree(disk) == before


# 11. SIGKILL at random moments, then a rerun.
def test_sigkill_never_leaves_a_partial_output_and_a_rerun_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = previous(out)
    x, y = slow_inputs(tmp_path, 40)  # about a second of writing for each domain
    args = [f"--X_input_dir={x}", f"--Y_input_dir={y}", *outputs(out)]
    for delay in moments(11, 3, 0.0, 2.0):
        old = set(temporaries(out))  # the previous killed run's: this run starts writing when it has its own
        kill_after(TOOL, *args, cwd=tmp_path, delay=delay, ready=lambda old=old: bool(set(temporaries(out)) - old))
        finals = {p.name for p in out.iterdir() if p not in temporaries(out)}
        assert finals == {"x.tfrecords", "y.tfrecords"}, finals
        for name in finals:
            if tree(out)[name] != before[name]:
                assert records.count_records([str(out / name)]) == 4  # 3 images and the big one, stored once
    quiet(cli(TOOL, *args, cwd=tmp_path))
    assert not temporaries(out)
    assert [records.count_records([str(out / f)]) for f in ("x.tfrecords", "y.tfrecords")] == [4, 4]
