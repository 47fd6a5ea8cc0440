"""deploy/kserve: the ClusterServingRuntime declares Swerve for ONNX over V2 and its container is a
valid Kubernetes container; the InferenceService selects it. (kubernetes-validate has no KServe
schemas, so the custom resources are checked here field by field, and their container spec against
the Kubernetes 1.30 Pod schema.)"""

from __future__ import annotations

import kubernetes_validate

from deploy_support import KSERVE_DIR, KUBERNETES_VERSION, load_yaml

RUNTIME = KSERVE_DIR / "clusterservingruntime.yaml"
SERVICE = KSERVE_DIR / "inferenceservice.yaml"


def arg_value(args: list[str], flag: str) -> str:
    assert flag in args, f"the runtime does not pass {flag}"
    return args[args.index(flag) + 1]


def test_runtime_declares_onnx_over_v2():
    runtime = load_yaml(RUNTIME)
    assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1"
    assert runtime["kind"] == "ClusterServingRuntime"
    assert "namespace" not in runtime["metadata"], "a cluster-scoped resource has no namespace"
    spec = runtime["spec"]
    assert spec["protocolVersions"] == ["v2"]
    assert {"name": "onnx", "version": "1", "autoSelect": True} in spec["supportedModelFormats"]
    assert set(spec) <= {"annotations", "supportedModelFormats", "protocolVersions", "containers",
                         "multiModel", "disabled", "grpcEndpoint", "grpcDataEndpoint", "httpDataEndpoint",
                         "replicas", "storageHelper", "builtInAdapter", "nodeSelector", "affinity",
                         "tolerations", "volumes", "labels", "imagePullSecrets"}, "unknown ServingRuntime field"


def test_runtime_container_serves_mnt_models_on_its_port():
    spec = load_yaml(RUNTIME)["spec"]
    (container,) = spec["containers"]
    assert container["name"] == "kserve-container", "KServe merges the predictor into this name"
    args = container["args"]
    assert arg_value(args, "--model-store") == "/mnt/models"
    port = int(arg_value(args, "--port"))
    assert container["ports"][0]["containerPort"] == port
    assert arg_value(args, "--host") == "0.0.0.0"
    assert spec["annotations"]["prometheus.kserve.io/port"] == str(port)
    assert spec["annotations"]["prometheus.kserve.io/path"] == "/metrics"
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": port}
    assert container["securityContext"]["runAsNonRoot"] is True


def test_runtime_container_is_a_valid_kubernetes_container():
    (container,) = load_yaml(RUNTIME)["spec"]["containers"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"},
           "spec": {"containers": [container]}}
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    broken = {**pod, "spec": {"containers": [{**container, "portz": []}]}}
    try:
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError:
        pass
    else:
        raise AssertionError("the validator accepted a container with an unknown field")


def test_inference_service_uses_the_runtime():
    service = load_yaml(SERVICE)
    runtime = load_yaml(RUNTIME)
    assert service["apiVersion"] == "serving.kserve.io/v1beta1"
    assert service["kind"] == "InferenceService"
    model = service["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"]["name"] == "onnx"
    assert model["protocolVersion"] == "v2"
    assert model["storageUri"].split("://")[0] in ("pvc", "s3", "gs", "https", "hdfs", "oci")
    (container,) = runtime["spec"]["containers"]
    # The V2 path names the model by its folder in the store; the example serves ./models/digits.
    assert service["metadata"]["name"] == "digits"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"},
           "spec": {"containers": [{"name": "c", "image": container["image"], "resources": model["resources"]}]}}
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
