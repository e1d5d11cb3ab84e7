"""The HTTP API: results, limits, and a 4xx (never a 500) for every kind of bad upload."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from latentpaint.inference.classical import CLASSICAL_METHODS, classical_inpaint  # noqa: E402
from latentpaint.inference.inpainter import Inpainter  # noqa: E402
from latentpaint.models.network import InpaintingNetwork  # noqa: E402
from latentpaint.server import create_app  # noqa: E402
from latentpaint.server.cli import is_loopback  # noqa: E402

H, W = 37, 53  # not multiples of 8: the server must crop the padding away
LOCAL = (
    "http://127.0.0.1:8080"  # the server answers loopback Host headers only (not TestClient's "testserver")
)


def png(image: Image.Image | np.ndarray, **save) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format=save.pop("format", "PNG"), **save)
    return buffer.getvalue()


def decode(content: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(content)) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def inpainter() -> Inpainter:
    torch.manual_seed(0)
    return Inpainter(InpaintingNetwork("thesis", "control"))


@pytest.fixture(scope="module")
def client(inpainter) -> TestClient:
    with TestClient(create_app(inpainter), raise_server_exceptions=False, base_url=LOCAL) as c:
        yield c


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(40, 216, size=(H, W, 3), dtype=np.uint8)  # away from 0/255: outputs clamp there


@pytest.fixture(scope="module")
def mask() -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    mask[10:25, 12:40] = 255
    return mask


def post(client, path="/api/inpaint", image=None, mask=None, **kwargs):
    files = {}
    if image is not None:
        files["image"] = ("image.png", image, "image/png")
    if mask is not None:
        files["mask"] = ("mask.png", mask, "image/png")
    return client.post(path, files=files, **kwargs)


def claim_size(png_bytes: bytes, width: int, height: int) -> bytes:
    """The PNG with its header (IHDR) rewritten to claim another size: a decompression bomb's shape."""
    start = 8 + 8  # signature, then the IHDR chunk's length and type
    ihdr = struct.pack(">II", width, height) + png_bytes[start + 8 : start + 13]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return png_bytes[:start] + ihdr + crc + png_bytes[start + 17 :]


def assert_error(response, status: int | tuple[int, ...]) -> None:
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, (response.status_code, response.text)
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail


def test_health(client, inpainter):
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["model"]["config"]["mask_mode"] == "control"
    assert body["model"]["parameters"] == sum(p.numel() for p in inpainter.network.parameters())
    assert body["limits"] == {
        "max_upload_bytes": 20 * 2**20,
        "max_pixels": 40_000_000,
        "max_inference_pixels": 4_000_000,
    }


def test_page_static_and_docs(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="canvas"' in page.text and "/static/app.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name, kind in [("app.js", "text/javascript"), ("style.css", "text/css")]:
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind)
    # names are looked up in memory, never joined to a path
    for name in ["../app.py", "..%2Fapp.py", "%2e%2e/__init__.py", "missing.js"]:
        assert client.get(f"/static/{name}").status_code == 404
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "multipart/form-data" in paths["/api/inpaint"]["post"]["requestBody"]["content"]


