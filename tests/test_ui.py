"""`cptr ui` in a real browser, with no mocks.

The real Triton server serves the demo style (exported by the real cptr-export); the real
`python -m cptr.ui` process (what `cptr ui` runs) is a client of it on a free loopback port; a real
headless Chromium (Debian's `chromium`, driven by Playwright) uploads photos and clicks.
Every picture the page shows is compared with what CartoonClient gets from the same server.

Set CPTR_UI_SCREENSHOT=docs/ui_screenshot.png to save the page after the cartoonize test.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cptr.client import CartoonClient
from cptr.data.clips import group_photo
from cptr.serving.server import TritonServer, free_port
from cptr.ui.backend import UIBackend, catalog
from tests.conftest import index_of

pytest.importorskip("pytriton")
pytest.importorskip("tritonclient.grpc")
if importlib.util.find_spec("gradio") is None:  # the page runs in its own process: no need to import Gradio here
    pytest.skip('cptr ui needs Gradio: pip install -e ".[ui-test]" (or make setup-ui)', allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason='the browser test drives Chromium with Playwright: pip install -e ".[ui-test]" (or make setup-ui)'
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

STYLE = "demo"
BROWSER = os.environ.get("CPTR_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
WAIT_MS = 120_000  # generous: the suite shares 2 CPU cores with other jobs


# --------------------------------------------------------------------------- server, page, browser


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cptr.export.cli import ExportOptions, run_export

    work = tmp_path_factory.mktemp("ui")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CPTR_HOME", str(work / "home"))
        run_export(ExportOptions(out=work / "triton_repo", style=STYLE, quiet=True))
    return work / "triton_repo"


@pytest.fixture(scope="module")
def index(repo: Path) -> dict:
    return index_of(repo)


@pytest.fixture(scope="module")
def server(repo: Path):
    with TritonServer(repo) as s:
        yield s


@pytest.fixture(scope="module")
def client(server: TritonServer):
    with CartoonClient(server.grpc_url, "grpc", timeout_s=120) as c:
        yield c


def _start_ui(args: list[str], log: Path, timeout: float = 180.0) -> tuple[subprocess.Popen, str]:
    """`python -m cptr.ui ARGS` as a real process; returns it and its page URL once it answers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cptr.ui", *args, "--port", str(port)],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"cptr ui exited with {proc.returncode}:\n{log.read_text()}")
        if "ready on" in log.read_text():
            with urllib.request.urlopen(url, timeout=10) as r:
                assert r.status == 200
            return proc, url
        time.sleep(0.5)
    proc.kill()
    raise AssertionError(f"cptr ui did not start in {timeout:.0f} s:\n{log.read_text()}")


def _stop_ui(proc: subprocess.Popen, log: Path) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"cptr ui did not stop on SIGINT:\n{log.read_text()}") from None


