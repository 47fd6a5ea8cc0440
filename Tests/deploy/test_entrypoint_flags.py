"""The command lines the image, the Deployment and the KServe runtime give the daemon are accepted
by the built binary: it starts with them, serves, answers its probes, and stops cleanly.

Ports become 0 (a free port), hosts loopback and the model store a copy of ./models; every other
value is exactly what the files say. Flags the manifests use that the binary does not know yet fail
here with their name (e.g. --shutdown-timeout, --management-token before they are merged)."""

from __future__ import annotations

import subprocess

import pytest
import requests

from deploy_support import (KSERVE_DIR, Daemon, dockerfile_env, dockerfile_one, exec_form, flag_for,
                            load_yaml, one, predict_digit, accepted_flags, swerve_binary,
                            container_environment)

LOCAL = {"SWERVE_HOST": "127.0.0.1", "SWERVE_PORT": "0", "SWERVE_MANAGEMENT_PORT": "0"}


def local_environment(env: dict[str, str], store) -> dict[str, str]:
    env = {**env, **LOCAL, "SWERVE_MODEL_STORE": str(store)}
    if env.get("SWERVE_MANAGEMENT_HOST") not in (None, "127.0.0.1"):
        env["SWERVE_MANAGEMENT_HOST"] = "127.0.0.1"
    return env


def run_and_check(argv, env, probes=("/v2/health/live", "/v2/health/ready")) -> Daemon:
    daemon = Daemon(argv, env)
    try:
        daemon.wait_ready()
        for path in probes:
            resp = requests.get(daemon.url + path, timeout=10)
            assert resp.status_code == 200, f"GET {path} answered {resp.status_code}\n{daemon.describe()}"
        assert predict_digit(daemon.url) == 6
    finally:
        status = daemon.stop()
    assert status == 0, f"swerve exited with {status} on SIGTERM\n{daemon.describe()}"
    return daemon


def assert_flags_known(variables, where: str) -> None:
    known = accepted_flags()
    unknown = sorted(flag_for(v) for v in variables if v.startswith("SWERVE_") and flag_for(v) not in known)
    assert not unknown, (f"{where} sets {', '.join(unknown)}, which `swerve serve` does not accept "
                         f"(its SWERVE_* variable would be ignored silently)")


def test_every_variable_names_a_flag_the_binary_accepts(rendered):
    """Each SWERVE_* variable in the Dockerfile, the ConfigMaps and the Deployments is a real flag."""
    assert_flags_known(dockerfile_env("runtime-base"), "the Dockerfile")
    for name in ("base", "overlays/example"):
        objects = rendered(name)
        container = one(objects, "Deployment", "swerve")["spec"]["template"]["spec"]["containers"][0]
        assert_flags_known(one(objects, "ConfigMap")["data"], f"deploy/kubernetes/{name} (ConfigMap)")
        assert_flags_known([e["name"] for e in container.get("env", [])], f"deploy/kubernetes/{name} (env)")


def test_an_unknown_flag_is_refused(store):
    """The checks above can fail: the binary refuses a flag it does not know."""
    done = subprocess.run([str(swerve_binary()), "serve",
                           "--model-store", str(store), "--no-such-flag", "1"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "no-such-flag" in done.stderr


def test_image_entrypoint_and_environment(store):
    """ENTRYPOINT + CMD + ENV of the image, then its HEALTHCHECK command against the server."""
    entrypoint = exec_form(dockerfile_one("runtime-base", "ENTRYPOINT"))
    cmd = exec_form(dockerfile_one("runtime-base", "CMD"))
    env = local_environment(dockerfile_env("runtime-base"), store)
    daemon = Daemon(entrypoint + cmd, env)
    try:
        daemon.wait_ready()
        assert predict_digit(daemon.url) == 6
        assert '"event":"listening"' in daemon.output.replace(" ", ""), \
            "SWERVE_LOG_FORMAT=json from the image should give JSON log lines"
        health = exec_form(dockerfile_one("runtime-base", "HEALTHCHECK").split(" CMD ", 1)[1])
        ok = subprocess.run(health, env={"SWERVE_PORT": str(daemon.port), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=10)
        assert ok.returncode == 0, f"the HEALTHCHECK failed against a ready server: {ok.stderr}"
    finally:
        assert daemon.stop() == 0, daemon.describe()
    # ... and reports unhealthy when nothing answers.
    down = subprocess.run(health, env={"SWERVE_PORT": str(daemon.port), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=10)
    assert down.returncode != 0, "the HEALTHCHECK passed with no server"


@pytest.mark.parametrize("name", ["base", "overlays/example"])
def test_deployment_environment(name, rendered, store):
    """The image's entrypoint with the environment Kubernetes gives the container; its probes."""
    objects = rendered(name)
    deployment = one(objects, "Deployment", "swerve")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    entrypoint = exec_form(dockerfile_one("runtime-base", "ENTRYPOINT"))
    argv = entrypoint + container.get("args", [])
    env = local_environment(container_environment(objects, container), store)
    probes = [container[p]["httpGet"]["path"] for p in ("startupProbe", "livenessProbe", "readinessProbe")]
    run_and_check(argv, env, probes)


def test_kserve_runtime_arguments(store):
    """The ClusterServingRuntime's args after the image's entrypoint."""
    runtime = load_yaml(KSERVE_DIR / "clusterservingruntime.yaml")
    container = runtime["spec"]["containers"][0]
    args = list(container["args"])
    replace = {"--model-store": str(store), "--port": "0", "--host": "127.0.0.1", "--management-port": "0"}
    for i, arg in enumerate(args[:-1]):
        if arg in replace:
            args[i + 1] = replace[arg]
    if "--management-port" not in args:
        args += ["--management-port", "0"]
    entrypoint = exec_form(dockerfile_one("runtime-base", "ENTRYPOINT"))
    probes = [container[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe")]
    run_and_check(entrypoint + args, {}, probes)
