"""Read sillyproxy's configuration from an environment mapping and the command line."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from attrs import frozen

from ._cpus import parse_workers
from ._ramp import Ramp, parse_duration, parse_percentages, parse_rfc3339
from ._sticky import DEFAULT_COOKIE, DEFAULT_MAX_AGE, STICKY_OFF, StickyMode, is_token, parse_sticky
from .override import PASS_COOKIE, parse_secret

__all__ = [
    "Backend",
    "BackendURL",
    "KNOWN_VARIABLES",
    "Tunables",
    "parse_count",
    "parse_fraction",
    "parse_percent",
    "parse_networks",
    "parse_seconds",
    "parse_size",
    "parse_switch",
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
_RESERVED_SUFFIXES = (
    "_WEIGHT",
    "_HEALTH",
    "_RAMP",
    "_RAMP_START",
    "_RAMP_STEP",
    "_ROLLBACK_ERROR_RATE",
    "_MIRROR",
)
# A ramp step's length when C_RAMP_STEP is not set: five minutes.
DEFAULT_RAMP_STEP = 300.0


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
class BackendURL:
    """A backend base URL taken apart."""

    scheme: str
    # The host name or IP address, without IPv6 brackets.
    host: str
    port: int
    # b"http://host:port" as written, what Agent needs to reach the backend.
    origin: bytes
    # The raw base path, percent-encoding untouched; b"" when there is none.
    base_path: bytes


@frozen
class Backend:
    """A served colour: where its backend lives and how much traffic it gets."""

    color: str
    url: str
    weight: int
    location: BackendURL
    # The path that active health checks GET, or None for no active checks.
    health_path: str | None = None
    # The colour's step ramp (C_RAMP), or None; its weight is then 0, as
    # the ramp decides its share.
    ramp: Ramp | None = None
    # The error rate (0 to 1) above which it is rolled back, or None.
    rollback_error_rate: float | None = None
    # The percentage of other colours' requests copied to it, or None.
    mirror_percent: float | None = None

    @property
    def origin(self) -> bytes:
        return self.location.origin

    @property
    def base_path(self) -> bytes:
        return self.location.base_path


KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


@frozen
class Tunables:
    """The proxy-wide SILLYPROXY_* settings, with their defaults."""

    max_body: int = GIB
    dns_refresh: float = 5.0
    backend_keepalive: int = 100
    connect_timeout: float = 5.0
    response_timeout: float = 60.0
    idle_timeout: float = 60.0
    header_timeout: float = 30.0
    drain_timeout: float = 8.0
    health_interval: float = 2.0
    # How long a request body may go without a byte from the client.
    body_timeout: float = 60.0
    # How long a response may make no progress towards the client.
    send_timeout: float = 60.0
    # Peers whose X-Forwarded-*, Forwarded and X-Real-IP are believed.
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    # None: no admin listener.
    admin_listen: str | None = "tcp:9901"
    access_log: str = "text"
    # False: Twisted's own TCP transports, not sillyproxy's batched sends.
    fast_transport: bool = True
    # How long a tunnel (an upgraded connection) may carry no byte either way.
    tunnel_idle_timeout: float = 3600.0
    # What a user is known by, to keep them on one colour.
    sticky: StickyMode = STICKY_OFF
    # The proxy's own cookie, in sticky cookie mode.
    sticky_cookie: bytes = DEFAULT_COOKIE
    # Keys the hash from a sticky key to its colour; None: unkeyed.
    sticky_secret: bytes | None = None
    # The sticky cookie's Max-Age, in seconds.
    sticky_max_age: int = DEFAULT_MAX_AGE
    # None: tester override passes are off (and ignored).
    override_secret: bytes | None = None
    # The sliding window over which rollback judges a colour's error rate.
    analysis_window: float = 30.0
    # How many of a colour's requests the window must hold before it is judged.
    analysis_min_requests: int = 20
    # Whether /healthz fails once a colour has been rolled back.
    rollback_healthz: bool = False
    # Mirrored copies in flight at most; more are dropped.
    mirror_max_inflight: int = 100
    # Worker processes serving the listeners; None: one per usable CPU (auto).
    workers: int | None = 1


@frozen
class ProxyConfig:
    """Everything the proxy needs to start, already validated."""

    # The server endpoint descriptions to listen on, at least one, in order.
    listen: tuple[str, ...]
    backends: tuple[Backend, ...]
    # Colours that were declared but have no URL, so are not served.
    unserved: tuple[str, ...]
    tunables: Tunables = Tunables()

    @property
    def total_weight(self) -> int:
        return sum(backend.weight for backend in self.backends)


def parse_backend_url(text: str) -> BackendURL:
    """
    Take a backend base URL apart, keeping its path's bytes as they are.

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
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    origin = f"{parts.scheme}://{parts.netloc}".encode("ascii")
    return BackendURL(parts.scheme, host, port, origin, parts.path.encode("ascii"))


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


