"""CycleGAN's D losses side by side on the demo data: the same run under each --gan_mode, at equal steps,
scored by the evaluation during training (train.py --eval_every) on the paired test split.

  python bench/gan_modes.py --modes lsgan,vanilla,focal,ghmc --steps 1000 --out runs/gan_modes

ShapeScapes as `make demo` makes it on a CPU (64 px, 300 training images per domain, 50 paired test scenes),
CycleGAN with the demo's networks (resnet_6blocks, ngf/ndf 32). Prints and writes (OUT/gan_modes.json) each
mode's scores at its last evaluation and at its best by FID of labels → photo (XtoY).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cyclegan_tf import atomic  # noqa: E402
from cyclegan_tf.data import shapescapes  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--modes", default="lsgan,vanilla,focal,ghmc")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--evaluations", type=int, default=4)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--out", default="runs/gan_modes")
    args = p.parse_args()
    out = Path(args.out)
    data = out / "shapescapes"
    if not data.exists():
        shapescapes.generate(data, args.size, 300, 50, 0)
        subprocess.run([sys.executable, str(ROOT / "build_data.py"), f"--X_input_dir={data / 'trainA'}",
                        f"--Y_input_dir={data / 'trainB'}", f"--X_output_file={out / 'labels.tfrecords'}",
                        f"--Y_output_file={out / 'photos.tfrecords'}"], check=True)
    palette = ";".join(",".join(str(int(v)) for v in c) for c in shapescapes.PALETTE)
    results = {}
    for mode in args.modes.split(","):
        run = out / f"run_{mode}"
        start = time.time()
        subprocess.run([sys.executable, str(ROOT / "train.py"), f"--X={out / 'labels.tfrecords'}",
                        f"--Y={out / 'photos.tfrecords'}", f"--gan_mode={mode}", f"--image_size={args.size}",
                        f"--max_steps={args.steps}", "--netG=resnet_6blocks", "--ngf=32", "--ndf=32",
                        f"--eval_every={args.steps // args.evaluations}", f"--eval_X={data / 'testA'}",
                        f"--eval_Y={data / 'testB'}", f"--eval_truth_Y={data / 'testB'}",
                        f"--eval_truth_X={data / 'testA'}", f"--eval_labels_X={palette}", "--log_every=100",
                        "--summary_every=1000",
                        f"--checkpoint_dir={run}"], check=True)
        history = [json.loads(line) for line in (run / "eval" / "scores.jsonl").read_text().splitlines()]
        best = json.loads((run / "eval" / "best.json").read_text())
        results[mode] = {"seconds": round(time.time() - start), "last": history[-1], "best": best,
                         "fid_XtoY_by_step": {h["step"]: h["scores"]["fid_XtoY"] for h in history}}
        print(json.dumps({mode: results[mode]["last"]["scores"]}), flush=True)
    atomic.write_text(out / "gan_modes.json", json.dumps(results, indent=2) + "\n")
    keys = ("fid_XtoY", "kid_XtoY", "precision_XtoY", "recall_XtoY", "coverage_XtoY", "ssim_XtoY",
            "fid_YtoX", "kid_YtoX", "ssim_YtoX")
    print("mode      " + " ".join(f"{k:>14}" for k in keys))
    for mode, r in results.items():
        values = [r["last"]["scores"].get(k) for k in keys]  # None: not scored (JSON null)
        print(f"{mode:<9} " + " ".join(f"{float('nan') if v is None else v:>14.4f}" for v in values))


if __name__ == "__main__":
    main()
