"""build_data.py as users run it: vanhuyz's flags, TensorFlow Datasets per domain, a summary, one-line errors."""
import json
import os
import re
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, write_bad

from cyclegan_tf.data import convert, pipeline, records
from cyclegan_tf.errors import UserError

# A proxy on a closed loopback port: a download that should not happen fails at once, and no packet leaves.
OFFLINE = {v: "http://127.0.0.1:9" for v in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "build_data.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def test_vanhuyz_flags(image_folder, tmp_path: Path) -> None:
    men, women = image_folder("men", n=3), image_folder("women", n=2, kinds=("png_gray", "webp"))
    write_bad(women, "truncated")
    r = run(f"--X_input_dir={men}", f"--Y_input_dir={women}", "--X_output_file=out/man.tfrecords",
            "--Y_output_file=out/woman.tfrecords", "--num_shards=2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "X: wrote 3 images" in r.stdout and "Y: wrote 2 images" in r.stdout and "skipped 1" in r.stdout
    assert "warning: " in r.stderr and "Traceback" not in r.stderr
    assert records.count_records(records.resolve_files(str(tmp_path / "out/woman.tfrecords"))) == 2


def test_missing_folder_is_one_line(tmp_path: Path) -> None:
    r = run("--X_input_dir=nope", "--Y_input_dir=nope2", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: --X_input_dir=nope: no such folder"]


def test_unwritable_output_is_one_line(image_folder, tmp_path: Path) -> None:
    men = image_folder("men", n=1)
    (tmp_path / "blocker").write_text("")
    r = run(f"--X_input_dir={men}", f"--Y_input_dir={men}", "--X_output_file=blocker/x.tfrecords", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: cannot create the folder of blocker/x.tfrecords")
    assert not list(tmp_path.glob("blocker*/**"))


# Two tiny TFDS datasets, prepared from generated images (no download): a grey "digits" one shaped as MNIST
# and an RGB one shaped as SVHN. Their builders are not registered, as in a fresh process: build_data.py
# finds them by name in --tfds_data_dir, the way a user's already-prepared datasets are found.
TINY = {"tiny_digits": ((28, 28, 1), {"train": 5, "test": 2}), "tiny_photos": ((32, 32, 3), {"train": 4})}


def tiny_image(name: str, split: str, i: int) -> np.ndarray:
    shape, _ = TINY[name]
    return np.random.default_rng([zlib.crc32(f"{name}/{split}".encode()), i]).integers(0, 256, shape, np.uint8)


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory) -> Path:
    import tensorflow_datasets as tfds

    root = tmp_path_factory.mktemp("tfds")
    for dataset in TINY:

        class Tiny(tfds.core.GeneratorBasedBuilder, skip_registration=True):
            name = dataset
            VERSION = tfds.core.Version("1.0.0")

            def _info(self) -> tfds.core.DatasetInfo:
                image = tfds.features.Image(shape=TINY[self.name][0])
                return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
                    {"image": image, "label": tfds.features.ClassLabel(num_classes=10)}))

            def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
                return {split: self._generate_examples(split, n) for split, n in TINY[self.name][1].items()}

            def _generate_examples(self, split: str, n: int) -> Iterator[tuple[int, dict]]:
                for i in range(n):
                    yield i, {"image": tiny_image(self.name, split, i), "label": i % 10}

        Tiny(data_dir=str(root)).download_and_prepare()
    return root


def decoded(path: Path) -> list[np.ndarray]:
    """Each record's image as the training pipeline decodes it."""
    return [pipeline.decode(r).numpy() for r in tf.data.TFRecordDataset(str(path))]


# build_data.py's main called in-process several times in ONE subprocess (importing TensorFlow Datasets
# costs seconds per process); the last call fails and exits as the command line does. A subprocess
# because build_data.py takes over stderr and absl's flags at import.
DRIVER = """
import json, sys
sys.path.insert(0, sys.argv[1])
import build_data
for args in json.loads(sys.argv[2]):
    build_data.FLAGS.unparse_flags()
    build_data.main(build_data.FLAGS(["build_data.py", *args]))
    print("--- done", flush=True)
"""


def test_tfds_per_domain(tfds_dir: Path, image_folder, tmp_path: Path) -> None:
    men = image_folder("men", n=2)
    data_dir = f"--tfds_data_dir={tfds_dir}"
    runs = [
        ["--X_tfds=tiny_digits:train", "--Y_tfds=tiny_photos:train", "--X_output_file=out/digits.tfrecords",
         "--Y_output_file=out/photos.tfrecords", data_dir],
        # Y alone: X is not built (its default folder, data/apple2orange/trainA, does not exist here)
        ["--Y_tfds=tiny_photos:train[:2]", "--Y_output_file=out/two.tfrecords", data_dir],
        # X from a folder, Y from TFDS
        [f"--X_input_dir={men}", "--X_output_file=out/men.tfrecords", "--Y_tfds=tiny_digits:test",
         "--Y_output_file=out/test.tfrecords", data_dir],
        # offline, and mnist is not in --tfds_data_dir: one line, and not even tiny_digits is written
        ["--X_tfds=tiny_digits:train", "--Y_tfds=mnist:train", "--X_output_file=out/never_x.tfrecords",
         "--Y_output_file=out/never_y.tfrecords", data_dir],
    ]
    r = subprocess.run([sys.executable, "-c", DRIVER, str(ROOT), json.dumps(runs)], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300, env={**os.environ, **OFFLINE})
    assert r.returncode == 2 and r.stdout.count("--- done") == 3, r.stderr
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: --Y_tfds=mnist:train: mnist is not prepared in --tfds_data_dir={tfds_dir} and could "
                      "not be downloaded (ProxyError); these machines may be offline"]
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["digits.tfrecords", "men.tfrecords", "photos.tfrecords",
                                                     "test.tfrecords", "two.tfrecords"]
    assert "X: wrote 5 images to out/digits.tfrecords" in r.stdout and "Y: wrote 4 images" in r.stdout
    assert "X: wrote 2 images to out/men.tfrecords" in r.stdout

    # MNIST-shaped grey images reach the pipeline as RGB, the grey value in all three channels.
    digits = decoded(out / "digits.tfrecords")
    assert len(digits) == 5 and all(d.shape == (28, 28, 3) for d in digits)
    assert all((d == d[..., :1]).all() for d in digits)
    want = sorted(tiny_image("tiny_digits", "train", i).tobytes() for i in range(5))
    assert sorted(d[..., :1].tobytes() for d in digits) == want
    photos = decoded(out / "photos.tfrecords")
    assert sorted(p.tobytes() for p in photos) == sorted(tiny_image("tiny_photos", "train", i).tobytes()
                                                         for i in range(4))
    assert len(decoded(out / "two.tfrecords")) == 2 and len(decoded(out / "test.tfrecords")) == 2
    names = {bytes(r["image/file_name"]) for r in _rows(out / "test.tfrecords")}
    assert names == {b"tiny_digits/test[0]", b"tiny_digits/test[1]"}


