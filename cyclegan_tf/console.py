"""What the command-line tools print: ours, not TensorFlow's start-up chatter.

TensorFlow's C++ libraries write to file descriptor 2 at import and at device set-up (absl's
"All log messages before absl::InitializeLog()", cudart's "Could not find cuda drivers", the CPU
feature guard, cuInit failures on machines without a GPU), some of it whatever TF_CPP_MIN_LOG_LEVEL
says. `quiet_tensorflow` routes descriptor 2 through a filter that drops those lines and keeps
everything else; Python's own writes (our one-line errors, tracebacks, progress bars) bypass it.
Set TF_CPP_MIN_LOG_LEVEL=0 to see TensorFlow's logs unfiltered.
"""
from __future__ import annotations

import atexit
import contextlib
import io
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Iterator

# INFO lines of TensorFlow's C++ logging, and the warnings every CPU-only machine prints at start-up.
NOISE = re.compile(
    rb"^(?:I\d{4} \d\d:\d\d:\d\d"
    rb"|WARNING: All log messages before absl::InitializeLog"
    rb"|To enable the following instructions:"
    rb"|[EW]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ (?:cuda_\w+|cudart_stub|cuda_platform|cuda_executor|cpu_feature_guard"
    rb"|computation_placer|port)\.cc:\d+\])")


def _forward(source: int, target: int) -> None:
    with os.fdopen(source, "rb", buffering=0) as pipe:
        pending = b""
        while chunk := pipe.read(65536):
            *lines, pending = (pending + chunk).split(b"\n")
            _write(target, b"".join(line + b"\n" for line in lines if not NOISE.match(line)))
        if pending and not NOISE.match(pending):
            _write(target, pending)


def _write(target: int, data: bytes) -> None:
    try:
        if data:
            os.write(target, data)
    except OSError:
        pass  # stderr closed: keep draining, so that the tool never blocks on a full pipe


_state: dict = {}


def quiet_tensorflow() -> None:
    """Call first thing in a command-line tool, before TensorFlow or absl is imported (no threads yet).

    The filter is a forked process, not a thread: it needs no GIL (C++ code may write while holding it)
    and it outlives an abort, so a fatal C++ message still reaches the terminal."""
    if not os.environ.get("TF_CPP_MIN_LOG_LEVEL"):  # unset, or set but empty
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0" or _state:
        return
    sys.stderr.flush()
    real = os.dup(2)
    source, sink = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(sink)
        for s in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C reaches the whole process group; the tool handles it
            signal.signal(s, signal.SIG_IGN)
        try:
            _forward(source, real)
        finally:
            os._exit(0)
    os.close(source)
    os.dup2(sink, 2)
    os.close(sink)
    sys.stderr = io.TextIOWrapper(io.FileIO(real, "w"), encoding=sys.stderr.encoding,
                                  errors="backslashreplace", line_buffering=True)
    _state.update(real=real, pid=pid)
    atexit.register(flush)


def flush() -> None:
    """Puts descriptor 2 back and lets the filter pass on what it still holds (before os._exit, at exit)."""
    if not _state or _state.get("done"):
        return
    _state["done"] = True
    sys.stderr.flush()
    os.dup2(_state["real"], 2)  # closes our write end of the pipe: the filter reads to its end and stops
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # children of ours may still hold the pipe: wait a little, not forever
        if os.waitpid(_state["pid"], os.WNOHANG) != (0, 0):
            return
        time.sleep(0.01)


@contextlib.contextmanager
def without_start_up_chatter() -> Iterator[None]:
    """Descriptor 2 goes to a file while the block runs (TensorFlow's import and device set-up); then the
    lines that are not start-up chatter are written on. For a process that cannot fork a filter, such as a
    test runner capturing output, where the chatter would otherwise be printed after its summary."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            _write(2, b"".join(line for line in held.read().splitlines(keepends=True) if not NOISE.match(line)))
