"""Tests that the deployment files parse, use only known settings, and that the image's command starts the proxy."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from sillyproxy._config import KNOWN_VARIABLES

from .processes import START_TIMEOUT, free_port

ROOT = Path(__file__).resolve().parent.parent
STACK = ROOT / "deploy" / "swarm" / "stack.yml"
KUBERNETES = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))


def _environment_names(document: object) -> set[str]:
    """Every variable name a stack or manifest sets, wherever it sets it."""
    names: set[str] = set()
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "environment" and isinstance(value, dict):
                names.update(value)
            elif key == "environment" and isinstance(value, list):
                names.update(item.split("=", 1)[0] for item in value)
            elif key == "env" and isinstance(value, list):
                names.update(item["name"] for item in value)
            elif key == "data" and document.get("kind") == "ConfigMap":
                names.update(value)
            else:
                names |= _environment_names(value)
    elif isinstance(document, list):
        for item in document:
            names |= _environment_names(item)
    return names


def test_stack_parses_with_the_walkthrough_shape() -> None:
    """If the stack file is read, then it has the walkthrough's services, replicas and rollout settings."""
    stack = yaml.safe_load(STACK.read_text())
    services = stack["services"]
    assert {name: s["deploy"]["replicas"] for name, s in services.items()} == {
        "proxy": 2,
        "myapp-v1": 4,
        "myapp-v2": 1,
    }
    proxy = services["proxy"]
    assert proxy["deploy"]["update_config"]["order"] == "start-first"
    assert proxy["deploy"]["update_config"]["failure_action"] == "rollback"
    grace = int(proxy["stop_grace_period"].rstrip("s"))
    assert grace > float(proxy["environment"]["SILLYPROXY_DRAIN_TIMEOUT"])
    assert proxy["environment"]["BLUE_WEIGHT"] == "4" and proxy["environment"]["GREEN_WEIGHT"] == "1"
    assert all("healthcheck" in s for s in services.values())
    assert stack["networks"]["backend"]["driver"] == "overlay"


def test_kubernetes_manifests_parse() -> None:
    """If the manifests are read, then the proxy has probes on /readyz and /healthz and a grace period above the drain."""
    documents = [d for path in KUBERNETES for d in yaml.safe_load_all(path.read_text())]
    kinds = sorted(d["kind"] for d in documents)
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "Deployment", "Service", "Service", "Service"]
    proxy = next(d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "sillyproxy")
    spec = proxy["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "preStop" in container["lifecycle"]
    config = next(d for d in documents if d["kind"] == "ConfigMap")
    assert spec["terminationGracePeriodSeconds"] > float(config["data"]["SILLYPROXY_DRAIN_TIMEOUT"]) + 5


@pytest.mark.parametrize("path", [STACK, *KUBERNETES], ids=lambda p: p.name)
def test_only_known_settings(path: Path) -> None:
    """If a deployment file sets SILLYPROXY_* variables, then the proxy knows every one of them."""
    names = set()
    for document in yaml.safe_load_all(path.read_text()):
        names |= _environment_names(document)
    sillyproxy_names = {n for n in names if n.startswith("SILLYPROXY_")}
    assert sillyproxy_names <= KNOWN_VARIABLES, sillyproxy_names - KNOWN_VARIABLES


def _dockerfile_command() -> list[str]:
    text = (ROOT / "Dockerfile").read_text()
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    return entrypoint + cmd


def test_image_command_starts_the_proxy(tmp_path: Path) -> None:
    """If the image's ENTRYPOINT and CMD run here, then the proxy starts and its admin /healthz answers."""
    command = _dockerfile_command()
    assert command[0] == "twistd" and command[-1] == "sillyproxy"
    command[0] = str(Path(sys.executable).with_name("twistd"))
    port, admin = free_port(), free_port()
    process = subprocess.Popen(
        command + ["--listen", f"tcp:{port}:interface=127.0.0.1"],
        env={
            "PATH": "/usr/bin:/bin",
            "BLUE": "http://127.0.0.1:9",
            "SILLYPROXY_ADMIN_LISTEN": f"tcp:{admin}:interface=127.0.0.1",
            "SILLYPROXY_ACCESS_LOG": "json",
        },
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/healthz", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert process.poll() is None, process.stdout.read().decode()
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0
    # --logger=sillyproxy.logs.observer with SILLYPROXY_ACCESS_LOG=json: JSON lines.
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert any(e["message"].startswith("sillyproxy listening on") for e in events)
    assert any(e["message"] == "drained" for e in events)


@pytest.mark.parametrize(
    "command, environ, url",
    [
        (["twistd", "--nodaemon", "sillyproxy"], {}, "http://127.0.0.1:9901/healthz"),
        (["twistd", "sillyproxy"], {"SILLYPROXY_ADMIN_LISTEN": "tcp:9000"}, "http://127.0.0.1:9000/healthz"),
        (["twistd", "sillyproxy"], {"SILLYPROXY_ADMIN_LISTEN": "none"}, None),
        (["twistd", "--nodaemon", "myapp"], {}, "http://127.0.0.1:8080/"),
        (["twistd", "myapp", "--listen", "tcp:7000"], {}, "http://127.0.0.1:7000/"),
    ],
)
def test_healthcheck_asks_the_right_thing(command: list[str], environ: dict[str, str], url: str | None) -> None:
    """If the container runs the proxy or myapp, then the HEALTHCHECK asks that app."""
    from sillyproxy.healthcheck import check_url

    assert check_url(command, environ) == url
