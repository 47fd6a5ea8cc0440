# Swerve: `make run` builds and serves ./models on port 8000; `make test` runs every test.
SWIFT ?= swift
PYTHON ?= python3
VENV ?= .venv
PERF_VENV ?= .venv-perf
PORT ?= 8000
MODEL_STORE ?= ./models
RELEASE_BIN := .build/release/swerve

CONFORMANCE_DATA := .build-conformance-data

.PHONY: run build deps test fuzz fuzz-short test-openapi test-deps conformance-data unit e2e deploy-check image models clean help realmodels test-realmodels test-quantized zoo test-zoo test-zoo-ci bench-engine bench-int8 test-tf screenshot

help:
	@echo "make run    - install missing system packages, build (release), serve $(MODEL_STORE) on port $(PORT)"
	@echo "make test   - install what tests need, run the unit, conformance, end-to-end, API contract, short fuzzing, real-model and deployment tests"
	@echo "make image  - build the container's runtime stage around a host binary with podman, run and check it (root)"
	@echo "make models - regenerate the bundled and test models (needs torch; large download)"
	@echo "make realmodels      - export resnet18, mobilenet_v2, tiny BERT, ... to .realmodels (installs .venv-realmodels)"
	@echo "make test-realmodels - the real exports served by swerve against onnxruntime (part of make test)"
	@echo "make test-quantized  - resnet18 and tiny BERT quantized by onnxruntime (dynamic, QDQ, QOperator) against onnxruntime (part of test-realmodels)"
	@echo "make test-zoo        - the whole zoo of tools/export_zoo.py (~50 architectures) against onnxruntime"
	@echo "make test-tf         - Keras models through tf2onnx against onnxruntime (installs TensorFlow CPU, 1.4 GB; part of make test)"
	@echo "make bench-engine    - engine latency, load time and memory against onnxruntime (bench/engine)"
	@echo "make bench-int8      - int8 resnet50 and BERT-base against their fp32 models and onnxruntime (bench/engine/int8.py)"
	@echo "make fuzz            - build the libFuzzer targets (.build-fuzz) and run each for FUZZ_SECONDS (default 60); docs/fuzzing.md"
	@echo "make fuzz-short      - the same, built in debug, for FUZZ_SHORT_SECONDS (default 15) each (part of make test)"
	@echo "make test-openapi    - schemathesis: docs/openapi.yaml against the real binary (part of make test)"
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
	@# perf_analyzer: the tritonclient 2.51.0 wheel is the newest whose bundled binary runs on Debian 12.
	@if [ ! -f $(PERF_VENV)/.installed ]; then \
		$(PYTHON) -m venv $(PERF_VENV) && \
		$(PERF_VENV)/bin/pip install --quiet --disable-pip-version-check 'tritonclient[all]==2.51.0' nvidia-cuda-runtime-cu12 && \
		touch $(PERF_VENV)/.installed; \
	fi

# ONNX's conformance cases, generated from the onnx wheel into a git-ignored folder (about 10 s).
conformance-data: test-deps
	$(VENV)/bin/python tools/gen_node_tests.py $(CONFORMANCE_DATA)

unit: test-deps conformance-data
	$(VENV)/bin/python tools/gen_operator_versions.py --check
	SWERVE_NODE_TESTS=$(CURDIR)/$(CONFORMANCE_DATA) $(SWIFT) test

e2e: test-deps
	$(SWIFT) build -c release --product swerve
	SWERVE_BIN=$(RELEASE_BIN) PERF_ANALYZER=$(PERF_VENV)/bin/perf_analyzer $(VENV)/bin/python -m pytest -q Tests/e2e

# Dockerfile (hadolint), Kubernetes manifests (kubectl kustomize + kubernetes-validate), KServe,
# Grafana dashboard against the live binary's /metrics; flags of the image and manifests.
deploy-check: test-deps
	$(SWIFT) build -c release --product swerve
	SWERVE_BIN=$(RELEASE_BIN) $(VENV)/bin/python -m pytest -q Tests/deploy

# The API contract: schemathesis generates requests from docs/openapi.yaml and checks every answer
# of the real binary against it (Tests/api; about a minute or two).
test-openapi: test-deps
	$(SWIFT) build -c release --product swerve
	SWERVE_BIN=$(RELEASE_BIN) SCHEMATHESIS=$(VENV)/bin/schemathesis $(VENV)/bin/python -m pytest -q Tests/api

# libFuzzer targets (Tests/Fuzz) built with -sanitize=fuzzer into .build-fuzz; see docs/fuzzing.md.
FUZZ_SECONDS ?= 60
FUZZ_SHORT_SECONDS ?= 15

fuzz: deps
	tools/fuzz.sh $(FUZZ_SECONDS)

fuzz-short: deps
	FUZZ_CONFIG=debug tools/fuzz.sh $(FUZZ_SHORT_SECONDS)

test: unit e2e test-openapi fuzz-short test-realmodels test-zoo-ci test-tf deploy-check

# The image's runtime stage (Dockerfile target `prebuilt`) around a binary built here, with podman
# and no registry; runs it and checks health, HEALTHCHECK and a prediction. See docs/deployment.md.
IMAGE_SCRATCH ?= .build-static
image: deps
	$(SWIFT) build -c release --static-swift-stdlib --product swerve --scratch-path $(IMAGE_SCRATCH)
	deploy/container/make-image.sh $(IMAGE_SCRATCH)/release/swerve

# Real PyTorch exports (random weights, no downloads) in a git-ignored store; torch is the CPU
# wheel (see tools/requirements-realmodels.txt). Re-exported when the script changes.
REALMODELS_VENV := .venv-realmodels
REALMODELS := .realmodels

