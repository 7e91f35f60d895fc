"""twistd plugins: `twistd sillyproxy` for the proxy and `twistd myapp` for the demo backend."""

from twisted.application.service import ServiceMaker

sillyproxy = ServiceMaker(
    "sillyproxy", "sillyproxy.tap", "Blue/green and canary HTTP proxy.", "sillyproxy"
)
myapp = ServiceMaker("myapp", "myapp.tap", "Demo backend for sillyproxy.", "myapp")
