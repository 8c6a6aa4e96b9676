"""Test data from the official PyTorch generators, built with the official repositories' own classes.

Writes tests/assets/official/: per case the generator's state_dict (`<case>.pth`, torch.save's zip format;
`<case>.legacy.pth`, the pre-1.6 format, for some), `<case>.npz` (seeded inputs, NCHW float32, and the
generator's outputs for them) and `manifest.json` (class, constructor arguments, source file, array meanings,
torch version). Weights are random but far from the official init (normal 0.02 gives outputs near 0): every
convolution's weight is drawn from normal(0, 1/sqrt(fan_in)), biases, BatchNorm affine parameters and running
statistics from small random values, with fixed seeds, so the outputs span tanh's range.

Needs PyTorch and NumPy, which are not dependencies of cyclegan_tf: run it with a separate environment's python.
The official code is read at run time from checkouts (each flag names a folder holding `models/networks.py`);
nothing of it is copied into this repository:

  mkdir -p /tmp/official/cut /tmp/official/pix2pixhd /tmp/official/junyanz/models
  git --git-dir=/work/.mirror/taesungp+contrastive-unpaired-translation/repo archive HEAD models \\
      | tar -x -C /tmp/official/cut
  git --git-dir=/work/.mirror/NVIDIA+pix2pixHD/repo archive HEAD models | tar -x -C /tmp/official/pix2pixhd
  # junyanz/pytorch-CycleGAN-and-pix2pix's models/networks.py, saved by hand as
  # /tmp/official/junyanz/models/networks.py (the repository is too big to mirror)
  /tmp/torchvenv/bin/python bench/official_generators.py \\
      --junyanz /tmp/official/junyanz --junyanz-ref <commit> \\
      --cut /tmp/official/cut --cut-ref <commit> \\
      --pix2pixhd /tmp/official/pix2pixhd --pix2pixhd-ref <commit>

(`git archive HEAD models` may print "invalid object" errors for large files absent from the mirror, outside
models/: harmless.) tests/assets/official/README.md has the exact command and commits used for the stored files.
The `--*-ref` flags only go into the manifest, next to each networks.py's sha256.
"""
from __future__ import annotations

import argparse
import copy
import functools
import hashlib
import importlib.util
import json
import re
import sys
import types
from pathlib import Path

try:
    import numpy as np
    import torch
    from torch import nn
except ImportError:
    raise SystemExit("bench/official_generators.py: needs PyTorch and NumPy (pip install torch numpy, "
                     "in a separate environment)") from None

REPOS = {
    "junyanz": "junyanz/pytorch-CycleGAN-and-pix2pix",
    "cut": "taesungp/contrastive-unpaired-translation",
    "pix2pixhd": "NVIDIA/pix2pixHD",
}

# The norm layers, spelled as the official get_norm_layer functions return them.
INSTANCE = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
INSTANCE_OLD = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=True)
BATCH = functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
INSTANCE_HD = functools.partial(nn.InstanceNorm2d, affine=False)
NORMS = {
    "instance": (INSTANCE, "functools.partial(torch.nn.InstanceNorm2d, affine=False, track_running_stats=False): "
                           "get_norm_layer('instance') of the current junyanz and CUT networks.py"),
    "instance_old": (INSTANCE_OLD, "functools.partial(torch.nn.InstanceNorm2d, affine=False, "
                                   "track_running_stats=True): get_norm_layer('instance') of junyanz's "
                                   "2017-2018 networks.py (junyanz issue #529)"),
    "batch": (BATCH, "functools.partial(torch.nn.BatchNorm2d, affine=True, track_running_stats=True): "
                     "get_norm_layer('batch') of junyanz and CUT"),
    "instance_hd": (INSTANCE_HD, "functools.partial(torch.nn.InstanceNorm2d, affine=False): "
                                 "pix2pixHD's get_norm_layer('instance')"),
}

MODES = {
    "eval": "model.eval(): running statistics where the model has any, dropout off (the official test.py --eval; "
            "for a model without running statistics or dropout, train mode gives the same)",
    "train": "model.train(): per-instance statistics (InstanceNorm2d uses the image's own statistics even with "
             "track_running_stats=True; no dropout in this model): what the official test.py computes without "
             "--eval, and what the current official loader computes after deleting the running_mean/"
             "running_var/num_batches_tracked keys",
    "eval_running_stats": "model.eval() with the stored InstanceNorm running statistics: NOT what the official "
                          "code computes by default; stored to show those keys change the result if used",
    "batchstats": "BatchNorm2d modules in train mode (the statistics of this one image), Dropout modules in eval "
                  "(off): the official test.py without --eval, minus dropout's randomness",
}

