"""A backend connection pool that does not log every connection it opens."""

from __future__ import annotations

from twisted.web import client

__all__ = ["QuietConnectionPool"]


class _QuietClientFactory(client._HTTP11ClientFactory):
    # Twisted logs "Starting factory" for each new backend connection, which
    # under load is a log line per request and says nothing an operator needs.
    noisy = False


class QuietConnectionPool(client.HTTPConnectionPool):
    """An HTTPConnectionPool whose connections start and stop silently."""

    _factory = _QuietClientFactory
