"""train.py as users run it: SIGTERM and resume, multi-worker training, one-line errors."""
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT

from cyclegan_tf.data import convert, synthetic
from cyclegan_tf.training.runs import checkpoints as runs_checkpoints

ARGS = ["--image_size=32", "--load_size=36", "--netG=resnet_6blocks", "--ngf=4", "--ndf=4", "--pool_size=3",
        "--log_every=5", "--summary_every=1000", "--deterministic"]


@pytest.fixture(scope="module")
def data_args(tmp_path_factory) -> list[str]:
    tmp = tmp_path_factory.mktemp("cli")
    for d, seed in (("X", 0), ("Y", 1)):
        synthetic.write_folder(synthetic.textures(6, 40, seed), tmp / d)
        convert.build_folder(d, str(tmp / d), str(tmp / f"{d}.tfrecords"))
    return [f"--X={tmp / 'X.tfrecords'}", f"--Y={tmp / 'Y.tfrecords'}"]


def command(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), *args]


def checkpoint_values(folder: Path) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(folder)))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if "save_counter" not in k}


@pytest.mark.slow  # three training processes, 1–2 minutes on 2 cores: make test-slow (suite time)
def test_sigterm_then_resume_equals_an_uninterrupted_run(data_args: list[str], tmp_path: Path) -> None:
    args = [*data_args, *ARGS, "--max_steps=30"]
    proc = subprocess.Popen(command(*args, f"--checkpoint_dir={tmp_path / 'a'}"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    for line in proc.stdout:
        if line.startswith("step 10/30"):
            proc.send_signal(signal.SIGTERM)
            break
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, err
    stopped_at = int(out.split("stopped by signal 15 at step ")[1].split(";")[0])
    assert 10 <= stopped_at < 30
    assert tf.train.latest_checkpoint(str(tmp_path / "a")).endswith(f"ckpt-{stopped_at}")

    resumed = subprocess.run(command(*args, f"--checkpoint_dir={tmp_path / 'a'}"), capture_output=True, text=True,
                             cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0 and f"at step {stopped_at}" in resumed.stdout, resumed.stderr
    whole = subprocess.run(command(*args, f"--checkpoint_dir={tmp_path / 'b'}"), capture_output=True, text=True,
                           cwd=tmp_path, timeout=300)
    assert whole.returncode == 0, whole.stderr

    a, b = checkpoint_values(tmp_path / "a"), checkpoint_values(tmp_path / "b")
    assert a.keys() == b.keys() and any("pool_X" in k for k in a) and any("opt_G" in k for k in a)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_one_line_error_without_traceback(tmp_path: Path) -> None:
    r = subprocess.run(command("--X=missing.tfrecords", "--Y=missing.tfrecords", "--checkpoint_dir=run"),
                       capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == "error: missing.tfrecords: no such TFRecord file " \
                                                "(or shards missing.tfrecords-NNNNN-of-NNNNN)"


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


# Both cases (two training processes each, 1.5–2 minutes on 2 cores) are in make test-slow, for suite time.
@pytest.mark.slow
@pytest.mark.parametrize("model", ["cycle_gan", "pix2pix"])
def test_multi_worker_training_agrees(model: str, data_args: list[str], tmp_path: Path) -> None:
    if model == "pix2pix":  # paired records; the step reads D, not D_Y, for the fingerprint
        convert.build_paired(data_args[0].split("=", 1)[1].replace("X.tfrecords", "X"),
                           data_args[1].split("=", 1)[1].replace("Y.tfrecords", "Y"), str(tmp_path / "p.tfrecords"))
        data_args = [f"--X={tmp_path / 'p.tfrecords'}", "--pool_size=0"]
    else:  # evaluation during training: the chief evaluates alone while the other worker waits
        data_args = [*data_args, "--eval_every=3", data_args[0].replace("--X", "--eval_X"),
                     data_args[1].replace("--Y", "--eval_Y")]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    procs = []
    for i in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})}
        procs.append(subprocess.Popen(
            command(f"--model={model}", *ARGS, *data_args, "--max_steps=6", "--batch_size=2",
                    "--strategy=multi_worker", f"--checkpoint_dir={tmp_path / 'run'}"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env))
    outs = [p.communicate(timeout=400) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    fingerprints = [out.split("weights fingerprint ")[1].split()[0] for out, _ in outs]
    assert fingerprints[0] == fingerprints[1]
    assert "2 replica(s)" in outs[0][0]
    assert tf.train.latest_checkpoint(str(tmp_path / "run")).endswith("ckpt-6")
    assert not list((tmp_path / "run").glob("worker-temp-*"))
    if model == "cycle_gan":
        assert "eval at step 3" in outs[0][0] and "eval at step 6" in outs[0][0] and "eval at" not in outs[1][0]
        assert [json.loads(line)["step"] for line in (tmp_path / "run/eval/scores.jsonl").read_text().splitlines()] \
            == [3, 6]


def test_runs_started_at_once_without_a_folder_each_train_in_their_own(data_args: list[str], tmp_path: Path) -> None:
    """A sweep's script starts several train.py in one folder at the same moment, naming no run folder."""
    procs = [subprocess.Popen(command(*ARGS, *data_args, "--max_steps=2", "--save_every=2"), cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in results]
    folders = sorted((tmp_path / "checkpoints").iterdir())
    assert len(folders) == 3 and all((f / "flags.json").exists() and runs_checkpoints(f) == [2] for f in folders)