def test_docs_load_nothing_from_elsewhere(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "://" not in page.text  # no absolute URL anywhere
    # stylesheet, icon, script and the OpenAPI document: all paths on this server
    urls = re.findall(r'(?:src|href)="([^"]*)"', page.text) + re.findall(r"url: '([^']*)'", page.text)
    assert len(urls) == 4 and all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    kinds = {".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200 and len(response.content) > 100, url
        assert response.headers["content-type"].startswith(kinds[url[url.rindex(".") :]]), url
    # the policy allows this page's one inline script by its hash, and no other
    policy = page.headers["content-security-policy"]
    (inline,) = re.findall(r"<script>(.*?)</script>", page.text, flags=re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    assert f"script-src 'self' 'sha256-{digest}';" in policy and "unsafe-inline" not in policy
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    # only the three files are served, looked up by name: not the rest of the package's folder
    for name in ["redoc.standalone.js", "..%2F__init__.py", "missing.js"]:
        assert client.get(f"/docs/assets/{name}").status_code == 404
    assert client.get("/redoc").status_code == 404  # ReDoc would load from a CDN


def test_inpaint_changes_only_the_mask(client, image, mask):
    response = post(client, image=png(image), mask=png(mask))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    result = decode(response.content)
    assert result.shape == image.shape
    inside = mask > 0
    np.testing.assert_array_equal(result[~inside], image[~inside])
    assert (result[inside] != image[inside]).any(axis=1).mean() > 0.9


def test_inpaint_matches_python_api(client, inpainter, image, mask):
    response = post(client, image=png(image), mask=png(mask))
    np.testing.assert_array_equal(decode(response.content), inpainter(image, mask))


@pytest.mark.parametrize("method", list(CLASSICAL_METHODS))
def test_inpaint_with_a_classical_method(client, image, mask, method):
    response = post(client, f"/api/inpaint?method={method}", image=png(image), mask=png(mask))
    assert response.status_code == 200, response.text
    np.testing.assert_array_equal(decode(response.content), classical_inpaint(image, mask, method))


def test_method_choice_in_health_page_and_schema(client):
    methods = client.get("/api/health").json()["methods"]
    assert [m["name"] for m in methods] == ["model", *CLASSICAL_METHODS]
    assert all(m["unavailable"] is None and m["title"] for m in methods)
    assert [m["title"] for m in methods[1:]] == [m.title for m in CLASSICAL_METHODS.values()]
    assert 'id="method"' in client.get("/").text
    (parameter,) = client.get("/openapi.json").json()["paths"]["/api/inpaint"]["post"]["parameters"]
    assert parameter["name"] == "method" and parameter["schema"]["enum"] == ["model", *CLASSICAL_METHODS]


def test_unknown_or_missing_method_is_one_sentence(client, image, mask, monkeypatch):
    import cv2

    response = post(client, "/api/inpaint?method=criminisi", image=png(image), mask=png(mask))
    assert_error(response, 422)
    assert "criminisi" in response.json()["detail"] and "opencv-fsr" in response.json()["detail"]
    monkeypatch.delattr(cv2, "xphoto")
    response = post(client, "/api/inpaint?method=opencv-shiftmap", image=png(image), mask=png(mask))
    assert_error(response, 501)
    assert "opencv-contrib-python-headless" in response.json()["detail"]
    methods = {m["name"]: m["unavailable"] for m in client.get("/api/health").json()["methods"]}
    assert "opencv-contrib-python-headless" in methods["opencv-fsr"] and methods["patchmatch"] is None
    full = np.full((H, W), 255, np.uint8)  # nothing known to copy texture from
    assert_error(post(client, "/api/inpaint?method=patchmatch", image=png(image), mask=png(full)), 422)


def test_latent_damage(client, inpainter, image, mask):
    response = post(client, "/api/latent-damage", image=png(image), mask=png(mask))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(decode(response.content), inpainter.latent_damage(image, mask))


def test_empty_mask_returns_the_image(client, image):
    response = post(client, image=png(image), mask=png(np.zeros((H, W), np.uint8)))
    assert response.status_code == 200
    np.testing.assert_array_equal(decode(response.content), image)


def test_mask_with_colour_and_alpha(client, image, mask):
    # any channel above 0 counts; a coloured RGBA mask fills the same region as a white grey one
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., 0] = mask // 255  # red level 1 only
    rgba[..., 3] = 255
    expected = decode(post(client, image=png(image), mask=png(mask)).content)
    response = post(client, image=png(image), mask=png(rgba))
    np.testing.assert_array_equal(decode(response.content), expected)


def test_too_many_bytes(inpainter, image, mask):
    with TestClient(
        create_app(inpainter, max_upload_bytes=2000), raise_server_exceptions=False, base_url=LOCAL
    ) as c:
        big = png(np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8))
        assert len(big) > 2000
        assert_error(post(c, image=big, mask=png(mask)), 413)

        # no Content-Length (a chunked upload): cut off while reading, without reading the rest
        boundary = "xyz"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
                "Content-Type: image/png\r\n\r\n"
            ).encode()
            + big * 10
            + f"\r\n--{boundary}--\r\n".encode()
        )
        status, detail, chunks_read = asgi_post(c.app, body, f"multipart/form-data; boundary={boundary}", 500)
        assert status == 413 and "limit" in detail
        assert chunks_read <= 2000 // 500 + 1


