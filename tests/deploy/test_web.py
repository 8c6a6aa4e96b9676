"""The browser page: a real export converted to ONNX, translated by ONNX Runtime Web in headless Chromium,
gives what the SavedModel gives; the page and its runtime come from the folder alone."""
from __future__ import annotations

import http.server
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from cyclegan_tf import networks
from cyclegan_tf.deploy import web
from cyclegan_tf.deploy.savedmodel import Translator, to_onnx
from cyclegan_tf.errors import UserError


def _browser() -> str | None:  # as tests/evaluation/test_report.py finds it
    return next((b for b in map(shutil.which, ("chromium", "chromium-browser")) if b), None)


def _runtime() -> Path:
    try:
        return web.find_runtime()
    except UserError as e:
        pytest.skip(f"no ONNX Runtime Web: {e}")


def _fake_runtime(folder: Path, content: str = "v1") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in web.RUNTIME_FILES:
        (folder / name).write_text(f"{name} {content}")
    return folder


def test_page_lists_the_models_and_needs_no_network():
    several = web.page(["horse2zebra", "sub/zebra2horse", "a<b"])
    assert '<select id="model">' in several
    assert '<option value="sub/zebra2horse">' in several and '<option value="a&lt;b">a&lt;b</option>' in several
    assert web.page(["x</script>"]).count("</script>") == 2  # the runtime's and the page's script: no more
    assert 'const MODELS = ["horse2zebra", "sub/zebra2horse", "a<b"];' in several
    one = web.page(["man2woman"])
    assert "<select" not in one and "<b>man2woman</b>" in one
    for text in (several, one):
        assert not re.search(r"https?://|//cdn|\bsrc=\"//", text)
        assert re.findall(r'src="([^"]+)"', text) == ["ort/ort.wasm.min.js"]
        assert 'value="512"' in text and "scaled down" in text
        assert "numThreads = 1" in text and 'new URL("ort/", location.href)' in text


def test_find_runtime_says_what_is_missing_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as e:
        web.find_runtime(tmp_path / "nowhere")
    assert "\n" not in str(e.value) and "--web_runtime=" in str(e.value) and "npm ci" in str(e.value)
    dist = _fake_runtime(tmp_path / "pkg" / "dist")
    assert web.find_runtime(dist) == dist
    assert web.find_runtime(tmp_path / "pkg") == dist  # the package folder is fine too
    if not (Path(web.__file__).resolve().parents[2] / web.PACKAGE_DIST).is_dir():
        with pytest.raises(UserError) as e:
            web.find_runtime()
        assert "\n" not in str(e.value) and "npm ci" in str(e.value) and "--web_runtime DIR" in str(e.value)


def test_write_page_copies_the_runtime_once(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    with pytest.raises(UserError, match="m.onnx not found"):
        web.write_page(site, ["m"], _fake_runtime(tmp_path / "dist"))
    (site / "m.onnx").write_bytes(b"onnx")
    page = web.write_page(site, ["m"], tmp_path / "dist")
    assert page == site / "inference.html" and "<b>m</b>" in page.read_text()
    assert sorted(p.name for p in (site / "ort").iterdir()) == sorted(web.RUNTIME_FILES)
    inodes = {p.name: p.stat().st_ino for p in (site / "ort").iterdir()}
    web.write_page(site, ["m"], tmp_path / "dist")
    assert {p.name: p.stat().st_ino for p in (site / "ort").iterdir()} == inodes  # identical: left alone
    web.write_page(site, ["m"], _fake_runtime(tmp_path / "dist", "v2"))
    assert (site / "ort" / web.RUNTIME_FILES[0]).read_text().endswith("v2")
    assert sorted(p.name for p in site.iterdir()) == ["inference.html", "m.onnx", "ort"]  # no temporary left


def _serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, list, threading.Event]:
    """Serves the folder on a free port of 127.0.0.1; a POST hands its (content type, body) to `results`."""
    results: list[tuple[str, bytes]] = []
    arrived = threading.Event()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args):
            super().__init__(*args, directory=str(folder))

        def do_POST(self):  # noqa: N802 - http.server's name
            results.append((self.headers.get("Content-Type", ""),
                            self.rfile.read(int(self.headers.get("Content-Length", 0)))))
            self.send_response(204)
            self.end_headers()
            arrived.set()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, results, arrived


