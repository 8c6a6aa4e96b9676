"""Fault injection for the command-line tools: run them as users do, kill them, fill their disk, and
check what is left. Used by the tests in this folder (tests/faults: `make test-faults` runs them all;
`make test` leaves out those marked `slow`)."""
from __future__ import annotations

import contextlib
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# As a user's shell has it: no TF_CPP_MIN_LOG_LEVEL (the tools must quiet TensorFlow themselves).
ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def dead_pid() -> int:
    """The id of a process that has ended (a child, started and reaped): as a killed writer's would be."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def command(tool: str, *args: str) -> list[str]:
    """argv for one of the four tools (build_data.py, train.py, export_graph.py, inference.py) or a module."""
    if tool.endswith(".py"):
        return [sys.executable, str(ROOT / tool), *args]
    return [sys.executable, "-m", tool, *args]


def cli(tool: str, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command(tool, *args), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=ENV, stdin=subprocess.DEVNULL)


def error_line(r: subprocess.CompletedProcess, *needles: str) -> str:
    """Asserts the run failed with exactly one line on stderr besides `warning:` lines, and returns it."""
    lines = [line for line in r.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert r.returncode != 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1, r.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def quiet(r: subprocess.CompletedProcess) -> None:
    """Asserts a successful run printed nothing on stderr but our own `warning:`/`note:` lines."""
    assert r.returncode == 0, r.stderr
    noise = [line for line in r.stderr.splitlines() if line.strip() and not line.startswith(("warning:", "note:"))]
    assert not noise, r.stderr


def tree(folder: Path) -> dict[str, str]:
    """relative path → sha256 of every file under folder (what 'intact' is checked against)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def temporaries(folder: Path) -> list[Path]:
    """Files or folders under a temporary name of ours (`.NAME.tmp-PID`, `NAME.tmp-PID`, `.NAME.old-PID`)."""
    return [p for p in folder.rglob("*") if ".tmp-" in p.name or ".old-" in p.name]


def moments(seed: int, n: int, low: float, high: float) -> list[float]:
    """n seeded kill moments in [low, high) seconds: the same moments on every run of the suite."""
    rng = random.Random(seed)
    return sorted(round(rng.uniform(low, high), 2) for _ in range(n))


def kill_after(tool: str, *args: str, cwd: Path, delay: float,
               ready: Callable[[], bool] | None = None, timeout: float = 300) -> int | None:
    """Starts a tool, waits until `ready()` (polled) and then `delay` seconds, and SIGKILLs it.
    Returns its exit status if it ended by itself first, else None."""
    p = subprocess.Popen(command(tool, *args), cwd=cwd, env=ENV, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while ready is not None and not ready():
            if p.poll() is not None:
                return p.returncode
            assert time.monotonic() < deadline, f"{tool} never became ready"
            time.sleep(0.05)
        try:
            return p.wait(delay)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.wait()
            return None
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `folder` (a real full disk); skips where mounting is not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip() or 'mount failed'}): needs root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path, leave: int = 0) -> None:
    """Fills the file system of `folder` up to `leave` free bytes."""
    filler = folder / "filler"
    with open(filler, "wb") as f:
        with contextlib.suppress(OSError):
            while True:
                st = os.statvfs(folder)
                free = st.f_bavail * st.f_frsize - leave
                if free <= 0:
                    break
                f.write(b"\0" * min(free, 1 << 20))
                f.flush()
