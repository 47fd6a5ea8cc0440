# Swerve: `make run` builds and serves ./models on port 8000; `make test` runs every test.
SWIFT ?= swift
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8000
MODEL_STORE ?= ./models
RELEASE_BIN := .build/release/swerve

.PHONY: run build deps test test-deps unit e2e deploy-check image models clean help

help:
	@echo "make run    - install missing system packages, build (release), serve $(MODEL_STORE) on port $(PORT)"
	@echo "make test   - install what tests need, run the Swift unit tests and the end-to-end tests"
	@echo "make image  - build the container's runtime stage around a host binary with podman, run and check it (root)"
	@echo "make models - regenerate the bundled and test models (needs torch; large download)"

deps:
	@tools/install-deps.sh

build: deps
	$(SWIFT) build -c release --product swerve

run: build
	$(RELEASE_BIN) serve --model-store $(MODEL_STORE) --port $(PORT)

test-deps:
	@tools/install-deps.sh --test
	@if [ ! -f $(VENV)/.installed ] || [ tools/requirements-test.txt -nt $(VENV)/.installed ]; then \
		$(PYTHON) -m venv $(VENV) && \
		$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements-test.txt && \
		touch $(VENV)/.installed; \
	fi

unit: test-deps
	$(SWIFT) test

e2e: test-deps
	$(SWIFT) build -c release --product swerve
	SWERVE_BIN=$(RELEASE_BIN) $(VENV)/bin/python -m pytest -q Tests/e2e

# Dockerfile (hadolint), Kubernetes manifests (kubectl kustomize + kubernetes-validate), KServe,
# Grafana dashboard against the live binary's /metrics; flags of the image and manifests.
deploy-check: test-deps
	$(SWIFT) build -c release --product swerve
	SWERVE_BIN=$(RELEASE_BIN) $(VENV)/bin/python -m pytest -q Tests/deploy

test: unit e2e deploy-check

# The image's runtime stage (Dockerfile target `prebuilt`) around a binary built here, with podman
# and no registry; runs it and checks health, HEALTHCHECK and a prediction. See docs/deployment.md.
IMAGE_SCRATCH ?= .build-static
image: deps
	$(SWIFT) build -c release --static-swift-stdlib --product swerve --scratch-path $(IMAGE_SCRATCH)
	deploy/container/make-image.sh $(IMAGE_SCRATCH)/release/swerve

models:
	$(PYTHON) -m venv .venv-export
	.venv-export/bin/pip install --quiet -r tools/requirements-export.txt
	.venv-export/bin/python tools/train_digits.py
	.venv-export/bin/python tools/make_test_models.py

clean:
	rm -rf .build
