# One image for both apps: `docker run IMAGE` is the proxy, `docker run IMAGE myapp` the demo backend.
#
# The OCI labels for the version, source, revision and build time come from
# build args (all empty by default; pyproject.toml is the only place the
# version is written, and the build fails if VERSION disagrees with it):
#
#   docker build \
#     --build-arg VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml)" \
#     --build-arg SOURCE="$(git remote get-url origin)" \
#     --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
#     -t sillyproxy .
#
# (SOURCE must be a URL without credentials: labels are public.)

# Install into a virtual environment in a throwaway stage; the final image
# copies only that environment: no pip cache, no wheels, no sources.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md LICENSE /src/
COPY src /src/src
RUN python -m venv --without-pip /opt/sillyproxy \
 && pip --python /opt/sillyproxy/bin/python install /src
# Declared after the install so a new VERSION only reruns this check.
ARG VERSION=
RUN installed="$(/opt/sillyproxy/bin/python -c 'import sillyproxy; print(sillyproxy.__version__)')" \
 && if [ -n "$VERSION" ] && [ "$VERSION" != "$installed" ]; then \
      echo "VERSION=$VERSION but pyproject.toml says $installed" >&2; exit 1; \
    fi

FROM python:3.11-slim
LABEL org.opencontainers.image.title="sillyproxy" \
      org.opencontainers.image.description="Edge HTTP proxy for blue/green and canary releases, configured by environment variables" \
      org.opencontainers.image.licenses="MIT"
# SILLYPROXY_WORKERS=auto: one worker per CPU the container may use (its
# --cpus), as nginx's image sets worker_processes auto; the program's own
# default is one process.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/sillyproxy/bin:$PATH \
    SILLYPROXY_WORKERS=auto
COPY --from=build /opt/sillyproxy /opt/sillyproxy
# Regenerate twisted's plugin cache as root: a non-root twistd cannot write it
# and would complain at every start.
RUN python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))" \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin sillyproxy

USER sillyproxy
WORKDIR /tmp
# 8080: traffic (proxy or myapp); 9901: the proxy's admin listener.
EXPOSE 8080 9901
# No curl in the image: Python asks the admin /healthz (or myapp's page).
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
  CMD ["python", "-m", "sillyproxy.healthcheck"]
# twistd is PID 1 so it gets SIGTERM from `docker stop` and rolling updates;
# --pidfile= so a stale twistd.pid never blocks a restarted container;
# --logger picks text or JSON logs from SILLYPROXY_ACCESS_LOG.
ENTRYPOINT ["twistd", "--nodaemon", "--pidfile=", "--logger=sillyproxy.logs.observer"]
CMD ["sillyproxy"]
# Last, so a new CREATED or REVISION (every build) reuses every layer above.
ARG VERSION=
ARG SOURCE=
ARG REVISION=
ARG CREATED=
LABEL org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.source="$SOURCE" \
      org.opencontainers.image.revision="$REVISION" \
      org.opencontainers.image.created="$CREATED"
