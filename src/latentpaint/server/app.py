"""The web app: a painting page, `/api/inpaint` and `/api/latent-damage` (multipart in, PNG out).

Everything a request sends is untrusted: bodies are counted while they arrive, image sizes are read
from the header before any pixel is decoded, and every decoding failure becomes a 4xx with one sentence
in `{"detail": ...}`. One request at a time decodes and runs the model, and the model sees at most
`max_inference_pixels` at once (crops or a resized copy above it), so memory stays bounded; running out
of it anyway is a 503. Only loopback Host headers (DNS rebinding) and no foreign Origin (other web pages)
are answered. Nothing a request names is used as a path: the page and its static files are held in memory.
The API docs at `/docs` work offline: Swagger UI comes from the `fastapi-offline` package, not a CDN.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import threading
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any, BinaryIO

import cv2
import numpy as np
import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image
from starlette.datastructures import UploadFile

from latentpaint.data.images import check_same_size, read_image, read_mask
from latentpaint.devices import free_cached_memory, is_device_failure
from latentpaint.errors import LatentpaintError
from latentpaint.inference.hd import long_side_within, resize_long_side
from latentpaint.inference.inpainter import Inpainter
from latentpaint.server.hosts import host_name, request_refusal
from latentpaint.server.methods import METHOD_PARAMETER, inpaint_work, method_choices
from latentpaint.server.uploads import (
    BodyTooLarge,
    ClientDisconnect,
    client_gone,
    human_bytes,
    limited_receive,
)

# The most pixels the network sees at once; larger uploads go through crops or a resized copy. Measured
# peak memory per megapixel of input on CPU (benchmarks in README "Reliability"): about 0.2 GB for the
# default `thesis` generator and 1 GB for big-lama, so 4 MP stays within about 1 GB and 4 GB.
MAX_INFERENCE_PIXELS = 4_000_000

STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
# the page loads nothing from anywhere else; result images are blob: URLs
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; connect-src 'self' blob:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
IMAGE_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
# Swagger UI 5 (it renders the OpenAPI 3.1 FastAPI writes; 4.x refuses to), as shipped by fastapi-offline
DOCS_FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
DOCS_ASSETS = "/docs/assets"
UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image", "mask"],
                    "properties": {
                        "image": {
                            "type": "string",
                            "format": "binary",
                            "description": "PNG, JPEG, WebP, ...",
                        },
                        "mask": {
                            "type": "string",
                            "format": "binary",
                            "description": "same size as the image; any value above 0 is filled",
                        },
                    },
                }
            }
        },
    },
    "responses": {
        "200": {"content": {"image/png": {}}, "description": "a PNG of the image's size"},
        "413": {"description": "upload above the byte or pixel limit"},
        "415": {"description": "not multipart, or a file that is not an image"},
        "422": {"description": "missing field, damaged image, or mask and image sizes differ"},
    },
}


def read_pair(image_file: BinaryIO, mask_file: BinaryIO, max_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """Uploaded files -> uint8 RGB image (H, W, 3) and uint8 mask (H, W), 255 where the mask reader fills.

    The readers are the files' own (data.images), so an upload is read exactly as the same bytes on disk.
    """
    image = read_image(image_file, "the image", max_pixels)
    mask, _ = read_mask(mask_file, "the mask", max_pixels)  # no warning to show
    check_same_size(image, mask)
    return image, np.where(mask > 0, 255, 0).astype(np.uint8)


def png_response(array: np.ndarray) -> Response:
    """uint8 (H, W, 3) -> an image/png response (fast compression: the page holds large results in memory)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=3)
    return Response(buffer.getvalue(), media_type="image/png", headers=IMAGE_HEADERS)


def load_static() -> dict[str, tuple[bytes, str]]:
    """The page's files, read once from the package: name -> (content, media type)."""
    folder = resources.files("latentpaint.server") / "static"
    files = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in STATIC_TYPES:
            files[entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])
    return files


