"""The ``cptr ui`` page: a Gradio app that is a client of a running CPTR Triton server.

::

    from cptr.ui import serve_ui
    serve_ui("127.0.0.1:8001", "grpc", port=7860)              # blocks until Ctrl-C / SIGTERM

    from cptr.ui import build_app
    demo = build_app("127.0.0.1:8000", protocol="http")        # a gradio.Blocks; launch it yourself
    demo.launch(**launch_options())

The page holds no model: it asks the server for everything (:class:`~cptr.ui.backend.UIBackend`),
so it shows exactly what production serves, and any number of pages (browser tabs or ``cptr ui``
processes) can share one server. It works with no internet: Gradio's analytics and version check
are off (``GRADIO_ANALYTICS_ENABLED=False``), the theme's fonts are Gradio's bundled ones (no
Google Fonts), there are no share links, no server-side rendering, no MCP server and no PWA.
"""

from __future__ import annotations

import contextlib
import html
import importlib.util
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cptr import contracts as C
from cptr.client.video import DEFAULT_SMOOTHING
from cptr.contracts import DEFAULT_HOST, connect_host
from cptr.serving.server import TritonServer, check_ports_free, exposure_warning, free_port
from cptr.ui.backend import MAX_FACES, MAX_VIDEO_SECONDS, Catalog, Outcome, UIBackend

# Before gradio is imported anywhere: no telemetry, no version check against the internet.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

TITLE = "CPTR: cartoon portraits"
NO_PROMPT = "(none)"
CSS = """
.cptr-msg { padding: 0.5em 0.75em; border-radius: 6px; margin: 0.25em 0; }
.cptr-error { background: #fdecea; color: #8a1c12; border: 1px solid #f5c2bd; }
.cptr-ok { background: #eaf6ec; color: #1d5e2a; border: 1px solid #bfe3c6; }
.cptr-info { background: #eef2f8; color: #233a5e; border: 1px solid #cdd8ea; }
.cptr-pixels img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }
"""


def _msg(kind: str, text: str, extra: str = "") -> str:
    body = html.escape(text)
    if extra:
        body += f"<br><small>{html.escape(extra)}</small>"
    return f'<div class="cptr-msg cptr-{kind}">{body}</div>'


def _pass_photo_through(photo: Any) -> None:
    """Make a gr.Image input hand the uploaded file to the handler untouched (its path), so the
    server, not the page, decodes it: the page never re-encodes a photo, and a file that is not an
    image reaches the server and gets its answer ("not an image") instead of a Gradio error.

    Set on the instance: a gr.Image subclass would make Gradio write a .pyi stub next to this module.
    """
    from gradio import image_utils

    def preprocess(payload: Any) -> str | None:
        if payload is None:
            return None
        if getattr(payload, "url", None) and str(payload.url).startswith("data:"):  # e.g. a webcam snapshot
            return image_utils.decode_base64_to_file(payload.url, photo.GRADIO_CACHE, "png")
        return str(payload.path) if payload.path else None

    photo.preprocess = preprocess


