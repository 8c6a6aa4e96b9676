"""A browser page that translates images with exported models, offline: ONNX Runtime Web on the CPU (WASM).

  python -m cyclegan_tf.web pretrained [--web_runtime DIR]   # or export_graph.py --onnx --web
  python -m http.server -d pretrained 8000                   # then open http://127.0.0.1:8000/inference.html

`write_page` writes FOLDER/inference.html beside the models' FOLDER/<name>.onnx and copies the runtime
into FOLDER/ort/ (about 14 MB: the WASM binary, its loader and the API script, from the npm package
onnxruntime-web that package.json pins; `npm ci` in the repository fetches it). Serve the folder over HTTP,
as above: browsers refuse to load WebAssembly and JavaScript modules from file:// pages. Nothing comes from
the network but the folder itself, and the images never leave the browser.

On the page: choose a model (when the folder has several), pick or drop an image; it is drawn, scaled down
so that its long side is at most N px (N in a number field, default 512: the CPU time and memory grow with
the pixels), translated and shown beside the input, with the time taken or the error in one line.
`inference.html?image=URL&model=NAME[&max=N]` translates that image as the page loads (a link to share a
result); then `document.title` is "done" (or "error: ...") and `window.translation` holds
{width, height, rgba}. With `&report=URL` (same origin) the page POSTs the output as PNG (or the error as
text) to that URL: what the tests use.
"""
from __future__ import annotations

import argparse
import filecmp
import html
import json
import shutil
import sys
from pathlib import Path

from cyclegan_tf import atomic
from cyclegan_tf.errors import UserError, exit_status

# The plain WASM CPU backend of onnxruntime-web 1.30: the API (global `ort`), the loader it imports and
# the binary. The binary is built with threads but runs single-threaded (numThreads = 1) on a page
# without cross-origin isolation, which a simple static server does not give.
RUNTIME_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
PACKAGE_DIST = Path("node_modules") / "onnxruntime-web" / "dist"
PAGE = "inference.html"
DEFAULT_MAX_SIDE = 512


def find_runtime(explicit: str | Path | None = None) -> Path:
    """The onnxruntime-web dist folder: `explicit` (the dist folder or the package folder above it), else
    node_modules/onnxruntime-web/dist under the current folder or the repository."""
    if explicit is not None:
        candidates = [Path(explicit), Path(explicit) / "dist"]
    else:
        candidates = [Path.cwd() / PACKAGE_DIST, Path(__file__).resolve().parents[2] / PACKAGE_DIST]
    for folder in candidates:
        if all((folder / name).is_file() for name in RUNTIME_FILES):
            return folder
    if explicit is not None:
        raise UserError(f"--web_runtime={explicit}: not an onnxruntime-web dist folder (it needs "
                        f"{', '.join(RUNTIME_FILES)}); `npm ci` in the repository installs one in {PACKAGE_DIST}")
    raise UserError(f"the browser page needs ONNX Runtime Web and {PACKAGE_DIST} is missing: run `npm ci` in the "
                    f"repository ({Path(__file__).resolve().parents[2]}), or pass --web_runtime DIR")


def write_page(folder: str | Path, models: list[str], runtime: str | Path,
               channels: dict[str, tuple[int, int]] | None = None) -> Path:
    """Writes folder/inference.html for the models folder/<name>.onnx and copies the runtime into folder/ort/;
    returns the page. `channels`: each model's (input, output) channels, 1 (grey) or 3 (RGB; the default).
    Files appear whole; runtime files already there and identical are left alone."""
    folder, runtime = Path(folder), Path(runtime)
    if not models:
        raise UserError(f"{folder}: no model for the browser page (export with --onnx first)")
    missing = [f"{name}.onnx" for name in models if not (folder / f"{name}.onnx").is_file()]
    if missing:
        raise UserError(f"{folder}: {', '.join(missing)} not found (export with --onnx first)")
    ort = folder / "ort"
    try:
        ort.mkdir(parents=True, exist_ok=True)
        atomic.remove_stale(*(ort / name for name in RUNTIME_FILES), folder / PAGE)
        for name in RUNTIME_FILES:
            source, target = runtime / name, ort / name
            if not source.is_file():
                raise UserError(f"{runtime}: {name} is missing; run `npm ci` in the repository")
            if target.is_file() and filecmp.cmp(source, target, shallow=False):
                continue
            with atomic.atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)
        atomic.write_text(folder / PAGE, page(models, channels=channels))
    except OSError as e:
        raise UserError(f"{e.filename or folder}: {e.strerror}") from None
    return folder / PAGE


