# One image for both apps: `docker run IMAGE` is the proxy, `docker run IMAGE myapp` the demo backend.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY pyproject.toml README.md /build/
COPY src /build/src
# Regenerate twisted's plugin cache as root: a non-root twistd cannot write it
# and would complain at every start.
RUN pip install /build \
 && python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))" \
 && rm -rf /build \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin sillyproxy

USER sillyproxy
WORKDIR /tmp
EXPOSE 8080
# twistd is PID 1 so it gets SIGTERM from `docker stop` and rolling updates;
# --pidfile= so a stale twistd.pid never blocks a restarted container.
ENTRYPOINT ["twistd", "--nodaemon", "--pidfile=", "--logfile=-"]
CMD ["sillyproxy"]
