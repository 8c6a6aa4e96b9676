"""Images per second that the training input pipeline delivers (default preprocessing, 256×256).

  python bench/input_pipeline.py [--images 200] [--size 256] [--batches 300] [--batch_size 1] [--pixels grey16]

Builds a TFRecord of real-photo crops (JPEG, as users' data usually is; with --pixels grey16 the same
crops as 1-channel 16-bit PNGs, as scans are), then times the unpaired (x, y) stream after a warm-up.
Prints one JSON line; images/s counts both domains.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from cyclegan_tf.data import convert, pipeline, records, synthetic  # noqa: E402


def _grey16(images: np.ndarray, folder: str) -> None:
    """The crops as 1-channel 16-bit PNGs: grey ×257, plus the low bits an 8-bit image lacks."""
    import tensorflow as tf

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, img in enumerate(images):
        grey = img.astype(np.float32).mean(-1, keepdims=True) * 257 + rng.uniform(0, 256, img.shape[:2] + (1,))
        tf.io.write_file(f"{folder}/{i:05d}.png", tf.io.encode_png(np.clip(grey, 0, 65535).astype(np.uint16)))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--size", type=int, default=256, help="stored image size (crop_size is 256)")
    p.add_argument("--batches", type=int, default=300)
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--preprocess", default="resize_and_crop")
    p.add_argument("--pixels", default="rgb", choices=("rgb", "grey16"))
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for d, seed in (("X", 0), ("Y", 1)):
            textures = synthetic.textures(args.images, args.size, seed)
            if args.pixels == "grey16":
                _grey16(textures, f"{tmp}/{d}")
            else:
                synthetic.write_folder(textures, f"{tmp}/{d}")
            convert.build_folder(d, f"{tmp}/{d}", f"{tmp}/{d}.tfrecords")
            files[d] = records.resolve_files(f"{tmp}/{d}.tfrecords")
        cfg = pipeline.Preprocess(mode=args.preprocess)
        kinds = (records.read_kind(files["X"]), records.read_kind(files["Y"]))
        ds = pipeline.unpaired_dataset(files["X"], args.images, files["Y"], args.images,
                                       batch_size=args.batch_size, cfg=cfg, kinds=kinds)
        it = iter(ds)
        for _ in range(20):  # warm-up: fill the prefetch and autotune buffers
            next(it)
        start = time.perf_counter()
        for _ in range(args.batches):
            x, y = next(it)
        secs = time.perf_counter() - start
    n = 2 * args.batches * args.batch_size
    print(json.dumps({"bench": "input_pipeline", "pixels": kinds[0].describe(),
                      "preprocess": args.preprocess, "stored_size": args.size,
                      "crop_size": cfg.crop_size, "batch_size": args.batch_size, "images": n,
                      "seconds": round(secs, 3), "images_per_sec": round(n / secs, 1),
                      "cpus": os.cpu_count(), "machine": platform.machine()}))


if __name__ == "__main__":
    main()