def _export(folder: Path) -> Path:
    """An export (the package's Translator, as export_graph.py saves it) of CycleGAN's ResNet generator with
    one residual block instead of 6 or 9 (the same layers; tf2onnx converts it in a third of the time), ngf 4,
    and He-scaled random kernels: it maps images to varied colours, where a few training steps give a grey
    that a wrong computation could match too. No training: the file's budget is 30 s."""
    G = networks.generators._resnet_generator(1, 4, norm="instance", upsample="transpose", use_dropout=False,
                                              input_nc=3, output_nc=3, name="G")
    rng = np.random.default_rng(0)
    for w in G.weights:
        if len(w.shape) == 4:  # conv kernels [kh, kw, in, out]; transposed ones [kh, kw, out, in]
            fan_in = w.shape[0] * w.shape[1] * (w.shape[3] if "transpose" in w.path else w.shape[2])
            w.assign(rng.normal(0, np.sqrt(2 / fan_in), w.shape).astype(np.float32))
    module = Translator(G, networks.generator_multiple("resnet_6blocks"), 0, {}, 0, "XtoY")
    tf.saved_model.save(module, str(folder), signatures={"translate": module.translate})
    return folder


def test_browser_translation_matches_the_saved_model(tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("no chromium or chromium-browser on PATH (Debian/Ubuntu: apt-get install chromium)")
    runtime = _runtime()
    site = tmp_path / "site"
    site.mkdir()
    saved = _export(tmp_path / "x2y")
    to_onnx(saved, site / "x2y.onnx")
    web.write_page(site, ["x2y"], runtime)
    yy, xx = np.mgrid[0:24, 0:40]
    rgb = np.stack([xx * 6, yy * 10, 255 - (xx + yy) * 4], -1) + np.random.default_rng(0).integers(0, 30, (24, 40, 3))
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(site / "input.png")

    server, results, arrived = _serve(site)
    url = f"http://127.0.0.1:{server.server_address[1]}/inference.html?image=input.png&model=x2y&report=/result"
    command = [browser, "--headless=new", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
               f"--user-data-dir={tmp_path / 'profile'}", url]
    if os.geteuid() == 0:
        command.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    try:
        chromium = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
        try:
            posted = arrived.wait(60)
        finally:
            os.killpg(chromium.pid, signal.SIGKILL)  # the browser and its helpers: the group it leads
            chromium.wait()
    finally:
        server.shutdown()
        server.server_close()
    assert posted, "the page posted no result within 60 s"
    kind, body = results[0]
    assert kind == "image/png", body[:300].decode(errors="replace")
    got = np.asarray(Image.open(io.BytesIO(body)).convert("RGB")).astype(np.float32)
    model = tf.saved_model.load(str(saved))
    want = model.translate(tf.constant(rgb[None], tf.float32))["images"].numpy()[0]
    assert got.shape == want.shape == (24, 40, 3)
    assert want.std() > 20, "the export's output is too flat to tell a right translation from a wrong one"
    assert np.abs(got - want).mean() <= 2, f"mean |browser − SavedModel| = {np.abs(got - want).mean():.2f}"


def test_export_graph_web_without_a_runtime_is_one_line_before_anything_is_written(trained_run, tmp_path):
    from conftest import ROOT

    r = subprocess.run([sys.executable, str(ROOT / "export_graph.py"), f"--checkpoint_dir={trained_run}", "--web",
                        f"--web_runtime={tmp_path / 'nowhere'}"], capture_output=True, text=True, cwd=tmp_path,
                       timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: --web_runtime={tmp_path / 'nowhere'}: not an "
                                                        "onnxruntime-web dist folder")
    assert not (tmp_path / "pretrained").exists()
