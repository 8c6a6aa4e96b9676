"""One-line errors for the command-line tools.

A user who passes a bad flag or file gets one line naming it and what is wrong, never a traceback:
UserError is ours; a failing disk (full, read-only, no permission) and an interrupt are the machine's or
the user's, and get one line too. Bugs still show their traceback.
"""
from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Callable

_TF_NOISE = re.compile(r"\s*(\[\[.*?\]\]|\{\{function_node [^}]*\}\}|\{\{node [^}]*\}\})")
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO)
# TensorFlow's file errors carry the reason only as text.
_TF_DISK_REASONS = {"No space left": errno.ENOSPC, "Disk quota": errno.EDQUOT, "Read-only file system": errno.EROFS,
                    "Permission denied": errno.EACCES, "File too large": errno.EFBIG}


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit status 2."""


def one_line(message: str) -> str:
    """The first line of a message without TensorFlow's internal op names ({{function_node …}}, [[…]])."""
    line = _TF_NOISE.sub("", str(message).strip().split("\n")[0]).strip()
    return line[:300] or "unknown error"


def disk_error(e: OSError) -> str | None:
    """'<file>: <reason>' for an OSError that is the disk's fault (full, read-only, not ours to write)."""
    if e.errno not in DISK_ERRORS:
        return None
    where = e.filename if e.filename is not None else "output"
    return f"{os.fsdecode(where)}: {e.strerror or os.strerror(e.errno)}"


def tf_disk_errno(message: str) -> int | None:
    """The errno of a TensorFlow file error that is the disk's fault, from its message."""
    return next((code for text, code in _TF_DISK_REASONS.items() if text in message), None)


def disk_failure(e: BaseException, path: str | os.PathLike) -> OSError | None:
    """A full, read-only or forbidden disk (an OSError, or TensorFlow's error that says so) as an OSError
    naming `path`, the file the user knows (not our temporary one); None for any other failure."""
    if isinstance(e, OSError) and disk_error(e) is not None:
        return OSError(e.errno, e.strerror or os.strerror(e.errno), os.fspath(path))
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(e, tf.errors.OpError):
        code = tf_disk_errno(e.message)
        if code is not None:
            return OSError(code, os.strerror(code), os.fspath(path))
    return None


def _tf_disk_error(e: Exception) -> str | None:
    """TensorFlow's file errors (a full disk while writing a checkpoint) name the file in the message."""
    tf = sys.modules.get("tensorflow")
    if tf is None or not isinstance(e, tf.errors.OpError) or tf_disk_errno(e.message) is None:
        return None
    return one_line(e.message)


def guarded(main: Callable[[list[str]], int | None]) -> Callable[[list[str]], int | None]:
    """Wraps an absl `main`: a UserError, a disk failure or Ctrl-C ends the program with one line on stderr."""

    def wrapper(argv: list[str]) -> int | None:
        try:
            return main(argv)
        except UserError as e:
            _exit(f"error: {e}", 2)
        except KeyboardInterrupt:
            _exit("interrupted: nothing half-written was left under a final name", 130)
        except OSError as e:
            message = disk_error(e)
            if message is None:
                raise
            _exit(f"error: {message}", 1)
        except Exception as e:
            message = _tf_disk_error(e)
            if message is None:
                raise
            _exit(f"error: {message}", 1)

    return wrapper


def exit_status(run: Callable[[], object]) -> int:
    """Runs an argparse command's work and returns its exit status: 0, or after one line on stderr 2 for a
    UserError, 1 for a disk failure, 130 for Ctrl-C (the in-process form of `guarded`, for `main(argv)`s
    that tests and the demo call)."""
    try:
        run()
    except UserError as e:
        line, status = f"error: {e}", 2
    except KeyboardInterrupt:
        line, status = "interrupted: nothing half-written was left under a final name", 130
    except OSError as e:
        if disk_error(e) is None:
            raise
        line, status = f"error: {disk_error(e)}", 1
    else:
        return 0
    print(line, file=sys.stderr, flush=True)
    return status


def _exit(line: str, status: int) -> None:
    from cyclegan_tf import console

    print(line, file=sys.stderr, flush=True)
    sys.stdout.flush()
    console.flush()
    # No interpreter teardown: TensorFlow's can take seconds, hang under multi-worker training, and print a
    # traceback on a second Ctrl-C. Everything of ours is closed by now.
    os._exit(status)
