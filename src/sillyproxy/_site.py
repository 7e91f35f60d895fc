"""The twisted.web Site and Request tuned for proxying rather than serving pages."""

from __future__ import annotations

from twisted.web.resource import IResource
from twisted.web.server import Request, Site

__all__ = ["ProxyRequest", "ProxySite"]


class ProxyRequest(Request):
    """A Request that leaves the body alone for the backend to interpret."""

    # twisted.web would otherwise read a whole form or multipart upload into
    # memory to fill request.args, which a proxy never looks at.
    _parsePOSTFormSubmission = False


class ProxySite(Site):
    """
    A Site that never shows a traceback and leaves access logging to the
    forwarding resource, which knows the colour and the duration.
    """

    requestFactory = ProxyRequest
    displayTracebacks = False
    noisy = False

    def __init__(self, resource: IResource, **kwargs: object) -> None:
        super().__init__(resource, **kwargs)  # type: ignore[arg-type]

    def log(self, request: Request) -> None:
        pass
