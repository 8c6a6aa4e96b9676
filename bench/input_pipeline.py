"""Images per second that the training input pipeline delivers (default preprocessing, 256×256).

  python bench/input_pipeline.py [--images 200] [--size 256] [--batches 300] [--batch_size 1]

Builds a TFRecord of real-photo crops (JPEG, as users' data usually is), then times the unpaired
(x, y) stream after a warm-up. Prints one JSON line; images/s counts both domains.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cyclegan_tf.data import convert, pipeline, records, synthetic  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--size", type=int, default=256, help="stored image size (crop_size is 256)")
    p.add_argument("--batches", type=int, default=300)
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--preprocess", default="resize_and_crop")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for d, seed in (("X", 0), ("Y", 1)):
            synthetic.write_folder(synthetic.textures(args.images, args.size, seed), f"{tmp}/{d}")
            convert.build_folder(d, f"{tmp}/{d}", f"{tmp}/{d}.tfrecords")
            files[d] = records.resolve_files(f"{tmp}/{d}.tfrecords")
        cfg = pipeline.Preprocess(mode=args.preprocess)
        ds = pipeline.unpaired_dataset(files["X"], args.images, files["Y"], args.images,
                                   batch_size=args.batch_size, cfg=cfg)
        it = iter(ds)
        for _ in range(20):  # warm-up: fill the prefetch and autotune buffers
            next(it)
        start = time.perf_counter()
        for _ in range(args.batches):
            x, y = next(it)
        secs = time.perf_counter() - start
    n = 2 * args.batches * args.batch_size
    print(json.dumps({"bench": "input_pipeline", "preprocess": args.preprocess, "stored_size": args.size,
                      "crop_size": cfg.crop_size, "batch_size": args.batch_size, "images": n,
                      "seconds": round(secs, 3), "images_per_sec": round(n / secs, 1),
                      "cpus": os.cpu_count(), "machine": platform.machine()}))


if __name__ == "__main__":
    main()
