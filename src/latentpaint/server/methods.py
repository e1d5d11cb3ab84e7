"""What fills a hole on the server: the model, or a classical method (`/api/inpaint?method=NAME`).

The names are the registry's (inference/classical.py), so the page, the API, `predict --method` and the
evaluation list the same methods; `/api/health` says which of them this installation can run.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
from fastapi import HTTPException, Request

from latentpaint.errors import quoted
from latentpaint.inference.classical import CLASSICAL_METHODS, fill_function, missing_backend
from latentpaint.inference.hd import inpaint_within

MODEL = "model"
# the query parameter of /api/inpaint, for the OpenAPI schema (the body is the multipart upload)
METHOD_PARAMETER = {
    "parameters": [
        {
            "name": "method",
            "in": "query",
            "required": False,
            "description": "what fills the hole: the served model (default) or a classical method; "
            "GET /api/health lists which ones this server can run",
            "schema": {"type": "string", "enum": [MODEL, *CLASSICAL_METHODS], "default": MODEL},
        }
    ]
}


def method_choices() -> list[dict]:
    """The page's choice and /api/health's list: name, title, and why a method cannot run here (or None)."""
    choices = [{"name": MODEL, "title": "the model", "unavailable": None}]
    for name, method in CLASSICAL_METHODS.items():
        choices.append({"name": name, "title": method.title, "unavailable": missing_backend(name)})
    return choices


def method_fill(
    method: str, predict: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """(image, float mask) -> result for `method`: `predict` for the model, else the classical fill.

    An unknown name is a 422, a method whose library is missing a 501, both with one sentence, decided
    before the upload is read.
    """
    if method == MODEL:
        return predict
    if method not in CLASSICAL_METHODS:
        raise HTTPException(
            422, f"unknown method {quoted(method)}: choose one of {', '.join([MODEL, *CLASSICAL_METHODS])}"
        )
    why = missing_backend(method)
    if why is not None:
        raise HTTPException(501, f"this server cannot run {why}")
    return fill_function(method)


def inpaint_work(request: Request, predict: Callable, max_pixels: int) -> Callable:
    """/api/inpaint's work on (image, mask): the request's method, never seeing more than `max_pixels` at once."""
    fill = method_fill(request.query_params.get("method", MODEL), predict)
    return partial(inpaint_within, fill, max_pixels=max_pixels)
