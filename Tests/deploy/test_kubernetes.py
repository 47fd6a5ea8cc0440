"""deploy/kubernetes: every kustomization renders, validates against Kubernetes 1.30 in strict mode,
and keeps the properties docs/deployment.md promises (probes, drain timing, security, storage)."""

from __future__ import annotations

import subprocess

import yaml

from deploy_support import KUBERNETES_VERSION, one, venv_tool


def validate(objects, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    return subprocess.run([venv_tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION,
                           str(path)], capture_output=True, text=True, timeout=300)


def server_container(objects) -> dict:
    containers = one(objects, "Deployment", "swerve")["spec"]["template"]["spec"]["containers"]
    return [c for c in containers if c["name"] == "swerve"][0]


def test_renders_and_validates_strictly(kustomization, rendered, tmp_path):
    objects = rendered(kustomization)
    done = validate(objects, tmp_path)
    assert done.returncode == 0, f"kubernetes-validate --strict rejected {kustomization}:\n{done.stdout}{done.stderr}"
    builtin = [o for o in objects if o["kind"] != "ServiceMonitor"]
    passed = done.stdout.count(" passed for resource ")
    assert passed == len(builtin), f"only {passed} of {len(builtin)} objects validated:\n{done.stdout}"


def test_validator_rejects_an_unknown_field(rendered, tmp_path):
    """The strict check can fail: a misspelled field in the Deployment is an error."""
    objects = [dict(o) for o in rendered("base")]
    deployment = one(objects, "Deployment", "swerve")
    deployment["spec"] = {**deployment["spec"], "replicaz": 3}
    done = validate(objects, tmp_path)
    assert done.returncode != 0 and "replicaz" in done.stdout + done.stderr


def test_every_kind_the_issue_asks_for(kustomization, rendered):
    kinds = {o["kind"] for o in rendered(kustomization)}
    assert {"Deployment", "Service", "ConfigMap", "PersistentVolumeClaim", "HorizontalPodAutoscaler",
            "PodDisruptionBudget"} <= kinds
    if kustomization == "overlays/example":
        monitor = one(rendered(kustomization), "ServiceMonitor", "swerve")
        assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
        service = one(rendered(kustomization), "Service", "swerve")
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert monitor["spec"]["endpoints"][0]["port"] in [p["name"] for p in service["spec"]["ports"]]


def test_probes_point_at_the_health_endpoints(kustomization, rendered):
    container = server_container(rendered(kustomization))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/v2/health/live"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, "large models need minutes to load"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in ports


def test_drain_fits_in_the_grace_period(kustomization, rendered):
    objects = rendered(kustomization)
    pod = one(objects, "Deployment", "swerve")["spec"]["template"]["spec"]
    container = server_container(objects)
    config = one(objects, "ConfigMap")["data"]
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0].endswith("sleep"), pre_stop
    delay = float(pre_stop[1])
    assert delay >= 3, "endpoint removal needs a few seconds to reach every proxy"
    timeout = float(config["SWERVE_SHUTDOWN_TIMEOUT"])
    assert pod["terminationGracePeriodSeconds"] > delay + timeout, \
        "terminationGracePeriodSeconds must exceed the preStop delay plus --shutdown-timeout"
    strategy = one(objects, "Deployment", "swerve")["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0, "a rollout must not remove ready pods before new ones are ready"


def test_security_context(kustomization, rendered):
    objects = rendered(kustomization)
    pod = one(objects, "Deployment", "swerve")["spec"]["template"]["spec"]
    container = server_container(objects)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001, "the image's user"
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), f"resource {kind}"


def test_model_store_is_a_read_only_claim(kustomization, rendered):
    objects = rendered(kustomization)
    pod = one(objects, "Deployment", "swerve")["spec"]["template"]["spec"]
    container = server_container(objects)
    config = one(objects, "ConfigMap")["data"]
    volume = [v for v in pod["volumes"] if v["name"] == "models"][0]
    claim = volume["persistentVolumeClaim"]
    assert claim["readOnly"] is True
    one(objects, "PersistentVolumeClaim", claim["claimName"])
    mount = [m for m in container["volumeMounts"] if m["name"] == "models"][0]
    assert mount["readOnly"] is True and mount["mountPath"] == config["SWERVE_MODEL_STORE"]


def test_management_api_is_loopback_or_token_protected(kustomization, rendered):
    objects = rendered(kustomization)
    container = server_container(objects)
    config = one(objects, "ConfigMap")["data"]
    env_names = {e["name"] for e in container.get("env", [])}
    if config["SWERVE_MANAGEMENT_HOST"] not in ("127.0.0.1", "::1", "localhost"):
        assert "SWERVE_MANAGEMENT_TOKEN" in env_names, "management off loopback needs a token"
        token = [e for e in container["env"] if e["name"] == "SWERVE_MANAGEMENT_TOKEN"][0]
        assert "secretKeyRef" in token["valueFrom"], "the token must come from a Secret"
    assert "SWERVE_MANAGEMENT_TOKEN" not in config, "a token does not belong in a ConfigMap"


def test_ports_scraping_and_selectors_agree(kustomization, rendered):
    objects = rendered(kustomization)
    deployment = one(objects, "Deployment", "swerve")
    container = server_container(objects)
    config = one(objects, "ConfigMap")["data"]
    http = [p for p in container["ports"] if p["name"] == "http"][0]
    assert str(http["containerPort"]) == config["SWERVE_PORT"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == config["SWERVE_PORT"]
    assert annotations["prometheus.io/path"] == "/metrics"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = one(objects, "Service", "swerve")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    pdb = one(objects, "PodDisruptionBudget", "swerve")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    hpa = one(objects, "HorizontalPodAutoscaler", "swerve")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "swerve"
    assert hpa["spec"]["minReplicas"] >= 2 and pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"], \
        "with minAvailable >= minReplicas no node could ever be drained"
