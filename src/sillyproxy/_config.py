"""Read sillyproxy's configuration from an environment mapping and the command line."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from attrs import frozen

__all__ = [
    "Backend",
    "ConfigError",
    "ConfigProblem",
    "DEFAULT_COLORS",
    "DEFAULT_LISTEN",
    "MAX_WEIGHT",
    "ProxyConfig",
    "parse_backend_url",
    "parse_config",
    "parse_weight",
]

DEFAULT_COLORS: tuple[str, ...] = ("blue", "green")
DEFAULT_LISTEN = "tcp:8080"
MAX_WEIGHT = 1_000_000

LISTEN_VARIABLE = "SILLYPROXY_LISTEN"
COLORS_VARIABLE = "SILLYPROXY_COLORS"

_COLOR_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_DIGITS = re.compile(r"[0-9]+\Z")
_HOST_NAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\Z")
# Suffixes that a colour's own settings use; a colour with such a name would
# make one variable mean two things.
_RESERVED_SUFFIXES = ("_WEIGHT", "_HEALTH")


@frozen
class ConfigProblem:
    """One bad setting: which variable, what it held, and why it is refused."""

    variable: str
    value: str | None
    reason: str

    def __str__(self) -> str:
        if self.value is None:
            return f"{self.variable}: {self.reason}"
        return f"{self.variable}={self.value!r}: {self.reason}"


class ConfigError(ValueError):
    """The configuration is unusable; C{problems} lists every reason at once."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


@frozen
class Backend:
    """A served colour: where its backend lives and how much traffic it gets."""

    color: str
    url: str
    weight: int
    # b"http://host:port", what Agent needs to reach the backend.
    origin: bytes
    # The raw base path, percent-encoding untouched; b"" when there is none.
    base_path: bytes


@frozen
class ProxyConfig:
    """Everything the proxy needs to start, already validated."""

    listen: str
    backends: tuple[Backend, ...]
    # Colours that were declared but have no URL, so are not served.
    unserved: tuple[str, ...]

    @property
    def total_weight(self) -> int:
        return sum(backend.weight for backend in self.backends)


def parse_backend_url(text: str) -> tuple[bytes, bytes]:
    """
    Split a backend base URL into its origin and raw base path.

    @raise ValueError: with a short reason if the URL cannot be a backend.
    """
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise ValueError("contains whitespace or control characters")
    if not text.isascii():
        raise ValueError("must be ASCII (percent-encode the path, use punycode hosts)")
    try:
        parts = urlsplit(text)
    except ValueError:
        # urlsplit checks bracketed hosts itself.
        raise ValueError("host is not a valid IPv6 address") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("scheme must be http or https")
    if "@" in parts.netloc:
        raise ValueError("userinfo (user:password@) is not allowed")
    if "?" in text:
        raise ValueError("a query is not allowed")
    if "#" in text:
        raise ValueError("a fragment is not allowed")
    host = parts.hostname
    if not host:
        raise ValueError("host is missing")
    if parts.netloc.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError("host is not a valid IPv6 address") from None
    elif not _HOST_NAME.match(host):
        raise ValueError("host is not a valid host name")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("port must be a number from 1 to 65535") from None
    if port == 0:
        raise ValueError("port must be a number from 1 to 65535")
    origin = f"{parts.scheme}://{parts.netloc}".encode("ascii")
    return origin, parts.path.encode("ascii")


def parse_weight(text: str) -> int:
    """
    Parse a colour weight: a whole number from 0 to L{MAX_WEIGHT}.

    @raise ValueError: with a short reason.
    """
    stripped = text.strip()
    if not _DIGITS.match(stripped):
        raise ValueError("not an integer")
    weight = int(stripped)
    if weight > MAX_WEIGHT:
        raise ValueError(f"must be from 0 to {MAX_WEIGHT}")
    return weight


def _check_color_name(name: str) -> str | None:
    """Return why C{name} cannot be a colour, or None if it can."""
    if not _COLOR_NAME.match(name):
        return "a colour name is a letter followed by letters, digits or _"
    upper = name.upper()
    if upper.startswith("SILLYPROXY"):
        return "a colour name may not start with SILLYPROXY"
    for suffix in _RESERVED_SUFFIXES:
        if upper.endswith(suffix):
            return f"a colour name may not end with {suffix}"
    return None


def _declared_colors(
    environ: Mapping[str, str],
    arguments: Iterable[str],
    problems: list[ConfigProblem],
) -> list[str]:
    named: list[tuple[str, str]] = [("default", c) for c in DEFAULT_COLORS]
    named += [("COLOR argument", a) for a in arguments]
    listed = environ.get(COLORS_VARIABLE, "")
    named += [
        (COLORS_VARIABLE, item.strip()) for item in listed.split(",") if item.strip()
    ]
    colors: list[str] = []
    for source, name in named:
        reason = _check_color_name(name)
        if reason is not None:
            problems.append(ConfigProblem(source, name, reason))
        elif name.lower() not in colors:
            colors.append(name.lower())
    return colors


def parse_config(
    environ: Mapping[str, str],
    arguments: Sequence[str] = (),
    listen: str | None = None,
    check_listen: Callable[[str], object] | None = None,
) -> ProxyConfig:
    """
    Build a L{ProxyConfig} from C{environ} and the command line.

    @param arguments: extra colour names given as positional arguments.
    @param listen: the C{--listen} option; if None, C{SILLYPROXY_LISTEN} or
        L{DEFAULT_LISTEN}.
    @param check_listen: called with the endpoint description; raises
        C{ValueError} (or any exception) if it is not usable.  If None, the
        description is not checked.

    @raise ConfigError: naming every bad setting at once.
    """
    problems: list[ConfigProblem] = []

    if listen is None:
        listen_variable = LISTEN_VARIABLE
        listen = environ.get(LISTEN_VARIABLE) or DEFAULT_LISTEN
    else:
        listen_variable = "--listen"
    if check_listen is not None:
        try:
            check_listen(listen)
        except Exception as e:
            problems.append(
                ConfigProblem(listen_variable, listen, f"not a server endpoint ({e})")
            )

    backends: list[Backend] = []
    unserved: list[str] = []
    for color in _declared_colors(environ, arguments, problems):
        url_variable = color.upper()
        weight_variable = f"{url_variable}_WEIGHT"
        url = environ.get(url_variable, "")
        weight_text = environ.get(weight_variable, "")

        weight = 1
        weight_ok = True
        if weight_text:
            try:
                weight = parse_weight(weight_text)
            except ValueError as e:
                weight_ok = False
                problems.append(ConfigProblem(weight_variable, weight_text, str(e)))

        if not url:
            if weight_text and weight_ok:
                problems.append(
                    ConfigProblem(
                        weight_variable,
                        weight_text,
                        f"set, but {url_variable} (the backend URL) is not",
                    )
                )
            unserved.append(color)
            continue
        try:
            origin, base_path = parse_backend_url(url)
        except ValueError as e:
            problems.append(ConfigProblem(url_variable, url, str(e)))
            continue
        backends.append(Backend(color, url, weight, origin, base_path))

    if problems:
        raise ConfigError(problems)
    return ProxyConfig(listen, tuple(backends), tuple(unserved))
