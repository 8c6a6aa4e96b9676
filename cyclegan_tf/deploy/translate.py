"""Translating image files with an exported SavedModel: one file, a folder, or a glob.

Only TensorFlow's saved_model API is used on the model, so any export (ours, or copied elsewhere)
works; vanhuyz's frozen graphs (`.pb`) run through deploy/frozen.py behind the same interface. Inputs are
read as the export's input pixels (data/pixels.py; every format build_data.py takes, EXIF rotation applied)
and outputs written in the output's units and type (a 16-bit PNG gives a 16-bit PNG, a float TIFF a float
TIFF). Images of the same size are batched, and each output is written to a temporary name and renamed
(leftovers of a killed run are removed first). In folder mode an image the model cannot translate (an older
export refuses images under its generator's minimum size) is skipped with a warning.
"""
from __future__ import annotations

import glob
import html
import os
import shutil
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from PIL import Image
from tqdm import tqdm

from cyclegan_tf.atomic import atomic_path, remove_stale, write_text
from cyclegan_tf.data import imagefiles
from cyclegan_tf.data.imagefiles import IMAGE_EXTENSIONS, BadImage, find_images, open_rgb
from cyclegan_tf.data.pixels import Kind, of_export
from cyclegan_tf.deploy import tiling
from cyclegan_tf.errors import UserError, disk_error, one_line

OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF",
                  ".npy": "NPY"}
_EXPORT_PARTS = ("variables", "fingerprint.pb", "assets")


def shown(path: str | os.PathLike) -> str:
    """A path as text that prints anywhere: bytes of a name that are not UTF-8 become U+FFFD."""
    return os.fsencode(path).decode("utf-8", "replace")


@dataclass
class Export:
    """The signatures of a loaded export that inference calls (savedmodel.py lists them)."""
    loaded: object  # kept referenced: the signatures need its variables
    translate: Callable
    statistics: Callable | None  # None in exports written before tiling, or in square mode
    translate_with_statistics: Callable | None
    nearest: bool  # label maps are resized nearest-neighbour
    kinds: tuple[Kind, Kind]  # the pixels that go in and come out
    frozen_size: int = 0  # S of vanhuyz's frozen graph (a .pb, or a SavedModel wrapping one): no shared statistics


def load_model(model: str, export_dir: str = "pretrained") -> Export:
    """A SavedModel folder, or a name under `export_dir`; returns its signatures. A damaged export (files
    missing, truncated or garbled) is a one-line UserError naming it. A `.pb` file (as given, or under
    `export_dir`) is vanhuyz's frozen graph (deploy/frozen.py), unless the SavedModel export_graph.py writes
    beside it (the same name without .pb) is there: then that SavedModel, which takes any size."""
    pb = next((p for p in (Path(model), Path(export_dir) / model)
               if p.suffix.lower() == ".pb" and p.name != "saved_model.pb" and p.is_file()), None)
    if pb is not None and not (pb.with_suffix("") / "saved_model.pb").is_file():
        from cyclegan_tf.deploy import frozen

        return frozen.as_export(pb, f"--model={model}" + ("" if pb == Path(model) else f" ({pb})"))
    candidates = [Path(model), Path(export_dir) / model, Path(export_dir) / Path(model).stem]
    if Path(model).name == "saved_model.pb":  # the file of a SavedModel: its folder
        candidates.insert(0, Path(model).parent)
    if pb is not None:
        candidates.insert(0, pb.with_suffix(""))
    path = next((p for p in candidates if (p / "saved_model.pb").is_file()), None)
    if path is None:
        partial = next((p for p in candidates if p.is_dir() and any((p / e).exists() for e in _EXPORT_PARTS)), None)
        if partial is not None:
            raise UserError(f"--model={model}: damaged export: {partial} has no saved_model.pb; export it again")
        if Path(model).suffix.lower() == ".pb":
            raise UserError(f"--model={model}: no such frozen graph, nor a SavedModel of that name (here or under "
                            f"{export_dir}/)")
        raise UserError(f"--model={model}: no SavedModel there (nor under {export_dir}/); run export_graph.py")
    problem = _damage(path)
    if problem is None:
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as e:  # noqa: BLE001 - a damaged file surfaces as OSError, ValueError, IndexError, OpError…
            problem = one_line(getattr(e, "message", None) or str(e))
    if problem is not None:
        raise UserError(f"--model={model}: damaged export: {path}: {problem}; export it again")
    if "translate" not in loaded.signatures:
        raise UserError(f"--model={model}: {path} is a SavedModel without the 'translate' signature of "
                        "export_graph.py")
    # exports written before `input_resize` existed take images
    nearest = getattr(loaded, "input_resize", None) is not None and loaded.input_resize.numpy() == b"nearest"
    frozen_size = int(loaded.image_size.numpy()) if getattr(loaded, "frozen_graph", None) is not None else 0
    return Export(loaded, loaded.signatures["translate"], loaded.signatures.get("statistics"),
                  loaded.signatures.get("translate_with_statistics"), nearest, of_export(loaded), frozen_size)


