import numpy as np
import pytest

from cyclegan_tf.data import shapescapes
from cyclegan_tf.evaluation import score

PAL = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0]], np.uint8)


def test_label_scores_on_known_arrays() -> None:
    truth = PAL[np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2]])][None]
    pred_cls = np.array([[0, 0, 1, 0], [0, 0, 1, 1], [2, 2, 2, 2], [2, 2, 1, 2]])
    pred = PAL[pred_cls][None].astype(np.int32) + 20  # off-palette colours are snapped back
    s = score.label_scores(np.clip(pred, 0, 255).astype(np.uint8), truth, PAL, ("bg", "a", "b"))
    assert s["pixel_accuracy"] == pytest.approx(14 / 16)
    assert s["class_accuracy"] == pytest.approx((4 / 4 + 3 / 4 + 7 / 8) / 3)
    # IoU: bg 4/(5+4-4)=0.8, a 3/(4+4-3)=0.6, b 7/(7+8-7)=0.875
    assert s["class_iou"] == pytest.approx((0.8 + 0.6 + 0.875) / 3)
    assert s["per_class_iou"]["a"] == pytest.approx(0.6)


def test_perfect_and_identity_labels() -> None:
    truth = shapescapes.labels(np.array([[0, 1], [2, 3]]))[None]
    s = score.label_scores(truth, truth, shapescapes.PALETTE)
    assert s["pixel_accuracy"] == s["class_accuracy"] == s["class_iou"] == 1.0


def test_fid_and_kid_on_features() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 16))
    assert score.fid(a, a) == pytest.approx(0, abs=1e-6)
    shifted = [score.fid(a, a + d) for d in (0.1, 0.5, 1.0)]
    assert shifted == sorted(shifted) and shifted[-1] == pytest.approx(16.0, rel=1e-6)  # ‖μ₁ − μ₂‖² = 16·1²
    b = rng.normal(size=(300, 16))  # same distribution: KID is unbiased, so ~0 next to a real difference
    assert score.fid(a, b) > 0 and abs(score.kid(a, b)) < 0.05 * score.kid(a, b + 1)


def test_psnr_ssim() -> None:
    img = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    same = score.psnr_ssim(img, img)
    assert same["ssim"] == pytest.approx(1.0) and same["psnr"] > 100
    noisy = np.clip(img.astype(int) + 20, 0, 255).astype(np.uint8)
    assert score.psnr_ssim(noisy, img)["psnr"] < 30


def test_fid_kid_on_inception_features(tmp_path) -> None:
    """Identical image sets score ~0; noise added to one set raises FID step by step."""
    from cyclegan_tf.evaluation import inception

    rng = np.random.default_rng(0)
    photos = np.stack([shapescapes.render(shapescapes.layout(rng, 64), rng) for _ in range(24)])
    same = score.distribution_scores(photos, photos)
    assert same["n_generated"] == same["n_real"] == 24
    # every generated image is a real one: inside the real balls and covering them all
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0 and same["density"] > 0
    # the noisy sets' scores from features computed once per set (Inception on CPU is the slow part)
    real = inception.features(photos)
    noisy = [inception.features(np.clip(photos + np.random.default_rng(1).normal(0, s, photos.shape), 0, 255)
                                    .astype(np.uint8)) for s in (8, 32)]
    scores = [{"fid": score.fid(n, real), "kid": score.kid(n, real)} for n in noisy]
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
    assert score.main(args) == 0
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert list(scores) == ["good", "bad", "identity"]
    acc = [scores[k]["pixel_accuracy"] for k in scores]
    assert acc[0] > acc[1] > acc[2]
    header = capsys.readouterr().out.splitlines()[1].split()
    assert header == ["good", "bad", "identity"]
    assert score.main(["--identity", "--truth", str(tmp_path / "truth")]) == 2


