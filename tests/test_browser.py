"""The page in a real browser: open an image, paint, undo/redo, inpaint twice, download, latent damage.

Runs Debian's Chromium (`apt-get install -y chromium`) through Playwright against a uvicorn server on a
free loopback port; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import base64
import email.parser
import io
import os
import socket
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("playwright")
import uvicorn  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from latentpaint.inference.inpainter import Inpainter  # noqa: E402
from latentpaint.models.network import InpaintingNetwork  # noqa: E402
from latentpaint.server import create_app  # noqa: E402

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
W, H = 160, 120
BRUSH = 60  # screen pixels; the 160x120 image is shown about 4x larger


@pytest.fixture(scope="module")
def server_url():
    torch.manual_seed(0)
    app = create_app(Inpainter(InpaintingNetwork("thesis", "control")))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"{CHROMIUM} not found: the browser test needs Debian's Chromium, install it with "
            "`apt-get update && apt-get install -y chromium` (never `playwright install`, which downloads)"
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server_url):
    context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    # belt and braces: any request off the test server fails
    context.route(lambda url: not url.startswith(server_url), lambda route: route.abort())
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server_url)
    expect(page.locator("#model-info")).to_contain_text("parameters")
    yield page
    context.close()
    assert not errors, errors


def photo() -> np.ndarray:
    """A smooth picture with values away from 0 and 255 (a random model's outputs clamp there)."""
    y, x = np.mgrid[0:H, 0:W]
    r = 128 + 80 * np.sin(x / 9.0)
    g = 128 + 80 * np.cos(y / 7.0)
    b = 128 + 60 * np.sin((x + y) / 13.0)
    return np.stack([r, g, b], axis=2).round().astype(np.uint8)


def set_brush(page, size: int) -> None:
    page.eval_on_selector(
        "#brush-size",
        "(el, size) => { el.value = String(size); el.dispatchEvent(new Event('input', {bubbles: true})); }",
        size,
    )


def stroke(
    page, start: tuple[float, float], end: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, float]:
    """Drags from `start` to `end` (fractions of the canvas); returns both ends in image pixels and the radius."""
    box = page.locator("#canvas").bounding_box()
    scale = W / box["width"]
    points = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in (start, end)]
    page.mouse.move(*points[0])
    page.mouse.down()
    page.mouse.move(*points[1], steps=12)
    page.mouse.up()
    ends = [np.array([(px - box["x"]) * scale, (py - box["y"]) * scale]) for px, py in points]
    return ends[0], ends[1], BRUSH / 2 * scale


