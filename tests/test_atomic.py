from pathlib import Path

import pytest

from cyclegan_tf.atomic import atomic_path, remove_stale, write_text


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "scores.json"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["scores.json"]
    write_text(target, "new")
    assert target.read_text() == "new" and len(list(tmp_path.iterdir())) == 1


def test_remove_stale_takes_only_a_dead_writers_temporaries_of_that_target(tmp_path: Path) -> None:
    import os
    import subprocess

    dead_pid = subprocess.Popen(["true"])
    dead_pid.wait()
    dead = dead_pid.pid
    (tmp_path / f".man2woman.tmp-{dead}").mkdir()
    (tmp_path / f"man.tfrecords-00000-of-00002.tmp-{dead}").write_text("half")
    (tmp_path / f".man2woman.tmp-{os.getpid()}").write_text("mine, in progress")  # a live writer's
    (tmp_path / f".other.tmp-{dead}").write_text("another target's")
    (tmp_path / "man2woman.tmp-notes").write_text("the user's")
    removed = {p.name for p in remove_stale(tmp_path / "man2woman")} | {
        p.name for p in remove_stale(tmp_path / "man.tfrecords")}
    assert removed == {f".man2woman.tmp-{dead}", f"man.tfrecords-00000-of-00002.tmp-{dead}"}
    assert {p.name for p in tmp_path.iterdir()} == {f".man2woman.tmp-{os.getpid()}", f".other.tmp-{dead}",
                                                    "man2woman.tmp-notes"}


def test_a_failed_write_names_the_target_not_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "flags.json"
    with pytest.raises(OSError) as e:
        write_text(target, "{}")
    assert e.value.filename == str(target)