def test_prdc_by_hand() -> None:
    """1-D points whose k-NN balls (open intervals) are counted by hand."""
    # k = 1. Real radii: 0→1, 1→1, 3→2, 7→4: balls (−1, 1), (0, 2), (1, 5), (3, 11).
    # Fake radii: 0.5→5, 5.5→0.5, 6→0.5, 30→1, 31→1: balls (−4.5, 5.5), (5, 6), (5.5, 6.5), (29, 31), (30, 32).
    real, fake = np.array([[0.0], [1], [3], [7]]), np.array([[0.5], [5.5], [6], [30], [31]])
    s = score.prdc(real, fake, k=1)
    assert s["precision"] == pytest.approx(3 / 5)  # 0.5, 5.5, 6 lie in a real ball; 30, 31 in none
    assert s["recall"] == pytest.approx(3 / 4)  # 0, 1, 3 lie in a fake ball; 7 in none
    assert s["density"] == pytest.approx((2 + 1 + 1) / (1 * 5))  # 0.5 in two real balls, 5.5 and 6 in one each
    assert s["coverage"] == pytest.approx(3 / 4)  # 3's nearest fake (2.5 away) is outside its radius 2
    # k = 2. Real radii: 0→2, 1→1, 2→2, 10→9: balls (−2, 2), (0, 2), (0, 4), (1, 19); fake ones: (−9, 12),
    # (−6, 12), (1.5, 22.5). Fake 1.5 lies in 4 real balls, 3 in 2, 12 in 1: density 7 / (2·3) > 1.
    s = score.prdc(np.array([[0.0], [1], [2], [10]]), np.array([[1.5], [3], [12]]), k=2)
    assert s == pytest.approx({"precision": 1.0, "recall": 1.0, "density": 7 / 6, "coverage": 1.0})


def test_prdc_needs_more_than_k_per_set() -> None:
    a = np.random.default_rng(0).normal(size=(6, 4))
    assert set(score.prdc(a, a + 0.1, k=5)) == {"precision", "recall", "density", "coverage"}  # k + 1 is enough
    with pytest.raises(ValueError, match="more than k=5 .* got 5 real and 6 generated"):
        score.prdc(a[:5], a, k=5)
    with pytest.raises(ValueError, match="more than k=2"):
        score.prdc(a, a[:2], k=2)


def test_inception_score_by_hand() -> None:
    """IS = exp(mean KL(p(y|x) ‖ p(y))): uniform predictions give 1; confident ones, exp(entropy of p(y))."""
    c = 1008
    assert score.inception_score(np.zeros((20, c))) == pytest.approx((1.0, 0.0))
    confident = np.zeros((24, c))
    confident[np.arange(24), np.arange(24) % 4] = 60.0  # e^-60 on the other 1007 classes: one-hot to 1e-23
    assert score.inception_score(confident, splits=2) == pytest.approx((4.0, 0.0))  # 4 classes, 3 of each
    # split 1 all one class (IS 1), split 2 four classes (IS 4): mean 2.5, population std 1.5
    mixed = np.zeros((8, c))
    mixed[np.arange(8), [0, 0, 0, 0, 0, 1, 2, 3]] = 60.0
    assert score.inception_score(mixed, splits=2) == pytest.approx((2.5, 1.5))
    # unbalanced classes 3:3:2:2 in one split: exp(H(0.3, 0.3, 0.2, 0.2))
    unbalanced = np.zeros((10, c))
    unbalanced[np.arange(10), [0, 0, 0, 1, 1, 1, 2, 2, 3, 3]] = 60.0
    h = -2 * 0.3 * np.log(0.3) - 2 * 0.2 * np.log(0.2)
    assert score.inception_score(unbalanced, splits=1)[0] == pytest.approx(np.exp(h))
    # soft, 2 classes: p = (3/4, 1/4) and (1/4, 3/4), p(y) = (1/2, 1/2); the softmax ignores a shared offset
    soft = np.log([[3.0, 1.0], [1.0, 3.0]]) + 7.0
    assert score.inception_score(soft, splits=1)[0] == pytest.approx(1.5 ** 0.75 * 0.5 ** 0.25)
    with pytest.raises(ValueError, match="at least 10 images"):
        score.inception_score(np.zeros((9, c)))