# name, source, class, constructor arguments (norm_layer by NORMS key), inputs [(N, C, H, W)] square then wide,
# output modes, also the legacy format?, train-mode passes before saving (running statistics), seed
CASES = [
    ("junyanz_resnet6_instance", "junyanz", "ResnetGenerator",
     dict(input_nc=3, output_nc=3, ngf=4, norm_layer="instance", use_dropout=False, n_blocks=6),
     [(1, 3, 32, 32), (1, 3, 32, 48)], ["eval"], True, 0, 1),
    ("junyanz_resnet9_instance_old", "junyanz", "ResnetGenerator",
     dict(input_nc=3, output_nc=3, ngf=2, norm_layer="instance_old", use_dropout=False, n_blocks=9),
     [(1, 3, 32, 32), (1, 3, 32, 48)], ["train", "eval_running_stats"], True, 3, 2),
    ("junyanz_resnet6_grey", "junyanz", "ResnetGenerator",
     dict(input_nc=1, output_nc=1, ngf=2, norm_layer="instance", use_dropout=False, n_blocks=6),
     [(1, 1, 32, 32), (1, 1, 32, 48)], ["eval"], False, 0, 3),
    ("junyanz_resnet9_batch_dropout", "junyanz", "ResnetGenerator",
     dict(input_nc=3, output_nc=3, ngf=2, norm_layer="batch", use_dropout=True, n_blocks=9),
     [(1, 3, 32, 32), (1, 3, 32, 48)], ["eval", "batchstats"], False, 3, 4),
    ("junyanz_unet128_batch", "junyanz", "UnetGenerator",
     dict(input_nc=3, output_nc=3, num_downs=7, ngf=2, norm_layer="batch", use_dropout=True),
     [(1, 3, 128, 128), (1, 3, 128, 256)], ["eval", "batchstats"], True, 3, 5),
    ("junyanz_unet256_batch", "junyanz", "UnetGenerator",
     dict(input_nc=3, output_nc=3, num_downs=8, ngf=1, norm_layer="batch", use_dropout=True),
     [(1, 3, 256, 256)], ["eval", "batchstats"], False, 3, 6),  # square only: unet_128's case has a wide input
    ("cut_resnet9_antialias", "cut", "ResnetGenerator",
     dict(input_nc=3, output_nc=3, ngf=2, norm_layer="instance", use_dropout=False, n_blocks=9,
          padding_type="reflect", no_antialias=False, no_antialias_up=False, opt=None),
     [(1, 3, 32, 32), (1, 3, 32, 48)], ["eval"], False, 0, 7),
    ("pix2pixhd_global", "pix2pixhd", "GlobalGenerator",
     dict(input_nc=36, output_nc=3, ngf=2, n_downsampling=4, n_blocks=2, norm_layer="instance_hd",  # ngf 4: 830 KB
          padding_type="reflect"),
     [(1, 36, 32, 32), (1, 36, 32, 64)], ["eval"], False, 0, 8),
    ("pix2pixhd_local", "pix2pixhd", "LocalEnhancer",
     dict(input_nc=36, output_nc=3, ngf=2, n_downsample_global=3, n_blocks_global=2, n_local_enhancers=1,
          n_blocks_local=1, norm_layer="instance_hd", padding_type="reflect"),
     [(1, 36, 32, 32), (1, 36, 32, 64)], ["eval"], False, 0, 9),
]
# Full size, made only when named in --cases (45 MB: a benchmark's, not the tests'): the hosted CycleGAN models'
# architecture (resnet_9blocks, ngf 64), for bench/import_official.py.
FULL_SIZE = [
    ("junyanz_resnet9_full", "junyanz", "ResnetGenerator",
     dict(input_nc=3, output_nc=3, ngf=64, norm_layer="instance", use_dropout=False, n_blocks=9),
     [(1, 3, 256, 256), (1, 3, 256, 384)], ["eval"], False, 0, 10),
]
LABEL_NC = 35  # pix2pixHD's Cityscapes setting: 35 one-hot label channels, then the instance edge map


