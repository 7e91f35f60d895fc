"""Work out the request target to send to a backend, byte for byte."""

from __future__ import annotations

__all__ = ["join_target", "origin_form"]

_ABSOLUTE_PREFIXES = (b"http://", b"https://")


def origin_form(uri: bytes) -> bytes | None:
    """
    Return the path and query of a request target, or None if it has none.

    An origin-form target (C{/a?b}) is returned as it is.  An absolute-form
    target (C{http://elsewhere/a?b}) loses its scheme and authority: the
    proxy always sends a request to one of its own backends, never to a host
    the client names.
    """
    if uri.startswith(b"/"):
        return uri
    if not uri[:8].lower().startswith(_ABSOLUTE_PREFIXES):
        return None
    after_scheme = uri.index(b"//") + 2
    for index in range(after_scheme, len(uri)):
        if uri[index] in b"/?":
            rest = uri[index:]
            return rest if rest[:1] == b"/" else b"/" + rest
        if uri[index] == ord("#"):
            break
    return b"/"


def join_target(base_path: bytes, target: bytes) -> bytes:
    """
    Join an origin-form target onto a backend's base path.

    Exactly one slash joins the two, and nothing is decoded or re-encoded:
    C{/prefix/} and C{/a%2Fb;x?q=1} give C{/prefix/a%2Fb;x?q=1}.
    """
    if not base_path:
        return target
    path, question, query = target.partition(b"?")
    if base_path.endswith(b"/"):
        if path.startswith(b"/"):
            path = path[1:]
    elif not path.startswith(b"/"):
        path = b"/" + path
    return base_path + path + question + query
