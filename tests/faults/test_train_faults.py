"""train.py on its fault paths: damaged checkpoints, NaN weights, undecodable records, a full disk,
signals and SIGKILL at random moments. Each case asserts what a user would check: nothing lost, resume at
the newest intact step, one line."""
from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import texture_records
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

from cyclegan_tf.config import TrainConfig
from cyclegan_tf.data import records
from cyclegan_tf.data.imagefiles import ImageRecord
from cyclegan_tf.errors import UserError
from cyclegan_tf.training import runs
from cyclegan_tf.training.loop import train

TINY = dict(image_size=32, load_size=36, netG="resnet_6blocks", ngf=4, ndf=4, pool_size=2, log_every=1,
            summary_every=100)
FLAGS = [f"--{k}={v}" for k, v in TINY.items()]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    return texture_records(tmp_path_factory.mktemp("records"), 4)


@pytest.fixture(scope="module")
def three_checkpoints(data: dict, tmp_path_factory) -> Path:
    """A run with ckpt-1, ckpt-2 and ckpt-3 (every step saved)."""
    run = tmp_path_factory.mktemp("run") / "run"
    assert train(TrainConfig(**data, checkpoint_dir=str(run), max_steps=3, save_every=1, keep_checkpoints=5,
                             **TINY)) == 0
    return run


def copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


def data_file(run: Path, step: int) -> Path:
    return next(run.glob(f"ckpt-{step}.data-*"))


def test_resume_skips_a_checkpoint_without_index_and_deletes_nothing(three_checkpoints, data, tmp_path, capsys):
    run = copy(three_checkpoints, tmp_path)
    (run / "ckpt-3.index").unlink()
    (run / "checkpoint").unlink()  # TensorFlow's state file too: the files themselves are scanned
    before = tree(run)
    assert train(TrainConfig(**data, checkpoint_dir=str(run), max_steps=4, save_every=1, keep_checkpoints=1,
                             **TINY)) == 0
    captured = capsys.readouterr()
    assert ("skipped damaged checkpoint(s) ckpt-3 (no .index file), set aside as ckpt-3.*.damaged; using ckpt-2"
            in captured.err)
    assert f"resuming {run} at step 2" in captured.out
    after = tree(run)
    # ckpt-1 and ckpt-2 were written by an earlier session: kept whatever --keep_checkpoints says
    for name in ("ckpt-1.index", "ckpt-2.index"):
        assert after[name] == before[name]
    assert "ckpt-4.index" in after and "ckpt-3.index" not in after  # this session kept only its newest
    # the damaged one is kept aside, not overwritten by this session's ckpt-3
    assert after["ckpt-3.data-00000-of-00001.damaged"] == before["ckpt-3.data-00000-of-00001"]
    assert tf.train.latest_checkpoint(str(run)).endswith("ckpt-4")


