"""Twisted's own twisted.web.proxy.ReverseProxyResource, as the benchmark's baseline proxy."""

import sys

from twisted.internet import reactor
from twisted.web.proxy import ReverseProxyResource
from twisted.web.server import Site


def main() -> None:
    listen_port, backend_port = int(sys.argv[1]), int(sys.argv[2])
    site = Site(ReverseProxyResource("127.0.0.1", backend_port, b""))
    site.noisy = False
    reactor.listenTCP(listen_port, site, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main()