def distance_to_segment(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W) distances from pixel centres to the segment a-b, in image pixels."""
    y, x = np.mgrid[0:H, 0:W] + 0.5
    p = np.stack([x, y], axis=2)
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(ab @ ab, 1e-9), 0, 1)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=2)


def download(page) -> np.ndarray:
    with page.expect_download() as info:
        page.click("#download")
    path = info.value.path()
    assert info.value.suggested_filename == "photo-inpainted.png"
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def sent_mask(content_type: str, body: bytes) -> np.ndarray:
    """The 'mask' file of a multipart body, as a uint8 (H, W) array."""
    message = email.parser.BytesParser().parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    for part in message.get_payload():
        if part.get_param("name", header="content-disposition") == "mask":
            with Image.open(io.BytesIO(part.get_payload(decode=True))) as image:
                assert image.format == "PNG"
                return np.asarray(image.convert("L"))
    raise AssertionError("no mask field in the request")


def test_paint_undo_inpaint_twice_and_download(page, tmp_path):
    image = photo()
    Image.fromarray(image).save(tmp_path / "photo.png")
    page.set_input_files("#file", str(tmp_path / "photo.png"))
    expect(page.locator("#status")).to_contain_text(f"{W}×{H}")
    expect(page.locator("#download")).to_have_attribute("aria-disabled", "true")
    set_brush(page, BRUSH)

    a0, a1, radius = stroke(page, (0.15, 0.3), (0.6, 0.35))
    stroke(page, (0.2, 0.75), (0.8, 0.75))  # stroke B: undone below, so never filled
    page.keyboard.press("Control+z")
    expect(page.locator("#redo")).to_be_enabled()
    page.click("#redo")
    page.click("#undo")
    expect(page.locator("#redo")).to_be_enabled()

    page.check("#damage-toggle")
    expect(page.locator("#damage")).to_be_visible()
    expect(page.locator("#damage-caption")).to_have_text("Latent damage of the current mask")

    page.click("#inpaint")
    expect(page.locator("#result")).to_have_attribute("data-version", "1")
    expect(page.locator("#status")).to_contain_text("Inpainted")
    expect(page.locator("#undo")).to_be_disabled()  # the mask starts afresh on the result
    expect(page.locator("#damage-caption")).to_have_text("Latent damage of the mask just filled")

    first = download(page)
    assert first.shape == image.shape
    distance = distance_to_segment(a0, a1)
    outside, inside = distance > radius + 2, distance < radius - 2
    assert inside.sum() > 100 and outside.sum() > 0.5 * H * W
    np.testing.assert_array_equal(first[outside], image[outside])
    assert (first[inside] != image[inside]).any(axis=1).mean() > 0.9

    # paint on the result and inpaint again: the second result builds on the first
    b0, b1, _ = stroke(page, (0.7, 0.2), (0.9, 0.5))
    page.click("#inpaint")
    expect(page.locator("#result")).to_have_attribute("data-version", "2")
    second = download(page)
    outside_b = distance_to_segment(b0, b1) > radius + 2
    np.testing.assert_array_equal(second[outside_b], first[outside_b])
    assert (second != first).any()

    # the same page with a classical fill: the server's list of methods, and the result names it
    expect(page.locator("#method option")).to_have_count(6)
    page.select_option("#method", "patchmatch")
    c0, c1, _ = stroke(page, (0.1, 0.85), (0.4, 0.85))
    page.click("#inpaint")
    expect(page.locator("#result")).to_have_attribute("data-version", "3")
    expect(page.locator("#status")).to_contain_text("Inpainted with PatchMatch (classical)")
    third = download(page)
    outside_c = distance_to_segment(c0, c1) > radius + 2
    np.testing.assert_array_equal(third[outside_c], second[outside_c])

    page.screenshot(path="/tmp/latentpaint_page.png", full_page=True)


def test_drop_eraser_clear_and_server_errors(page):
    # an SVG: the browser shows it, the server refuses it, and the page shows the server's sentence
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}"><rect width="{W}" height="{H}" fill="teal"/></svg>'
    data = page.evaluate_handle(
        """([b64, name, type]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type}));
            return transfer;
        }""",
        [base64.b64encode(svg.encode()).decode(), "drawing.svg", "image/svg+xml"],
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": data})
    expect(page.locator("#canvas-wrap")).to_be_visible()

    page.click("#inpaint")  # nothing painted yet
    expect(page.locator("#status")).to_have_text("Paint over the area to fill first.")

    set_brush(page, BRUSH)
    stroke(page, (0.2, 0.5), (0.8, 0.5))
    page.keyboard.press("e")
    expect(page.locator("#eraser")).to_have_attribute("aria-pressed", "true")
    stroke(page, (0.2, 0.5), (0.4, 0.5))
    page.click("#eraser")
    expect(page.locator("#eraser")).to_have_attribute("aria-pressed", "false")

    # record what the page sends: the mask is a PNG of the image's size, white where painted
    bodies = []

    def record(route, request):
        bodies.append((request.headers["content-type"], request.post_data_buffer))
        route.continue_()

    page.route("**/api/inpaint?*", record)
    page.click("#inpaint")
    expect(page.locator("#status")).to_contain_text("not in a supported image format")
    expect(page.locator("#status")).to_have_class("error")
    mask = sent_mask(*bodies[0])
    assert mask.shape == (H, W) and set(np.unique(mask)) <= set(range(256))
    assert mask[H // 2, int(0.6 * W)] == 255  # painted
    assert mask[H // 2, int(0.28 * W)] == 0  # erased
    assert mask[H // 10, W // 10] == 0 and mask[H - 3, W - 3] == 0  # never painted

    page.click("#clear")
    expect(page.locator("#clear")).to_be_disabled()
    page.keyboard.press("Control+z")  # the clear itself can be undone
    expect(page.locator("#clear")).to_be_enabled()