def _rows(path: Path) -> list[dict]:
    rows = []
    for raw in tf.data.TFRecordDataset(str(path)):
        feats = tf.train.Example.FromString(raw.numpy()).features.feature
        rows.append({k: (v.bytes_list.value or v.int64_list.value or v.float_list.value)[0] for k, v in feats.items()})
    return rows


@pytest.mark.parametrize("args,error", [
    (["--X_tfds=mnist", "--X_output_file=x"], "--X_tfds=mnist: give NAME:SPLIT, e.g. mnist:train or svhn_cropped:test"),
    (["--X_tfds=mnist:train"], "--X_tfds=mnist:train: give --X_output_file too (where domain X's records go)"),
    (["--X_tfds=mnist:train", "--X_output_file=x", "--Y_output_file=y"],
     "--Y_output_file=y: domain Y has no source; give --Y_tfds or --Y_input_dir"),
    (["--X_tfds=mnist:train", "--X_output_file=x", "--tfds_name=cycle_gan/horse2zebra"],
     "--X_tfds=mnist:train and --tfds_name=cycle_gan/horse2zebra: give one (--tfds_name takes both domains from "
     "the splits of one dataset, --X_tfds/--Y_tfds one dataset per domain)"),
    (["--Y_tfds=svhn_cropped:train", "--Y_output_file=y", "--Y_input_dir=women"],
     "--Y_tfds=svhn_cropped:train and --Y_input_dir=women both give domain Y: give one"),
    (["--X_tfds=mnist:train", "--X_output_file=x", "--paired"],
     "--X_tfds=mnist:train: --paired reads pairs from folders, not from TensorFlow Datasets"),
], ids=["no split", "no output", "no source", "and tfds_name", "and input_dir", "and paired"])
def test_tfds_flag_errors_are_one_line(tmp_path: Path, args: list[str], error: str) -> None:
    # Checked before TensorFlow Datasets is imported: each run takes a fraction of a second.
    r = run(*args, f"--tfds_data_dir={tmp_path / 'tfds'}", cwd=tmp_path, env=OFFLINE)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert [line for line in r.stderr.splitlines() if line.startswith("error:")] == [f"error: {error}"]
    assert not (tmp_path / "tfds").exists()