@pytest.mark.parametrize("damage", ["truncated", "flipped_byte", "missing_data", "empty_index"])
def test_newest_intact_falls_back_past_damage(three_checkpoints, tmp_path, damage):
    run = copy(three_checkpoints, tmp_path)
    f = data_file(run, 3)
    raw = bytearray(f.read_bytes())
    if damage == "truncated":
        f.write_bytes(raw[: len(raw) // 2])
    elif damage == "flipped_byte":
        raw[len(raw) // 3] ^= 0xFF
        f.write_bytes(bytes(raw))
    elif damage == "missing_data":
        f.unlink()
    else:
        (run / "ckpt-3.index").write_bytes(b"")
    latest, skipped = runs.newest_intact(run)
    assert latest == str(run / "ckpt-2")
    assert len(skipped) == 1 and skipped[0].startswith("ckpt-3 (") and "{{" not in skipped[0]


def test_only_damaged_checkpoints_refuse_a_fresh_start_until_restart(three_checkpoints, data, tmp_path):
    run = copy(three_checkpoints, tmp_path)
    for step in (1, 2, 3):
        (run / f"ckpt-{step}.index").unlink()
    before = tree(run)
    cfg = TrainConfig(**data, checkpoint_dir=str(run), max_steps=1, **TINY)
    with pytest.raises(UserError, match="its checkpoints cannot be read .*--restart"):
        train(cfg)
    assert tree(run) == before
    with pytest.raises(UserError, match="holds checkpoints .* but no flags.json"):
        (run / "flags.json").unlink()
        train(cfg)
    assert train(TrainConfig(**data, checkpoint_dir=str(run), max_steps=1, restart=True, **TINY)) == 0
    assert tf.train.latest_checkpoint(str(run)).endswith("ckpt-1")
    assert (run / "ckpt-2.data-00000-of-00001.damaged").exists()  # the damaged ones are set aside, kept


def test_restart_is_refused_where_an_intact_checkpoint_exists(three_checkpoints, data, tmp_path):
    run = copy(three_checkpoints, tmp_path)
    before = tree(run)
    with pytest.raises(UserError, match="--restart: .* holds the intact checkpoint ckpt-3"):
        train(TrainConfig(**data, checkpoint_dir=str(run), max_steps=5, restart=True, **TINY))
    assert tree(run) == before


def test_a_state_with_nan_weights_is_never_saved(three_checkpoints, data, tmp_path):
    run = copy(three_checkpoints, tmp_path)
    cfg, folder, model_cls = runs.prepare(TrainConfig(load_model=str(run)), set())
    model = model_cls(cfg, 4, 1)
    checkpointer = runs.Checkpointer(model, run, keep=5, save_every=1)
    checkpointer.restore_latest(run)
    before = tree(run)
    slot = model.opts[next(iter(model.opts))].variables[-1]
    slot.assign(tf.fill(slot.shape, np.nan))  # an optimiser slot, not a weight: both are checked
    with pytest.raises(FloatingPointError):
        checkpointer.save(4)
    assert tree(run) == before


def test_one_undecodable_record_is_skipped_not_fatal(data, tmp_path):
    x = tmp_path / "X.tfrecords"
    good = [r.numpy() for r in tf.data.TFRecordDataset(data["X"])]
    bad = records.to_example(ImageRecord("broken.jpg", b"\xff\xd8 not really a jpeg", 40, 40, "jpeg", "0" * 64))
    with tf.io.TFRecordWriter(str(x)) as w:
        for ex in [good[0], bad, *good[1:]]:
            w.write(ex)
    assert train(TrainConfig(X=str(x), Y=data["Y"], checkpoint_dir=str(tmp_path / "run"), max_steps=6, **TINY)) == 0


def test_a_second_trainer_in_the_same_folder_is_refused(tmp_path):
    with runs.lock(tmp_path):
        with pytest.raises(UserError, match="another training process"):
            with runs.lock(tmp_path):
                pass
    with runs.lock(tmp_path):  # released at the end of the first
        pass


def test_leftovers_of_a_killed_save_are_removed(three_checkpoints, data, tmp_path):
    run = copy(three_checkpoints, tmp_path)
    (run / "ckpt-4_temp").mkdir()
    (run / "ckpt-4_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"half")
    stale = run / f".flags.json.tmp-{dead_pid()}"
    stale.write_text("{")
    (run / "notes.txt").write_text("mine")
    model_cls = runs.prepare(TrainConfig(load_model=str(run)), set())
    cfg, _, model_cls = model_cls
    runs.Checkpointer(model_cls(cfg, 4, 1), run, 5, 1).restore_latest(run)
    assert not (run / "ckpt-4_temp").exists() and not stale.exists()
    assert (run / "notes.txt").read_text() == "mine"


def _train_cli(data: dict, run: Path, *extra: str, cwd: Path) -> subprocess.CompletedProcess:
    return cli("train.py", f"--X={data['X']}", f"--Y={data['Y']}", f"--checkpoint_dir={run}", *FLAGS, *extra,
               cwd=cwd)


def test_full_disk_while_saving_keeps_the_last_checkpoint(three_checkpoints, data, tmp_path):
    with small_disk(tmp_path / "disk", "8m") as disk:
        run = Path(shutil.copytree(three_checkpoints, disk / "run"))
        before = {k: v for k, v in tree(run).items() if k.startswith("ckpt-")}
        fill(disk, leave=64 * 1024)  # room for flags.json and the event file, not for a checkpoint
        r = _train_cli(data, run, "--max_steps=6", "--save_every=1", cwd=tmp_path)
        error_line(r, "cannot write checkpoint", "ckpt-4", "No space left on device", "the last checkpoint is")
        after = tree(run)
        assert {k: v for k, v in after.items() if k.startswith("ckpt-")} == before
        assert not temporaries(run) and not list(run.glob("ckpt-4*"))


def _ready(run: Path, step: int = 1):
    return lambda: any(run.glob(f"ckpt-{step}.index"))


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(data, tmp_path):
    """Three kills at seeded moments, each resuming from what the previous one left, then a run to the end."""
    run = tmp_path / "run"
    args = [f"--X={data['X']}", f"--Y={data['Y']}", f"--checkpoint_dir={run}", *FLAGS, "--save_every=1",
            "--keep_checkpoints=2"]
    step = 0
    for moment in moments(seed=3, n=3, low=0.0, high=4.0):
        status = kill_after("train.py", *args, "--max_steps=10000", cwd=tmp_path, delay=moment,
                            ready=_ready(run, step + 1))
        assert status is None, "the run ended before it was killed"
        latest, _ = runs.newest_intact(run)
        assert latest is not None and (run / "flags.json").exists()
        assert int(latest.rsplit("-", 1)[1]) > step  # each session got somewhere, and kept it
        step = int(latest.rsplit("-", 1)[1])
    r = cli("train.py", *args, f"--max_steps={step + 2}", cwd=tmp_path)
    quiet(r)  # and nothing of TensorFlow's start-up chatter on stderr
    assert f"at step {step}" in r.stdout and f"training finished: {step + 2} steps" in r.stdout
    assert not temporaries(run) and not list(run.glob("*_temp"))


def test_double_ctrl_c_saves_first_and_prints_no_traceback(data, tmp_path):
    run = tmp_path / "run"
    p = subprocess.Popen(command("train.py", f"--X={data['X']}", f"--Y={data['Y']}", f"--checkpoint_dir={run}",
                                 *FLAGS, "--max_steps=1000", "--save_every=1000"),
                         cwd=tmp_path, env=ENV, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    lines = []
    for line in p.stdout:  # "step 1/1000" (log_every 1): the loop, and its signal handler, are running
        lines.append(line)
        if line.startswith("step 1/"):
            break
    p.send_signal(signal.SIGINT)
    time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=300)
    out = "".join(lines) + out
    assert p.returncode == 128 + signal.SIGINT, err
    assert "Traceback" not in err and "stopped by signal 2" in out
    latest, skipped = runs.newest_intact(run)
    assert latest and not skipped


def test_a_truncated_record_file_is_one_line_and_writes_nothing(data, tmp_path):
    x = tmp_path / "X.tfrecords"
    raw = Path(data["X"]).read_bytes()
    x.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match="X.tfrecords: corrupt TFRecord data"):
        train(TrainConfig(X=str(x), Y=data["Y"], checkpoint_dir=str(tmp_path / "run"), max_steps=1, **TINY))
    assert not (tmp_path / "run").exists()
