"""Translating image files with an exported SavedModel: one file, a folder, or a glob.

Only TensorFlow's saved_model API is used on the model, so any export (ours, or copied elsewhere)
works. Inputs are decoded with PIL (every format build_data.py takes, EXIF rotation applied),
images of the same size are batched, and each output is written to a temporary name and renamed.
"""
from __future__ import annotations

import glob
import html
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image
from tqdm import tqdm

from cyclegan_tf.atomic import atomic_path, write_text
from cyclegan_tf.errors import UserError
from cyclegan_tf.imagefiles import IMAGE_EXTENSIONS, BadImage, find_images, open_rgb

OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def load_model(model: str, export_dir: str = "pretrained"):
    """A SavedModel folder, or a name under `export_dir`; returns its `translate` signature."""
    candidates = [Path(model), Path(export_dir) / model, Path(export_dir) / Path(model).stem]
    path = next((p for p in candidates if (p / "saved_model.pb").exists()), None)
    if path is None:
        raise UserError(f"--model={model}: no SavedModel there (nor under {export_dir}/); run export_graph.py")
    loaded = tf.saved_model.load(str(path))
    translate = loaded.signatures["translate"]
    translate._keep_alive = loaded  # the signature needs the loaded object's variables
    return translate


@dataclass
class Summary:
    written: int = 0
    skipped: list[str] = field(default_factory=list)
    outputs: list[tuple[Path, Path]] = field(default_factory=list)  # (input, output)


def _inputs(pattern: str) -> tuple[list[Path], bool]:
    """(files, single) for a file, a folder or a glob."""
    p = Path(pattern)
    if p.is_file():
        return [p], True
    if p.is_dir():
        files = find_images(p, recursive=False)
    else:
        files = sorted(Path(f) for f in glob.glob(pattern, recursive=True)
                       if Path(f).is_file() and Path(f).suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise UserError(f"--input={pattern}: no such file, and no images match it")
    return files, False


def _save(img: np.ndarray, path: Path, quality: int) -> None:
    fmt = OUTPUT_FORMATS[path.suffix.lower()]
    with atomic_path(path) as tmp:
        Image.fromarray(img).save(tmp, format=fmt, **({"quality": quality} if fmt != "PNG" else {}))


def run(model: str, input_pattern: str, output: str, *, batch_size: int = 1, image_size: int = 0,
        fmt: str = "", side_by_side: bool = False, write_html: bool = False, quality: int = 95,
        export_dir: str = "pretrained") -> Summary:
    """Translates every input; in single-file mode `output` is the file, else the output folder."""
    files, single = _inputs(input_pattern)
    out = Path(output)
    if single and not out.is_dir():
        if out.suffix.lower() not in OUTPUT_FORMATS:
            raise UserError(f"--output={output}: use .png, .jpg, .jpeg or .webp (the format follows it)")
        targets = [out]
        folder = out.parent
    else:
        folder = out
        ext = "." + fmt.lower().lstrip(".") if fmt else ""
        if ext and ext not in OUTPUT_FORMATS:
            raise UserError(f"--format={fmt}: choose png, jpg or webp")
        stems = [f.stem for f in files]
        # a.jpg and a.png in one folder must not overwrite each other's output
        names = [f"{f.stem}_{f.suffix[1:]}" if stems.count(f.stem) > 1 else f.stem for f in files]
        targets = [folder / (n + (ext or (f.suffix.lower() if f.suffix.lower() in OUTPUT_FORMATS else ".png")))
                   for n, f in zip(names, files)]
    clash = next((f for f, t in zip(files, targets) if t.resolve() == f.resolve()), None)
    if clash:
        raise UserError(f"--output={output}: would overwrite the input {clash}; choose another folder or format")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--output={output}: cannot create {folder} ({e.strerror})") from None
    translate = load_model(model, export_dir)
    summary = Summary()
    bar = tqdm(total=len(files), unit="img", disable=not sys.stderr.isatty(), file=sys.stderr)

    def flush(batch: list[tuple[Path, Path, np.ndarray]]) -> None:
        x = np.stack([b[2] for b in batch]).astype(np.float32)
        y = np.round(translate(images=tf.constant(x))["images"].numpy()).astype(np.uint8)
        for (src, dst, img), result in zip(batch, y):
            _save(np.concatenate([img, result], axis=1) if side_by_side else result, dst, quality)
            summary.written += 1
            summary.outputs.append((src, dst))
        bar.update(len(batch))

    batch: list[tuple[Path, Path, np.ndarray]] = []
    for src, dst in zip(files, targets):
        try:
            img = open_rgb(src.read_bytes(), src.name)
        except (BadImage, OSError) as e:
            if single:
                raise UserError(f"--input={src}: {e}") from None
            tqdm.write(f"warning: {src}: skipped, {e}", file=sys.stderr)
            summary.skipped.append(str(src))
            bar.update(1)
            continue
        if image_size:  # vanhuyz's square mode: the output is image_size × image_size
            img = img.resize((image_size, image_size), Image.BICUBIC)
        arr = np.asarray(img)
        if batch and (len(batch) >= batch_size or batch[0][2].shape != arr.shape):
            flush(batch)
            batch = []
        batch.append((src, dst, arr))
    if batch:
        flush(batch)
    bar.close()
    if write_html:
        _gallery(folder, summary)
    return summary


def _gallery(folder: Path, summary: Summary) -> None:
    """index.html with input | output rows, like the official code's results page; opens from disk."""
    inputs = folder / "inputs"
    inputs.mkdir(exist_ok=True)
    rows = []
    for src, dst in summary.outputs:
        copy = inputs / (src.stem + ".png")  # browsers cannot show every input format (TIFF)
        if src.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"):
            copy = inputs / src.name
            shutil.copyfile(src, copy)
        else:
            Image.open(src).convert("RGB").save(copy)
        rows.append(f"<tr><td>{html.escape(src.name)}</td><td><img src='inputs/{html.escape(copy.name)}'></td>"
                    f"<td><img src='{html.escape(dst.name)}'></td></tr>")
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>cyclegan_tf results</title>"
            "<style>img{max-width:384px}td{padding:4px;vertical-align:top;font-family:sans-serif}</style></head>"
            f"<body><h1>Results ({len(rows)} images)</h1><table><tr><th>file</th><th>input</th><th>output</th></tr>"
            + "".join(rows) + "</table></body></html>\n")
    write_text(folder / "index.html", page)


def timed_run(**kwargs) -> str:
    start = time.perf_counter()
    s = run(**kwargs)
    line = f"translated {s.written} images in {time.perf_counter() - start:.1f} s"
    if s.skipped:
        line += f"; skipped {len(s.skipped)} unreadable"
    return line + (f"; output: {s.outputs[0][1]}" if len(s.outputs) == 1 else f"; output folder: {kwargs['output']}")