@pytest.mark.parametrize("value,expected", [
    ("mnist:train", ("mnist", "train")), ("svhn_cropped: test ", ("svhn_cropped", "test")),
    ("mnist:train[:1000]", ("mnist", "train[:1000]")), ("mnist:3.0.1:test", ("mnist:3.0.1", "test")),
    ("huggingface:mnist:train", ("huggingface:mnist", "train")), ("cycle_gan/horse2zebra:trainA+trainB[:5]",
                                                                  ("cycle_gan/horse2zebra", "trainA+trainB[:5]")),
])
def test_tfds_spec(value: str, expected: tuple[str, str]) -> None:
    assert convert.parse_tfds_spec("--X_tfds", value) == expected


@pytest.mark.parametrize("value", ["mnist", ":train", "mnist:", " : ", "", "mnist[:5]"])
def test_tfds_spec_errors(value: str) -> None:
    with pytest.raises(UserError, match=rf"^--Y_tfds={re.escape(value)}: give NAME:SPLIT, e.g. mnist:train"):
        convert.parse_tfds_spec("--Y_tfds", value)


@pytest.mark.parametrize("spec,match", [
    ("tiny_digitz:train", r"^--X_tfds=tiny_digitz:train: TensorFlow Datasets has no dataset tiny_digitz, and none "
                          r"is prepared under --tfds_data_dir=\S+; did you mean tiny_digits\b"),
    ("mnistt:train", r"^--X_tfds=mnistt:train: TensorFlow Datasets has no dataset mnistt, .*did you mean mnist\b"),
    ("svhn:train", r"did you mean svhn_cropped\?$"),
    ("tiny_digits:trian", r"^--X_tfds=tiny_digits:trian: Unknown split 'trian'"),
    ("tiny_digits:train[:0]", r"^--X_tfds=tiny_digits:train\[:0\]: "),
])
def test_tfds_dataset_errors(tfds_dir: Path, tmp_path: Path, spec: str, match: str) -> None:
    name, split = convert.parse_tfds_spec("--X_tfds", spec)
    with pytest.raises(UserError, match=match) as e:
        split_ = convert.TfdsSplit(name, split, str(tmp_path / "x.tfrecords"), given=f"--X_tfds={spec}")
        convert.plan_tfds_splits([split_], data_dir=str(tfds_dir))
    assert "\n" not in str(e.value)
