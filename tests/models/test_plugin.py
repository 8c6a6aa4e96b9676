"""A third model, registered here and nowhere in the package, trains, resumes, exports and translates
through the command-line tools: adding a model is one module, not edits across the package.

The tools import this file as a plug-in (CYCLEGAN_TF_PLUGINS=test_plugin, with this folder on PYTHONPATH).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from cyclegan_tf import models, networks
from cyclegan_tf.config import TrainConfig
from cyclegan_tf.data import convert, synthetic
from cyclegan_tf.models.base import Model
from cyclegan_tf.options import Option

ROOT = Path(__file__).resolve().parents[2]


@models.register
class IdentityL1(Model):
    """One generator G: X→Y judged by D_Y, held near its input by an L1 term (a toy, but a whole model)."""

    name = "identity_l1"
    defaults = dict(pool_size=0)
    options = (Option("lambda_idt_l1", 5.0, "Weight of |G(x) - x|."),)
    optimizers = {"opt_G": ("G",), "opt_D": ("D_Y",)}
    exports = {"XtoY": "G"}
    loss_names = ("G_GAN", "G_idt", "D_Y")

    @classmethod
    def define_networks(cls, cfg: TrainConfig) -> dict[str, Callable[[], keras.Model]]:
        return {"G": lambda: networks.define_G(cfg.netG, cfg.ngf, cfg.norm, name="G"),
                "D_Y": lambda: networks.define_D(cfg.netD, cfg.ndf, cfg.n_layers_D, cfg.norm, name="D_Y")}

    def replica_step(self, x: tf.Tensor, y: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            fake = self.generate(self.G, x)
            loss = {"G_GAN": self.gan(self.D_Y(fake, training=True), True),
                    "G_idt": self.cfg.lambda_idt_l1 * self.average(tf.reduce_mean(tf.abs(fake - x), [1, 2, 3]))}
            total = loss["G_GAN"] + loss["G_idt"]
        self.opt_G.apply_gradients(zip(tape.gradient(total, self.G.trainable_variables), self.G.trainable_variables))
        with tf.GradientTape() as tape:
            terms = self.discriminator_objective(self.D_Y, y, tf.stop_gradient(fake), self.replica_seed(step))
            loss["D_Y"] = tf.add_n(list(terms.values()))
        grads = tape.gradient(loss["D_Y"], self.D_Y.trainable_variables)
        self.opt_D.apply_gradients(zip(grads, self.D_Y.trainable_variables))
        return loss

    def previews(self, x: tf.Tensor, y: tf.Tensor) -> dict[str, tuple[tf.Tensor, ...]]:
        return {"X/generated": (x, self.G(x, training=False))}


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("plugin")
    for d, seed in (("X", 0), ("Y", 1)):
        synthetic.write_folder(synthetic.textures(4, 40, seed), tmp / d)
        convert.build_folder(d, str(tmp / d), str(tmp / f"{d}.tfrecords"))
    return {"X": tmp / "X.tfrecords", "Y": tmp / "Y.tfrecords", "image": next((tmp / "X").iterdir())}


def tool(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CYCLEGAN_TF_PLUGINS": Path(__file__).stem,
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_a_registered_model_trains_resumes_exports_and_translates(records: dict, tmp_path: Path) -> None:
    run = tmp_path / "run"
    tiny = ["--model=identity_l1", f"--X={records['X']}", f"--Y={records['Y']}", "--image_size=32", "--ngf=4",
            "--ndf=4", "--netG=resnet_6blocks", "--lambda_idt_l1=2.5", "--log_every=1", "--save_every=2"]
    done = tool("train.py", *tiny, f"--checkpoint_dir={run}", "--max_steps=2")
    assert done.returncode == 0, done.stderr
    assert "G_idt" in done.stdout and tf.train.latest_checkpoint(str(run)).endswith("ckpt-2")
    saved = json.loads((run / "flags.json").read_text())
    assert saved["lambda_idt_l1"] == 2.5 and saved["pool_size"] == 0 and saved["model"] == "identity_l1"

    done = tool("train.py", f"--load_model={run}", "--max_steps=4")
    assert done.returncode == 0, done.stderr
    assert f"resuming {run} at step 2" in done.stdout and tf.train.latest_checkpoint(str(run)).endswith("ckpt-4")
    assert json.loads((run / "flags.json").read_text())["lambda_idt_l1"] == 2.5  # kept from the first start

    exports = tmp_path / "exports"
    done = tool("export_graph.py", f"--checkpoint_dir={run}", "--XtoY_model=x2y", "--YtoX_model=y2x",
                f"--export_dir={exports}")
    assert done.returncode == 0, done.stderr
    assert "--YtoX_model=y2x is skipped" in done.stdout and not (exports / "y2x").exists()
    loaded = tf.saved_model.load(str(exports / "x2y"))
    assert int(loaded.train_step.numpy()) == 4 and loaded.direction.numpy() == b"XtoY"

    done = tool("inference.py", f"--model={exports / 'x2y'}", f"--input={records['image']}",
                f"--output={tmp_path / 'out.png'}")
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "out.png").size == Image.open(records["image"]).size
    out = np.asarray(Image.open(tmp_path / "out.png"), np.float32)
    assert out.std() > 0


def test_options_of_one_model_are_refused_for_another(records: dict, tmp_path: Path) -> None:
    done = tool("train.py", f"--X={records['X']}", f"--Y={records['Y']}", "--lambda_idt_l1=3",
                f"--checkpoint_dir={tmp_path / 'run'}")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == "error: --lambda_idt_l1 is not an option of --model=cycle_gan"
    assert not (tmp_path / "run").exists()  # refused before anything was written
    done = tool("train.py", "--model=nonesuch", f"--X={records['X']}", f"--Y={records['Y']}")
    assert done.returncode == 2 and "--model=nonesuch: no such model" in done.stderr
    assert "identity_l1" in done.stderr  # the plug-in is listed among the choices
