"""The MNI152 recipe: 16-bit one-channel brain slices with known truth, offline, from real data nobody here made.

nilearn's wheel ships the ICBM 2009a nonlinear symmetric MNI152 template (Fonov et al., NeuroImage 2011) at
1 mm: a T1-weighted head and its grey- and white-matter probability maps. Domain A is the T1 (8-bit in the
file, stored ×16 as 12-bit counts, as a scanner's); domain B is a T2-like contrast made from the maps, where
cerebrospinal fluid is bright, grey matter mid-grey and white matter dark, with the fine gradations of the
probabilities (truly more than 8 bits). Every T1 slice has its T2-like slice as truth, so the same slices
serve pix2pix (paired) and CycleGAN (the training slices split in two, X from one half, Y from the other),
and translations are scored in the data's own units.

  pip install 'cyclegan_tf[mni152]'
  python -m cyclegan_tf.data.mni152 --out data/mni152   # trainA/trainB/testA/testB, X/Y: 16-bit PNGs

The files are read with nibabel; nilearn itself is not imported (it only has to be installed, for its files).
Axial slices 30–149 are used; 85–104 are held out for testing, with a gap of 3 slices on each side so that
no neighbour of a test slice is trained on.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

from cyclegan_tf.errors import UserError, guarded

FILES = {k: f"mni_icbm152_{k}_tal_nlin_sym_09a_converted.nii.gz" for k in ("t1", "gm", "wm")}
INSTALL = "pip install 'cyclegan_tf[mni152]'"
SLICES = range(30, 150)
TEST = range(85, 105)
GAP = 3
T2_LEVELS = {"csf": 4000.0, "gm": 2200.0, "wm": 1100.0}  # T2-like signal of each tissue, 12-bit counts


def template_folder() -> Path:
    """nilearn's data folder, found without importing nilearn; one line naming the extra if it is missing."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the MNI152 recipe reads the templates nilearn's wheel ships, and nilearn is not installed: "
                        f"{INSTALL}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    missing = [f for f in FILES.values() if not (folder / f).is_file()]
    if missing:
        raise UserError(f"{folder}: {missing[0]} is missing (nilearn 0.14 ships it: {INSTALL})")
    return folder


def volumes(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(T1, T2-like) float32 volumes [x, y, z] in 12-bit counts."""
    try:
        import nibabel
    except ImportError:
        raise UserError(f"the MNI152 recipe reads NIfTI files with nibabel: {INSTALL}") from None
    t1, gm, wm = (np.asarray(nibabel.load(folder / FILES[k]).dataobj, np.float32) for k in ("t1", "gm", "wm"))
    gm, wm = gm / 255.0, wm / 255.0
    head = t1 > 20  # the head, scalp included: what is neither grey nor white matter there counts as fluid
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0)
    t2 = head * (T2_LEVELS["csf"] * csf + T2_LEVELS["gm"] * gm + T2_LEVELS["wm"] * wm)
    return t1 * 16.0, t2.astype(np.float32)


def axial(volume: np.ndarray, z: int, size: int) -> np.ndarray:
    """Slice z, head up, padded to a square and resized to size × size (area), as uint16 [size, size, 1]."""
    import tensorflow as tf

    img = np.rot90(volume[:, :, z])
    side = max(img.shape)
    pad = [((side - n) // 2, side - n - (side - n) // 2) for n in img.shape]
    img = np.pad(img, pad)
    small = tf.image.resize(img[..., None], [size, size], method="area").numpy()
    return np.clip(np.round(small), 0, 65535).astype(np.uint16)


def write(out: Path, size: int = 128) -> dict[str, int]:
    """trainA/trainB (paired), testA/testB (held out) and X/Y (the training slices split in two, unpaired)."""
    import tensorflow as tf

    t1, t2 = volumes(template_folder())
    near_test = range(TEST.start - GAP, TEST.stop + GAP)
    train = [z for z in SLICES if z not in near_test]
    counts = {}
    for name, zs in (("train", train), ("test", list(TEST))):
        for side, volume in (("A", t1), ("B", t2)):
            folder = out / f"{name}{side}"
            folder.mkdir(parents=True, exist_ok=True)
            for z in zs:
                (folder / f"z{z:03d}.png").write_bytes(tf.io.encode_png(axial(volume, z, size)).numpy())
            counts[folder.name] = len(zs)
    for domain, volume, zs in (("X", t1, train[0::2]), ("Y", t2, train[1::2])):  # no slice in both
        (out / domain).mkdir(parents=True, exist_ok=True)
        for z in zs:
            (out / domain / f"z{z:03d}.png").write_bytes(tf.io.encode_png(axial(volume, z, size)).numpy())
        counts[domain] = len(zs)
    return counts


@guarded
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m cyclegan_tf.data.mni152", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="data/mni152", help="Folder to write the slices into.")
    parser.add_argument("--size", type=int, default=128, help="Side of the square slices (px).")
    args = parser.parse_args(argv)
    counts = write(Path(args.out), args.size)
    print(f"wrote {', '.join(f'{k}: {n}' for k, n in counts.items())} 16-bit PNG slices to {args.out}")


if __name__ == "__main__":
    from cyclegan_tf import console

    console.quiet_tensorflow()
    main(sys.argv[1:])
