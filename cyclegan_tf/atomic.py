"""Files appear whole or not at all: written under a temporary name beside the target, then renamed.

Temporary names carry the writer's process id (`.NAME.tmp-PID`, `NAME.tmp-PID` for record shards,
`.NAME.old-PID` for a replaced export); `remove_stale` deletes those whose process is gone, so a killed
run's leftovers are cleaned by the next run, and nothing else is ever touched.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
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


def swap_in(tmp: Path, target: Path) -> None:
    """Puts the folder `tmp` under `target` in one step, so that at any moment (even after a kill) the name
    holds the previous folder or the new one, whole; the previous one is left at `tmp` for the caller to
    delete. Where the file system cannot exchange two names, the previous folder is set aside as
    `.NAME.old-PID` for a moment (`restore_set_aside` puts it back after a kill)."""
    with uninterrupted():
        if not (target.is_dir() and os.listdir(target)):
            os.replace(tmp, target)  # a missing name or an empty folder: one rename
        elif not _exchange(tmp, target):
            _replace_in_two_steps(tmp, target)


def restore_set_aside(target: Path, is_whole: Callable[[Path], bool]) -> None:
    """Where a killed `swap_in` left the previous folder set aside and `target` empty, puts it back."""
    old_name = re.compile(rf"\.{re.escape(target.name)}\.old-(\d+)")
    with contextlib.suppress(OSError):
        for old in sorted(target.parent.iterdir()):
            m = old_name.fullmatch(old.name)
            if m and not target.exists() and not alive(int(m[1])) and is_whole(old):
                old.rename(target)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swaps two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where that is not available."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EXDEV):  # EXDEV: overlayfs lower layers
        return False
    raise OSError(code, os.strerror(code), str(b))


def _replace_in_two_steps(tmp: Path, target: Path) -> None:
    """Without an atomic exchange the previous export is set aside as `.NAME.old-PID` first; a kill
    between the two renames leaves it there, and the next run's `tidy` puts it back."""
    old = temp_name(target, "old")
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(old, target)
        raise
    os.rename(old, tmp)
