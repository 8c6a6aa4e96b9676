"""export_graph.py on every fault path: user files at the export's name, bad names, small images, a full
disk, Ctrl-C, SIGKILL at random moments, leftovers of killed runs, TensorFlow's start-up chatter."""
from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from harness import (
    ENV,
    cli,
    command,
    dead_pid,
    error_line,
    fill,
    kill_after,
    moments,
    quiet,
    small_disk,
    temporaries,
    tree,
)

from cyclegan_tf import networks
from cyclegan_tf.deploy.savedmodel import Translator, export, export_targets, mirror_indices, model_name, tidy
from cyclegan_tf.errors import UserError

DEAD_PID = dead_pid()  # the id of a process that is gone


@pytest.fixture(scope="module")
def exported(trained_run: Path, tmp_path_factory) -> Path:
    """One export of the run, copied where a test needs a previous export (an export takes seconds)."""
    return export(trained_run, "XtoY", tmp_path_factory.mktemp("exported") / "man2woman")


# A disk for one export of the test run (1.74 MB, its weights in saved_model.pb; its graph is most of it, and
# grew from 0.85 MB with the residual blocks' Winograd convs and the direct-conv `translate_portable`) and not two.
ONE_EXPORT = "2048k"


def _previous(exported: Path, target: Path) -> dict[str, str]:
    shutil.copytree(exported, target)
    return tree(target)


def _user_folder(folder: Path) -> dict[str, str]:
    (folder / "drafts").mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    (folder / "drafts" / "a.txt").write_text("also mine")
    return tree(folder)


def _export_args(run: Path, *extra: str) -> list[str]:
    return [f"--checkpoint_dir={run}", *extra]


def test_refuses_to_replace_what_is_not_an_export(trained_run: Path, tmp_path: Path) -> None:
    user = tmp_path / "pretrained" / "man2woman"
    before = _user_folder(user)
    with pytest.raises(UserError, match=re.escape(f"{user}: a folder that is not an export") + ".*notes.txt"):
        export(trained_run, "XtoY", user)
    assert tree(user) == before
    (user / "saved_model.pb").write_bytes(b"not ours either")  # SavedModel files beside others: still theirs
    with pytest.raises(UserError, match="not an export"):
        export(trained_run, "XtoY", user)
    assert (user / "notes.txt").read_text() == "mine"
    plain = tmp_path / "pretrained" / "woman2man"
    plain.write_text("a file")
    with pytest.raises(UserError, match=re.escape(f"{plain}: exists and is not an export folder")):
        export(trained_run, "YtoX", plain)
    assert plain.read_text() == "a file" and temporaries(tmp_path) == []


def test_export_names_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    both = ("XtoY", "YtoX")
    assert export_targets({"XtoY": "man2woman.pb", "YtoX": "sub/woman2man"}, both, "out") == {
        "XtoY": Path("out/man2woman"), "YtoX": Path("out/sub/woman2man")}
    assert export_targets({"XtoY": "g", "YtoX": "g"}, ("XtoY",), "out") == {"XtoY": Path("out/g")}  # pix2pix
    assert export_targets({"XtoY": "", "YtoX": "f"}, both, "out") == {"YtoX": Path("out/f")}
    for names, exported, message in (
            ({"XtoY": "m", "YtoX": "m.pb"}, both, "need separate folders"),
            ({"XtoY": "a", "YtoX": "a/b"}, both, "need separate folders"),
            ({"XtoY": "", "YtoX": ""}, both, "nothing to export: --XtoY_model and --YtoX_model are empty"),
            ({"XtoY": "", "YtoX": "f"}, ("XtoY",), r"nothing to export: --XtoY_model is empty \(the run exports only"),
            ({"XtoY": "../m", "YtoX": ""}, both, "--XtoY_model=../m: name a folder inside --export_dir=out"),
            ({"XtoY": "/abs/m", "YtoX": ""}, both, "name a folder inside"),
            ({"XtoY": "sub/..", "YtoX": ""}, both, "name a folder inside")):
        with pytest.raises(UserError, match=message):
            export_targets(names, exported, "out")
    assert model_name("sub/man2woman.pb") == "sub/man2woman" and model_name(".pb") == ".pb"
    assert list(tmp_path.iterdir()) == []


def test_new_exports_translate_any_size(exported: Path) -> None:
    model = tf.saved_model.load(str(exported))
    for h, w in ((1, 1), (3, 1), (1, 5), (2, 2), (4, 4), (9, 7)):
        out = model.translate(tf.random.uniform([2, h, w, 3], 0, 255))["images"].numpy()
        assert out.shape == (2, h, w, 3) and np.isfinite(out).all()
    # A U-Net needs 256 × 256: a 1 × 1 image is mirrored 255 px on each side.
    unet = Translator(networks.define_G("unet_256", ngf=2), 256, 0, {}, 0, "XtoY")
    assert unet.min_side == 256
    for h, w in ((1, 1), (100, 3)):
        assert unet.translate(tf.random.uniform([1, h, w, 3], 0, 255))["images"].shape == (1, h, w, 3)
    # Where tf.pad's SYMMETRIC works, the padding is the same as before
    x = tf.reshape(tf.range(5 * 3), [1, 5, 3, 1])
    rows, cols = mirror_indices(5, 2, 3), mirror_indices(3, 1, 2)
    assert (tf.gather(tf.gather(x, rows, axis=1), cols, axis=2).numpy()
            == tf.pad(x, [[0, 0], [2, 3], [1, 2], [0, 0]], mode="SYMMETRIC").numpy()).all()
    assert mirror_indices(1, 3, 4).numpy().tolist() == [0] * 8
    assert mirror_indices(2, 3, 0).numpy().tolist() == [1, 1, 0, 0, 1]


