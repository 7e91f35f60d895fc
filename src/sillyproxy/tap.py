"""The twistd plugin's options and service: the one place that picks real collaborators."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from twisted.application.service import IService
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import ReactorNotRunning
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.internet.task import Cooperator
from twisted.logger import Logger
from twisted.python import usage

from . import __version__
from ._accesslog import AccessLog, AccessRecord
from ._admin import AdminSite, admin_resource
from ._canary import Canary
from ._config import ConfigError, ConfigProblem, ProxyConfig, parse_config
from ._coordination import Coordinator, WorkerClient, internal_resource
from ._cpus import available_cpus
from ._forward import ForwardingResource
from ._health import HealthChecker
from ._lifecycle import ProxyService, tune_garbage_collector
from ._metrics import ProxyMetrics, registry_with_process_metrics
from ._mirror import Mirror
from ._pool import backend_address_factory
from ._routing import Router
from ._site import ProxySite
from ._timestamps import rfc3339
from ._tls import TLSListeners
from ._transport import FastTCPReactor, install_fast_poll
from ._supervisor import Supervisor, parse_tcp_listener
from ._supervisor_admin import supervisor_admin
from ._upstream import ResolvingUpstream
from ._worker import AdoptedEndpoint, WorkerRole, watch_parent, worker_role

__all__ = ["Options", "makeService", "routing_table", "workers_to_run"]

_log = Logger(namespace="sillyproxy")

class Options(usage.Options):
    synopsis = "[--listen ENDPOINT ...] [COLOR ...]"
    longdesc = (
        "Forward HTTP traffic to the colours' backends, split by weight. "
        "Colours are blue, green, any COLOR given here, and the comma-separated "
        "SILLYPROXY_COLORS. For each colour C, env C is its backend URL and "
        "C_WEIGHT its weight (default 1)."
    )
    optFlags = [
        [
            "check",
            None,
            "Check the configuration, print the routing table, and exit: "
            "0 if it is valid, 2 if not.",
        ],
    ]

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        stderr: TextIO | None = None,
        stdout: TextIO | None = None,
    ) -> None:
        super().__init__()
        self._environ = os.environ if environ is None else environ
        self._stderr = stderr
        self._stdout = stdout
        self["colors"] = ()
        self["listen"] = []

    def opt_listen(self, description: str) -> None:
        """
        Server endpoint to listen on; repeat for several (default: the
        space-separated $SILLYPROXY_LISTEN, else tcp:8080).
        """
        self["listen"].append(description)

    opt_l = opt_listen

    def opt_version(self) -> None:
        """Print sillyproxy's version and exit."""
        stdout = self._stdout if self._stdout is not None else sys.stdout
        stdout.write(f"sillyproxy {__version__}\n")
        stdout.flush()
        raise SystemExit(0)

    @property
    def environ(self) -> Mapping[str, str]:
        """The environment the configuration was read from (the workers get the same)."""
        return self._environ

    def parseArgs(self, *colors: str) -> None:
        self["colors"] = colors

    def postOptions(self) -> None:
        from twisted.internet import reactor

        try:
            self["config"] = parse_config(
                self._environ,
                self["colors"],
                self["listen"] or None,
                check_listen=lambda description: serverFromString(reactor, description),
            )
            self["worker"] = worker_role(self._environ)
            self["workers"] = workers_to_run(self["config"], self["worker"])
        except ConfigError as e:
            # Not a UsageError: twistd would bury the message under its own
            # help text.  Bad settings are the operator's to fix, so name them.
            stderr = self._stderr if self._stderr is not None else sys.stderr
            stderr.write("sillyproxy: invalid configuration, not starting:\n")
            for problem in e.problems:
                stderr.write(f"  {problem}\n")
            stderr.flush()
            raise SystemExit(2) from None
        if self["check"]:
            stdout = self._stdout if self._stdout is not None else sys.stdout
            listen = " ".join(self["config"].listen)
            stdout.write(f"sillyproxy: configuration OK; listening on {listen}\n")
            for line in routing_table(self["config"]):
                stdout.write(f"  {line}\n")
            stdout.flush()
            raise SystemExit(0)


def workers_to_run(config: ProxyConfig, role: WorkerRole | None) -> int:
    """
    How many workers this process runs: 1 (it serves, alone or as a worker),
    or more (it supervises).  C{auto} counts the usable CPUs now, and is 1
    when a listener cannot be shared (TLS, UNIX, systemd).

    @raise ConfigError: for a number above 1 with listeners workers cannot share.
    """
    if role is not None:
        return 1
    wanted = config.tunables.workers
    count = available_cpus() if wanted is None else wanted
    unshared = [d for d in config.listen if parse_tcp_listener(d) is None]
    if count > 1 and unshared:
        if wanted is None:
            _log.warn(
                "SILLYPROXY_WORKERS=auto: one process, since workers cannot share {listeners} yet",
                listeners=", ".join(unshared),
            )
            return 1
        raise ConfigError(
            [
                ConfigProblem(
                    "SILLYPROXY_WORKERS",
                    str(wanted),
                    f"{count} workers share tcp:, tcp6: and reuseport: listeners only, "
                    f"not {', '.join(unshared)}",
                )
            ]
        )
    return count