def build_app(
    client_url: str | None = None,
    protocol: str = "grpc",
    *,
    backend: UIBackend | None = None,
    concurrency: int = 4,
    timeout_s: float = 60.0,
) -> Any:
    """The page as a ``gradio.Blocks``; ``demo.cptr_backend`` is its :class:`UIBackend` (close it after the page)."""
    import gradio as gr

    be = backend or UIBackend(client_url, protocol, timeout_s=timeout_s)
    with_video = importlib.util.find_spec("av") is not None  # the Video tab needs PyAV (the [video] extra)

    def server_line(cat: Catalog, error: str | None) -> str:
        if error:
            return _msg("error", error)
        if not cat.styles:
            return _msg(
                "error",
                f"The server at {be.address} serves no CPTR style. Export one with: cptr-export --style demo --out triton_repo, then restart cptr serve.",
            )
        edits = sum(len(p) for p in cat.prompts.values())
        what = f"{len(cat.styles)} style{'s' if len(cat.styles) != 1 else ''} ({', '.join(cat.styles)})"
        if edits:
            what += f", {edits} text edit{'s' if edits != 1 else ''}"
        return _msg("ok", f"Connected to {be.address}: serving {what}.")

    def prompt_choices(cat_prompts: dict[str, list[str]], style: str | None) -> list[str]:
        return [NO_PROMPT, *cat_prompts.get(style or "", [])]

    def refresh(photo_style: str | None, face_style: str | None) -> tuple[Any, ...]:
        cat, error = be.catalog()
        prompts = {s: list(p) for s, p in cat.prompts.items()}
        p_style = photo_style if photo_style in cat.photo_styles else (cat.photo_styles[0] if cat.photo_styles else None)
        f_style = face_style if face_style in cat.styles else (cat.styles[0] if cat.styles else None)
        return (
            server_line(cat, error),
            prompts,
            gr.update(choices=cat.photo_styles, value=p_style),
            gr.update(choices=prompt_choices(prompts, p_style), value=NO_PROMPT),
            gr.update(choices=list(cat.styles), value=f_style),
            mix_slider(f_style),
            gr.update(choices=cat.photo_styles, value=p_style) if with_video else None,
        )

    def mix_slider(style: str | None) -> Any:
        n = be.mix_layers(style) if style else None
        if not n or n < 2:
            return gr.update()
        return gr.update(
            maximum=n - 1, info=f"0 = no mixing; 1 to {n - 1}: W+ layers from this one on come from the mix seed (lower = more of it)."
        )

    def on_photo_style(cat_prompts: dict[str, list[str]], style: str | None) -> Any:
        return gr.update(choices=prompt_choices(cat_prompts, style), value=NO_PROMPT)

    def cartoonize(photo: str | None, style: str | None, prompt: str | None, paste_back: bool, largest: bool) -> tuple[Any, ...]:
        edit = None if prompt in (None, "", NO_PROMPT) else prompt
        res: Outcome = be.cartoonize(photo, style or "", edit, bool(paste_back), bool(largest))
        files = res.files
        faces = [k for k in files if k == "cartoon" or k.startswith("face_")]
        downloads = [str(files[k]) for k in (*faces, "pasted") if k in files]
        if res.ok:
            what = f"Cartoon of style '{style}'" + (f" with the text edit '{edit}'" if edit else "")
            if len(faces) > 1:
                what = f"{len(faces)} faces, cartoonized in style '{style}'" + (f" with the text edit '{edit}'" if edit else "")
            status = _msg("ok", what + (", pasted back into the photo." if paste_back else "."), res.latency_text())
        else:
            status = _msg("error", res.error or "", res.latency_text())
        return (
            status,
            str(files["aligned"]) if "aligned" in files else None,
            str(files["cartoon"]) if "cartoon" in files else None,
            gr.update(value=[(str(files[k]), f"face {i + 1}") for i, k in enumerate(faces)] or None, visible=len(faces) > 1),
            gr.update(value=str(files["pasted"]) if "pasted" in files else None, visible=bool(paste_back)),
            downloads or None,
        )

    def cartoonize_video(video: str | None, style: str | None, prompt: str | None, smoothing: float) -> tuple[Any, ...]:
        edit = None if prompt in (None, "", NO_PROMPT) else prompt
        res = be.cartoonize_video(video, style or "", edit, float(smoothing or 0.0))
        if not res.ok:
            return _msg("error", res.error or "", res.latency_text()), None
        return _msg("ok", f"Video in style '{style}': " + "; ".join(res.notes) + ".", res.latency_text()), str(res.files["video"])

    def generate(seeds: str, style: str | None, mix_seed: float | None, mix_layer: float | None) -> tuple[Any, ...]:
        res = be.generate(seeds or "", style or "", int(mix_seed or 0), int(mix_layer or 0))
        if not res.ok:
            return _msg("error", res.error or "", res.latency_text()), None
        faces = [(str(path), role.replace("face_", "seed ")) for role, path in res.files.items()]
        mixed = f", mixed with seed {int(mix_seed or 0)} from W+ layer {int(mix_layer)} on" if int(mix_layer or 0) > 0 else ""
        return _msg("ok", f"{len(faces)} random face{'s' if len(faces) != 1 else ''} of style '{style}'{mixed}.", res.latency_text()), faces

    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 3600)) as demo:  # uploads kept an hour at most
        gr.Markdown(
            f"## {TITLE}\nA client of the CPTR Triton server at **{html.escape(be.address)}**: the page holds no model, "
            "every picture comes from the server, as production serves it."
        )
        with gr.Row():
            server_status = gr.HTML(_msg("info", f"Asking {be.address} what it serves…"), elem_id="server-status")
            refresh_btn = gr.Button("Refresh", size="sm", scale=0, elem_id="refresh")
        prompts_state = gr.State({})

        with gr.Tab("Cartoonize", elem_id="tab-cartoonize"):
            with gr.Row():
                with gr.Column(scale=1):
                    photo = gr.Image(
                        label="Photo (upload, or take one with the webcam where the browser allows)",
                        type="filepath", sources=["upload", "webcam", "clipboard"], buttons=["fullscreen"], elem_id="photo", height=320,
                    )  # fmt: skip
                    _pass_photo_through(photo)
                with gr.Column(scale=1):
                    photo_style = gr.Dropdown(label="Style", choices=[], elem_id="photo-style")
                    prompt = gr.Dropdown(label="Text edit", choices=[NO_PROMPT], value=NO_PROMPT, elem_id="prompt",
                                         info="Edits the server was exported with (cptr-export --mapper PROMPT=...).")  # fmt: skip
                    paste_back = gr.Checkbox(label="Paste the cartoons back into the photo", value=False, elem_id="paste-back")
                    largest = gr.Checkbox(
                        label="Largest face only", value=False, elem_id="largest",
                        info=f"Otherwise every face above {C.MIN_FACE_SIZE:.0f} px (at most {C.MAX_FACES_PER_PHOTO}).",
                    )  # fmt: skip
                    go = gr.Button("Cartoonize", variant="primary", elem_id="cartoonize")
            cartoon_status = gr.HTML("", elem_id="cartoon-status")
            with gr.Row():
                shown = {"type": "filepath", "format": "png", "interactive": False, "height": 300, "buttons": ["download", "fullscreen"]}
                aligned = gr.Image(
                    label="Aligned crop (the server's face alignment)", elem_id="aligned", elem_classes="cptr-pixels", **shown
                )
                cartoon = gr.Image(label="Cartoon", elem_id="cartoon", elem_classes="cptr-pixels", **shown)
                pasted = gr.Image(label="Pasted back into the photo", visible=False, elem_id="pasted", **shown)
            face_cartoons = gr.Gallery(
                label="Every face, largest first", columns=8, object_fit="contain", visible=False,
                buttons=["download", "fullscreen"], elem_id="face-cartoons", elem_classes="cptr-pixels",
            )  # fmt: skip
            downloads = gr.File(
                label="Download (PNG, as the server sent it)", file_count="multiple", interactive=False, elem_id="downloads"
            )

        with gr.Tab("Random faces", elem_id="tab-faces"):
            with gr.Row():
                face_style = gr.Dropdown(label="Style", choices=[], elem_id="face-style")
                seeds = gr.Textbox(
                    label="Seeds", value="0-7", info=f"Numbers and ranges, e.g. 0-7,42 (at most {MAX_FACES}).", elem_id="seeds"
                )
                mix_seed = gr.Number(label="Mix seed", value=42, precision=0, minimum=0, elem_id="mix-seed")
                mix_layer = gr.Slider(label="Mix layer", minimum=0, maximum=16, step=1, value=0,
                                      info="0 = no mixing.", elem_id="mix-layer")  # fmt: skip
            gen = gr.Button("Generate", variant="primary", elem_id="generate")
            faces_status = gr.HTML("", elem_id="faces-status")
            faces = gr.Gallery(
                label="Random faces",
                columns=8,
                object_fit="contain",
                buttons=["download", "fullscreen"],
                elem_id="faces",
                elem_classes="cptr-pixels",
            )

        video_style = gr.State(None)  # the Video tab's own style, when the tab is there
        if with_video:
            with gr.Tab("Video", elem_id="tab-video"):
                with gr.Row():
                    with gr.Column(scale=1):
                        video = gr.Video(label=f"Video (up to {MAX_VIDEO_SECONDS} s)", sources=["upload"], elem_id="video", height=320)
                    with gr.Column(scale=1):
                        video_style = gr.Dropdown(label="Style", choices=[], elem_id="video-style")
                        smoothing = gr.Slider(
                            label="Smoothing", minimum=0, maximum=4, step=0.25, value=DEFAULT_SMOOTHING, elem_id="smoothing",
                            info="Steadies the faces' landmarks and latents over time, so the cartoon does not flicker. 0 = off.",
                        )  # fmt: skip
                        go_video = gr.Button("Cartoonize video", variant="primary", elem_id="cartoonize-video")
                video_status = gr.HTML("", elem_id="video-status")
                video_out = gr.Video(label="Cartoon video", interactive=False, elem_id="video-out", height=320)

        loaded = [server_status, prompts_state, photo_style, prompt, face_style, mix_layer, video_style]
        demo.load(refresh, [photo_style, face_style], loaded, queue=False)
        refresh_btn.click(refresh, [photo_style, face_style], loaded, queue=False)
        photo_style.change(on_photo_style, [prompts_state, photo_style], prompt, queue=False)
        face_style.change(mix_slider, face_style, mix_layer, queue=False)
        go.click(
            cartoonize,
            [photo, photo_style, prompt, paste_back, largest],
            [cartoon_status, aligned, cartoon, face_cartoons, pasted, downloads],
            concurrency_limit=concurrency,
        )
        gen.click(generate, [seeds, face_style, mix_seed, mix_layer], [faces_status, faces], concurrency_limit=concurrency)
        if with_video:
            no_prompt = gr.State(NO_PROMPT)
            go_video.click(
                cartoonize_video, [video, video_style, no_prompt, smoothing], [video_status, video_out], concurrency_limit=concurrency
            )

    demo.cptr_backend = be
    return demo


