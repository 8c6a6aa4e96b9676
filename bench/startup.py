"""Where the time to the first training steps goes: a short run split into its phases.

  python bench/startup.py [--model pix2pix] [--size 32] [--steps 20]

Makes tiny records (not timed), then in a fresh process (so that the import is counted) times, in the
order train.py does them: importing TensorFlow and the package, preparing the run (options, folder),
the data (schema check, counting records), building the model, restoring (none: a new run), the first
batch, the first step (tracing), the second step, the first scalars, the first previews (tracing), the
first checkpoint, and the steady steps after those. Also times `train.py` itself end to end for the
same run (`--root` another checkout's, e.g. a `git worktree` of the previous version; its import is taken
to cost what this one's does). Prints one JSON line. Compare versions in the same session (docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _records(tmp: Path, paired: bool) -> list[str]:
    from cyclegan_tf.data import convert, synthetic

    for d, seed in (("A", 0), ("B", 1)):
        synthetic.write_folder(synthetic.textures(8, 40, seed), tmp / d)
    if paired:
        convert.build_paired(str(tmp / "A"), str(tmp / "B"), str(tmp / "pairs.tfrecords"))
        return [f"--X={tmp / 'pairs.tfrecords'}"]
    for d in ("A", "B"):
        convert.build_folder(d, str(tmp / d), str(tmp / f"{d}.tfrecords"))
    return [f"--X={tmp / 'A.tfrecords'}", f"--Y={tmp / 'B.tfrecords'}"]


def phases(args: list[str], steps: int) -> dict[str, float]:
    """The split, in this process: call it first thing in a fresh interpreter."""
    marks, last = {}, time.perf_counter()

    def mark(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        marks[name] = round(now - last, 3)
        last = now

    import tensorflow as tf

    from cyclegan_tf import api
    from cyclegan_tf.training import loop, runs
    from cyclegan_tf.training.strategy import make_strategy
    mark("import")
    opts = dict(a.removeprefix("--").split("=", 1) for a in args)
    cfg = api.config(**{k: int(v) if v.isdigit() else v for k, v in opts.items()})
    cfg, folder, model_cls = runs.prepare(cfg, cfg.changed())
    strategy = make_strategy(cfg.strategy, cfg.batch_size)
    mark("prepare")
    dataset, steps_per_epoch, _ = loop.open_data(cfg, model_cls)
    mark("data (schema, count)")
    with strategy.scope():
        model = model_cls(cfg, steps_per_epoch, cfg.batch_size)
    mark("model build")
    folder.mkdir(parents=True)
    checkpointer = runs.Checkpointer(model, folder, cfg.keep_checkpoints, cfg.save_every)
    checkpointer.restore_latest(folder)
    cfg.save(folder / "flags.json")
    mark("restore, flags.json")
    batches = iter(strategy.experimental_distribute_dataset(dataset(0)))
    x, y = next(batches)
    mark("first batch")
    step = model.make_train_step(strategy, batches.element_spec)
    bool(step(x, y)["finite"])
    mark("first step (tracing)")
    loss = step(*next(batches))
    bool(loss["finite"])
    mark("second step")
    reporter = loop.Reporter(model, folder, 2, chief=False)
    reporter.losses(2, loss)
    mark("first scalars")
    reporter.previews(2, x, y)
    mark("first previews (tracing)")
    checkpointer.save(2)
    mark("first checkpoint")
    for _ in range(steps - 2):
        loss = step(*next(batches))
    bool(loss["finite"])
    mark(f"steps 3..{steps}")
    reporter.close()
    return marks | {"tensorflow": tf.__version__}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="pix2pix")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--root", default=str(ROOT), help="time this checkout's train.py (an older version, to compare)")
    p.add_argument("--split", help=argparse.SUPPRESS)  # internal: the child process
    a = p.parse_args()
    if a.split:
        print(json.dumps(phases(json.loads(a.split), a.steps)))
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        from cyclegan_tf import models

        data = _records(tmp, models.get(a.model).paired)
        args = [f"--model={a.model}", *data, f"--image_size={a.size}", "--netG=resnet_6blocks",
                f"--max_steps={a.steps}", "--log_every=10", "--summary_every=100"]
        split_args = json.dumps([*args, f"--checkpoint_dir={tmp / 'split'}"])
        child = subprocess.run([sys.executable, __file__, f"--steps={a.steps}", f"--split={split_args}"],
                               capture_output=True, text=True, check=True)
        split = json.loads(child.stdout.strip().splitlines()[-1])
        start = time.perf_counter()
        env = {**os.environ, "PYTHONPATH": a.root}
        subprocess.run([sys.executable, str(Path(a.root) / "train.py"), *args, f"--checkpoint_dir={tmp / 'cli'}"],
                       capture_output=True, check=True, cwd=a.root, env=env)
        wall = time.perf_counter() - start
    phases_total = sum(v for k, v in split.items() if isinstance(v, float))
    print(json.dumps({"bench": "startup", "model": a.model, "size": a.size, "steps": a.steps, "root": a.root,
                      "train_py_wall_s": round(wall, 2), "train_py_beyond_import_s": round(wall - split["import"], 2),
                      "split_total_s": round(phases_total, 2),
                      "split_s": split, "cpus": os.cpu_count(), "machine": platform.machine()}))


if __name__ == "__main__":
    main()
