"""
How far a client has got with a response, as its TCP stack acknowledged it.

C{SILLYPROXY_SEND_TIMEOUT} closes a response that makes no progress
towards the client for that long.  Neither "the socket is writable" nor
"the relay was resumed" tells whether the client reads: the kernel
absorbs megabytes first, and a slow reader may not drain Twisted's write
buffer, so resume the relay, within the timeout.  C{bench/send_progress.py}
measured on Linux 6.18 over 127.0.0.1 (default tcp_wmem max 4 MiB, tcp_rmem
default 128 KiB), writing as fast as the kernel took:

  - a client that never reads stalls the sender within 0.5 s, after the
    kernel accepted 4.29 MB: 4.16 MB in the proxy's send queue (SIOCOUTQ;
    per stalled client, held in the proxy host's memory) and 128 KB in the
    client's receive buffer (about 0.8 MB and 125 KB at an Ethernet MSS of
    1448; 0.27 MB and 128 KB with the proxy's SO_SNDBUF set to 64 KiB).
    From then on nothing the sender can see moves;
  - C{tcpi_bytes_acked} from TCP_INFO (the bytes the peer acknowledged,
    monotonic, Linux >= 4.1) stays flat for a client that stopped reading
    (after 0 or after 64 KiB) and grows for one that reads: it alone counts
    the client taking bytes.  SIOCOUTQ and SIOCOUTQNSD move at the same
    acknowledgements but also whenever the proxy writes, and go down as
    well as up; a capped SO_SNDBUF only lowers the memory held.

Its steps are coarse: a Linux receiver whose window closed reopens it only
once it has freed about half its receive buffer (64 KiB or more), so a
client reading 10 KiB/s showed a step every 6 to 13 s, and one reading
1 KiB/s none for 64 s on loopback and none from 8 s to the 80 s end at an
MSS of 1448.  No sender-side signal does better, since the sender learns
of reads only from those window updates; a timeout of C{T} seconds thus
spares readers faster than about 128 KiB / C{T} (nginx's send_timeout,
which waits for writability, behaves alike).
"""

from __future__ import annotations

import socket
import struct
import sys

__all__ = ["bytes_acked"]

# struct tcp_info in <linux/tcp.h>: 8 one-byte fields, 24 __u32s, then
# tcpi_pacing_rate and tcpi_max_pacing_rate (__u64) before
# tcpi_bytes_acked, at offset 120 (checked with offsetof).
_TCPI_BYTES_ACKED = 120
_TCP_INFO_LENGTH = _TCPI_BYTES_ACKED + 8
# The tcp_info layout above is Linux's; other systems lay it out otherwise.
_TCP_INFO = getattr(socket, "TCP_INFO", None) if sys.platform.startswith("linux") else None
_INET = (socket.AF_INET, socket.AF_INET6)
# How many wrapping transports (TLS, protocol wrappers) to look through.
_MAX_DEPTH = 4


def bytes_acked(transport: object) -> int | None:
    """
    How many bytes of the connection's output the client has acknowledged,
    or C{None} if C{transport} has no TCP socket to ask (a UNIX socket, an
    in-memory test transport, a closed connection, a system other than
    Linux or a Linux older than 4.1).

    The count only grows, and grows only as the client's TCP stack takes
    bytes into its receive buffer, which it does only while the client
    reads (once the buffer is full); compare two readings for progress.
    C{transport} is a Twisted TCP transport (C{getHandle()} is its socket)
    or a TLS one (L{twisted.protocols.tls.TLSMemoryBIOProtocol}, whose
    C{getHandle()} is the OpenSSL connection and whose C{transport} is the
    TCP one).  One getsockopt; never raises.
    """
    for _ in range(_MAX_DEPTH):
        try:
            handle = transport.getHandle()  # type: ignore[attr-defined]
        except Exception:
            # No getHandle, or a TCP transport after connectionLost (it
            # deletes its socket).
            handle = None
        if isinstance(handle, socket.socket):
            return _socket_bytes_acked(handle)
        transport = getattr(transport, "transport", None)
        if transport is None:
            return None
    return None


def _socket_bytes_acked(sock: socket.socket) -> int | None:
    if _TCP_INFO is None:
        return None
    try:
        if sock.family not in _INET or sock.type != socket.SOCK_STREAM:
            return None
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _TCP_INFO_LENGTH)
    except OSError:
        # Closed (fileno -1: EBADF), or not TCP after all.
        return None
    if len(info) < _TCP_INFO_LENGTH:
        # A kernel older than 4.1 has no tcpi_bytes_acked.
        return None
    acked: int = struct.unpack_from("=Q", info, _TCPI_BYTES_ACKED)[0]
    return acked
