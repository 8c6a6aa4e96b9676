"""build_data.py as users run it: vanhuyz's flags, a summary, and one-line errors."""
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, write_bad

from cyclegan_tf import records


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "build_data.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


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
