"""Which listening addresses are private to this machine (the app and `serve` both ask), and which requests
the app refuses for their Host or Origin."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'; anything else may be reachable from the network."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    """0.0.0.0 and :: listen on every address: no single name to allow."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """'127.0.0.1:8080' -> '127.0.0.1', '[::1]:8080' -> '::1', 'Example.org' -> 'example.org'."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def request_refusal(headers: Any, allowed_hosts: frozenset[str]) -> str | None:
    """Why a request must be refused (403), or None: a Host that is not this machine's loopback name (or
    one `--allowed-host` named) is DNS rebinding; an Origin other than the page's own is another web
    page posting to the server. Clients without an Origin header (curl, scripts) are not browsers' pages."""
    host = headers.get("host", "")
    name = host_name(host)
    if "*" not in allowed_hosts and not (is_loopback(name) or name in allowed_hosts):
        return (
            f"requests for host {name or '(none)'!r} are refused: this server answers only "
            "localhost/127.0.0.1 unless started with --allowed-host"
        )
    origin = headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin)
        if origin == "null" or parts.netloc.lower() != host.strip().lower():
            return f"cross-origin requests are refused (origin {origin!r}); use the server's own page"
    if headers.get("sec-fetch-site", "") == "cross-site":
        return "cross-site requests are refused; use the server's own page"
    return None