def _damage(path: Path) -> str | None:
    """What is visibly wrong with an export's files, before TensorFlow reads them."""
    if (path / "saved_model.pb").stat().st_size == 0:
        return "saved_model.pb is empty"
    if not (path / "variables").is_dir():
        return "variables/ is missing"
    if not (path / "variables" / "variables.index").is_file():
        return "variables/variables.index is missing"
    return None


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
        if fmt in ("TIFF", "NPY") or img.dtype != np.uint8 or img.shape[-1] not in (1, 3):
            imagefiles.write_array(img, tmp, path.suffix)
            return
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(
            tmp, format=fmt, **({"quality": quality} if fmt != "PNG" else {}))


@dataclass(frozen=True)
class Settings:
    """How inference.py translates: its flags other than the model, the inputs and the output."""
    batch_size: int = 1  # images (or tiles) per call
    image_size: int = 0  # vanhuyz's square mode: inputs resized to image_size × image_size
    fmt: str = ""  # output format of a folder (png, jpg, webp); "" keeps the input's where it can
    side_by_side: bool = False  # input | output in one image
    write_html: bool = False  # an index.html gallery beside the outputs
    quality: int = 95  # JPEG and WebP quality
    tile: int = 0  # images larger than tile × tile px go in overlapping tiles (deploy/tiling.py)
    overlap: int = 64
    norm_stats: str = "global"
    stats_size: int = 1024


def run(model: str, input_pattern: str, output: str, *, export_dir: str = "pretrained", **settings: Any) -> Summary:
    """Translates every input with the export `model` (a folder, or a name under `export_dir`); in
    single-file mode `output` is the file, else the output folder. `settings` are `Settings`' fields."""
    options = Settings(**settings)
    files, single = _inputs(input_pattern)
    targets, folder = _targets(files, single, output, options.fmt)
    tiling.check(options.tile, options.overlap, options.norm_stats, options.stats_size)
    exported = load_model(model, export_dir)
    if options.tile and options.norm_stats == "global" and exported.frozen_size:
        from cyclegan_tf.deploy.frozen import TILE_GLOBAL

        raise UserError(TILE_GLOBAL)
    targets, folder = _targets(files, single, output, options.fmt, exported.kinds[1])
    _check_pixels(exported, targets, options)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--output={output}: cannot create {folder} ({e.strerror})") from None
    job = _Job(exported, options, single, len(files))
    remove_stale(*targets, *([folder / "index.html"] if options.write_html else []))
    for batch in _batches(files, targets, job):
        job.translate(batch)
    job.bar.close()
    if options.write_html:
        _gallery(folder, job.summary)
    return job.summary


_Item = tuple[Path, Path, np.ndarray]  # (input, output, pixels)


def _check_pixels(exported: Export, targets: list[Path], options: Settings) -> None:
    """Outputs whose format cannot hold the export's output pixels, refused before anything is written."""
    k_in, k_out = exported.kinds
    for t in dict.fromkeys(t.suffix.lower() for t in targets):
        why = imagefiles.fits(t, k_out.channels, k_out.dtype)
        if why:
            raise UserError(f"--output: {why}")
    if options.side_by_side and (k_in.channels, k_in.dtype) != (k_out.channels, k_out.dtype):
        raise UserError(f"--side_by_side: the input ({k_in.describe()}) and output ({k_out.describe()}) differ in "
                        "channels or type and cannot share one image")
    if options.write_html and not all(k.dtype == "uint8" and k.channels in (1, 3) for k in (k_in, k_out)):
        raise UserError("--html: the gallery shows 8-bit grey and RGB pictures; this export translates "
                        f"{k_in.describe()} into {k_out.describe()}")


