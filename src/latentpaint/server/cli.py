"""`latentpaint serve`: the painting page and the HTTP API for one model, on this machine by default."""

from __future__ import annotations

import argparse
import socket
import sys

from latentpaint.errors import LatentpaintError
from latentpaint.options import integer, number
from latentpaint.server.hosts import is_loopback, is_wildcard


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="web page and HTTP API for inpainting with a model",
        description=(
            "Serves a page to paint masks and inpaint them, plus POST /api/inpaint and /api/latent-damage "
            "(multipart 'image' and 'mask' files in, PNG out; docs at /docs). Listens on 127.0.0.1 unless "
            "--host says otherwise. Example: latentpaint serve --model runs/release"
        ),
    )
    parser.add_argument(
        "--model",
        default="default",
        help="release folder, training checkpoint or LaMa folder (default: the shipped model, docs/quality.md)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=integer(0, 65535), default=8080, help="port (default: 8080; 0 picks a free one)"
    )
    parser.add_argument(
        "--device", default="auto", help="torch device, e.g. cpu or cuda (default: auto, CUDA when present)"
    )
    parser.add_argument(
        "--dtype", choices=("fp32", "bf16", "fp16"), default="fp32",
        help="precision of the network's forward pass (autocast; default: fp32; bf16 on recent GPUs)",
    )  # fmt: skip
    parser.add_argument("--optimize", action="store_true", help="BatchNorm folded + channels-last (faster)")
    parser.add_argument(
        "--max-upload-mb", type=number(0, 65536), default=20, help="largest request body in MiB (default: 20)"
    )
    parser.add_argument(
        "--max-megapixels", type=number(0, 1000), default=40, help="largest image in megapixels (default: 40)"
    )
    parser.add_argument(
        "--max-inference-megapixels",
        type=number(0, 1000),
        default=4,
        help="most pixels the model sees at once; larger images are inpainted in crops or resized "
        "(default: 4, about 1 GB for the thesis model and 4 GB for big-lama)",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests for this host name (repeatable; needed when --host is not loopback and "
        "clients use a name such as myserver.lan; '*' answers any). localhost and 127.0.0.1 always work",
    )
    parser.set_defaults(func=run)


def listen(host: str, port: int) -> socket.socket:
    """A bound, listening socket: a taken port is a one-line error here, not a uvicorn traceback."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise LatentpaintError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise LatentpaintError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise LatentpaintError(f"--port must be between 0 and 65535, not {args.port}")
    if args.max_upload_mb <= 0 or args.max_megapixels <= 0:
        raise LatentpaintError("--max-upload-mb and --max-megapixels must be positive")
    try:
        import uvicorn

        from latentpaint.server.app import create_app
    except ModuleNotFoundError as exc:
        raise LatentpaintError(
            f"serving needs the 'serve' extra ({exc.name} is missing): pip install 'latentpaint[serve]'"
        ) from None
    from latentpaint.devices import resolve_device
    from latentpaint.inference.inpainter import Inpainter

    device = resolve_device(args.device)
    # before listening: fail fast
    inpainter = Inpainter.from_pretrained(args.model, device=device, optimize=args.optimize, dtype=args.dtype)
    allowed = list(args.allowed_host)
    if not is_loopback(args.host) and not is_wildcard(args.host):
        allowed.append(args.host)  # the address it listens on is how clients will name it
    app = create_app(
        inpainter,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=int(args.max_megapixels * 1e6),
        max_inference_pixels=max(1, int(args.max_inference_megapixels * 1e6)),
        allowed_hosts=allowed,
    )
    sock = listen(args.host, args.port)
    port = sock.getsockname()[1]
    if not is_loopback(args.host):
        print(
            f"latentpaint serve: warning: listening on {args.host}, so anyone who can reach this machine "
            "over the network can use the server (it has no authentication); it answers requests for "
            f"{', '.join(['localhost', *allowed])} only (add names with --allowed-host)",
            file=sys.stderr,
        )
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"latentpaint serve: open http://{shown}:{port}/ (Ctrl+C to stop)", file=sys.stderr)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0