def routing_table(config: ProxyConfig) -> list[str]:
    """Describe who gets what share of traffic, one line per colour."""
    total = config.total_weight
    ramping = [b for b in config.backends if b.ramp is not None]
    lines = []
    for backend in config.backends:
        ramp = backend.ramp
        if ramp is not None:
            percents = ", ".join(f"{p:g}%" for p in ramp.percents)
            lines.append(
                f"{backend.color:<8} {backend.url}  ramp {percents} from {rfc3339(ramp.start)}, "
                f"a step every {ramp.step:g}s"
            )
            continue
        share = 100.0 * backend.weight / total if total else 0.0
        line = f"{backend.color:<8} {backend.url}  weight {backend.weight}  share {share:.1f}%"
        if ramping:
            line += f" of what {ramping[0].color}'s ramp leaves"
        lines.append(line)
    for color in config.unserved:
        lines.append(f"{color:<8} not served: {color.upper()} is not set")
    if total == 0 and not ramping:
        lines.append("no colour has a weight above 0: every request gets 502")
    tunables = config.tunables
    for backend in config.backends:
        if backend.rollback_error_rate is not None:
            lines.append(
                f"{backend.color} is rolled back if over {tunables.analysis_window:g}s "
                f"(at least {tunables.analysis_min_requests} requests) more than "
                f"{backend.rollback_error_rate:g} of its requests fail"
            )
        if backend.mirror_percent:
            lines.append(
                f"{backend.color} gets a copy of {backend.mirror_percent:g}% of the other "
                "colours' requests (answers thrown away)"
            )
    if tunables.sticky.kind != "off":
        lines.append(f"sticky by {tunables.sticky.describe()}")
        if tunables.sticky_secret is None:
            lines.append(
                "SILLYPROXY_STICKY_SECRET is not set: sticky colours come from an unkeyed "
                "hash, so a client can predict which colour a key gets"
            )
    if tunables.override_secret is not None:
        lines.append("tester overrides on (Sillyproxy-Color header or sillyproxy-color cookie)")
    return lines