def launch_options(host: str = DEFAULT_HOST, port: int = 7860, *, open_browser: bool = False) -> dict[str, Any]:
    """``Blocks.launch`` arguments for an offline page: no share link, no SSR (Node), no MCP, no PWA, no monitoring."""
    import gradio as gr

    return {
        "server_name": host,
        "server_port": port,
        "share": False,
        "inbrowser": open_browser,
        "prevent_thread_lock": True,
        "quiet": True,
        "show_error": False,  # failures are shown by the page in plain words; never a traceback
        "ssr_mode": False,
        "mcp_server": False,
        "pwa": False,
        "enable_monitoring": False,
        "max_file_size": 2 * C.MAX_IMAGE_BYTES,  # the server refuses photos over MAX_IMAGE_BYTES itself, in plain words
        "theme": gr.themes.Default(),  # fonts bundled with Gradio (LocalFont), not Google Fonts
        "css": CSS,
        "footer_links": ["settings"],
    }


def serve_ui(
    client_url: str | None = None,
    protocol: str = "grpc",
    host: str = DEFAULT_HOST,
    port: int = 7860,
    *,
    serve: str | os.PathLike | None = None,
    concurrency: int = 4,
    timeout_s: float = 60.0,
    open_browser: bool = False,
    on_ready: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run the page until SIGINT/SIGTERM (or ``stop`` is set); return 0.

    ``serve`` = a model repository: start the bundled Triton server on free loopback ports first
    and stop it (gracefully) after the page. Otherwise the page is a client of ``client_url``,
    which may start, stop or restart independently: the page says so when it is unreachable.
    """

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, lambda *_: stop.set())
    port = port or free_port(connect_host(host))
    check_ports_free(host, {"--port": port})  # before a Triton server is started for nothing
    server = None
    demo = None
    with contextlib.ExitStack() as cleanup:
        if serve is not None:
            if client_url:
                raise ValueError("give either --url (a running server) or --serve REPO (start one), not both")
            print(f"cptr ui: starting tritonserver on {Path(serve).resolve()}", flush=True)
            server = cleanup.enter_context(TritonServer(serve))  # stopped gracefully after the page
            client_url = server.grpc_url if protocol == "grpc" else server.http_url
        demo = build_app(client_url, protocol, concurrency=concurrency, timeout_s=timeout_s)
        cleanup.callback(demo.cptr_backend.close)
        demo.queue(default_concurrency_limit=concurrency)
        demo.launch(**launch_options(host, port, open_browser=open_browser))
        cleanup.callback(demo.close)
        shown = connect_host(host)
        page = f"http://{shown}:{port}"
        served = f"; serving {Path(serve).resolve()} (Triton pid {server.pid}, log {server.log_path})" if server else ""
        print(f"cptr ui: ready on {page} (client of {demo.cptr_backend.address}{served}); Ctrl-C stops", flush=True)
        if warning := exposure_warning(host, "the page", "it and the server behind it"):
            print(warning, file=sys.stderr, flush=True)
        if on_ready is not None:
            on_ready(page)
        while not stop.wait(0.5):
            if server is not None and not server.is_alive():
                print("cptr ui: the embedded tritonserver exited; stopping", file=sys.stderr, flush=True)
                return 1
        print("cptr ui: stopping", flush=True)
        return 0
