"""myapp: the demo backend that says which colour the proxy gave it, and where it runs."""

from ._app import make_app

__all__ = ["make_app"]
