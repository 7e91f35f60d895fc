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
SWARM = ROOT / "deploy" / "swarm"
STACK = SWARM / "stack.yml"
HOST_PORTS_STACK = SWARM / "stack-host-ports.yml"
STACKS = [STACK, HOST_PORTS_STACK]
KUBERNETES = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
RECOMMENDED_LABELS = {"name", "instance", "component", "part-of"}


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


def test_stack_relies_on_the_ingress_mesh() -> None:
    """If stack.yml is read, then the proxy is published through the ingress mesh, so it may start the new task first."""
    proxy = yaml.safe_load(STACK.read_text())["services"]["proxy"]
    assert proxy["ports"] == ["8080:8080"]
    assert proxy["deploy"].get("endpoint_mode", "vip") == "vip"
    assert "ingress" in STACK.read_text() and HOST_PORTS_STACK.name in STACK.read_text()


@pytest.mark.parametrize("path", STACKS, ids=lambda p: p.name)
def test_stack_has_no_version_and_limits_every_service(path: Path) -> None:
    """If a stack file is read, then it has no obsolete top-level `version:` and every service has CPU and memory limits."""
    stack = yaml.safe_load(path.read_text())
    assert "version" not in stack
    for name, service in stack["services"].items():
        limits = service["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) > 0, name
        assert re.fullmatch(r"\d+[KMG]", limits["memory"]), name


def test_host_ports_stack_works_without_ipvs() -> None:
    """If stack-host-ports.yml is read, then it uses no VIP, publishes the proxy in host mode, and stops the old proxy task first."""
    stack = yaml.safe_load(HOST_PORTS_STACK.read_text())
    services = stack["services"]
    assert set(services) == {"proxy", "myapp-v1", "myapp-v2"}
    assert all(s["deploy"]["endpoint_mode"] == "dnsrr" for s in services.values())
    proxy = services["proxy"]
    [port] = proxy["ports"]
    assert (port["mode"], port["target"]) == ("host", 8080)
    # One task per node can hold a host port, hence one proxy per node.
    assert proxy["deploy"]["mode"] == "global"
    assert proxy["deploy"]["update_config"]["order"] == "stop-first"
    assert proxy["deploy"]["rollback_config"]["order"] == "stop-first"
    assert proxy["deploy"]["update_config"]["failure_action"] == "rollback"
    grace = int(proxy["stop_grace_period"].rstrip("s"))
    assert grace > float(proxy["environment"]["SILLYPROXY_DRAIN_TIMEOUT"])
    assert all("healthcheck" in s for s in services.values())


def _seconds(duration: str) -> float:
    """A Compose duration such as 5s, 1m or 1m30s, in seconds."""
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts and duration, duration
    return 60 * int(parts.group(1) or 0) + int(parts.group(2) or 0)


@pytest.mark.parametrize("path", STACKS, ids=lambda p: p.name)
def test_stack_rolls_back_a_failing_canary(path: Path) -> None:
    """If a proxy update's task turns unhealthy (a colour rolled back, with SILLYPROXY_ROLLBACK_HEALTHZ=1), then it is within the monitor period and Swarm rolls the update back."""
    proxy = yaml.safe_load(path.read_text())["services"]["proxy"]
    update = proxy["deploy"]["update_config"]
    rollback = proxy["deploy"]["rollback_config"]
    assert update["failure_action"] == "rollback"
    assert update.get("max_failure_ratio", 0) == 0
    # The image's HEALTHCHECK (the proxy's admin /healthz) is what fails.
    check = proxy["healthcheck"]
    assert check["test"] == ["CMD", "python", "-m", "sillyproxy.healthcheck"]
    # The new task starts, its canary collects a window of requests and is
    # rolled back, then `retries` probes fail: all before the monitor ends.
    window = float(proxy["environment"].get("SILLYPROXY_ANALYSIS_WINDOW", 30))
    unhealthy_after = _seconds(check["start_period"]) + window + _seconds(check["interval"]) * check["retries"]
    assert _seconds(update["monitor"]) >= unhealthy_after
    # Rolling back moves tasks as the update did; a rollback that fails too
    # stops for a person rather than rolling forward again.
    assert rollback["order"] == update["order"]
    assert rollback["failure_action"] == "pause"
    assert _seconds(rollback["monitor"]) >= _seconds(check["interval"]) * check["retries"]


def _kubernetes_documents() -> list[dict]:
    return [d for path in KUBERNETES for d in yaml.safe_load_all(path.read_text())]


def _deployments() -> list[dict]:
    return [d for d in _kubernetes_documents() if d["kind"] == "Deployment"]


def test_kubernetes_manifests_parse() -> None:
    """If the manifests are read, then the proxy has probes on /readyz and /healthz and a grace period above the drain."""
    documents = _kubernetes_documents()
    kinds = sorted(d["kind"] for d in documents)
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "Deployment",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "Service",
        "Service",
    ]
    proxy = next(d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "sillyproxy")
    spec = proxy["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "preStop" in container["lifecycle"]
    config = next(d for d in documents if d["kind"] == "ConfigMap")
    assert spec["terminationGracePeriodSeconds"] > float(config["data"]["SILLYPROXY_DRAIN_TIMEOUT"]) + 5


def test_disruption_budget_keeps_a_proxy() -> None:
    """If nodes are drained, then the PodDisruptionBudget keeps at least one (and not every) proxy pod."""
    documents = _kubernetes_documents()
    [budget] = [d for d in documents if d["kind"] == "PodDisruptionBudget"]
    proxy = next(d for d in _deployments() if d["metadata"]["name"] == "sillyproxy")
    pod_labels = proxy["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert 1 <= budget["spec"]["minAvailable"] < proxy["spec"]["replicas"]


@pytest.mark.parametrize("name", ["sillyproxy", "myapp-v1", "myapp-v2"])
def test_pods_meet_the_restricted_pod_security_standard(name: str) -> None:
    """If a Deployment is read, then its pods run as non-root with RuntimeDefault seccomp and their containers drop every privilege on a read-only root."""
    deployment = next(d for d in _deployments() if d["metadata"]["name"] == name)
    spec = deployment["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in spec["containers"]:
        assert container["securityContext"].items() >= RESTRICTED_CONTAINER.items()


@pytest.mark.parametrize("name", ["sillyproxy", "myapp-v1", "myapp-v2"])
def test_request_bodies_have_a_writable_spool(name: str) -> None:
    """If the root filesystem is read-only, then /tmp (where twisted.web spools bodies over 100 KB) is an emptyDir."""
    deployment = next(d for d in _deployments() if d["metadata"]["name"] == name)
    spec = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for container in spec["containers"]:
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        spool_dir = env.get("TMPDIR", "/tmp")
        [mount] = [m for m in container.get("volumeMounts", []) if m["mountPath"] == spool_dir]
        assert "emptyDir" in volumes[mount["name"]]
        assert not mount.get("readOnly", False)


def test_every_object_has_the_recommended_labels() -> None:
    """If the manifests are read, then every object and pod template carries app.kubernetes.io/ name, instance, component and part-of."""
    for document in _kubernetes_documents():
        label_sets = [document["metadata"].get("labels", {})]
        if document["kind"] == "Deployment":
            label_sets.append(document["spec"]["template"]["metadata"]["labels"])
            selector = document["spec"]["selector"]["matchLabels"]
            assert selector.items() <= label_sets[-1].items()
        for labels in label_sets:
            present = {k.split("/", 1)[1] for k in labels if k.startswith("app.kubernetes.io/")}
            assert RECOMMENDED_LABELS <= present, (document["kind"], document["metadata"]["name"])
    for name, version in [("myapp-v1", "v1"), ("myapp-v2", "v2")]:
        deployment = next(d for d in _deployments() if d["metadata"]["name"] == name)
        assert deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"] == version


def test_weight_change_advice_goes_through_the_config_map() -> None:
    """If the proxy manifest says how to change the split, then it is the ConfigMap and a restart, never `kubectl set env`."""
    text = (ROOT / "deploy" / "kubernetes" / "sillyproxy.yaml").read_text()
    advice = [line for line in text.splitlines() if line.startswith("#   kubectl")]
    assert "#   kubectl rollout restart deployment/sillyproxy" in advice
    assert not [line for line in advice if "set env" in line]


@pytest.mark.parametrize("path", [*STACKS, *KUBERNETES], ids=lambda p: p.name)
def test_only_known_settings(path: Path) -> None:
    """If a deployment file sets SILLYPROXY_* variables, then the proxy knows every one of them."""
    names = set()
    for document in yaml.safe_load_all(path.read_text()):
        names |= _environment_names(document)
    sillyproxy_names = {n for n in names if n.startswith("SILLYPROXY_")}
    assert sillyproxy_names <= KNOWN_VARIABLES, sillyproxy_names - KNOWN_VARIABLES


def _continued_lines(text: str) -> list[str]:
    """The lines of a shell script or Dockerfile, with backslash continuations joined."""
    return re.sub(r"\\\n\s*", " ", text).splitlines()


def test_image_labels_come_from_build_args() -> None:
    """If the image is built, then its OCI version, source, revision and created labels come from build args with empty defaults."""
    text = (ROOT / "Dockerfile").read_text()
    final_stage = text[text.rindex("\nFROM ") :]
    arguments = dict(re.findall(r"^ARG (\w+)=(.*)$", final_stage, re.M))
    labels = dict(re.findall(r'org\.opencontainers\.image\.(\w+)="([^"]*)"', final_stage))
    for label, argument in [("version", "VERSION"), ("source", "SOURCE"), ("revision", "REVISION"), ("created", "CREATED")]:
        assert labels[label] == f"${argument}"
        assert arguments[argument] == ""
        assert f"--build-arg {argument}=" in text
    assert labels["licenses"] == "MIT"


def test_license_is_mit_and_shipped() -> None:
    """If the project says it is MIT, then LICENSE holds the MIT text for the sillyproxy authors, and the image build copies it."""
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License")
    assert "Copyright (c) 2026 the sillyproxy authors" in license_text
    assert 'license = "MIT"' in (ROOT / "pyproject.toml").read_text()
    copies = [line for line in _continued_lines((ROOT / "Dockerfile").read_text()) if line.startswith("COPY ") and "LICENSE" in line]
    assert copies


def test_replay_script_never_waits_unbounded() -> None:
    """If the walkthrough replay runs, then every service create/update/scale is detached, the port is set at the top, and it ends with one OK or FAILED line."""
    path = SWARM / "replay-walkthrough.sh"
    text = path.read_text()
    subprocess.run(["bash", "-n", str(path)], check=True, timeout=30)
    changes = [line for line in _continued_lines(text) if re.search(r"\bservice (create|update|scale)\b", line) and not line.lstrip().startswith("#")]
    assert len(changes) >= 7
    assert all("--detach" in line for line in changes), [line for line in changes if "--detach" not in line]
    first_use = text.index("$PORT")
    assert re.search(r"^PORT=", text[:first_use], re.M)
    assert 'echo "OK: ' in text and 'echo "FAILED: ' in text
    assert "timeout" in text


def test_canary_replay_script_never_waits_unbounded() -> None:
    """If the canary replay runs, then every service change is detached, its ports are set at the top, it uses the contract's variables (SILLYPROXY_* ones the proxy knows), and it ends with one OK or FAILED line."""
    path = SWARM / "replay-canary.sh"
    text = path.read_text()
    subprocess.run(["bash", "-n", str(path)], check=True, timeout=30)
    lines = [line for line in _continued_lines(text) if not line.lstrip().startswith("#")]
    changes = [line for line in lines if re.search(r"\bservice (create|update|scale)\b", line)]
    assert len(changes) >= 6
    assert all("--detach" in line for line in changes), [line for line in changes if "--detach" not in line]
    for port in ["$PORT", "$ADMIN_PORT"]:
        assert re.search(rf"^{port[1:]}=", text[: text.index(port)], re.M)
    for name in [
        "GREEN_RAMP",
        "GREEN_RAMP_START",
        "GREEN_RAMP_STEP",
        "GREEN_ROLLBACK_ERROR_RATE",
        "SILLYPROXY_ANALYSIS_MIN_REQUESTS",
        "SILLYPROXY_ROLLBACK_HEALTHZ",
        "MYAPP_ERROR_RATE",
    ]:
        assert re.search(rf"(-e|--env-add) {name}=", " ".join(changes)), name
    set_names = set(re.findall(r"(?:-e|--env-add|--env-rm) (SILLYPROXY_\w+)", " ".join(changes)))
    assert set_names <= KNOWN_VARIABLES, set_names - KNOWN_VARIABLES
    # The failing myapp keeps the image's HEALTHCHECK: it asks /healthz,
    # which MYAPP_ERROR_RATE spares, so a bad release stays a live one.
    [failing] = [line for line in changes if "MYAPP_ERROR_RATE=1" in line]
    assert "--no-healthcheck" not in failing
    assert 'echo "OK: ' in text and 'echo "FAILED: ' in text
    assert "timeout" in text


def test_update_measurement_script_is_detached() -> None:
    """If measure-update.py changes a service, then it does so detached, under a timeout."""
    path = SWARM / "measure-update.py"
    compile(path.read_text(), str(path), "exec")
    calls = re.findall(r'"service", "(?:create|update)"[^)]*', path.read_text())
    assert calls and all('"--detach"' in call for call in calls)
    assert "timeout=DOCKER_TIMEOUT" in path.read_text()


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
            # As the image sets it: a supervisor and one worker per CPU.
            "SILLYPROXY_WORKERS": re.search(r"^\s+SILLYPROXY_WORKERS=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M).group(1),
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
                # Ready once a worker serves (the supervisor is healthy before).
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=2) as response:
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


def test_image_runs_a_worker_per_cpu() -> None:
    """If the image runs the proxy, then SILLYPROXY_WORKERS is auto, as nginx's image sets worker_processes auto."""
    assert re.search(r"^\s+SILLYPROXY_WORKERS=auto$", (ROOT / "Dockerfile").read_text(), re.M)
