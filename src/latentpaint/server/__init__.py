"""A local web app for inpainting: `create_app(inpainter)` and `latentpaint serve`.

FastAPI is an optional extra (`latentpaint[serve]`), so it is imported only when `create_app` is used:
`latentpaint --help` imports `latentpaint.server.cli` and must work without it.
"""

__all__ = ["create_app"]


def __getattr__(name: str):
    if name == "create_app":
        from latentpaint.server.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
