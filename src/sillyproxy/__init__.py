"""sillyproxy: an edge HTTP proxy that splits traffic between colours by weight."""

from ._config import (
    Backend,
    ConfigError,
    ConfigProblem,
    ProxyConfig,
    parse_config,
)
from ._forward import ForwardingResource
from ._routing import Router
from ._selection import WeightedChooser
from ._site import ProxySite

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "ConfigError",
    "ConfigProblem",
    "ForwardingResource",
    "ProxyConfig",
    "ProxySite",
    "Router",
    "WeightedChooser",
    "__version__",
    "parse_config",
]
