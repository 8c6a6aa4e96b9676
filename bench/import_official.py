"""Importing a full-size official generator: time to import, equality with PyTorch, and the imported export's
translation time against our own export of the same architecture, side by side.

The file and PyTorch's outputs come from bench/official_generators.py (`--cases junyanz_resnet9_full`: the
hosted CycleGAN models' resnet_9blocks, ngf 64, 45 MB), run in an environment with PyTorch:

  /tmp/torchvenv/bin/python bench/official_generators.py ... --out /tmp/full --cases junyanz_resnet9_full
  .venv/bin/python bench/import_official.py --dir /tmp/full --runs 10
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from cyclegan_tf import models
from cyclegan_tf.deploy import savedmodel
from cyclegan_tf.networks import official
from cyclegan_tf.training.runs import write_imported


def _export(folder: Path, G, arch: official.Architecture, name: str) -> Path:
    run = folder / f"{name}-run"
    write_imported(run, G, arch.options(), models.for_official(arch.family).name, name)
    return savedmodel.commit(savedmodel.write(run, "XtoY", folder / name), folder / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, required=True, help="bench/official_generators.py's --out folder")
    parser.add_argument("--case", default="junyanz_resnet9_full")
    parser.add_argument("--runs", type=int, default=10, help="timed translations per export (alternating)")
    args = parser.parse_args()
    pth, arrays = args.dir / f"{args.case}.pth", np.load(args.dir / f"{args.case}.npz")

    times = []
    for _ in range(3):
        start = time.perf_counter()
        G, arch = official.import_generator(pth)
        times.append(time.perf_counter() - start)
    diffs = {}
    for shape in ("square", "wide"):
        got = G(tf.constant(arrays[f"x_{shape}"].transpose(0, 2, 3, 1)), training=False).numpy()
        diffs[shape] = float(np.abs(got - arrays[f"y_{shape}_eval"].transpose(0, 2, 3, 1)).max())

    with tempfile.TemporaryDirectory() as tmp:
        imported = tf.saved_model.load(str(_export(Path(tmp), G, arch, "imported")))
        ours = tf.saved_model.load(str(_export(Path(tmp), arch.define_G(), arch, "ours")))
        x = tf.constant((arrays["x_square"].transpose(0, 2, 3, 1) + 1) * 127.5, tf.float32)
        exported = imported.translate(images=x)["images"].numpy() / 127.5 - 1  # also the warm-up
        diffs["export_square"] = float(np.abs(exported - arrays["y_square_eval"].transpose(0, 2, 3, 1)).max())
        ours.translate(images=x)
        seconds: dict[str, list[float]] = {"imported": [], "ours": []}
        for _ in range(args.runs):
            for name, m in (("imported", imported), ("ours", ours)):
                start = time.perf_counter()
                m.translate(images=x)["images"].numpy()
                seconds[name].append(time.perf_counter() - start)
    median = {k: statistics.median(v) for k, v in seconds.items()}
    print(json.dumps({
        "file": str(pth), "bytes": pth.stat().st_size, "architecture": arch.describe(),
        "import_s": [round(t, 3) for t in times], "max_abs_diff_vs_pytorch": diffs,
        "translate_256_median_s": {k: round(v, 4) for k, v in median.items()},
        "imported_over_ours": round(median["imported"] / median["ours"], 3),
    }, indent=1))


if __name__ == "__main__":
    main()