def read_input(data: bytes, name: str, kind: Kind) -> np.ndarray:
    """[H, W, C] of an input file as the export takes it: 8-bit pictures made grey or RGB as it needs (a
    16-bit picture scaled to 8 bits for an 8-bit export, as before); other images must be of its kind."""
    if kind.dtype == "uint8" and kind.channels in (1, 3):
        try:
            return imagefiles.load_pixels(data, name, kind.channels, kind.dtype)
        except BadImage:
            img = open_rgb(data, name)
            return np.asarray(img.convert("L"))[..., None] if kind.channels == 1 else np.asarray(img)
    return imagefiles.load_pixels(data, name, kind.channels, kind.dtype)


class _Job:
    """One run's export, settings, progress bar and summary, shared by the batches."""

    def __init__(self, exported: Export, options: Settings, single: bool, total: int) -> None:
        self.exported, self.options, self.single, self.summary = exported, options, single, Summary()
        self.bar = tqdm(total=total, unit="img", disable=not sys.stderr.isatty(), file=sys.stderr)

    def skip(self, src: Path, why: str) -> None:
        """One warning line; in single-file mode the run stops with it instead."""
        if self.single:
            raise UserError(f"--input={src}: {why}") from None
        tqdm.write(f"warning: {shown(src)}: skipped, {why}", file=sys.stderr)
        self.summary.skipped.append(str(src))
        self.bar.update(1)

    def translate(self, batch: list[_Item]) -> None:
        o = self.options
        try:
            y = _translate(self.exported, np.stack([b[2] for b in batch]), o.tile, o.overlap, o.batch_size,
                           o.norm_stats, o.stats_size)
        except UserError as e:
            for src, _, _ in batch:
                self.skip(src, str(e))
            return
        for (src, dst, img), result in zip(batch, y):
            _save(np.concatenate([img, result], axis=1) if o.side_by_side else result, dst, o.quality)
            self.summary.written += 1
            self.summary.outputs.append((src, dst))
        self.bar.update(len(batch))


def _batches(files: list[Path], targets: list[Path], job: _Job) -> Iterator[list[_Item]]:
    """The readable inputs in batches of equal size, at most batch_size each; an image larger than the tile
    alone. Unreadable files are skipped with a warning."""
    o, batch = job.options, []
    for src, dst in zip(files, targets):
        try:
            arr = read_input(src.read_bytes(), src.name, job.exported.kinds[0])
        except (BadImage, OSError) as e:
            job.skip(src, getattr(e, "strerror", None) or str(e))
            continue
        if o.image_size:  # vanhuyz's square mode: the output is image_size × image_size
            arr = _square(arr, o.image_size, job.exported.nearest)
        large = o.tile and max(arr.shape[:2]) > o.tile  # translated alone, in tiles
        if batch and (large or len(batch) >= o.batch_size or batch[0][2].shape != arr.shape):
            yield batch
            batch = []
        batch.append((src, dst, arr))
        if large:
            yield batch
            batch = []
    if batch:
        yield batch


def _square(arr: np.ndarray, size: int, nearest: bool) -> np.ndarray:
    if arr.dtype == np.uint8 and arr.shape[-1] in (1, 3):  # PIL, as ever: the outputs of 8-bit pictures stay put
        img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
        out = np.asarray(img.resize((size, size), Image.NEAREST if nearest else Image.BICUBIC))
        return out[..., None] if out.ndim == 2 else out
    return tf.image.resize(arr.astype(np.float32), [size, size], method="nearest" if nearest else "bicubic",
                           antialias=not nearest).numpy()


def _targets(files: list[Path], single: bool, output: str, fmt: str, kind: Kind | None = None
             ) -> tuple[list[Path], Path]:
    """(output file of each input, output folder), checked before anything is written. In folder mode an
    output keeps its input's format where that holds the output `kind`, else PNG, else TIFF."""
    out = Path(output)
    if single and not out.is_dir():
        if out.suffix.lower() not in OUTPUT_FORMATS:
            raise UserError(f"--output={output}: use .png, .jpg, .jpeg, .webp, .tif or .npy (the format follows it)")
        targets, folder = [out], out.parent
    else:
        folder = out
        ext = "." + fmt.lower().lstrip(".") if fmt else ""
        if ext and ext not in OUTPUT_FORMATS:
            raise UserError(f"--output_format={fmt}: choose png, jpg, webp, tif or npy")
        stems = [f.stem for f in files]
        # a.jpg and a.png in one folder must not overwrite each other's output
        names = [f"{f.stem}_{f.suffix[1:]}" if stems.count(f.stem) > 1 else f.stem for f in files]
        targets = [folder / (n + (ext or _default_ext(f.suffix.lower(), kind))) for n, f in zip(names, files)]
    clash = next((f for f, t in zip(files, targets) if t.resolve() == f.resolve()), None)
    if clash:
        raise UserError(f"--output={output}: would overwrite the input {clash}; choose another folder or format")
    return targets, folder


