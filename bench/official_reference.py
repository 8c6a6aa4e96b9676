"""The official PyTorch CycleGAN step, timed on this machine: the reference of bench/train_step.py.

  python bench/official_reference.py --size 256 --steps 10 [--inference]

A transcription of junyanz/pytorch-CycleGAN-and-pix2pix's ResnetGenerator (reflection padding,
InstanceNorm2d without affine, biased convs), 70×70 NLayerDiscriminator, image pool of 50, LSGAN,
λ_cycle 10, λ_identity 0.5, Adam(0.0002, β1 0.5), and CycleGANModel.optimize_parameters' order:
the forwards, G and F's update with D frozen, then D_X and D_Y's. Same timing protocol as ours (fixed
inputs, 2 warm-up steps, median). `--inference` times one generator forward in eval mode and no_grad
instead, batch `--batch_size` (the official test.py's work per image).

Needs PyTorch, which is not a dependency of cyclegan_tf: install its CPU build into a separate
environment (`pip install torch`) and run this file with that environment's python. It imports
nothing from cyclegan_tf (only bench/timing.py, plain Python).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource

try:
    import torch
    from torch import nn
except ImportError:
    raise SystemExit("bench/official_reference.py: PyTorch is not installed in this environment "
                     "(pip install torch, in a separate environment)") from None

from timing import summary, time_calls  # noqa: E402 - bench/timing.py: the same protocol as ours


def resnet_generator(n_blocks: int, ngf: int = 64) -> nn.Module:
    def conv_norm_relu(*conv):
        return [*conv, nn.InstanceNorm2d(conv[-1].out_channels), nn.ReLU(True)]

    class Block(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.body = nn.Sequential(nn.ReflectionPad2d(1), *conv_norm_relu(nn.Conv2d(d, d, 3)),
                                      nn.ReflectionPad2d(1), nn.Conv2d(d, d, 3), nn.InstanceNorm2d(d))

        def forward(self, x):
            return x + self.body(x)

    layers = [nn.ReflectionPad2d(3), *conv_norm_relu(nn.Conv2d(3, ngf, 7))]
    layers += conv_norm_relu(nn.Conv2d(ngf, 2 * ngf, 3, 2, 1)) + conv_norm_relu(nn.Conv2d(2 * ngf, 4 * ngf, 3, 2, 1))
    layers += [Block(4 * ngf) for _ in range(n_blocks)]
    layers += conv_norm_relu(nn.ConvTranspose2d(4 * ngf, 2 * ngf, 3, 2, 1, output_padding=1))
    layers += conv_norm_relu(nn.ConvTranspose2d(2 * ngf, ngf, 3, 2, 1, output_padding=1))
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def patch_discriminator(ndf: int = 64) -> nn.Module:
    def block(cin, cout, stride):
        return [nn.Conv2d(cin, cout, 4, stride, 1), nn.InstanceNorm2d(cout), nn.LeakyReLU(0.2, True)]

    return nn.Sequential(nn.Conv2d(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True),
                         *block(ndf, 2 * ndf, 2), *block(2 * ndf, 4 * ndf, 2), *block(4 * ndf, 8 * ndf, 1),
                         nn.Conv2d(8 * ndf, 1, 4, 1, 1))


class ImagePool:
    """The official ImagePool: after 50 images, half the queries return (and replace) a stored fake."""

    def __init__(self, size: int = 50):
        self.size, self.images = size, []

    def query(self, image):
        image = image.detach()
        if len(self.images) < self.size:
            self.images.append(image)
            return image
        if random.random() > 0.5:
            i = random.randrange(self.size)
            old, self.images[i] = self.images[i], image
            return old
        return image


def cyclegan_step(size: int, batch: int, netG: str):
    G, F = (resnet_generator(9 if netG == "resnet_9blocks" else 6) for _ in range(2))
    D_Y, D_X = patch_discriminator(), patch_discriminator()
    opt_G = torch.optim.Adam([*G.parameters(), *F.parameters()], lr=0.0002, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam([*D_Y.parameters(), *D_X.parameters()], lr=0.0002, betas=(0.5, 0.999))
    pool_X, pool_Y = ImagePool(), ImagePool()
    mse, l1 = nn.MSELoss(), nn.L1Loss()
    x, y = (torch.rand(batch, 3, size, size) * 2 - 1 for _ in range(2))

    def gan(pred, real: bool):
        return mse(pred, torch.full_like(pred, 1.0 if real else 0.0))

    def step() -> float:
        fake_y, fake_x = G(x), F(y)
        rec_x, rec_y = F(fake_y), G(fake_x)
        for p in [*D_Y.parameters(), *D_X.parameters()]:
            p.requires_grad_(False)
        opt_G.zero_grad()
        idt = (l1(G(y), y) + l1(F(x), x)) * 10 * 0.5
        loss_G = gan(D_Y(fake_y), True) + gan(D_X(fake_x), True) + (l1(rec_x, x) + l1(rec_y, y)) * 10 + idt
        loss_G.backward()
        opt_G.step()
        for p in [*D_Y.parameters(), *D_X.parameters()]:
            p.requires_grad_(True)
        opt_D.zero_grad()
        for D, real, fake in ((D_Y, y, pool_Y.query(fake_y)), (D_X, x, pool_X.query(fake_x))):
            ((gan(D(real), True) + gan(D(fake.detach()), False)) * 0.5).backward()
        opt_D.step()
        return float(loss_G.detach())

    return step


def inference(size: int, batch: int, netG: str):
    G = resnet_generator(9 if netG == "resnet_9blocks" else 6).eval()
    x = torch.rand(batch, 3, size, size) * 2 - 1

    def step() -> float:
        with torch.no_grad():
            return float(G(x)[0, 0, 0, 0])

    return step


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--netG", default="", help="default: resnet_9blocks above 128 px, resnet_6blocks up to it")
    p.add_argument("--inference", action="store_true", help="time one generator forward instead of a step")
    args = p.parse_args()
    netG = args.netG or ("resnet_9blocks" if args.size > 128 else "resnet_6blocks")
    torch.manual_seed(0)
    random.seed(0)
    step = (inference if args.inference else cyclegan_step)(args.size, args.batch_size, netG)
    times = time_calls(step, args.steps)
    print(json.dumps({
        "bench": "official_reference_" + ("inference" if args.inference else "train_step"), "size": args.size,
        "batch_size": args.batch_size, "netG": netG, "steps": args.steps,
        **summary(times, "step", args.batch_size),
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "machine": platform.machine(),
        "torch": torch.__version__}))


if __name__ == "__main__":
    main()
