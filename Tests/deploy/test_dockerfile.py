"""The Dockerfile: hadolint-clean, and built the way the deployment needs (stages, user, ports)."""

from __future__ import annotations

import subprocess

from deploy_support import (DOCKERFILE, REPO_ROOT, dockerfile_env, dockerfile_instructions,
                            dockerfile_one, dockerfile_stages, exec_form, venv_tool)


def test_hadolint_reports_nothing():
    done = subprocess.run([venv_tool("hadolint"), "--config", str(REPO_ROOT / ".hadolint.yaml"),
                           str(DOCKERFILE)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and not done.stdout.strip(), \
        f"hadolint found problems in the Dockerfile:\n{done.stdout}{done.stderr}"


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    """The check can fail: a Dockerfile with a root user and a `latest` base is reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN cd /tmp && apt-get install -y curl\nUSER root\n")
    done = subprocess.run([venv_tool("hadolint"), "--config", str(REPO_ROOT / ".hadolint.yaml"),
                           str(bad)], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "DL3007" in done.stdout, done.stdout


def test_stages_and_base_image_arguments():
    stages = dockerfile_stages()
    assert list(stages) == ["build", "runtime-base", "prebuilt", "runtime"], \
        "the runtime image must be the last (default) stage; prebuilt is what `make image` builds"
    args = [rest for word, rest in dockerfile_instructions()[:2] if word == "ARG"]
    assert any(a.startswith("SWIFT_IMAGE=swift:") for a in args), args
    assert any(a.startswith("RUNTIME_IMAGE=debian:") for a in args), args
    assert stages["build"][0][1].startswith("${SWIFT_IMAGE}")
    assert stages["runtime-base"][0][1].startswith("${RUNTIME_IMAGE}")
    build_runs = " ".join(rest for word, rest in stages["build"] if word == "RUN")
    assert "--static-swift-stdlib" in build_runs and "-c release" in build_runs
    assert ("COPY", "--from=build /out/swerve /usr/local/bin/swerve") in stages["runtime"]
    assert ("COPY", ".build-image/swerve /usr/local/bin/swerve") in stages["prebuilt"]


def test_runtime_is_slim_non_root_and_serves_models():
    stage = "runtime-base"
    installs = " ".join(rest for word, rest in dockerfile_stages()[stage] if word == "RUN")
    for package in ("libmicrohttpd12", "libjansson4", "libopenblas0"):
        assert package in installs, f"the runtime stage does not install {package}"
    assert "--no-install-recommends" in installs and "rm -rf /var/lib/apt/lists/*" in installs
    for dev in ("-dev", "swift", "gcc", "clang"):
        assert dev not in installs.split("&&")[1], f"build tooling ({dev}) in the runtime stage"
    user = dockerfile_one(stage, "USER")
    assert user.split(":")[0] not in ("0", "root"), f"the image runs as {user}"
    assert dockerfile_one(stage, "EXPOSE").split() == ["8000", "8001"]
    assert ("COPY", "models /models") in dockerfile_stages()[stage]
    env = dockerfile_env(stage)
    assert env["SWERVE_MODEL_STORE"] == "/models" and env["SWERVE_PORT"] == "8000"
    assert env["SWERVE_MANAGEMENT_HOST"] == "127.0.0.1", "management must stay on loopback by default"
    assert exec_form(dockerfile_one(stage, "ENTRYPOINT")) == ["/usr/local/bin/swerve", "serve"]
    assert "/v2/health/ready" in dockerfile_one(stage, "HEALTHCHECK")


def test_dockerignore_keeps_what_the_build_needs():
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    for needed in ("Package.swift", "Sources", "Tests", "models"):
        assert needed not in ignored, f".dockerignore drops {needed}, which the build copies"
    assert ".build-*" in ignored and "!.build-image/swerve" in ignored