$(REALMODELS_VENV)/.installed: tools/requirements-realmodels.txt
	$(PYTHON) -m venv $(REALMODELS_VENV)
	$(REALMODELS_VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements-realmodels.txt
	touch $@

$(REALMODELS)/manifest.json: tools/export_real_models.py $(REALMODELS_VENV)/.installed
	$(REALMODELS_VENV)/bin/python tools/export_real_models.py --out $(REALMODELS)

realmodels: $(REALMODELS)/manifest.json

# Quantized by onnxruntime's quantizer from generated float32 models (tools/export_quantized_models.py).
QUANT_MODELS := .realmodels-quant

$(QUANT_MODELS)/manifest.json: tools/export_quantized_models.py tools/export_real_models.py $(REALMODELS_VENV)/.installed
	$(REALMODELS_VENV)/bin/python tools/export_quantized_models.py --out $(QUANT_MODELS)

test-realmodels: realmodels $(QUANT_MODELS)/manifest.json
	$(SWIFT) build -c release --product swerve
	SWERVE_BIN=$(RELEASE_BIN) SWERVE_REALMODELS=$(REALMODELS) SWERVE_QUANT_MODELS=$(QUANT_MODELS) $(REALMODELS_VENV)/bin/python -m pytest -q Tests/realmodels

test-quantized: $(QUANT_MODELS)/manifest.json
	$(SWIFT) build -c release --product swerve
	SWERVE_BIN=$(RELEASE_BIN) SWERVE_QUANT_MODELS=$(QUANT_MODELS) $(REALMODELS_VENV)/bin/python -m pytest -q Tests/realmodels/test_quantized.py

# Keras -> tf2onnx exports in their own venv (TensorFlow 2.15 pins protobuf 3.20 and numpy 1.x). Fresh
# install about 45 s and 1.4 GB on the project's machine, exports 12 s: it fits `make test`.
TF_VENV := .venv-tf

$(TF_VENV)/.installed: tools/requirements-tf.txt
	$(PYTHON) -m venv $(TF_VENV)
	$(TF_VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements-tf.txt
	touch $@

.realmodels-tf/manifest.json: tools/export_keras_models.py $(TF_VENV)/.installed
	$(TF_VENV)/bin/python tools/export_keras_models.py --out .realmodels-tf

test-tf: .realmodels-tf/manifest.json
	$(SWIFT) build -c release --product swerve
	SWERVE_BIN=$(RELEASE_BIN) SWERVE_REALMODELS=.realmodels-tf $(TF_VENV)/bin/python -m pytest -q Tests/realmodels --ignore=Tests/realmodels/test_quantized.py

# The zoo (tools/export_zoo.py): ~50 architectures across families, served and compared with
# onnxruntime at two shapes each. `make test` runs the representative third (.zoo-ci, about a minute
# of exports); `make test-zoo` exports and runs them all (.zoo).
.zoo-ci/manifest.json: tools/export_zoo.py $(REALMODELS_VENV)/.installed
	$(REALMODELS_VENV)/bin/python tools/export_zoo.py --tier ci --out .zoo-ci

.zoo/manifest.json: tools/export_zoo.py $(REALMODELS_VENV)/.installed
	$(REALMODELS_VENV)/bin/python tools/export_zoo.py --tier full --out .zoo

zoo: .zoo/manifest.json

test-zoo-ci: .zoo-ci/manifest.json
	$(SWIFT) build -c release --product swerve
	SWERVE_BIN=$(RELEASE_BIN) SWERVE_ZOO=.zoo-ci $(REALMODELS_VENV)/bin/python -m pytest -q Tests/zoo

test-zoo: .zoo/manifest.json
	$(SWIFT) build -c release --product swerve
	SWERVE_BIN=$(RELEASE_BIN) SWERVE_ZOO=.zoo $(REALMODELS_VENV)/bin/python -m pytest -q Tests/zoo

bench-engine: realmodels
	$(SWIFT) build -c release --product swerve
	$(REALMODELS_VENV)/bin/python bench/engine/run.py --swerve $(RELEASE_BIN) --store $(REALMODELS)

# The broad set (bench/engine/export_broad.py): common architectures at their real sizes, against
# onnxruntime and OpenVINO in the same run (installed here: it is a benchmark peer, not a test need).
BROAD_MODELS = resnet50 efficientnet_b0 mobilenet_v3_large convnext_tiny vit_b_16 bert_base distilbert whisper_encoder
bench-engine-broad: $(REALMODELS_VENV)/.installed
	$(REALMODELS_VENV)/bin/python -c "import openvino" 2>/dev/null || $(REALMODELS_VENV)/bin/pip install --quiet openvino
	$(REALMODELS_VENV)/bin/python bench/engine/export_broad.py --out .bench-models
	$(SWIFT) build -c release --product swerve
	$(REALMODELS_VENV)/bin/python bench/engine/run.py --swerve $(RELEASE_BIN) --store .bench-models \
	    --models $(BROAD_MODELS) --batches 1 8 --threads 1 2 --rounds 2 --min-iterations 5 --json .bench-models/broad.json

# int8 resnet50 and BERT-base (quantized here by onnxruntime's quantizer from the broad set's fp32
# exports) against their fp32 originals and onnxruntime: latency and agreement (issue 15).
bench-int8: $(REALMODELS_VENV)/.installed
	$(REALMODELS_VENV)/bin/python bench/engine/export_broad.py --out .bench-models
	$(SWIFT) build -c release --product swerve
	$(REALMODELS_VENV)/bin/python bench/engine/int8.py --swerve $(RELEASE_BIN) --store .bench-models \
	    --batches 1 8 --threads 1 2 --rounds 2 --agreement 32 --json .bench-models/int8.json

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