def asgi_post(app, body: bytes, content_type: str, chunk: int) -> tuple[int, str, int]:
    """POSTs `body` to /api/inpaint in chunks with no Content-Length; returns status, detail, chunks read."""
    import asyncio
    import json

    chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    read, sent = 0, []

    async def receive():
        nonlocal read
        read += 1
        if read <= len(chunks):
            return {"type": "http.request", "body": chunks[read - 1], "more_body": read < len(chunks)}
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/inpaint",
        "raw_path": b"/api/inpaint",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),  # the server answers loopback hosts only
            (b"content-type", content_type.encode()),
            (b"transfer-encoding", b"chunked"),
        ],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(content)["detail"], read


def test_too_many_pixels(inpainter, image, mask):
    with TestClient(
        create_app(inpainter, max_pixels=H * W - 1), raise_server_exceptions=False, base_url=LOCAL
    ) as c:
        assert_error(post(c, image=png(image), mask=png(mask)), 413)
        assert_error(post(c, "/api/latent-damage", image=png(image), mask=png(mask)), 413)
    # a tiny file that claims a huge size is refused from its header alone
    # (50 MP trips the server's 40 MP limit; 2,500 MP trips PIL's own decompression-bomb check first)
    with TestClient(create_app(inpainter), raise_server_exceptions=False, base_url=LOCAL) as c:
        for width, height in [(10_000, 5_000), (50_000, 50_000)]:
            huge = claim_size(png(Image.new("L", (1, 1))), width, height)
            response = post(c, image=huge, mask=huge)
            assert_error(response, 413)
            assert "pixels" in response.json()["detail"]


