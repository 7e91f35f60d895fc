"""
Which kernel signal tells that a client is still reading a response?

Context: SILLYPROXY_SEND_TIMEOUT closes a response that makes no progress
towards the client.  The proxy writes with backpressure, so a stalled client
shows up as a paused relay; but the kernel absorbs megabytes first, and a
slow reader may not drain Twisted's buffer fast enough to resume the relay
within the timeout.  This script measures, over loopback, what the sending
("proxy") side can see of the reader:

  sent        total bytes the kernel accepted from send() on the proxy side
  acked       TCP_INFO tcpi_bytes_acked (offset 120, u64; Linux >= 4.1):
              bytes the peer acknowledged, i.e. took into its receive buffer
  outq        SIOCOUTQ (TIOCOUTQ 0x5411): bytes sent or queued, not yet acked
  nsd         SIOCOUTQNSD (0x894B): bytes queued and not yet sent
  wnd         TCP_INFO tcpi_snd_wnd (offset 228, u32; Linux >= 6.2): the
              peer's advertised window
  read        bytes the receiver has actually read (ground truth)

against readers that (1) never read, (2) read 1 KiB every 100 ms, (3) read
64 KiB and stop; then (4, 5) the first two with the MSS capped at 1448 as on
Ethernet (loopback's MSS is ~64 KiB, which coarsens window updates), and
(6), for candidate (d), a never-reader with the proxy-side SO_SNDBUF capped
at 64 KiB.  A "*" after a value marks that it
changed since the previous sample.

Run:  .venv/bin/python bench/send_progress.py [seconds-per-case]
(default 6 s per case, 8 s for case 2, half for 5 and 6: about 32 s in all;
127.0.0.1 only), or with --1k for two 80 s runs of a 1 KiB/s reader.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import sys
import time
from collections.abc import Callable

TIOCOUTQ = 0x5411  # == SIOCOUTQ for sockets
SIOCOUTQNSD = 0x894B
TCPI_BYTES_ACKED = 120  # offsetof(struct tcp_info, tcpi_bytes_acked)
TCPI_SND_WND = 228  # offsetof(struct tcp_info, tcpi_snd_wnd)
TCP_INFO_LEN = 232

CHUNK = b"x" * 65536
SAMPLE = 0.5


def ioctl_int(sock: socket.socket, request: int) -> int:
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), request, b"\0" * 4))[0]


def tcp_info(sock: socket.socket) -> tuple[int | None, int | None]:
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_LEN)
    acked = (
        struct.unpack_from("=Q", raw, TCPI_BYTES_ACKED)[0]
        if len(raw) >= TCPI_BYTES_ACKED + 8
        else None
    )
    wnd = (
        struct.unpack_from("=I", raw, TCPI_SND_WND)[0]
        if len(raw) >= TCPI_SND_WND + 4
        else None
    )
    return acked, wnd


class Reader:
    """The client side: reads per a policy, never blocks."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.read = 0
        sock.setblocking(False)

    def _recv(self, n: int) -> int:
        try:
            got = len(self.sock.recv(n))
        except BlockingIOError:
            return 0
        self.read += got
        return got


def never(reader: Reader, now: float) -> None:
    pass


def make_slow(period: float = 0.1) -> Callable[[Reader, float], None]:
    next_at = [0.0]

    def slow(reader: Reader, now: float) -> None:
        # 1 KiB every period, catching up if the loop ran late.
        while now >= next_at[0]:
            reader._recv(1024)
            next_at[0] = (next_at[0] or now) + period

    return slow


def first_64k(reader: Reader, now: float) -> None:
    while reader.read < 65536 and reader._recv(65536 - reader.read):
        pass