def page(models: list[str], max_side: int = DEFAULT_MAX_SIDE, channels: dict[str, tuple[int, int]] | None = None
         ) -> str:
    """The page's HTML: one file, its script and style inline; the runtime is loaded from ort/."""
    shapes = json.dumps({m: list((channels or {}).get(m, (3, 3))) for m in models}).replace("</", "<\\/")
    if len(models) > 1:
        options = "".join(f'<option value="{html.escape(m)}">{html.escape(m)}</option>' for m in models)
        chooser = f'<label>Model <select id="model">{options}</select></label>'
    else:
        chooser = f'<span>Model <b>{html.escape(models[0])}</b></span>'
    listed = json.dumps(models).replace("</", "<\\/")
    return (_TEMPLATE.replace("{{CHOOSER}}", chooser).replace("{{MODELS}}", listed)
            .replace("{{CHANNELS}}", shapes).replace("{{MAX_SIDE}}", str(max_side)))


_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cyclegan_tf in the browser</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; background: #fff; }
  .controls { display: flex; flex-wrap: wrap; gap: 1.2em; align-items: center; margin: 1em 0; }
  input[type=number] { width: 5em; }
  #status { min-height: 1.4em; margin: .6em 0; }
  #status.error { color: #b00020; }
  .images { display: flex; flex-wrap: wrap; gap: 1.5em; }
  figure { margin: 0; }
  figcaption { color: #555; font-size: .9em; margin-bottom: .3em; }
  canvas { max-width: 45vw; border: 1px solid #ccc; image-rendering: auto; background: #f4f4f4; }
  body.dragging { outline: 3px dashed #1f77b4; outline-offset: -8px; }
  .note { color: #555; font-size: .9em; }
</style>
</head>
<body>
<h1>Image-to-image translation</h1>
<p class="note">Runs here, in the browser, with ONNX Runtime Web on the CPU: the image is not sent anywhere.
Pick an image or drop it on the page. Images larger than the limit below are scaled down so that their
long side has at most that many pixels before they are translated.</p>
<div class="controls">
  {{CHOOSER}}
  <label>Image <input type="file" id="file" accept="image/*"></label>
  <label>Long side at most <input type="number" id="max" min="16" max="4096" step="16" value="{{MAX_SIDE}}"> px</label>
  <a id="save" download="translated.png" hidden>Save the output</a>
</div>
<p id="status">Choose an image.</p>
<div class="images">
  <figure><figcaption>Input</figcaption><canvas id="input" width="256" height="256"></canvas></figure>
  <figure><figcaption>Output</figcaption><canvas id="output" width="256" height="256"></canvas></figure>
</div>
<script src="ort/ort.wasm.min.js"></script>
<script>
"use strict";
const MODELS = {{MODELS}};
const CHANNELS = {{CHANNELS}};  // per model: [input, output] channels, 1 (grey) or 3 (RGB)
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const status = $("status"), maxSide = $("max"), save = $("save");
const sessions = new Map();  // model name -> Promise of its InferenceSession
let current = null;  // the image shown, translated again when the model or the limit changes
let queue = Promise.resolve();  // one translation at a time

function say(text, error = false) {
  status.textContent = text;
  status.className = error ? "error" : "";
}

function modelName() {
  return $("model") ? $("model").value : MODELS[0];
}

function session(name) {
  if (!sessions.has(name)) {
    const file = encodeURI(name) + ".onnx";
    const created = ort.InferenceSession.create(file, { executionProviders: ["wasm"] });
    created.catch(() => sessions.delete(name));  // a failed load is tried again next time
    sessions.set(name, created);
  }
  return sessions.get(name);
}

function loadImage(src) {
  const img = new Image();
  img.src = src;
  return img.decode().then(() => img, () => { throw new Error("cannot decode the image " + src); });
}

async function translate(img, name) {
  const limit = Math.max(1, Number(maxSide.value) || {{MAX_SIDE}});
  const iw = img.naturalWidth, ih = img.naturalHeight;
  const scale = Math.min(1, limit / Math.max(iw, ih));
  const w = Math.max(1, Math.round(iw * scale)), h = Math.max(1, Math.round(ih * scale));
  const input = $("input"), output = $("output");
  input.width = output.width = w;
  input.height = output.height = h;
  const ctx = input.getContext("2d", { willReadFrequently: true });
  ctx.fillStyle = "#fff";  // transparent pixels become white, as when the image files are read in Python
  ctx.fillRect(0, 0, w, h);
  ctx.drawImage(img, 0, 0, w, h);
  const rgba = ctx.getImageData(0, 0, w, h).data;
  const [cin, cout] = CHANNELS[name] || [3, 3];
  const x = new Float32Array(w * h * cin);  // NHWC [1, h, w, cin] in [0, 255]
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += cin) {
    if (cin === 1) {  // grey as PIL's convert("L") makes it, as build_data.py and inference.py do
      x[j] = (rgba[i] * 19595 + rgba[i + 1] * 38470 + rgba[i + 2] * 7471 + 0x8000) >> 16;
    } else {
      x[j] = rgba[i]; x[j + 1] = rgba[i + 1]; x[j + 2] = rgba[i + 2];
    }
  }
  say(`Loading ${name}…`);
  const t0 = performance.now();
  const s = await session(name);
  const t1 = performance.now();
  say(`Translating ${w}×${h} px with ${name}…`);
  const result = await s.run({ [s.inputNames[0]]: new ort.Tensor("float32", x, [1, h, w, cin]) });
  const y = result[s.outputNames[0]].data;
  const t2 = performance.now();
  const out = new Uint8ClampedArray(w * h * 4);  // rounds and clamps
  for (let i = 0, j = 0; i < out.length; i += 4, j += cout) {
    out[i] = y[j]; out[i + 1] = y[j + (cout > 1)]; out[i + 2] = y[j + 2 * (cout > 1)]; out[i + 3] = 255;
  }
  output.getContext("2d").putImageData(new ImageData(out, w, h), 0, 0);
  window.translation = { width: w, height: h, rgba: out };
  save.href = output.toDataURL("image/png");
  save.hidden = false;
  const scaled = scale < 1 ? ` (scaled down from ${iw}×${ih})` : "";
  const loaded = t1 - t0 > 50 ? `; runtime and model loaded in ${((t1 - t0) / 1000).toFixed(2)} s` : "";
  say(`${name}: ${w}×${h} px${scaled} translated in ${((t2 - t1) / 1000).toFixed(2)} s${loaded}.`);
}

function run(img) {  // translates after the translation under way; errors are shown and passed on
  current = img;
  const job = queue.then(() => translate(img, modelName()));
  queue = job.catch(() => {});
  return job.catch((e) => {
    say("Error: " + (e && e.message ? e.message : e), true);
    throw e;
  });
}

async function openFile(file) {
  if (!file) return;
  const url = URL.createObjectURL(file);
  try { run(await loadImage(url)).catch(() => {}); }
  catch (e) { say("Error: " + file.name + " is not an image this browser can read", true); }
  finally { URL.revokeObjectURL(url); }
}

ort.env.wasm.wasmPaths = new URL("ort/", location.href).href;
ort.env.wasm.numThreads = 1;  // no SharedArrayBuffer without cross-origin isolation
$("file").addEventListener("change", (e) => openFile(e.target.files[0]));
maxSide.addEventListener("change", () => current && run(current).catch(() => {}));
if ($("model")) $("model").addEventListener("change", () => current && run(current).catch(() => {}));
document.addEventListener("dragover", (e) => { e.preventDefault(); document.body.classList.add("dragging"); });
document.addEventListener("dragleave", () => document.body.classList.remove("dragging"));
document.addEventListener("drop", (e) => {
  e.preventDefault();
  document.body.classList.remove("dragging");
  openFile(e.dataTransfer.files[0]);
});

async function report(body) {  // only to this page's own server
  const target = params.get("report") && new URL(params.get("report"), location.href);
  if (target && target.origin === location.origin) await fetch(target, { method: "POST", body });
}

async function fromQuery() {
  const model = params.get("model");
  if (model !== null) {
    if (!MODELS.includes(model)) throw new Error(`no model ${model} here (${MODELS.join(", ")})`);
    if ($("model")) $("model").value = model;
  }
  if (params.get("max")) maxSide.value = params.get("max");
  await run(await loadImage(params.get("image")));
  await report(await new Promise((done) => $("output").toBlob(done, "image/png")));
  document.title = "done";
}

if (params.get("image")) {
  fromQuery().catch(async (e) => {
    const message = e && e.message ? e.message : String(e);
    say("Error: " + message, true);
    document.title = "error: " + message;
    await report(new Blob(["error: " + message], { type: "text/plain" }));
  });
}
</script>
</body>
</html>
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cyclegan_tf.web", description=__doc__.split("\n\n")[0])
    p.add_argument("folder", help="the folder of the exports' <name>.onnx files (e.g. pretrained)")
    p.add_argument("--models", help="comma-separated names of <name>.onnx files (default: every .onnx in FOLDER)")
    p.add_argument("--web_runtime", help="the onnxruntime-web dist folder (default node_modules/onnxruntime-web/dist)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def run() -> None:
        folder = Path(args.folder)
        if args.models:
            models = [m.strip() for m in args.models.split(",") if m.strip()]
        else:
            models = sorted(p.relative_to(folder).as_posix()[:-5] for p in folder.rglob("*.onnx")
                            if "ort" not in p.relative_to(folder).parts and not p.name.startswith("."))
        out = write_page(folder, models, find_runtime(args.web_runtime))
        print(f"wrote {out} ({', '.join(models)}): serve it with `python -m http.server -d {folder} 8000` "
              f"and open http://127.0.0.1:8000/{PAGE}")

    return exit_status(run)


if __name__ == "__main__":
    sys.exit(main())
