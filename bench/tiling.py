"""How far tiled translation is from the whole-image translation: plain tiles against global norm statistics.

  python bench/tiling.py --model pretrained/photo2labels [--image photo.jpg] [--tiles 128:32,256:64]
      [--stats_sizes 1024,256,128]

Translates the image whole (the reference), then in tiles (tile:overlap) with each tile's own norm
statistics (--norm_stats tile) and with the whole image's measured at each --stats_sizes long side
(--norm_stats global), and prints per case the mean and max absolute difference from the reference in
levels of 255 and the seconds taken. Default image: scikit-image's astronaut (512 × 512, shipped offline).
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from cyclegan_tf.deploy.tiling import translate_tiled  # noqa: E402
from cyclegan_tf.deploy.translate import load_model  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--image", default="")
    p.add_argument("--tiles", default="128:32,256:64")
    p.add_argument("--stats_sizes", default="1024,256,128")
    args = p.parse_args()
    if args.image:
        img = np.asarray(Image.open(args.image).convert("RGB"))
    else:
        import skimage.data

        img = skimage.data.astronaut()
    model = load_model(args.model)
    whole = np.round(model.translate(images=tf.constant(img[None].astype(np.float32)))["images"].numpy()[0])
    cases = [("tile", 0)] + [("global", int(s)) for s in args.stats_sizes.split(",")]
    for spec in args.tiles.split(","):
        tile, overlap = map(int, spec.split(":"))
        for mode, size in cases:
            start = time.perf_counter()
            out = translate_tiled(model, img, tile, overlap, 4, mode, size or 1024).astype(np.float32)
            print(json.dumps({"bench": "tiling", "model": args.model, "image": list(img.shape[:2]), "tile": tile,
                              "overlap": overlap, "norm_stats": mode, "stats_size": size or None,
                              "mean_abs_diff": round(float(np.abs(out - whole).mean()), 3),
                              "max_abs_diff": int(np.abs(out - whole).max()),
                              "seconds": round(time.perf_counter() - start, 2)}))


if __name__ == "__main__":
    main()
