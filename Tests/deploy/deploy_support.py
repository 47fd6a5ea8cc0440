"""Helpers for the deployment tests: what the Dockerfile and the manifests say, and the real binary.

- `dockerfile_stage(name)`: the instructions of one Dockerfile stage (ENTRYPOINT, CMD, ENV ...).
- `render(kustomization_dir)`: `kubectl kustomize DIR` as a list of objects.
- `flag_for(variable)`: the `swerve serve` flag a `SWERVE_*` variable stands for.
- `Daemon`: one `swerve` process started with given arguments and environment (text or JSON
  logs), its port, and a clean stop.

The binary comes from env `SWERVE_BIN` (default `.build/release/swerve`), as in Tests/e2e.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

# Process handling and the binary under test are shared with the end-to-end suite.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))
from swerve_e2e import START_TIMEOUT_S, SwerveProcess, swerve_binary  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DOCKERFILE = REPO_ROOT / "Dockerfile"
KUBERNETES_DIR = REPO_ROOT / "deploy" / "kubernetes"
KUSTOMIZATIONS = ["base", "overlays/example"]
KSERVE_DIR = REPO_ROOT / "deploy" / "kserve"
GRAFANA_DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "swerve-dashboard.json"
BUNDLED_STORE = REPO_ROOT / "models"
DIGIT_REQUEST = REPO_ROOT / "docs" / "examples" / "digit.json"
KUBERNETES_VERSION = "1.30.0"

# `http_port=N` (text logs) or `"http_port":"N"` (JSON logs) in the "serving" line.


def venv_tool(name: str) -> str:
    """A tool installed in the test virtualenv (next to this Python), else on PATH."""
    import sys
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"'{name}' is not installed; `make test-deps` installs it into the test "
                    f"virtualenv (tools/requirements-test.txt)", pytrace=False)
    return found


# ---------------------------------------------------------------------------------------------
# Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    result = []
    for line in logical:
        word, _, rest = line.partition(" ")
        result.append((word.upper(), rest.strip()))
    return result


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its instructions (FROM line included)."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current = None
    for word, rest in dockerfile_instructions():
        if word == "FROM":
            match = re.search(r"\bAS\s+(\S+)", rest, re.IGNORECASE)
            current = match.group(1) if match else f"stage{len(stages)}"
            stages[current] = []
        if current is not None:
            stages[current].append((word, rest))
    return stages


def exec_form(arguments: str) -> list[str]:
    """ENTRYPOINT/CMD arguments in JSON (exec) form."""
    value = json.loads(arguments)
    assert isinstance(value, list), f"not an exec-form JSON array: {arguments}"
    return value


def dockerfile_env(stage: str) -> dict[str, str]:
    """ENV key=value pairs set in a stage."""
    env: dict[str, str] = {}
    for word, rest in dockerfile_stages()[stage]:
        if word == "ENV":
            for item in shlex.split(rest):
                key, sep, value = item.partition("=")
                assert sep, f"ENV without '=' is legacy syntax: ENV {rest}"
                env[key] = value
    return env


def dockerfile_one(stage: str, instruction: str) -> str:
    found = [rest for word, rest in dockerfile_stages()[stage] if word == instruction]
    assert found, f"the Dockerfile's {stage} stage has no {instruction}"
    return found[-1]


# ---------------------------------------------------------------------------------------------
# Kubernetes


def kubectl() -> str:
    found = shutil.which("kubectl")
    if not found:
        pytest.fail("kubectl is not installed; the deployment tests render the kustomizations with "
                    "`kubectl kustomize` (kubectl >= 1.21, any cluster-free client works offline). "
                    "Install it (e.g. https://kubernetes.io/docs/tasks/tools/) and run again",
                    pytrace=False)
    return found


def render(kustomization: str) -> list[dict]:
    directory = KUBERNETES_DIR / kustomization
    done = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"kubectl kustomize {directory} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def one(objects: list[dict], kind: str, name: str | None = None) -> dict:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def flag_for(variable: str) -> str:
    """SWERVE_MAX_BODY_SIZE -> --max-body-size."""
    assert variable.startswith("SWERVE_"), variable
    return "--" + variable[len("SWERVE_"):].lower().replace("_", "-")


def container_environment(objects: list[dict], container: dict) -> dict[str, str]:
    """The environment Kubernetes would give `container`: envFrom ConfigMaps, then env entries
    (resourceFieldRef on limits.cpu resolved, secretKeyRef given a test value)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        env.update(one(objects, "ConfigMap", ref)["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "resourceFieldRef" in item["valueFrom"]:
            field = item["valueFrom"]["resourceFieldRef"]
            assert field["resource"] == "limits.cpu", field
            cpu = container["resources"]["limits"]["cpu"]
            cores = float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
            env[item["name"]] = str(max(1, int(-(-cores // 1))))
        elif "secretKeyRef" in item["valueFrom"]:
            env[item["name"]] = "test-token-0123456789abcdef"
        else:
            raise AssertionError(f"unhandled env source {item}")
    return env


# ---------------------------------------------------------------------------------------------
# The binary


def accepted_flags() -> set[str]:
    """The long options `swerve serve --help` lists."""
    done = subprocess.run([str(swerve_binary()), "serve", "--help"], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, f"swerve serve --help failed: {done.stderr}"
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", done.stdout))


class Daemon(SwerveProcess):
    """One `swerve` process started as a deployment would start it: argv (argv[0] is replaced by
    the binary under test) and environment (SWERVE_* only from `env`). The process handling is the
    end-to-end suite's `SwerveProcess`."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("SWERVE_")}
        self.env = {**base, **env}
        super().__init__([str(swerve_binary())] + list(argv[1:]), env=self.env)

    @property
    def url(self) -> str:
        return self.base_url

    def describe(self) -> str:
        env = " ".join(f"{k}={v}" for k, v in self.env.items() if k.startswith("SWERVE_"))
        return f"command: {env} {shlex.join(self.args)}\noutput:\n{self.output}"

    def wait_ready(self) -> None:
        self.wait_for_port()
        self.wait_until_live()
        if not self.wait_until_ready(START_TIMEOUT_S):
            self.stop()
            pytest.fail(f"swerve never answered 200 on /v2/health/ready.\n{self.describe()}", pytrace=False)

    def stop(self, timeout: float = 40) -> int | None:
        """SIGTERM and wait for the graceful drain (the deployment's own shutdown)."""
        return super().stop(timeout)


def predict_digit(url: str) -> int:
    """POSTs docs/examples/digit.json (a handwritten 6) to the digits model; returns the label."""
    resp = requests.post(url + "/v2/models/digits/infer", data=DIGIT_REQUEST.read_bytes(), timeout=30)
    assert resp.status_code == 200, f"digits infer answered {resp.status_code}: {resp.text[:300]}"
    outputs = {o["name"]: o for o in resp.json()["outputs"]}
    return outputs["label"]["data"][0]