def _folders(tmp_path, sizes: dict[str, int]) -> dict[str, str]:
    from PIL import Image

    out = {}
    for name, n in sizes.items():
        (tmp_path / name).mkdir()
        for i in range(n):
            rgb = np.random.default_rng([len(name), i]).integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(rgb).save(tmp_path / name / f"{i}.png")
        out[name] = str(tmp_path / name)
    return out


def test_small_sets_warn_once_and_report_n(tmp_path, capsys, monkeypatch) -> None:
    """Below 2048 images FID's bias is a warning (once per run, whatever the columns); PRDC is left out, with a
    warning, for sets of k or fewer; n is always reported."""
    import json

    from cyclegan_tf.evaluation import inception

    # features from the pixels, not Inception: these tests are about the command, not the network
    monkeypatch.setattr(inception, "features", lambda images: images.reshape(len(images), -1) / 255.0)
    f = _folders(tmp_path, {"a": 7, "b": 9, "real": 8, "few": 3})
    out = tmp_path / "scores.json"
    assert score.main(["--generated", f["a"], "--generated", f["b"], "--real", f["real"], "--json", str(out)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == ["warning: FID is biased upward below 2048 images per set (found 7 generated, 8 real): compare "
                   "FIDs only at the same n (--floor helps)"]
    scores = json.loads(out.read_text())
    assert [(s["n_generated"], s["n_real"]) for s in scores.values()] == [(7, 8), (9, 8)]
    assert all({"fid", "kid", "precision", "recall", "density", "coverage"} <= set(s) for s in scores.values())
    assert score.main(["--generated", f["few"], "--real", f["real"], "--json", str(out)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == ("warning: precision/recall/density/coverage need more than 5 images per set (found 3 "
                      "generated, 8 real): left out") and len(err) == 2  # and the FID warning again: a new run
    scores = json.loads(out.read_text())
    assert scores["n_generated"] == 3 and "fid" in scores and "precision" not in scores


def test_inception_weights_flag(tmp_path, capsys, monkeypatch) -> None:
    """--inception_weights adds is_mean/is_std; a missing or wrong file is one line saying where to get it."""
    import json

    from cyclegan_tf.evaluation import inception

    f = _folders(tmp_path, {"gen": 20})
    missing = tmp_path / "nowhere.pth"
    assert score.main(["--generated", f["gen"], "--inception_weights", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --inception_weights={missing}: no such file")
    assert inception.IS_WEIGHTS in err[0] and inception.IS_WEIGHTS_URL in err[0]
    (tmp_path / "other.pth").write_bytes(b"PK not the weights")
    assert score.main(["--generated", f["gen"], "--inception_weights", str(tmp_path / "other.pth")]) == 2
    assert "sha256 starts" in capsys.readouterr().err

    # the wiring, with a stand-in classifier: two confident classes, one image of each in each of the 10 splits
    seen = []
    monkeypatch.setattr(inception, "classifier", lambda path, check_hash=True: seen.append(path))

    def logits_and_features(images, path):
        z = np.zeros((len(images), 1008))
        z[np.arange(len(images)), np.arange(len(images)) % 2] = 60.0
        return z, np.zeros((len(images), 2048))

    monkeypatch.setattr(inception, "logits_and_features", logits_and_features)
    out = tmp_path / "scores.json"
    assert score.main(["--generated", f["gen"], "--inception_weights", "w.pth", "--json", str(out)]) == 0
    scores = json.loads(out.read_text())
    assert seen == ["w.pth"] and scores["n"] == 20
    assert scores["is_mean"] == pytest.approx(2.0, rel=1e-6) and scores["is_std"] == pytest.approx(0.0, abs=1e-6)
    assert "is_mean" in capsys.readouterr().out
    few = _folders(tmp_path, {"few": 9})["few"]
    assert score.main(["--generated", few, "--inception_weights", "w.pth"]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {few}: the Inception Score needs at least 10 images "
                                               "(one per split), found 9")
