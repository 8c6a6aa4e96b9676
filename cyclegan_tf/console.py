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
import io
import os
import re
import sys
import threading

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
            kept = b"".join(line + b"\n" for line in lines if not NOISE.match(line))
            if kept:
                os.write(target, kept)
        if pending and not NOISE.match(pending):
            os.write(target, pending)


_state: dict = {}


def quiet_tensorflow() -> None:
    """Call first thing in a command-line tool, before TensorFlow or absl is imported."""
    if not os.environ.get("TF_CPP_MIN_LOG_LEVEL"):  # unset, or set but empty
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0" or _state:
        return
    sys.stderr.flush()
    real = os.dup(2)
    source, sink = os.pipe()
    os.dup2(sink, 2)
    os.close(sink)
    sys.stderr = io.TextIOWrapper(io.FileIO(real, "w"), encoding=sys.stderr.encoding,
                                  errors="backslashreplace", line_buffering=True)
    thread = threading.Thread(target=_forward, args=(source, real), name="stderr-filter", daemon=True)
    thread.start()
    _state.update(real=real, thread=thread)
    atexit.register(flush)


def flush() -> None:
    """Puts descriptor 2 back and lets the filter pass on what it still holds (before os._exit, at exit)."""
    if not _state or not _state["thread"].is_alive():
        return
    sys.stderr.flush()
    os.dup2(_state["real"], 2)  # closes the pipe's last write end: the filter reads to its end and stops
    _state["thread"].join(timeout=1.0)