def docs_page(openapi_url: str, title: str) -> tuple[bytes, dict[str, str]]:
    """The Swagger UI page loading only this server's files, and its headers.

    Its one inline script (the SwaggerUIBundle call) is allowed by its hash, so the policy still forbids
    every other inline script; "Try it out" fetches from this server and shows PNG results as blob: URLs.
    """
    html = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{title} - API docs",
        swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        oauth2_redirect_url=None,
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from validator.swagger.io
    ).body
    inline = re.findall(rb"<script>(.*?)</script>", html, flags=re.DOTALL)
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'" for script in inline
    )
    headers = {
        "Content-Security-Policy": (
            f"default-src 'self'; script-src 'self' {hashes}; img-src 'self' blob: data:; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }
    return html, headers


def load_docs_assets() -> dict[str, tuple[bytes, str]]:
    """Swagger UI's script, stylesheet and icon, read once from `fastapi_offline`: name -> (content, type)."""
    try:
        folder = resources.files("fastapi_offline") / "static"
    except ModuleNotFoundError:
        raise LatentpaintError(
            "the API docs need the 'serve' extra (fastapi-offline is missing): pip install 'latentpaint[serve]'"
        ) from None
    return {name: ((folder / name).read_bytes(), media_type) for name, media_type in DOCS_FILES.items()}


def model_info(inpainter: Inpainter) -> dict[str, Any]:
    """What /api/health says about the model: its config, size and device."""
    network = inpainter.network
    return {
        "config": dict(getattr(network, "config", {})),
        "parameters": sum(p.numel() for p in network.parameters()),
        "device": str(inpainter.device),
    }


def is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError, CUDA OOM, torch's CPU allocator and OpenCV failing to allocate all mean the same."""
    if isinstance(exc, MemoryError | torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError | cv2.error) and any(
        words in text
        for words in ("out of memory", "not enough memory", "insufficient memory", "can't allocate")
    )


def device_refusal(exc: Exception, broken: dict[str, str]) -> Exception:
    """What a failed model call answers: out of memory is a 503 after freeing the CUDA cache (the next
    request may fit); a sticky device error (illegal address, device-side assert) is a 503 that marks the
    server unhealthy (`broken`), since every later call would fail the same way; anything else re-raises."""
    if is_out_of_memory(exc):
        free_cached_memory()
        return HTTPException(503, "the server ran out of memory on this image; try a smaller one")
    if is_device_failure(exc):
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        broken["reason"] = f"the GPU failed and the server must be restarted ({detail})"
        return HTTPException(503, broken["reason"])
    return exc


def create_app(
    inpainter: Inpainter,
    max_upload_bytes: int = 20 * 2**20,
    max_pixels: int = 40_000_000,
    max_inference_pixels: int = MAX_INFERENCE_PIXELS,
    allowed_hosts: Iterable[str] = (),
) -> FastAPI:
    """The FastAPI app serving `inpainter`: the page at `/`, the API under `/api`, docs at `/docs`.

    Only requests for a loopback Host (plus `allowed_hosts`; "*" allows any) and without a foreign
    Origin are answered. Uploads up to `max_pixels` are accepted; the network sees at most
    `max_inference_pixels` at once (`inpaint_within`: crops or a resized copy above it).
    """
    app = FastAPI(
        title="latentpaint",
        description="Image inpainting in the latent space of a frozen autoencoder.",
        version="0.1.0",
        docs_url=None,  # FastAPI's own /docs loads Swagger UI from a CDN; ours is served below
        redoc_url=None,
    )
    app.add_exception_handler(ClientDisconnect, client_gone)  # a client hanging up mid-upload: no traceback
    static = load_static()
    docs_html, docs_headers = docs_page(app.openapi_url, app.title)
    docs_assets = load_docs_assets()
    model_lock = threading.Lock()  # one request at a time decodes and runs the model
    broken: dict[str, str] = {}  # "reason" once the device failed for good (a sticky CUDA error)
    info = model_info(inpainter)
    hosts = frozenset(host_name(h) if h != "*" else h for h in allowed_hosts)

    @app.middleware("http")
    async def same_origin_only(request: Request, call_next):
        refusal = request_refusal(request.headers, hosts)
        if refusal is not None:
            return JSONResponse({"detail": refusal}, status_code=403)
        return await call_next(request)

    async def receive_pair(
        request: Request, work: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, str]]
    ) -> Response:
        """Reads the `image` and `mask` uploads within the limits, then runs `work` under the model lock."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "multipart/form-data":
            raise HTTPException(
                415, "send the image and mask as multipart/form-data fields 'image' and 'mask'"
            )
        limit_text = f"the upload is larger than the server's limit of {human_bytes(max_upload_bytes)}"
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > max_upload_bytes:  # refuse before reading anything
            raise HTTPException(413, limit_text)
        # a second Request over the same scope whose body stream counts bytes: chunked or lying clients
        # are cut off at the limit instead of filling memory or disk
        limited = Request(request.scope, limited_receive(request.receive, max_upload_bytes))
        try:
            form = await limited.form(max_files=2, max_fields=8)
        except BodyTooLarge:
            raise HTTPException(413, limit_text) from None
        try:
            files = {}
            for name in ("image", "mask"):
                part = form.get(name)
                if part is None:
                    raise HTTPException(422, f"the request has no '{name}' file field")
                if not isinstance(part, UploadFile):
                    raise HTTPException(422, f"the '{name}' field must be a file upload, not text")
                if not part.size:
                    raise HTTPException(422, f"the {name} file is empty")
                files[name] = part.file

            def run() -> Response:
                with model_lock:
                    if broken:
                        raise HTTPException(503, broken["reason"])
                    try:
                        image, mask = read_pair(files["image"], files["mask"], max_pixels)
                        result, strategy = work(image, mask)
                        response = png_response(result)
                    except LatentpaintError as exc:  # unreadable uploads carry their own status
                        raise HTTPException(getattr(exc, "status", 422), str(exc)) from None
                    except Exception as exc:
                        raise device_refusal(exc, broken) from None
                    response.headers["X-HD-Strategy"] = strategy
                    return response

            return await run_in_threadpool(run)
        finally:
            await form.close()

    def predict(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return inpainter.predict_array(image, (mask > 0).astype(np.float32))

    def damage(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, str]:
        """The damage map; above the inference budget computed on a resized copy and scaled back."""
        height, width = mask.shape
        if height * width <= max_inference_pixels:
            return inpainter.latent_damage(image, mask), "original"
        limit = long_side_within(height, width, max_inference_pixels)
        small = inpainter.latent_damage(
            resize_long_side(image, limit, cv2.INTER_AREA),
            (resize_long_side(mask.astype(np.float32), limit, cv2.INTER_AREA) > 0).astype(np.uint8),
        )
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC), "resize"

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(static["index.html"][0], headers=PAGE_HEADERS)

    @app.get("/static/{name}", include_in_schema=False)
    def static_file(name: str) -> Response:
        if name not in static:  # a lookup in memory: the name never becomes a path
            raise HTTPException(404, "no such file")
        content, media_type = static[name]
        return Response(content, media_type=media_type, headers=PAGE_HEADERS)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(docs_html, headers=docs_headers)

    @app.get(DOCS_ASSETS + "/{name}", include_in_schema=False)
    def docs_asset(name: str) -> Response:
        if name not in docs_assets:
            raise HTTPException(404, "no such file")
        content, media_type = docs_assets[name]
        return Response(content, media_type=media_type, headers=docs_headers)

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        """Liveness, the model served and the upload limits; 503 once the device has failed for good."""
        if broken:
            return JSONResponse({"status": "unhealthy", "detail": broken["reason"], "model": info}, 503)
        return {
            "status": "ok",
            "model": info,
            "limits": {
                "max_upload_bytes": max_upload_bytes,
                "max_pixels": max_pixels,
                "max_inference_pixels": max_inference_pixels,
            },
            "methods": method_choices(),
        }

    @app.post("/api/inpaint", response_class=Response, openapi_extra={**UPLOAD_SCHEMA, **METHOD_PARAMETER})
    async def inpaint(request: Request) -> Response:
        """Fills the image where the mask is above 0 (`?method=`: the model or a classical fill); a PNG (RGB)."""
        return await receive_pair(request, inpaint_work(request, predict, max_inference_pixels))

    @app.post("/api/latent-damage", response_class=Response, openapi_extra=UPLOAD_SCHEMA)
    async def latent_damage(request: Request) -> Response:
        """The thesis' latent damage map D(E(image) - E(masked image)) as a PNG of the image's size."""
        return await receive_pair(request, damage)

    return app