@pytest.mark.parametrize(
    "case",
    ["text_image", "text_mask", "truncated_png", "zero_bytes", "garbage_after_signature", "svg", "eps"],
)
def test_bad_files(client, image, mask, case):
    good_image, good_mask = png(image), png(mask)
    files = {
        "text_image": (b"hello, not an image\n", good_mask),
        "text_mask": (good_image, b"hello, not an image\n"),
        "truncated_png": (good_image[: len(good_image) // 2], good_mask),
        "zero_bytes": (b"", good_mask),
        "garbage_after_signature": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, good_mask),
        "svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="56" height="40"/>', good_mask),
        "eps": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 56 40\n", good_mask),
    }[case]
    for path in ("/api/inpaint", "/api/latent-damage"):
        assert_error(post(client, path, image=files[0], mask=files[1]), (415, 422))


def test_mask_of_another_size(client, image):
    other = np.full((H, W + 1), 255, np.uint8)
    response = post(client, image=png(image), mask=png(other))
    assert_error(response, 422)
    assert "same size" in response.json()["detail"]


def test_missing_and_wrong_fields(client, image, mask):
    assert_error(post(client, image=png(image)), 422)
    assert_error(post(client, mask=png(mask)), 422)
    # the image as a text field instead of a file
    response = client.post("/api/inpaint", data={"image": "abc"}, files={"mask": ("m.png", png(mask))})
    assert_error(response, 422)
    # not multipart at all
    assert_error(client.post("/api/inpaint", json={"image": "abc"}), 415)
    assert_error(client.post("/api/inpaint", content=png(image), headers={"content-type": "image/png"}), 415)
    assert_error(client.post("/api/inpaint"), 415)
    # multipart without a boundary, or broken
    bad = client.post("/api/inpaint", content=b"junk", headers={"content-type": "multipart/form-data"})
    assert_error(bad, (400, 415, 422))
    bad = client.post(
        "/api/inpaint", content=b"--b\r\njunk", headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert 400 <= bad.status_code < 500
    # more files than the two expected
    files = [
        ("image", ("a.png", png(image))),
        ("mask", ("b.png", png(mask))),
        ("extra", ("c.png", png(mask))),
    ]
    assert 400 <= client.post("/api/inpaint", files=files).status_code < 500


def cmyk_jpeg(image: np.ndarray) -> bytes:
    return png(Image.fromarray(image).convert("CMYK"), format="JPEG", quality=95)


@pytest.mark.parametrize(
    "kind",
    [
        "grey",
        "grey16",
        "rgba",
        "palette",
        "palette_transparent",
        "bilevel",
        "cmyk_jpeg",
        "jpeg",
        "webp",
        "gif",
        "bmp",
        "tiff",
    ],
)
def test_image_kinds_work(client, image, mask, kind):
    rgb = Image.fromarray(image)
    data = {
        "grey": lambda: png(rgb.convert("L")),
        "grey16": lambda: png(Image.fromarray(np.asarray(rgb.convert("L")).astype(np.uint16) * 257)),
        "rgba": lambda: png(rgb.convert("RGBA")),
        "palette": lambda: png(rgb.convert("P")),
        "palette_transparent": lambda: png(rgb.convert("P"), transparency=0),
        "bilevel": lambda: png(rgb.convert("1")),
        "cmyk_jpeg": lambda: cmyk_jpeg(image),
        "jpeg": lambda: png(rgb, format="JPEG"),
        "webp": lambda: png(rgb, format="WEBP"),
        "gif": lambda: png(rgb, format="GIF"),
        "bmp": lambda: png(rgb, format="BMP"),
        "tiff": lambda: png(rgb, format="TIFF"),
    }[kind]()
    response = post(client, image=data, mask=png(mask))
    assert response.status_code == 200, response.text
    result = decode(response.content)
    assert result.shape == (H, W, 3)
    with Image.open(io.BytesIO(data)) as source:
        if kind == "grey16":  # 16-bit keeps its high byte
            expected = np.repeat((np.asarray(source) >> 8).astype(np.uint8)[..., None], 3, axis=2)
        else:
            expected = np.asarray(source.convert("RGB"))
    outside = mask == 0
    np.testing.assert_array_equal(result[outside], expected[outside])


def test_mask_kinds(client, image, mask):
    expected = decode(post(client, image=png(image), mask=png(mask)).content)
    for data in [
        png(Image.fromarray(mask).convert("1")),
        png(Image.fromarray(mask.astype(np.uint16) * 257)),
        png(Image.fromarray(mask).convert("RGB")),
        png(Image.fromarray(mask).convert("P")),
    ]:
        response = post(client, image=png(image), mask=data)
        assert response.status_code == 200, response.text
        np.testing.assert_array_equal(decode(response.content), expected)


def test_exif_orientation_is_applied(client):
    # a 40x56 (portrait) JPEG stored sideways: orientation 6 means "rotate 90 degrees clockwise to view"
    stored = Image.fromarray(np.full((W, H, 3), 128, np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = png(stored, format="JPEG", exif=exif.tobytes())
    response = post(client, image=data, mask=png(np.zeros((H, W), np.uint8)))
    assert response.status_code == 200, response.text
    assert decode(response.content).shape == (H, W, 3)


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("example.org")


def test_cli_missing_model(tmp_path, capsys):
    from latentpaint.cli import main

    assert main(["serve", "--model", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("latentpaint serve: error:") and "\n" not in err


@pytest.mark.parametrize("host, warned", [("127.0.0.1", False), ("localhost", False), ("0.0.0.0", True)])
def test_cli_serve(tmp_path, capsys, monkeypatch, inpainter, host, warned):
    import uvicorn

    import latentpaint.server.cli as serve_cli
    from latentpaint.cli import main
    from latentpaint.inference.checkpoints import save_release

    served = {}
    real_listen = serve_cli.listen

    def loopback_listen(asked_host, port):  # tests only ever listen on loopback, whatever --host says
        served["host"] = asked_host
        return real_listen("127.0.0.1", port)

    def fake_run(self, sockets=None):
        served["port"] = sockets[0].getsockname()[1]
        served["app"] = self.config.app

    monkeypatch.setattr(serve_cli, "listen", loopback_listen)
    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    save_release(inpainter.network, tmp_path / "model")
    args = [
        "serve",
        "--model",
        str(tmp_path / "model"),
        "--host",
        host,
        "--port",
        "0",
        "--max-upload-mb",
        "1",
    ]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert ("warning" in err and "network" in err) == warned
    assert served["host"] == host and served["port"] > 0
    with TestClient(served["app"], base_url=LOCAL) as c:
        assert c.get("/api/health").json()["limits"]["max_upload_bytes"] == 2**20


def test_cli_port_taken(tmp_path, capsys, inpainter):
    import socket

    from latentpaint.cli import main
    from latentpaint.inference.checkpoints import save_release

    save_release(inpainter.network, tmp_path / "model")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", "--model", str(tmp_path / "model"), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("latentpaint serve: error: cannot listen") and "\n" not in err