def makeService(options: Options, reactor: Any = None) -> IService:
    """
    Build the proxy from parsed options, using the real reactor (unless a
    test passes another), resolver and randomness.
    """
    if reactor is None:
        from twisted.internet import reactor

    config: ProxyConfig = options["config"]
    tunables = config.tunables
    if options.get("workers", 1) > 1:
        return make_supervisor(options, reactor)
    role: WorkerRole | None = options.get("worker")
    # Of a replica's workers, only worker 0 probes; the supervisor passes
    # its verdicts on to the others.
    probes = role is None or role.index == 0
    # The batched-send transports, or (SILLYPROXY_FAST_TRANSPORT=0)
    # Twisted's own, should a Twisted release disagree with them.
    tcp = FastTCPReactor(reactor) if tunables.fast_transport else reactor
    if tunables.fast_transport:
        install_fast_poll(reactor)
    upstreams = [
        ResolvingUpstream(
            backend,
            reactor.nameResolver,
            reactor,
            backend_address_factory(
                reactor,
                backend.location,
                keepalive=tunables.backend_keepalive,
                connect_timeout=tunables.connect_timeout,
                connect_reactor=tcp,
            ),
            refresh=tunables.dns_refresh,
            health_check=(
                HealthChecker(backend.health_path, tunables.health_interval, reactor)
                if backend.health_path is not None and probes
                else None
            ),
        )
        for backend in config.backends
    ]
    router = Router(
        config.backends,
        {u.backend.color: u for u in upstreams},
        random.Random().randrange,
        sticky_secret=tunables.sticky_secret or b"",
    )
    canary = Canary(
        config.backends,
        router,
        reactor,
        tunables.analysis_window,
        tunables.analysis_min_requests,
        # A worker counts; its supervisor judges the replica's traffic.
        decide=role is None,
    )
    rollout = canary.rollout
    # The copies' bodies are sent by their own cooperator, so that they
    # never take time slices from the clients' uploads.
    mirror_cooperator = Cooperator()
    draw = random.Random().randrange
    mirrors = [
        Mirror(
            backend,
            backend.mirror_percent,
            router.upstreams[backend.color],
            reactor,
            mirror_cooperator,
            draw,
            tunables.mirror_max_inflight,
            tunables.response_timeout,
        )
        for backend in config.backends
        if backend.mirror_percent
    ]
    metrics = ProxyMetrics(
        registry_with_process_metrics(),
        router,
        __version__,
        lambda: {
            "client": len(site.channels),
            "backend": sum(u.idle_connections() for u in upstreams),
        },
        reactor.seconds,
        rolled_back=rollout.rolled_back,
        mirrors=mirrors,
    )
    access_log = AccessLog(reactor, tunables.access_log)

    def finished(record: AccessRecord) -> None:
        metrics.observe(record)
        access_log(record)
        canary.observe(record)

    site = ProxySite(
        ForwardingResource(
            router,
            reactor,
            finished,
            response_timeout=tunables.response_timeout,
            idle_timeout=tunables.idle_timeout,
            send_timeout=tunables.send_timeout,
            tunnel_idle_timeout=tunables.tunnel_idle_timeout,
            metrics=metrics,
            trusted_proxies=tunables.trusted_proxies,
            sticky=tunables.sticky,
            sticky_cookie=tunables.sticky_cookie,
            sticky_max_age=tunables.sticky_max_age,
            override_secret=tunables.override_secret,
            mirrors=mirrors,
            on_failed_over=canary.failed_over,
        ),
        reactor=reactor,
        max_body=tunables.max_body,
        header_timeout=tunables.header_timeout,
        body_timeout=tunables.body_timeout,
        on_refused=finished,
    )
    def started() -> None:
        rollout.start()
        tune_garbage_collector()

    # Every listener is made through this, so that SIGHUP can reload the
    # certificates of the ssl: ones.
    listeners = TLSListeners(tcp)
    admin = None
    if tunables.admin_listen is not None:
        # /status says "listen": a string, as it did with one listener.
        admin_tree = admin_resource(
            metrics,
            router,
            site,
            reactor.seconds,
            __version__,
            " ".join(config.listen),
            override_secret=tunables.override_secret,
            rollout=rollout,
            traffic=canary.traffic,
            mirrors=mirrors,
            rollback_healthz=tunables.rollback_healthz,
        )
        if role is not None:
            # On the worker's private socket only.
            admin_tree.putChild(b"internal", internal_resource(canary, router, reactor))
        admin = (listeners.endpoint(tunables.admin_listen), AdminSite(admin_tree))
    if role is not None:
        # A worker: serve on the supervisor's sockets, and stop (draining)
        # if the supervisor dies.
        if len(role.fds) != len(config.listen):
            sys.stderr.write(
                f"sillyproxy: worker given {len(role.fds)} sockets for {len(config.listen)} listeners\n"
            )
            raise SystemExit(2)
        endpoints: list[tuple[IStreamServerEndpoint, str]] = [
            (AdoptedEndpoint(tcp, fd), description)  # type: ignore[arg-type]
            for fd, description in zip(role.fds, config.listen)
        ]
        watch_parent(reactor, role.parent, lambda: _stop_if_running(reactor))
    else:
        endpoints = [(listeners.endpoint(description), description) for description in config.listen]
    return ProxyService(
        endpoints,
        site,
        upstreams,
        drain_timeout=tunables.drain_timeout,
        clock=reactor,
        routing=routing_table(config),
        admin=admin,
        on_started=started,
        on_sighup=listeners.reload,
        threads=reactor,
    )


def make_supervisor(options: Options, reactor: Any) -> IService:
    """A supervisor of C{options["workers"]} workers, each this plugin on the shared sockets."""
    config: ProxyConfig = options["config"]
    tunables = config.tunables
    listeners = [parse_tcp_listener(description) for description in config.listen]
    # twistd in the foreground, without a pidfile, logging as the image's
    # twistd does (text, or JSON with SILLYPROXY_ACCESS_LOG=json) to the
    # standard output the workers share with the supervisor.
    command = [
        sys.executable,
        "-c",
        "from twisted.scripts.twistd import run; run()",
        "--nodaemon",
        "--pidfile=",
        "--logger=sillyproxy.logs.observer",
        "sillyproxy",
    ]
    for description in config.listen:
        command += ["--listen", description]
    command += list(options["colors"])
    supervisor = Supervisor(
        options["workers"],
        [listener for listener in listeners if listener is not None],
        command,
        options.environ,
        reactor.spawnProcess,
        reactor,
        tunables.drain_timeout,
        threads=reactor,
    )
    workers = WorkerClient(reactor, supervisor)
    coordinator = Coordinator(
        workers,
        config.backends,
        tunables.analysis_window,
        tunables.analysis_min_requests,
        reactor,
    )
    supervisor.on_start = coordinator.start
    supervisor.on_stop = coordinator.stop
    if tunables.admin_listen is not None:
        admin_site = AdminSite(
            supervisor_admin(
                workers,
                supervisor,
                reactor.seconds,
                __version__,
                " ".join(config.listen),
                [b.color for b in config.backends],
                override_secret=tunables.override_secret,
                rollback_healthz=tunables.rollback_healthz,
                rolled_back=coordinator.rolled_back,
            )
        )
        supervisor.admin = (serverFromString(reactor, tunables.admin_listen), admin_site)
    return supervisor


def _stop_if_running(reactor: Any) -> None:
    """Stop the reactor (draining), unless a stop is already under way."""
    try:
        reactor.stop()
    except ReactorNotRunning:
        pass