def parse_seconds(text: str) -> float:
    """Parse a duration in seconds: a positive, finite number such as C{5} or C{0.5}."""
    try:
        seconds = float(text.strip())
    except ValueError:
        raise ValueError("not a number of seconds") from None
    if not (0 < seconds <= 86400):
        raise ValueError("must be more than 0 and at most 86400 seconds")
    return seconds


_SIZE_SUFFIXES = {"": 1, "K": KIB, "M": MIB, "G": GIB}


def parse_size(text: str) -> int:
    """Parse a size in bytes, optionally with a binary suffix: C{1048576}, C{512K}, C{1G}."""
    stripped = text.strip().upper().removesuffix("B").removesuffix("I")
    number, suffix = stripped, ""
    if stripped[-1:] in ("K", "M", "G"):
        number, suffix = stripped[:-1], stripped[-1]
    if not _DIGITS.match(number):
        raise ValueError("not a size (bytes, or a number with K, M or G)")
    size = int(number) * _SIZE_SUFFIXES[suffix]
    if size > 1024 * GIB:
        raise ValueError("must be at most 1024G")
    return size


def parse_count(text: str) -> int:
    """Parse a whole number from 0 to 100,000."""
    stripped = text.strip()
    # The length first: int() refuses thousands of digits with its own message.
    if len(stripped) > 6 or not _DIGITS.match(stripped) or int(stripped) > 100_000:
        raise ValueError("must be a whole number from 0 to 100000")
    return int(stripped)