_PICTURE_FORMATS = (".png", ".jpg", ".jpeg", ".webp")


def _default_ext(ext: str, kind: Kind | None) -> str:
    """8-bit pictures as before (PNG unless the input was a format browsers show); other pixels in the input's
    format where it holds them."""
    if kind is None or (kind.dtype == "uint8" and kind.channels in (1, 3)):
        return ext if ext in _PICTURE_FORMATS else ".png"
    for candidate in (ext, ".png", ".tif"):
        if candidate in OUTPUT_FORMATS and imagefiles.fits(candidate, kind.channels, kind.dtype) is None:
            return candidate
    return ".tif"


def _translate(exported: Export, images: np.ndarray, tile: int = 0, overlap: int = 0, batch_size: int = 1,
               norm_stats: str = "global", stats_size: int = 1024) -> np.ndarray:
    """Translations of a batch of equal-sized images (one image larger than `tile`: in tiles) in the output's
    type; a UserError if the model refuses them."""
    try:
        if tile and max(images.shape[1:3]) > tile:
            return np.stack([tiling.translate_tiled(exported, img, tile, overlap, batch_size, norm_stats, stats_size)
                             for img in images])
        y = exported.translate(images=tf.constant(images.astype(np.float32)))["images"].numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.ResourceExhaustedError) as e:
        h, w = images.shape[1:3]
        raise UserError(f"the model cannot translate a {w}×{h} image ({one_line(e.message)[:120]}); "
                        "an export of this version takes any size") from None
    return exported.kinds[1].to_stored(y)


def _gallery(folder: Path, summary: Summary) -> None:
    """index.html with input | output rows, like the official code's results page; opens from disk."""
    inputs = folder / "inputs"
    try:
        inputs.mkdir(exist_ok=True)
    except OSError as e:
        if disk_error(e) is not None:
            raise
        raise UserError(f"--html: cannot create {inputs} ({e.strerror})") from None
    copies = [inputs / _browsable_name(src) for src, _ in summary.outputs]
    remove_stale(*copies)
    rows = []
    for (src, dst), copy in zip(summary.outputs, copies):
        _gallery_copy(src, copy)
        rows.append(f"<tr><td>{html.escape(shown(src.name))}</td><td><img src='inputs/{_href(copy.name)}'></td>"
                    f"<td><img src='{_href(dst.name)}'></td></tr>")
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>cyclegan_tf results</title>"
            "<style>img{max-width:384px}td{padding:4px;vertical-align:top;font-family:sans-serif}</style></head>"
            f"<body><h1>Results ({len(rows)} images)</h1><table><tr><th>file</th><th>input</th><th>output</th></tr>"
            + "".join(rows) + "</table></body></html>\n")
    write_text(folder / "index.html", page)


_BROWSABLE = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")


def _browsable_name(src: Path) -> str:
    return src.name if src.suffix.lower() in _BROWSABLE else src.stem + ".png"  # browsers cannot show TIFF


def _gallery_copy(src: Path, copy: Path) -> None:
    """The input as the gallery shows it: a copy, or a PNG of it."""
    with atomic_path(copy) as tmp:
        if src.suffix.lower() in _BROWSABLE:
            shutil.copyfile(src, tmp)
        else:
            Image.open(src).convert("RGB").save(tmp, format="PNG")


def _href(name: str) -> str:
    """A file name as a relative URL: its bytes percent-encoded, so names that are not UTF-8 still link."""
    return html.escape(urllib.parse.quote(os.fsencode(name)))


def timed_run(**kwargs) -> str:
    start = time.perf_counter()
    s = run(**kwargs)
    line = f"translated {s.written} images in {time.perf_counter() - start:.1f} s"
    if s.skipped:
        line += f"; skipped {len(s.skipped)} (see the warnings)"
    return shown(line + (f"; output: {s.outputs[0][1]}" if len(s.outputs) == 1
                         else f"; output folder: {kwargs['output']}"))
