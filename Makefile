# Swerve: `make run` builds and serves ./models on port 8000; `make test` runs every test.
SWIFT ?= swift
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8000
MODEL_STORE ?= ./models
RELEASE_BIN := .build/release/swerve

.PHONY: run build deps test test-deps unit e2e models clean help screenshot

help:
	@echo "make run    - install missing system packages, build (release), serve $(MODEL_STORE) on port $(PORT)"
	@echo "make test   - install what tests need, run the Swift unit tests and the end-to-end tests"
	@echo "make models - regenerate the bundled and test models (needs torch; large download)"
	@echo "make screenshot - regenerate docs/status-page.png (status page under traffic; needs chromium)"

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

test: unit e2e

models:
	$(PYTHON) -m venv .venv-export
	.venv-export/bin/pip install --quiet -r tools/requirements-export.txt
	.venv-export/bin/python tools/train_digits.py
	.venv-export/bin/python tools/make_test_models.py

screenshot: test-deps
	$(SWIFT) build -c release --product swerve
	$(VENV)/bin/python tools/status_screenshot.py --bin $(RELEASE_BIN) --out docs/status-page.png

clean:
	rm -rf .build
