"""The tools' stderr: TensorFlow's start-up chatter filtered, everything else kept, in order."""
import subprocess
import sys

from cyclegan_tf.console import NOISE

SCRIPT = r"""
import os, sys
from cyclegan_tf.console import quiet_tensorflow
quiet_tensorflow()
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
os.write(2, b"I0000 00:00:1795832943.039293    2434 cudart_stub.cc:31] Could not find cuda drivers\n")
os.write(2, b"E0000 00:00:1795832949.985612    2455 cuda_platform.cc:52] failed call to cuInit: UNKNOWN\n")
os.write(2, b"E0000 00:00:1795832949.985612    2455 some_kernel.cc:52] a real error from C++\n")
print("error: ours", file=sys.stderr)
import time; time.sleep(0.2)
"""


def test_start_up_chatter_is_dropped_and_real_messages_kept() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(__import__("pathlib").Path(__file__).resolve().parents[1])}
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert sorted(r.stderr.splitlines()) == sorted([
        "E0000 00:00:1795832949.985612    2455 some_kernel.cc:52] a real error from C++", "error: ours"])


def test_noise_pattern_matches_only_start_up_lines() -> None:
    assert NOISE.match(b"I1128 02:38:57.988999 140349591206784 deprecation.py:50] something")
    assert not NOISE.match(b"error: --X=nope: no such TFRecord file")
    assert not NOISE.match(b"W1128 02:38:57.988999 140349591206784 saver.cc:50] Could not write")


def test_a_message_written_just_before_an_abort_is_not_lost() -> None:
    script = ("from cyclegan_tf.console import quiet_tensorflow; quiet_tensorflow(); import os; "
              "os.write(2, b'F0000 00:00:1.1 1 check.cc:1] Check failed: fatal\\n'); os.abort()")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(__import__("pathlib").Path(__file__).resolve().parents[1])}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode != 0 and "Check failed: fatal" in r.stderr


def test_chatter_held_during_a_block_is_dropped_and_the_rest_written_on() -> None:
    script = ("import os; from cyclegan_tf.console import without_start_up_chatter as w\n"
              "with w():\n"
              "    os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written\\n')\n"
              "    os.write(2, b'E0000 00:00:1.2 7 cuda_platform.cc:52] failed call to cuInit: UNKNOWN\\n')\n"
              "    os.write(2, b'E0000 00:00:1.2 7 kernel.cc:9] a real error\\n')\n"
              "os.write(2, b'after\\n')")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(__import__("pathlib").Path(__file__).resolve().parents[1])}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stderr.splitlines() == ["E0000 00:00:1.2 7 kernel.cc:9] a real error", "after"]