def load_networks(key: str, root: Path) -> types.ModuleType:
    """`root/models/networks.py` as the module `_official_<key>.networks`, in a package whose path is root/models:
    relative imports (CUT's `from .stylegan_networks import ...`) resolve there, models/__init__.py is not run,
    and the three checkouts' `models` packages do not collide."""
    path = root / "models" / "networks.py"
    if not path.is_file():
        raise SystemExit(f"--{key} {root}: no models/networks.py there")
    package = types.ModuleType(f"_official_{key}")
    package.__path__ = [str(root / "models")]
    sys.modules[package.__name__] = package
    spec = importlib.util.spec_from_file_location(f"{package.__name__}.networks", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def stub_torchvision() -> bool:
    """pix2pixHD's networks.py imports torchvision.models for its VGG loss only: stub it when it is missing."""
    if importlib.util.find_spec("torchvision") is not None:
        return False
    torchvision, models = types.ModuleType("torchvision"), types.ModuleType("torchvision.models")
    torchvision.models = models
    sys.modules.update({"torchvision": torchvision, "torchvision.models": models})
    return True


@torch.no_grad()
def randomize(model: nn.Module, gen: torch.Generator) -> None:
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            taps = m.kernel_size[0] * m.kernel_size[1]
            if isinstance(m, nn.ConvTranspose2d):  # an output pixel sees about in·k²/stride² weights
                fan_in = m.in_channels * taps / (m.stride[0] * m.stride[1])
            else:
                fan_in = m.in_channels // m.groups * taps
            m.weight.normal_(0.0, fan_in ** -0.5, generator=gen)
            if m.bias is not None:
                m.bias.uniform_(-0.2, 0.2, generator=gen)
        elif isinstance(m, nn.modules.batchnorm._NormBase):  # BatchNorm2d, InstanceNorm2d
            if m.affine:
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.uniform_(-0.2, 0.2, generator=gen)
            if m.track_running_stats:
                m.running_mean.normal_(0.0, 0.2, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)


def image_input(rng: np.random.Generator, shape) -> np.ndarray:
    """Uniform in [-1, 1] on the 8-bit grid (k / 127.5 - 1), as a decoded image would be."""
    return (rng.integers(0, 256, size=shape) / 127.5 - 1.0).astype(np.float32)


def label_input(rng: np.random.Generator, shape):
    """pix2pixHD's input: one-hot label map (LABEL_NC channels) then the edge map of the instance map, as
    Pix2PixHDModel.encode_input and get_edges build them. Labels are constant on 4×4 blocks, instances split
    them on an 8×8 grid."""
    n, c, h, w = shape
    assert c == LABEL_NC + 1 and h % 8 == 0 and w % 8 == 0
    labels = rng.integers(0, LABEL_NC, size=(n, 1, h // 4, w // 4)).repeat(4, 2).repeat(4, 3)
    instances = labels * 1000 + rng.integers(0, 3, size=(n, 1, h // 8, w // 8)).repeat(8, 2).repeat(8, 3)
    onehot = (np.arange(LABEL_NC)[None, :, None, None] == labels).astype(np.float32)
    edge = np.zeros(instances.shape, bool)
    dx, dy = instances[..., 1:] != instances[..., :-1], instances[..., 1:, :] != instances[..., :-1, :]
    edge[..., 1:] |= dx
    edge[..., :-1] |= dx
    edge[..., 1:, :] |= dy
    edge[..., :-1, :] |= dy
    x = np.concatenate([onehot, edge.astype(np.float32)], axis=1)
    return x, labels.astype(np.int32), instances.astype(np.int32)


def set_mode(model: nn.Module, mode: str) -> nn.Module:
    model = copy.deepcopy(model)  # train-mode norm layers update running statistics: never on the saved model
    if mode == "batchstats":
        model.eval()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.train()
    elif mode == "train":
        assert not any(isinstance(m, nn.Dropout) for m in model.modules()), "train mode with dropout is random"
        model.train()
    else:  # eval, eval_running_stats
        model.eval()
    return model


@torch.no_grad()
def outputs(model: nn.Module, modes, xs: dict) -> dict:
    out = {}
    for mode in modes:
        for tag, x in xs.items():
            out[f"y_{tag}_{mode}"] = set_mode(model, mode)(torch.from_numpy(x)).numpy()
    return out


def meaning(array: str) -> str:
    kind, tag, *mode = array.split("_", 2)
    if kind == "x":
        return f"input, {tag} (W {'=' if tag == 'square' else '!='} H)"
    if kind == "y":
        return f"the generator's output for x_{tag}, mode {mode[0]!r} (see modes)"
    return f"the {kind[:-1]} map x_{tag} was built from"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for key in REPOS:
        parser.add_argument(f"--{key}", type=Path, required=True, help=f"a folder holding {REPOS[key]}'s "
                                                                        "models/networks.py")
        parser.add_argument(f"--{key}-ref", default=None, help="the commit it came from (recorded in the manifest)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "tests/assets/official")
    parser.add_argument("--cases", nargs="*", help="only these cases (default: all)")
    args = parser.parse_args()

    torch.use_deterministic_algorithms(True)
    stubbed = stub_torchvision()
    modules = {key: load_networks(key, getattr(args, key)) for key in REPOS}
    sources = {key: {"repository": REPOS[key], "file": "models/networks.py", "commit": getattr(args, f"{key}_ref"),
                     "sha256": file_sha256(getattr(args, key) / "models" / "networks.py")} for key in REPOS}
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "generated_by": "bench/official_generators.py",
        "torch": torch.__version__, "numpy": np.__version__,
        "torchvision_stubbed": stubbed,
        "sources": sources,
        "init": "conv weights ~ normal(0, 1/sqrt(fan_in)) (ConvTranspose2d: fan_in = in_channels*kh*kw/stride^2); "
                "conv biases ~ U(-0.2, 0.2); BatchNorm weight ~ U(0.5, 1.5), bias ~ U(-0.2, 0.2); running_mean ~ "
                "normal(0, 0.2), running_var ~ U(0.5, 1.5) (BatchNorm2d, and InstanceNorm2d with track_running_stats), "
                "then `warmup_passes` train-mode forwards (no_grad, momentum 0.1) on random batches of 4 at the square "
                "size (InstanceNorm2d updates its running statistics but never counts num_batches_tracked: it stays "
                "0); torch.Generator seeded with `seed`",
        "arrays": "x_square, x_wide: inputs, NCHW float32; y_<square|wide>_<mode>: the generator's output for "
                  "them, NCHW float32; pix2pixHD cases also hold labels_* and instances_* (int32, N1HW), the maps "
                  "x_* was built from (channels 0-34 one-hot labels, channel 35 the instance edge map)",
        "modes": MODES,
        "cases": {},
    }
    chosen = [c for c in CASES + FULL_SIZE if (c[0] in args.cases if args.cases else c in CASES)]
    for name, key, cls_name, kwargs, shapes, modes, legacy, warmup, seed in chosen:
        cls = getattr(modules[key], cls_name)
        ctor = {**kwargs, "norm_layer": NORMS[kwargs["norm_layer"]][0]}
        torch.manual_seed(seed)  # dropout in the warm-up passes
        gen = torch.Generator().manual_seed(seed)
        model = cls(**ctor)
        randomize(model, gen)
        rng = np.random.default_rng(seed)
        if warmup:
            model.train()
            with torch.no_grad():
                for _ in range(warmup):
                    model(torch.rand((4, *shapes[0][1:]), generator=gen) * 2 - 1)
        model.eval()

        state = model.state_dict()
        files = {"zip": f"{name}.pth"}
        torch.save(state, args.out / files["zip"])
        if legacy:
            files["legacy"] = f"{name}.legacy.pth"
            torch.save(state, args.out / files["legacy"], _use_new_zipfile_serialization=False)

        arrays = {}
        for tag, shape in zip(("square", "wide"), shapes):
            if key == "pix2pixhd":
                arrays[f"x_{tag}"], arrays[f"labels_{tag}"], arrays[f"instances_{tag}"] = label_input(rng, shape)
            else:
                arrays[f"x_{tag}"] = image_input(rng, shape)
        xs = {tag: arrays[f"x_{tag}"] for tag in ("square", "wide") if f"x_{tag}" in arrays}
        ys = outputs(model, modes, xs)
        # The saved files reproduce the outputs, through a fresh instance of the official class.
        for fmt, file in files.items():
            fresh = cls(**ctor)
            fresh.load_state_dict(torch.load(args.out / file, weights_only=True))
            again = outputs(fresh, modes, xs)
            for k, y in ys.items():
                assert np.array_equal(y, again[k]), (name, fmt, k)
        arrays.update(ys)
        np.savez_compressed(args.out / f"{name}.npz", **arrays)

        ranges = {}
        for k, y in ys.items():
            ranges[k] = [float(y.min()), float(y.max()), float(y.std()), float((np.abs(y) > 0.99).mean())]
            print(f"{name:32s} {k:30s} {str(y.shape):18s} min {y.min():+.3f} max {y.max():+.3f} "
                  f"std {y.std():.3f} |y|>0.99: {ranges[k][3]:.1%}")
        manifest["cases"][name] = {
            "source": key, "repository": REPOS[key], "file": "models/networks.py", "class": cls_name,
            "constructor": {**kwargs, "norm_layer": NORMS[kwargs["norm_layer"]][1]},
            "files": files, "npz": f"{name}.npz",
            "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype), "meaning": meaning(k)}
                       for k, v in arrays.items()},
            "modes": {mode: MODES[mode] for mode in modes},
            "seed": seed, "warmup_passes": warmup,
            "state_dict_keys": len(state),
            "parameters": sum(p.numel() for p in model.parameters()),
            "output_min_max_std_saturated": ranges,
        }
    path = args.out / "manifest.json"
    if args.cases and path.exists():  # a partial run keeps the other cases' entries
        old = json.loads(path.read_text())
        manifest["cases"] = {**old["cases"], **manifest["cases"]}
    text = json.dumps(manifest, indent=1)
    text = re.sub(r"\[\s+([^][{}]*?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m[1]) + "]", text)  # lists on a line
    path.write_text(text + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