def run_case(
    name: str,
    policy: Callable[[Reader, float], None],
    seconds: float,
    sndbuf: int | None = None,
    mss: int | None = None,
) -> dict[str, object]:
    print(f"\n== {name}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if mss is not None:
            # Loopback's MTU is 64 KiB, so its MSS is ~64 KiB; cap it on
            # both ends to see what an Ethernet path (MSS 1448) would do.
            server.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        client.settimeout(5)
        client.connect(server.getsockname())
        proxy, _ = server.accept()
    with proxy, client:
        if sndbuf is not None:
            proxy.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        proxy.setblocking(False)
        reader = Reader(client)
        sent = 0
        start = time.monotonic()
        deadline = start + seconds
        next_sample = start + SAMPLE
        prev: tuple[int | None, ...] | None = None
        last_moves: dict[str, float] = {}
        acked_moves: list[float] = []
        print(
            f"{'t':>5} {'sent':>10} {'acked':>11} {'outq':>10} "
            f"{'nsd':>9} {'wnd':>9} {'read':>8}"
        )
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            # Write as fast as the kernel takes (bounded per pass).
            for _ in range(256):
                try:
                    n = proxy.send(CHUNK)
                except BlockingIOError:
                    break
                sent += n
            policy(reader, now)
            if now >= next_sample:
                next_sample += SAMPLE
                acked, wnd = tcp_info(proxy)
                row = (
                    sent,
                    acked,
                    ioctl_int(proxy, TIOCOUTQ),
                    ioctl_int(proxy, SIOCOUTQNSD),
                    wnd,
                    reader.read,
                )
                marks = [
                    "*" if prev is not None and v != p else " "
                    for v, p in zip(row, prev or row)
                ]
                for key, mark in zip(("sent", "acked", "outq", "nsd", "wnd", "read"), marks):
                    if mark == "*":
                        last_moves[key] = now - start
                        if key == "acked":
                            acked_moves.append(now - start)
                print(
                    f"{now - start:5.1f} {row[0]:>10}{marks[0]}{row[1]!s:>10}{marks[1]}"
                    f"{row[2]:>9}{marks[2]}{row[3]:>8}{marks[3]}{row[4]!s:>8}{marks[4]}"
                    f"{row[5]:>7}{marks[5]}"
                )
                prev = row
            time.sleep(0.005)
        acked, _ = tcp_info(proxy)
        outq = ioctl_int(proxy, TIOCOUTQ)
        ends = [0.0, *acked_moves, seconds]
        gaps = [b - a for a, b in zip(ends, ends[1:])]
        summary: dict[str, object] = {
            "absorbed": sent - reader.read,
            "proxy send queue": outq,
            "reader rcvbuf": (acked or 0) - reader.read,
            "read": reader.read,
            "acked moves": len(acked_moves),
            "longest time acked stood still (s)": round(max(gaps), 1),
        }
        print(
            f"-- absorbed by the kernel: {sent - reader.read} bytes "
            f"(proxy send queue {outq}, reader's receive buffer "
            f"{(acked or 0) - reader.read}); acked moved at "
            f"{[round(t, 1) for t in acked_moves]}"
        )
        return summary


def main() -> None:
    if sys.argv[1:2] == ["--1k"]:
        # Opt-in, about 160 s: readers of 1 KiB/s over loopback's MSS and
        # Ethernet's, to see how long bytes_acked stands still.
        global SAMPLE
        SAMPLE = 2.0
        for mss in (None, 1448):
            print(run_case(f"reads 1 KiB every 1 s, MSS {mss or 'of lo'}", make_slow(1.0), 80, None, mss))
        return
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 6.0
    for path in ("/proc/sys/net/ipv4/tcp_wmem", "/proc/sys/net/ipv4/tcp_rmem"):
        try:
            with open(path) as f:
                print(f"{path}: {f.read().split()}")
        except OSError:
            pass
    slow = seconds + 2  # loopback's first window update comes after ~6.4 s
    cases = [
        ("1. never reads", never, seconds, None, None),
        ("2. reads 1 KiB every 100 ms", make_slow(), slow, None, None),
        ("3. reads 64 KiB, then stops", first_64k, seconds, None, None),
        ("4. reads 1 KiB every 100 ms, MSS 1448", make_slow(), seconds, None, 1448),
        ("5. never reads, MSS 1448", never, seconds / 2, None, 1448),
        ("6. never reads, proxy SO_SNDBUF=64 KiB", never, seconds / 2, 65536, None),
    ]
    results = {
        name: run_case(name, policy, secs, buf, mss)
        for name, policy, secs, buf, mss in cases
    }
    print("\n== summary")
    for name, r in results.items():
        print(f"{name}: {r}")


if __name__ == "__main__":
    main()
