"""Files appear whole or not at all: written under a temporary name beside the target, then renamed.

Temporary names carry the writer's process id (`.NAME.tmp-PID`, `NAME.tmp-PID` for record shards,
`.NAME.old-PID` for a replaced export); `remove_stale` deletes those whose process is gone, so a killed
run's leftovers are cleaned by the next run, and nothing else is ever touched.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

_TEMP = re.compile(r"^(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)$")


def temp_name(path: str | os.PathLike, kind: str = "tmp") -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path to write; renames it to `path` if the block succeeds, else deletes it."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:  # name the file the user knows, not our temporary one
        raise OSError(e.errno, e.strerror, os.fspath(path)) from None
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", errors="surrogateescape")


def alive(pid: int) -> bool:
    """Whether a process of that id exists (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(*targets: str | os.PathLike) -> list[Path]:
    """Deletes the temporary files or folders that killed writers of `targets` left beside them (one
    listing per folder, however many targets)."""
    by_folder: dict[Path, set[str]] = {}
    for target in map(Path, targets):
        by_folder.setdefault(target.parent, set()).add(target.name)
    removed = []
    for folder, names in by_folder.items():
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            m = _TEMP.match(entry.name)
            if not m or int(m["pid"]) == os.getpid() or alive(int(m["pid"])):
                continue
            name = m["name"].lstrip(".")
            if name not in names and not any(name.startswith(n + "-") for n in names):
                continue
            try:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Defers Ctrl-C to the end of the block: an interrupt between two renames would leave a set of
    outputs half replaced (X without Y, an export set aside)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
    if caught and callable(previous):
        previous(signal.SIGINT, None)