def test_a_previous_export_set_aside_by_a_killed_run_is_put_back(exported: Path, tmp_path: Path) -> None:
    """Where renameat2 cannot swap, a kill between the two renames leaves the previous export at .NAME.old-PID."""
    set_aside = tmp_path / f".man2woman.old-{DEAD_PID}"
    before = _previous(exported, set_aside)
    (tmp_path / f".man2woman.tmp-{DEAD_PID}").mkdir()
    tidy(tmp_path / "man2woman")
    assert tree(tmp_path / "man2woman") == before and sorted(p.name for p in tmp_path.iterdir()) == ["man2woman"]


def test_full_disk_and_unwritable_location(trained_run: Path, exported: Path, tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    with pytest.raises(UserError, match=re.escape(f"cannot create {tmp_path / 'a_file'}")):
        export(trained_run, "XtoY", tmp_path / "a_file" / "m")
    with small_disk(tmp_path / "disk", ONE_EXPORT) as disk:
        target = disk / "m"
        before = _previous(exported, target)  # there is no room for a second one
        with pytest.raises(OSError, match="No space left on device") as e:
            export(trained_run, "XtoY", target)
        assert e.value.filename == str(target)  # the export's name, not its temporary one
        assert tree(target) == before and temporaries(disk) == []


@pytest.mark.slow
def test_cli_full_disk_is_one_line(trained_run: Path, exported: Path, tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", ONE_EXPORT) as disk:
        before = _previous(exported, disk / "man2woman")
        fill(disk)
        r = cli("export_graph.py", *_export_args(trained_run, f"--export_dir={disk}", "--XtoY_model=man2woman",
                                                 "--YtoX_model=woman2man"), cwd=tmp_path)
        error_line(r, f"{disk}/", "No space left on device")
        assert tree(disk / "man2woman") == before and not (disk / "woman2man").exists()
        assert temporaries(disk) == []


def test_cli_exports_quietly_and_clears_leftovers(trained_run: Path, exported: Path, tmp_path: Path) -> None:
    """One run shows: no TensorFlow chatter, .pb names and sub/folders, a previous export replaced, and a
    killed run's temporaries removed (only those of the exports it writes)."""
    out = tmp_path / "pretrained"
    before = _previous(exported, out / "man2woman")
    (out / f".man2woman.tmp-{DEAD_PID}" / "variables").mkdir(parents=True)
    (out / f".notes.tmp-{DEAD_PID}").write_text("not a leftover of an export")
    r = cli("export_graph.py", *_export_args(trained_run, "--XtoY_model=man2woman.pb", "--YtoX_model=sub/woman2man"),
            cwd=tmp_path)
    quiet(r)
    assert "exported YtoX to pretrained/sub/woman2man" in r.stdout
    assert tree(out / "man2woman") != before
    for name, direction in (("man2woman", b"XtoY"), ("sub/woman2man", b"YtoX")):
        assert tf.saved_model.load(str(out / name)).direction.numpy() == direction
    assert [p.name for p in temporaries(out)] == [f".notes.tmp-{DEAD_PID}"]


def test_cli_refuses_a_user_folder_before_writing(trained_run: Path, tmp_path: Path) -> None:
    before = _user_folder(tmp_path / "pretrained" / "woman2man")
    r = cli("export_graph.py", *_export_args(trained_run, "--XtoY_model=man2woman", "--YtoX_model=woman2man"),
            cwd=tmp_path)
    error_line(r, "error: pretrained/woman2man: a folder that is not an export", "notes.txt")
    assert tree(tmp_path / "pretrained" / "woman2man") == before
    assert sorted(p.name for p in (tmp_path / "pretrained").iterdir()) == ["woman2man"]  # man2woman not written


def _started(folder: Path, name: str, earlier: frozenset[str] = frozenset()) -> bool:
    """Whether a new export's temporary folder `.NAME.tmp-PID` has appeared (not a killed run's)."""
    return any(p.name.startswith(f".{name}.tmp-") and p.name not in earlier for p in folder.iterdir())


@pytest.mark.slow
def test_ctrl_c_keeps_the_previous_export(trained_run: Path, exported: Path, tmp_path: Path) -> None:
    out = tmp_path / "pretrained"
    before = _previous(exported, out / "man2woman")
    p = subprocess.Popen(command("export_graph.py", *_export_args(trained_run, "--XtoY_model=man2woman",
                                                                    "--YtoX_model=")),
                         cwd=tmp_path, env=ENV, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not _started(out, "man2woman") and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=120)
    r = subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)
    assert r.returncode == 130, r.stderr
    error_line(r, "interrupted")
    assert tree(out / "man2woman") == before and temporaries(out) == []


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_one_whole_export(trained_run: Path, exported: Path, tmp_path: Path) -> None:
    out = tmp_path / "pretrained"
    target = out / "man2woman"
    _previous(exported, target)
    # the export is written and swapped in within ~0.4 s of its temporary folder appearing
    for delay in moments(seed=7, n=3, low=0.0, high=0.5):
        before, earlier = tree(target), frozenset(p.name for p in temporaries(out))
        args = _export_args(trained_run, "--XtoY_model=man2woman", "--YtoX_model=")
        status = kill_after("export_graph.py", *args, cwd=tmp_path, delay=delay,
                            ready=lambda earlier=earlier: _started(out, "man2woman", earlier))
        assert status in (None, 0), (delay, status)
        if tree(target) != before:  # the new export, whole
            assert tf.saved_model.load(str(target)).direction.numpy() == b"XtoY", delay
    export(trained_run, "XtoY", target)
    assert temporaries(out) == [] and sorted(p.name for p in out.iterdir()) == ["man2woman"]