def _parse_network(item: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if "%" in item:
        # A zone names an interface on this host, not a range of peers.
        raise ValueError(f"{item!r} has a zone (%); zones are not allowed")
    try:
        return ipaddress.ip_network(item)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(item, strict=False)
    except ValueError:
        raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
    # Refused, where nginx's set_real_ip_from masks it with a warning: it may
    # be a typo for 10.0.0.1/32, and trusting a whole /8 by mistake lets
    # anyone in it claim any client address.
    raise ValueError(f"{item!r} has host bits set; did you mean {loose}?")


def parse_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """
    Parse a comma-separated list of CIDR networks (C{10.0.0.0/8, 2001:db8::/32});
    a bare address is a network of one (/32 or /128).

    @raise ValueError: naming every bad item, including empty ones.
    """
    networks = []
    reasons = []
    for item in text.split(","):
        item = item.strip()
        try:
            if not item:
                # Other lists skip these, but this one grants trust: a stray
                # comma may be where an address was meant to go.
                raise ValueError("an empty item (two commas, or one at an end)")
            networks.append(_parse_network(item))
        except ValueError as e:
            if str(e) not in reasons:
                reasons.append(str(e))
    if reasons:
        raise ValueError("; ".join(reasons))
    return tuple(networks)


def _parse_number(text: str, high: float, not_a_number: str, out_of_range: str) -> float:
    """A number from 0 to C{high} (the range check refuses nan and inf too)."""
    try:
        number = float(text.strip())
    except ValueError:
        raise ValueError(not_a_number) from None
    if not 0 <= number <= high:
        raise ValueError(out_of_range)
    return number


def parse_fraction(text: str) -> float:
    """Parse a fraction from 0 to 1, such as C{0.05}."""
    return _parse_number(text, 1, "not a number", "must be a fraction from 0 to 1")


def parse_percent(text: str) -> float:
    """Parse a percentage from 0 to 100, decimals allowed, such as C{12.5}."""
    return _parse_number(
        text,
        100,
        "not a percentage (a number from 0 to 100)",
        "must be a percentage from 0 to 100",
    )


def _parse_window(text: str) -> float:
    # Under a second, the window's thirtieths would be finer than any
    # request's timing, and a tiny one would overflow the slot arithmetic.
    seconds = _parse_number(text, 86400, "not a number of seconds", "must be from 1 to 86400 seconds")
    if seconds < 1:
        raise ValueError("must be from 1 to 86400 seconds")
    return seconds


def _parse_positive_count(text: str) -> int:
    stripped = text.strip()
    # The length first: int() refuses thousands of digits with its own message.
    if len(stripped) > 6 or not _DIGITS.match(stripped) or not 1 <= int(stripped) <= 100_000:
        raise ValueError("must be a whole number from 1 to 100000")
    return int(stripped)


def _parse_admin_listen(text: str) -> str | None:
    description = text.strip()
    return None if description.lower() == "none" else description


def parse_switch(text: str) -> bool:
    """Parse an on/off setting: C{1}, C{true}, C{yes}, C{on} or C{0}, C{false}, C{no}, C{off}."""
    word = text.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be 1 or 0")


def _parse_access_log(text: str) -> str:
    mode = text.strip().lower()
    if mode not in ("text", "json", "off"):
        raise ValueError("must be text, json or off")
    return mode


def _parse_health_path(text: str) -> str:
    path = text.strip()
    if not path.startswith("/") or any(ch.isspace() for ch in path) or not path.isascii():
        raise ValueError("must be an ASCII path starting with /")
    return path


def _parse_cookie_name(text: str) -> bytes:
    name = text.strip()
    if not is_token(name):
        raise ValueError("not a cookie name (letters, digits and !#$%&'*+-.^_`|~)")
    cookie_name = name.encode("ascii")
    if cookie_name == PASS_COOKIE:
        # The forwarder takes that cookie off every request, so the key
        # would never reach the backend, and a pass would be read as a key.
        raise ValueError("is the override pass's cookie, which is taken off every request")
    return cookie_name


# Max-Age's upper bound: what a signed 32-bit number holds; browsers cap
# it at 400 days anyway (RFC 6265bis).
_MAX_MAX_AGE = 2**31 - 1


def _parse_max_age(text: str) -> int:
    stripped = text.strip()
    # The length first: int() of thousands of digits is refused with a
    # message about int() itself.
    if (
        len(stripped) > 10
        or not _DIGITS.match(stripped)
        or not 1 <= int(stripped) <= _MAX_MAX_AGE
    ):
        # 0 would make browsers drop the cookie at once: no user would stick.
        raise ValueError(f"must be a whole number of seconds from 1 to {_MAX_MAX_AGE}")
    return int(stripped)


# (attribute of Tunables, variable, parser)
_TUNABLES: tuple[tuple[str, str, Callable[[str], object]], ...] = (
    ("max_body", "SILLYPROXY_MAX_BODY", parse_size),
    ("dns_refresh", "SILLYPROXY_DNS_REFRESH", parse_seconds),
    ("backend_keepalive", "SILLYPROXY_BACKEND_KEEPALIVE", parse_count),
    ("connect_timeout", "SILLYPROXY_CONNECT_TIMEOUT", parse_seconds),
    ("response_timeout", "SILLYPROXY_RESPONSE_TIMEOUT", parse_seconds),
    ("idle_timeout", "SILLYPROXY_IDLE_TIMEOUT", parse_seconds),
    ("header_timeout", "SILLYPROXY_HEADER_TIMEOUT", parse_seconds),
    ("drain_timeout", "SILLYPROXY_DRAIN_TIMEOUT", parse_seconds),
    ("health_interval", "SILLYPROXY_HEALTH_INTERVAL", parse_seconds),
    ("body_timeout", "SILLYPROXY_BODY_TIMEOUT", parse_seconds),
    ("send_timeout", "SILLYPROXY_SEND_TIMEOUT", parse_seconds),
    ("trusted_proxies", "SILLYPROXY_TRUSTED_PROXIES", parse_networks),
    ("admin_listen", "SILLYPROXY_ADMIN_LISTEN", _parse_admin_listen),
    ("access_log", "SILLYPROXY_ACCESS_LOG", _parse_access_log),
    ("fast_transport", "SILLYPROXY_FAST_TRANSPORT", parse_switch),
    ("tunnel_idle_timeout", "SILLYPROXY_TUNNEL_IDLE_TIMEOUT", parse_seconds),
    ("sticky", "SILLYPROXY_STICKY", parse_sticky),
    ("sticky_cookie", "SILLYPROXY_STICKY_COOKIE", _parse_cookie_name),
    # Both secrets are read as `python -m sillyproxy.override` reads its
    # own, so that the passes it prints are the ones the proxy accepts.
    ("sticky_secret", "SILLYPROXY_STICKY_SECRET", parse_secret),
    ("sticky_max_age", "SILLYPROXY_STICKY_MAX_AGE", _parse_max_age),
    ("override_secret", "SILLYPROXY_OVERRIDE_SECRET", parse_secret),
    ("analysis_window", "SILLYPROXY_ANALYSIS_WINDOW", _parse_window),
    ("analysis_min_requests", "SILLYPROXY_ANALYSIS_MIN_REQUESTS", _parse_positive_count),
    ("rollback_healthz", "SILLYPROXY_ROLLBACK_HEALTHZ", parse_switch),
    ("mirror_max_inflight", "SILLYPROXY_MIRROR_MAX_INFLIGHT", _parse_positive_count),
    ("workers", "SILLYPROXY_WORKERS", parse_workers),
)

KNOWN_VARIABLES: frozenset[str] = frozenset(
    [LISTEN_VARIABLE, COLORS_VARIABLE] + [variable for _, variable, _ in _TUNABLES]
)


def _setting(environ: Mapping[str, str], variable: str) -> str:
    """The variable's value, or "" when it is unset, empty or only whitespace (all the same)."""
    text = environ.get(variable, "")
    return text if text.strip() else ""


def _parse_tunables(
    environ: Mapping[str, str], problems: list[ConfigProblem]
) -> Tunables:
    values: dict[str, object] = {}
    for attribute, variable, parse in _TUNABLES:
        text = _setting(environ, variable)
        if not text:
            continue
        try:
            values[attribute] = parse(text)
        except ValueError as e:
            problems.append(ConfigProblem(variable, text, str(e)))
    return Tunables(**values)  # type: ignore[arg-type]


def _parse_ramp(
    environ: Mapping[str, str], prefix: str, weight_given: bool, problems: list[ConfigProblem]
) -> Ramp | None:
    """The colour's C{PREFIX_RAMP}, C{_RAMP_START} and C{_RAMP_STEP}, or None when it does not ramp."""
    variable = f"{prefix}_RAMP"
    start_variable = f"{variable}_START"
    step_variable = f"{variable}_STEP"
    text = _setting(environ, variable)
    start_text = _setting(environ, start_variable)
    step_text = _setting(environ, step_variable)
    if not text:
        for other, other_text in ((start_variable, start_text), (step_variable, step_text)):
            if other_text:
                problems.append(ConfigProblem(other, other_text, f"set, but {variable} is not"))
        return None
    count = len(problems)
    if weight_given:
        problems.append(
            ConfigProblem(
                variable,
                text,
                f"a ramping colour's share comes from its ramp: unset {prefix}_WEIGHT",
            )
        )
    percents: tuple[float, ...] = ()
    try:
        percents = parse_percentages(text)
    except ValueError as e:
        problems.append(ConfigProblem(variable, text, str(e)))
    start = 0.0
    if not start_text:
        problems.append(ConfigProblem(start_variable, None, f"required with {variable}"))
    else:
        try:
            start = parse_rfc3339(start_text)
        except ValueError as e:
            problems.append(ConfigProblem(start_variable, start_text, str(e)))
    step = _parse_optional(environ, step_variable, parse_duration, problems)
    if len(problems) > count:
        return None
    return Ramp(percents, start, DEFAULT_RAMP_STEP if step is None else step)


def _parse_optional(
    environ: Mapping[str, str],
    variable: str,
    parse: Callable[[str], float],
    problems: list[ConfigProblem],
) -> float | None:
    text = _setting(environ, variable)
    if not text:
        return None
    try:
        return parse(text)
    except ValueError as e:
        problems.append(ConfigProblem(variable, text, str(e)))
        return None


def parse_config(
    environ: Mapping[str, str],
    arguments: Sequence[str] = (),
    listen: str | Sequence[str] | None = None,
    check_listen: Callable[[str], object] | None = None,
) -> ProxyConfig:
    """
    Build a L{ProxyConfig} from C{environ} and the command line.

    @param arguments: extra colour names given as positional arguments.
    @param listen: the C{--listen} options, one description each (a string
        is one description); if None or empty, the descriptions in
        C{SILLYPROXY_LISTEN}, separated by whitespace, or L{DEFAULT_LISTEN}.
    @param check_listen: called with each server endpoint description (the
        proxy's and the admin listener's); raises C{ValueError} (or any
        exception) if it is not usable.  If None, nothing is checked.

    @raise ConfigError: naming every bad setting at once.
    """
    problems: list[ConfigProblem] = []

    if isinstance(listen, str):
        listen = (listen,)
    if listen:
        listen_variable = "--listen"
        descriptions = tuple(listen)
    else:
        listen_variable = LISTEN_VARIABLE
        descriptions = tuple(_setting(environ, LISTEN_VARIABLE).split()) or (DEFAULT_LISTEN,)
    tunables = _parse_tunables(environ, problems)
    for index, description in enumerate(descriptions):
        if description in descriptions[:index] and description not in descriptions[index + 1 :]:
            # Once per repeated description: the second listen would fail
            # with "address in use", or worse, succeed (reuseport:).
            problems.append(ConfigProblem(listen_variable, description, "listed more than once"))
    if check_listen is not None:
        endpoints = [(listen_variable, description) for description in dict.fromkeys(descriptions)]
        if tunables.admin_listen is not None:
            endpoints.append(("SILLYPROXY_ADMIN_LISTEN", tunables.admin_listen))
        for variable, description in endpoints:
            try:
                check_listen(description)
            except Exception as e:
                problems.append(
                    ConfigProblem(variable, description, f"not a server endpoint ({e})")
                )

    backends: list[Backend] = []
    unserved: list[str] = []
    # The colours with a ramp, in declaration order.
    ramping: list[str] = []
    for color in _declared_colors(environ, arguments, problems):
        url_variable = color.upper()
        weight_variable = f"{url_variable}_WEIGHT"
        health_variable = f"{url_variable}_HEALTH"
        url = _setting(environ, url_variable)
        weight_text = _setting(environ, weight_variable)
        health_text = _setting(environ, health_variable)

        weight = 1
        weight_ok = True
        if weight_text:
            try:
                weight = parse_weight(weight_text)
            except ValueError as e:
                weight_ok = False
                problems.append(ConfigProblem(weight_variable, weight_text, str(e)))
        health_path = None
        if health_text:
            try:
                health_path = _parse_health_path(health_text)
            except ValueError as e:
                problems.append(ConfigProblem(health_variable, health_text, str(e)))

        rollback_variable = f"{url_variable}_ROLLBACK_ERROR_RATE"
        mirror_variable = f"{url_variable}_MIRROR"
        if not url:
            for variable, text, ok in (
                (weight_variable, weight_text, weight_ok),
                (health_variable, health_text, health_path is not None),
            ):
                if text and ok:
                    problems.append(
                        ConfigProblem(
                            variable, text, f"set, but {url_variable} (the backend URL) is not"
                        )
                    )
            for variable in (
                f"{url_variable}_RAMP",
                f"{url_variable}_RAMP_START",
                f"{url_variable}_RAMP_STEP",
                rollback_variable,
                mirror_variable,
            ):
                text = _setting(environ, variable)
                if text:
                    problems.append(
                        ConfigProblem(
                            variable, text, f"set, but {url_variable} (the backend URL) is not"
                        )
                    )
            unserved.append(color)
            continue
        ramp_text = _setting(environ, f"{url_variable}_RAMP")
        if ramp_text:
            if ramping:
                problems.append(
                    ConfigProblem(
                        f"{url_variable}_RAMP",
                        ramp_text,
                        f"only one colour may ramp at a time ({ramping[0].upper()}_RAMP is set too)",
                    )
                )
            ramping.append(color)
        ramp = _parse_ramp(environ, url_variable, bool(weight_text), problems)
        if ramp is not None:
            weight = 0
        rollback_error_rate = _parse_optional(environ, rollback_variable, parse_fraction, problems)
        mirror_percent = _parse_optional(environ, mirror_variable, parse_percent, problems)
        try:
            location = parse_backend_url(url)
        except ValueError as e:
            problems.append(ConfigProblem(url_variable, url, str(e)))
            continue
        backends.append(
            Backend(
                color,
                url,
                weight,
                location,
                health_path,
                ramp=ramp,
                rollback_error_rate=rollback_error_rate,
                mirror_percent=mirror_percent,
            )
        )

    ramps = [b for b in backends if b.ramp is not None]
    if len(ramping) == 1 and ramps and not any(b.weight for b in backends if b.ramp is None):
        # The others share what the ramp leaves by their weights: with none,
        # every request would go to the ramping colour or get a 502.
        problems.append(
            ConfigProblem(
                f"{ramps[0].color.upper()}_RAMP",
                _setting(environ, f"{ramps[0].color.upper()}_RAMP"),
                "no other colour has a weight above 0 to take the rest of the traffic",
            )
        )
    if problems:
        raise ConfigError(problems)
    return ProxyConfig(descriptions, tuple(backends), tuple(unserved), tunables)