@pytest.fixture(scope="module")
def ui(server: TritonServer, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("ui_log") / "cptr-ui.log"
    proc, url = _start_ui(["--url", server.grpc_url, "--protocol", "grpc"], log)
    yield url
    code = _stop_ui(proc, log)
    text = log.read_text()
    assert code == 0, text
    assert "Traceback" not in text, text


@pytest.fixture(scope="module")
def browser():
    if not Path(BROWSER).exists():
        pytest.skip(f"no Chromium at {BROWSER}: install Debian's package with: apt-get install -y chromium")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=BROWSER, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def page(browser, ui: str):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(WAIT_MS)
    pg.goto(ui)
    pg.wait_for_selector("#server-status .cptr-ok")
    yield pg
    context.close()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    out = {}
    for name in ("astronaut", "coffee"):
        out[name] = folder / f"{name}.png"
        Image.fromarray(getattr(data, name)()).save(out[name])
    out["group"] = folder / "group.png"
    Image.fromarray(group_photo()).save(out["group"])
    out["not_an_image"] = folder / "broken.png"
    out["not_an_image"].write_bytes(b"these bytes are not a picture")
    return out


def _upload(page, photo: Path) -> None:
    with page.expect_response(lambda r: "/gradio_api/upload?" in r.url):
        page.locator("#photo input[type=file]").set_input_files(str(photo))
    page.wait_for_selector("#photo img")  # the upload finished and the page holds it


def _status(page, element: str) -> str:
    """The page's message under ``element`` once the request is answered (never Gradio's own toast)."""
    page.wait_for_selector(f"{element} .cptr-msg")
    return page.inner_text(f"{element} .cptr-msg")


def _shown(page, selector: str) -> np.ndarray:
    """The picture an <img> shows, fetched from the page's own server, as uint8 RGB."""
    loc = page.locator(selector).first
    loc.wait_for()
    page.wait_for_function("e => e.complete && e.naturalWidth > 0", arg=loc.element_handle())
    with urllib.request.urlopen(loc.get_attribute("src"), timeout=30) as r:
        return np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"))


# --------------------------------------------------------------------------- browser tests


def test_page_lists_what_the_server_serves(page, index: dict) -> None:
    assert f"({STYLE})" in page.inner_text("#server-status")
    page.locator("#prompt input").click()
    options = [t.replace("✓", "").strip() for t in page.get_by_role("option").all_inner_texts()]  # ✓ marks the selected one
    assert options == ["(none)", *index["prompts"]]  # the text edits are the served cartoonize_<style>_<prompt> models


def test_cartoonize_astronaut(page, photos: dict[str, Path], index: dict, client: CartoonClient) -> None:
    size = index["size"]
    _upload(page, photos["astronaut"])
    page.locator("#paste-back input").check()
    page.click("#cartoonize")
    status = _status(page, "#cartoon-status")
    assert "Cartoon of style 'demo'" in status and "pasted back" in status, status
    assert "Latency measured by the page's client: align" in status and "cartoonize" in status, status

    cartoon = _shown(page, "#cartoon img")
    assert cartoon.shape == (size, size, 3)
    # exactly what production serves: the same pixels as CartoonClient's own requests
    np.testing.assert_array_equal(cartoon, client.cartoonize(photos["astronaut"], STYLE, output="array"))
    pasted = _shown(page, "#pasted img")
    np.testing.assert_array_equal(pasted, client.cartoonize(photos["astronaut"], STYLE, paste_back=True, output="array"))
    assert pasted.shape == (512, 512, 3)  # the astronaut photo's own size
    assert _shown(page, "#aligned img").shape[:2] == (256, 256)  # the server's aligned crop
    downloads = page.inner_text("#downloads")
    assert "cartoon_demo" in downloads and "pasted_demo" in downloads, downloads

    shot = os.environ.get("CPTR_UI_SCREENSHOT")
    if shot:
        page.wait_for_timeout(500)
        page.screenshot(path=shot, full_page=True)


def test_cartoonize_group_photo(page, photos: dict[str, Path], index: dict, client: CartoonClient) -> None:
    """A photo of four people: the page says so, shows every face's cartoon (largest first) and the photo with all
    four pasted back, the very pixels of the client's own request; 'Largest face only' pastes back one."""
    _upload(page, photos["group"])
    page.locator("#paste-back input").check()
    page.click("#cartoonize")
    status = _status(page, "#cartoon-status")
    assert "4 faces, cartoonized in style 'demo'" in status and "pasted back" in status, status
    page.wait_for_function("() => document.querySelectorAll('#face-cartoons img').length == 4")
    want = client.cartoonize_faces(photos["group"], STYLE, output="array")
    np.testing.assert_array_equal(_shown(page, "#pasted img"), want.composite)
    np.testing.assert_array_equal(_shown(page, "#face-cartoons img"), want.faces[0])  # the largest face first
    assert page.get_by_role("tab", name="Video").count() == 1  # PyAV is installed: the page offers video

    page.locator("#largest input").check()
    page.click("#cartoonize")
    page.wait_for_function("() => document.querySelector('#cartoon-status').innerText.startsWith('Cartoon of style')")
    one = client.cartoonize(photos["group"], STYLE, paste_back=True, largest=True, output="array")
    page.wait_for_function(
        "() => !document.querySelector('#face-cartoons') || document.querySelector('#face-cartoons').offsetParent === null"
    )
    np.testing.assert_array_equal(_shown(page, "#pasted img"), one)


def test_coffee_has_no_face(page, photos: dict[str, Path]) -> None:
    _upload(page, photos["coffee"])
    page.click("#cartoonize")
    status = _status(page, "#cartoon-status")
    assert status.startswith("No face found in this photo"), status
    assert "Traceback" not in page.content()
    assert page.locator("#cartoon img").count() == 0


def test_not_an_image(page, photos: dict[str, Path]) -> None:
    _upload(page, photos["not_an_image"])
    page.click("#cartoonize")
    status = _status(page, "#cartoon-status")
    assert status.startswith("This file is not an image the server can read"), status


def test_random_faces_grid(page, browser, ui: str, index: dict, client: CartoonClient) -> None:
    size = index["size"]
    page.get_by_role("tab", name="Random faces").click()
    page.fill("#seeds input, #seeds textarea", "0-5")
    layer = page.locator("#mix-layer input[type=number]")
    layer.fill("3")
    layer.press("Enter")
    page.fill("#mix-seed input", "42")
    page.click("#generate")
    status = _status(page, "#faces-status")
    assert "6 random faces of style 'demo', mixed with seed 42 from W+ layer 3 on" in status, status
    assert "Latency measured by the page's client: generate 6 faces" in status, status
    assert page.locator("#faces img").count() == 6
    first = _shown(page, "#faces img")
    assert first.shape == (size, size, 3)
    np.testing.assert_array_equal(first, client.generate([0], STYLE, mix=(42, 3), output="array")[0])

    # a second page on the same server at the same time: pages share the server
    other = _open_page(browser, ui)
    try:
        _generate(other, "7")
        page.fill("#seeds input, #seeds textarea", "8-9")
        page.click("#generate")
        assert "1 random face of style 'demo'" in _status(other, "#faces-status")
        page.wait_for_function("() => document.querySelectorAll('#faces img').length === 2")
        assert "2 random faces" in page.inner_text("#faces-status .cptr-msg")
    finally:
        other.context.close()


def _open_page(browser, url: str, seen: list[str] | None = None):
    """A page on a browser context of its own, loaded and connected to its server; ``seen`` collects every URL it
    asks for. Returns the page (close it with ``page.context.close()``)."""
    page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    if seen is not None:
        page.on("request", lambda r: seen.append(r.url))
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    page.wait_for_selector("#server-status .cptr-ok")
    return page


def _generate(page, seeds: str) -> None:
    page.get_by_role("tab", name="Random faces").click()
    page.fill("#seeds input, #seeds textarea", seeds)
    page.click("#generate")


def test_page_works_offline(browser, ui: str) -> None:
    """Fonts, scripts and styles all come from the page's own server: nothing from the internet. The page is
    opened and used here, on a browser context of its own, so the test does not depend on the others."""
    seen: list[str] = []
    pg = _open_page(browser, ui, seen)
    try:
        _generate(pg, "2")
        pg.wait_for_function("() => document.querySelectorAll('#faces img').length === 1")
    finally:
        pg.context.close()
    assert seen, "the page made no requests"
    outside = sorted({u for u in seen if not u.startswith((ui + "/", "data:", "blob:"))})
    assert outside == [], outside


# --------------------------------------------------------------------------- backend without a browser


def test_catalog_reads_styles_and_prompts_from_model_names() -> None:
    cat = catalog(
        [
            "generate_a",
            "cartoonize_a",
            "cartoonize_a_smile",
            "generate_a_b",
            "cartoonize_a_b",
            "cartoonize_a_b_old",
            "generate_c",
            "preprocess",
            "preprocess_128",
        ]
    )
    assert cat.styles == ("a", "a_b", "c")
    assert cat.prompts == {"a": ("smile",), "a_b": ("old",)}
    assert cat.photo_styles == ["a", "a_b"]  # c has no encoder: random faces only
    assert cat.preprocess == "preprocess"


def test_backend_over_http(server: TritonServer, photos: dict[str, Path], index: dict, tmp_path: Path) -> None:
    be = UIBackend(server.http_url, "http", out_dir=tmp_path)
    try:
        res = be.cartoonize(photos["astronaut"], STYLE)
        assert res.ok, res.error
        assert Image.open(res.files["cartoon"]).size == (index["size"], index["size"])
        assert set(res.latency_ms) == {"align", "cartoonize"}
        bad = be.cartoonize(b"\x89PNG\r\n\x1a\n broken", STYLE)
        assert bad.error is not None and bad.error.startswith("This file is not an image"), bad.error
        faces = be.generate("1,2", STYLE)
        assert faces.ok and len(faces.files) == 2, faces.error
        too_far = be.generate("1", STYLE, 5, index["n_latent"])
        assert too_far.error is not None and "mix layer" in too_far.error, too_far.error
    finally:
        be.close()


def test_backend_video(server: TritonServer, tmp_path: Path) -> None:
    """The Video tab's action: a short clip through the server comes back as a video of as many frames, the face
    cartoonized in each, with a note of what was done; a picture uploaded as a video is refused in plain words."""
    from cptr.client.video import read_frames, write_video
    from cptr.data import clips

    frames = clips.camera_move(clips.astronaut(), 8, (320, 240), center=clips.ASTRONAUT_CENTER)
    clip = write_video(tmp_path / "clip.mp4", frames, 24)
    be = UIBackend(server.grpc_url, "grpc", out_dir=tmp_path / "ui")
    try:
        res = be.cartoonize_video(clip, STYLE, smoothing=1.0)
        assert res.ok, res.error
        got = list(read_frames(res.files["video"]))
        assert len(got) == 8 and "8 frames, 8 with faces" in res.notes[0], res.notes
        face = (slice(60, 180), slice(100, 220))  # the astronaut's face: cartoonized in every frame
        assert min(np.abs(a[face].astype(int) - b[face].astype(int)).mean() for a, b in zip(read_frames(clip), got)) > 8
        picture = tmp_path / "still.png"
        Image.fromarray(frames[0]).save(picture)
        bad = be.cartoonize_video(picture, STYLE)
        assert bad.error is not None and bad.error.startswith("This video cannot be cartoonized here") and "is a picture" in bad.error
    finally:
        be.close()


def test_server_down_is_said_in_plain_words(tmp_path: Path) -> None:
    be = UIBackend(f"127.0.0.1:{free_port()}", "grpc", out_dir=tmp_path, timeout_s=5)
    try:
        cat, error = be.catalog()
        assert cat.styles == () and error is not None and "is not reachable" in error and "cptr serve" in error
        res = be.generate("1", STYLE)
        assert res.error is not None and "is not reachable" in res.error
    finally:
        be.close()


def test_ui_starts_its_own_server_and_stops_it(repo: Path, tmp_path: Path) -> None:
    """`cptr ui --serve REPO`: the page's own Triton server, stopped (not left behind) on Ctrl-C."""
    log = tmp_path / "cptr-ui.log"
    proc, _ = _start_ui(["--serve", str(repo)], log)
    text = log.read_text()
    triton_pid = int(text.split("Triton pid ")[1].split(",")[0])
    grpc = text.split("client of grpc://")[1].split(";")[0].split(")")[0]
    with CartoonClient(grpc, "grpc", timeout_s=60) as c:
        assert c.styles() == [STYLE]
    assert _stop_ui(proc, log) == 0, log.read_text()
    with pytest.raises(ProcessLookupError):
        os.kill(triton_pid, 0)


# --------------------------------------------------------------------------- the server goes away (its own server and page)


def test_page_does_not_block_server_shutdown(browser, repo: Path, tmp_path: Path) -> None:
    """With pages open and connected (the browser's over gRPC, one over HTTP), the server still stops
    gracefully and without waiting on them; the page then says it is down, and works again once the
    server is back. Its own server and page: the module's stay up, whatever order the tests run in."""
    with TritonServer(repo) as server:
        proc, url = _start_ui(["--url", server.grpc_url, "--protocol", "grpc"], tmp_path / "ui.log")
        page = _open_page(browser, url)
        try:
            _server_goes_away(page, server, tmp_path)
        finally:
            page.context.close()
            assert _stop_ui(proc, tmp_path / "ui.log") == 0


def _server_goes_away(page, server: TritonServer, tmp_path: Path) -> None:
    _generate(page, "3")
    assert "1 random face" in _status(page, "#faces-status")
    over_http = UIBackend(server.http_url, "http", out_dir=tmp_path)
    assert over_http.generate("3", STYLE).ok  # and stays open: Triton waits for open HTTP connections
    assert server.stop() == 0, server.log_tail(20)
    over_http.close()
    # Triton's own account, not a clock: while stopping it logs, once a second, what it still waits for. The pages'
    # open connections must never be among it. (A wall-clock bound here failed at 40 s on the 2 shared cores.)
    countdown = [line for line in server.log_tail(2000).splitlines() if "in-flight non-inference requests" in line]
    assert countdown and all("and 0 in-flight non-inference requests" in line for line in countdown), countdown
    page.fill("#seeds input, #seeds textarea", "4")
    page.click("#generate")
    page.wait_for_function("() => document.querySelector('#faces-status .cptr-msg').innerText.includes('not reachable')")
    text = page.inner_text("#faces-status .cptr-msg")
    assert "The CPTR server at" in text and "cptr serve" in text, text
    assert "Traceback" not in page.content()

    # the server comes back on the same address: the same page works again, without a reload
    ports = {"http_port": server.http_port, "grpc_port": server.grpc_port, "metrics_port": server.metrics_port}
    with TritonServer(server.model_repository, **ports):
        page.fill("#seeds input, #seeds textarea", "5")
        page.click("#generate")
        page.wait_for_function("() => document.querySelector('#faces-status .cptr-msg').innerText.includes('1 random face')")
        assert page.locator("#faces img").count() == 1
