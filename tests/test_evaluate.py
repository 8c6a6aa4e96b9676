import numpy as np
import pytest

from cyclegan_tf import evaluate
from cyclegan_tf.datasets import shapescapes

PAL = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0]], np.uint8)


def test_label_scores_on_known_arrays() -> None:
    truth = PAL[np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2]])][None]
    pred_cls = np.array([[0, 0, 1, 0], [0, 0, 1, 1], [2, 2, 2, 2], [2, 2, 1, 2]])
    pred = PAL[pred_cls][None].astype(np.int32) + 20  # off-palette colours are snapped back
    s = evaluate.label_scores(np.clip(pred, 0, 255).astype(np.uint8), truth, PAL, ("bg", "a", "b"))
    assert s["pixel_accuracy"] == pytest.approx(14 / 16)
    assert s["class_accuracy"] == pytest.approx((4 / 4 + 3 / 4 + 7 / 8) / 3)
    # IoU: bg 4/(5+4-4)=0.8, a 3/(4+4-3)=0.6, b 7/(7+8-7)=0.875
    assert s["class_iou"] == pytest.approx((0.8 + 0.6 + 0.875) / 3)
    assert s["per_class_iou"]["a"] == pytest.approx(0.6)


def test_perfect_and_identity_labels() -> None:
    truth = shapescapes.labels(np.array([[0, 1], [2, 3]]))[None]
    s = evaluate.label_scores(truth, truth, shapescapes.PALETTE)
    assert s["pixel_accuracy"] == s["class_accuracy"] == s["class_iou"] == 1.0


def test_fid_and_kid_on_features() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 16))
    assert evaluate.fid(a, a) == pytest.approx(0, abs=1e-6)
    shifted = [evaluate.fid(a, a + d) for d in (0.1, 0.5, 1.0)]
    assert shifted == sorted(shifted) and shifted[-1] == pytest.approx(16.0, rel=1e-6)  # ‖μ₁ − μ₂‖² = 16·1²
    b = rng.normal(size=(300, 16))  # same distribution: KID is unbiased, so ~0 next to a real difference
    assert evaluate.fid(a, b) > 0 and abs(evaluate.kid(a, b)) < 0.05 * evaluate.kid(a, b + 1)


def test_psnr_ssim() -> None:
    img = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    same = evaluate.psnr_ssim(img, img)
    assert same["ssim"] == pytest.approx(1.0) and same["psnr"] > 100
    noisy = np.clip(img.astype(int) + 20, 0, 255).astype(np.uint8)
    assert evaluate.psnr_ssim(noisy, img)["psnr"] < 30


def test_fid_kid_on_inception_features(tmp_path) -> None:
    """Identical image sets score ~0; noise added to one set raises FID step by step."""
    from cyclegan_tf import fid_inception

    rng = np.random.default_rng(0)
    photos = np.stack([shapescapes.render(shapescapes.layout(rng, 64), rng) for _ in range(24)])
    same = evaluate.distribution_scores(photos, photos)
    assert same["n_generated"] == same["n_real"] == 24
    # the noisy sets' scores from features computed once per set (Inception on CPU is the slow part)
    real = fid_inception.features(photos)
    noisy = [fid_inception.features(np.clip(photos + np.random.default_rng(1).normal(0, s, photos.shape), 0, 255)
                                    .astype(np.uint8)) for s in (8, 32)]
    scores = [{"fid": evaluate.fid(n, real), "kid": evaluate.kid(n, real)} for n in noisy]
    assert abs(same["fid"]) < 0.01 and 1 < scores[0]["fid"] < scores[1]["fid"]
    # KID's random subsets of the same set still differ, so "identical" is ~0 relative to a real change
    assert abs(same["kid"]) < 0.1 * scores[1]["kid"] and scores[0]["kid"] < scores[1]["kid"]


def test_command_line_compares_models_side_by_side(tmp_path, capsys) -> None:
    """Several --generated folders (or --model exports) and the --identity baseline, one column each."""
    import json

    from PIL import Image

    cls = np.random.default_rng(0).integers(0, 4, (3, 8, 8))
    for name, noise in (("truth", 0), ("good", 0.05), ("bad", 0.6), ("inputs", 0.9)):
        (tmp_path / name).mkdir()
        rng = np.random.default_rng(len(name))
        for i, c in enumerate(cls):
            wrong = rng.random(c.shape) < noise
            Image.fromarray(shapescapes.PALETTE[np.where(wrong, (c + 1) % 4, c)]).save(tmp_path / name / f"{i}.png")
    args = ["--generated", str(tmp_path / "good"), "--generated", str(tmp_path / "bad"), "--identity",
            "--input", str(tmp_path / "inputs"), "--truth", str(tmp_path / "truth"), "--labels",
            "--json", str(tmp_path / "scores.json")]
    assert evaluate.main(args) == 0
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert list(scores) == ["good", "bad", "identity"]
    acc = [scores[k]["pixel_accuracy"] for k in scores]
    assert acc[0] > acc[1] > acc[2]
    header = capsys.readouterr().out.splitlines()[1].split()
    assert header == ["good", "bad", "identity"]
    assert evaluate.main(["--identity", "--truth", str(tmp_path / "truth")]) == 2
