from pathlib import Path

import numpy as np
from PIL import Image

from cyclegan_tf.data import shapescapes


def read(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(f)) for f in sorted(folder.glob("*.png"))]


def test_layout_and_folders(tmp_path: Path) -> None:
    counts = shapescapes.generate(tmp_path, size=32, train=5, test=4, seed=1)
    assert counts == {"trainA": 5, "trainB": 5, "testA": 4, "testB": 4}
    for folder in ("trainA", "trainB", "testA", "testB"):
        imgs = read(tmp_path / folder)
        assert len(imgs) == counts[folder] and all(i.shape == (32, 32, 3) and i.dtype == np.uint8 for i in imgs)
    for label in read(tmp_path / "trainA") + read(tmp_path / "testA"):  # label maps use only the palette
        colours = {tuple(c) for c in label.reshape(-1, 3)}
        assert colours <= {tuple(c) for c in shapescapes.PALETTE} and len(colours) >= 2


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    shapescapes.generate(tmp_path / "a", size=24, train=3, test=2, seed=5)
    shapescapes.generate(tmp_path / "b", size=24, train=3, test=2, seed=5)
    shapescapes.generate(tmp_path / "c", size=24, train=3, test=2, seed=6)
    for folder in ("trainA", "trainB", "testA", "testB"):
        assert all(np.array_equal(x, y) for x, y in zip(read(tmp_path / "a" / folder), read(tmp_path / "b" / folder)))
    assert not np.array_equal(read(tmp_path / "a" / "testA")[0], read(tmp_path / "c" / "testA")[0])


def agreement(labels: list[np.ndarray], photos: list[np.ndarray]) -> float:
    """How well the background class of the label map predicts the green (grass) photo pixels."""
    scores = []
    for lab, photo in zip(labels, photos):
        bg = (lab == shapescapes.PALETTE[0]).all(-1)
        greenish = photo[..., 1].astype(int) > photo[..., 0].astype(int) + 10
        scores.append((bg == greenish).mean())
    return float(np.mean(scores))


def test_test_split_is_paired_and_train_is_not(tmp_path: Path) -> None:
    shapescapes.generate(tmp_path, size=48, train=6, test=6, seed=2)

    paired = agreement(read(tmp_path / "testA"), read(tmp_path / "testB"))
    unpaired = agreement(read(tmp_path / "trainA"), read(tmp_path / "trainB"))
    assert paired > 0.85 and unpaired < paired - 0.1


def test_paired_mode_pairs_training_images_and_keeps_the_test_split(tmp_path: Path) -> None:
    shapescapes.generate(tmp_path / "paired", size=48, train=6, test=6, seed=2, paired=True)
    shapescapes.generate(tmp_path / "unpaired", size=48, train=6, test=6, seed=2)
    assert agreement(read(tmp_path / "paired" / "trainA"), read(tmp_path / "paired" / "trainB")) > 0.85
    for folder in ("testA", "testB"):  # paired and unpaired models of one seed are scored on the same scenes
        a, b = read(tmp_path / "paired" / folder), read(tmp_path / "unpaired" / folder)
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
