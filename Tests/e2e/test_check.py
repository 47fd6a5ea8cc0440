"""`swerve check MODEL.onnx` and `swerve check --list-ops` on real files."""

from __future__ import annotations

import subprocess

import onnx
from onnx import TensorProto, helper

from swerve_e2e import DIGITS_MODEL_DIR, swerve_binary


def run_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(swerve_binary()), "check", *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, errors="replace", timeout=60)


def test_check_good_model():
    path = DIGITS_MODEL_DIR / "1" / "model.onnx"
    done = run_check(str(path))
    out = done.stdout
    assert done.returncode == 0, f"exit {done.returncode}\n{out}\n{done.stderr}"
    assert "input  FP32  [batch, 64]" in out, out          # symbolic dimension by name
    assert "probabilities  FP32   [batch, 10]" in out, out
    assert "opsets      ai.onnx 17" in out, out
    assert "producer    pytorch" in out, out
    assert "Gemm     2" in out, out                        # operator counts
    assert "unsupported none" in out, out
    assert "output      probabilities FP32 [1, 10]" in out, out   # one inference at batch 1
    assert "OK:" in out, out


def test_check_dim_override():
    done = run_check(str(DIGITS_MODEL_DIR / "1" / "model.onnx"), "--dim", "batch=5")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "output      label INT64 [5]" in done.stdout, done.stdout


def test_check_garbage_file(tmp_path):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"\xff\xfe this is not a protobuf \x00\x01" * 20)
    done = run_check(str(path))
    assert done.returncode != 0, done.stdout
    assert str(path) in done.stderr, done.stderr
    assert "FAILED" in done.stderr, done.stderr


def test_check_missing_file(tmp_path):
    done = run_check(str(tmp_path / "nope.onnx"))
    assert done.returncode != 0
    assert "nope.onnx" in done.stderr, done.stderr


def test_check_unsupported_operator(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    # An operator of a domain swerve does not serve (every default-domain operator may get a kernel).
    node = helper.make_node("Frobnicate", ["r"], ["y"], name="the_custom_node", domain="com.example")
    relu = helper.make_node("Relu", ["x"], ["r"], name="relu")
    graph = helper.make_graph([relu, node], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14), helper.make_opsetid("com.example", 3)],
                              ir_version=8)
    onnx.checker.check_model(model)
    path = tmp_path / "custom.onnx"
    onnx.save(model, str(path))
    done = run_check(str(path))
    assert done.returncode != 0, done.stdout
    assert "com.example.Frobnicate (opset 3): 1 node(s): 'the_custom_node'" in done.stdout, done.stdout
    message = done.stderr
    assert "'com.example.Frobnicate'" in message and "opset 3" in message and "the_custom_node" in message, message


def test_check_list_ops():
    done = run_check("--list-ops")
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("  ")]
    ops = [row[0] for row in rows]
    assert {"Gemm", "MatMul", "Relu", "Softmax"} <= set(ops), done.stdout
    assert ops == sorted(ops)
    # Each operator with its opsets, against the onnx release the tests use: from the first version
    # at which onnx defines it (or a later one, where an operator's oldest definition is not
    # implemented: LSTM/GRU/RNN before 7) up to that release's newest opset.
    newest = onnx.defs.onnx_opset_version()
    for row in rows:
        op = row[0]
        # An operator of another domain is listed by its qualified name (ai.onnx.preview.FlexAttention)
        # with that domain's opsets.
        domain, _, name = op.rpartition(".")
        if domain == "com.microsoft":
            # onnxruntime's contrib operators are not in onnx's schemas: its CPU kernels say which exist.
            import onnxruntime.capi._pybind_state as ort_state
            starts = sorted(k.version_range[0] for k in ort_state.get_all_opkernel_def()
                            if k.domain == domain and k.op_name == name and k.provider == "CPUExecutionProvider")
            assert starts and int(row[2].split("-")[0]) >= starts[0], (op, row, starts)
            assert row[3:6] == ["(of", "domain", domain + ");"], row
            continue
        versions = sorted({s.since_version for s in onnx.defs.get_all_schemas_with_history()
                           if s.name == name and s.domain in ((domain,) if domain else ("", "ai.onnx"))})
        first, last = (int(v) for v in row[2].split("-"))
        assert row[1] == "opsets" and versions and first >= versions[0], (op, row, versions)
        if domain:
            assert row[3:6] == ["(of", "domain", domain + ");"], row
        else:
            assert last == newest, (op, row, newest)


def test_check_without_model_is_usage_error():
    done = run_check()
    assert done.returncode == 64, done.returncode  # ArgumentParser's usage error (EX_USAGE)
    assert "--list-ops" in done.stderr, done.stderr
