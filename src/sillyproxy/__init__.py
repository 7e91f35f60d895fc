"""sillyproxy: an edge HTTP proxy that splits traffic between colours by weight.

The public names are imported on first use (PEP 562), not here: the image's
HEALTHCHECK runs `python -m sillyproxy.healthcheck` every few seconds, and
importing this package must not pull in Twisted for it.
"""

from __future__ import annotations

from importlib import import_module

# Not typing.TYPE_CHECKING: importing typing would cost the probe ~10 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._config import Backend, ConfigError, ConfigProblem, ProxyConfig, parse_config
    from ._forward import ForwardingResource
    from ._routing import Router
    from ._selection import WeightedChooser
    from ._site import ProxySite

    __version__: str

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

_MODULE_OF = {
    "Backend": "._config",
    "ConfigError": "._config",
    "ConfigProblem": "._config",
    "ProxyConfig": "._config",
    "parse_config": "._config",
    "ForwardingResource": "._forward",
    "Router": "._routing",
    "WeightedChooser": "._selection",
    "ProxySite": "._site",
}

# What __version__ is when the distribution's metadata cannot be found
# (running from a source tree that was never installed): a valid PEP 440
# version that no release will ever have.
_UNKNOWN_VERSION = "0+unknown"


def _installed_version() -> str:
    # pyproject.toml is the one place the version is written; installing the
    # project copies it into the distribution's metadata, read here.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sillyproxy")
    except PackageNotFoundError:
        return _UNKNOWN_VERSION


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _installed_version()
    elif name in _MODULE_OF:
        value = getattr(import_module(_MODULE_OF[name], __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # Cache it: later lookups find the global and never come back here.
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
