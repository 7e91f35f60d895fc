"""How a proxied request ended, when it did not end as the backend's plain answer."""

from __future__ import annotations

from enum import Enum

__all__ = ["Outcome"]


class Outcome(Enum):
    """
    The reason an access-log line gives for a request.  The values are the
    words the log prints; L{FORWARDED}'s is empty (JSON logs say
    C{weighted}).
    """

    FORWARDED = ""
    # The first colour failed before answering; another one did.
    FAILOVER = "failover"
    # Routed by the user's sticky key, or by a tester's override pass.
    STICKY = "sticky"
    OVERRIDE = "override"
    CLIENT_CLOSED = "client closed"
    NO_HEALTHY_BACKENDS = "no healthy backends"
    # The backend failed before a response began: the access log prints
    # the client's one-line message (L{UpstreamFailure.message}) instead.
    UPSTREAM_FAILED = "upstream failed"
    FAILED_MID_BODY = "backend failed mid-body"
    STALLED_MID_BODY = "backend stalled mid-body"
    # The client took none of the response for the send timeout.
    CLIENT_STOPPED_READING = "client stopped reading"

    @property
    def metric_reason(self) -> str:
        """The C{reason} label of C{sillyproxy_upstream_errors_total} for a body that broke off."""
        return "timeout" if self is Outcome.STALLED_MID_BODY else "reset"
