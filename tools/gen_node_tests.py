#!/usr/bin/env python3
"""Writes the ONNX conformance cases the Swift conformance tests run (`make conformance-data`).

onnx >= 1.20 keeps its node test cases in memory; this rebuilds the classic layout
(`node/test_*/model.onnx` + `test_data_set_0/{input,output}_K.pb`) with onnx's own writer, and copies
the `pytorch-converted` and `pytorch-operator` cases shipped in the wheel next to it:

    OUT/node/test_*/...
    OUT/pytorch-converted/test_*/...
    OUT/pytorch-operator/test_*/...
    OUT/STAMP                      onnx version; the data is regenerated when it changes

Usage: gen_node_tests.py OUT_DIR   (about 10 s, 30 MB; the folder is git-ignored)
"""
import argparse
import warnings
import os
import shutil
import sys

import onnx
import onnx.backend.test.case.node as node_cases
import onnx.backend.test.cmd_tools as cmd_tools


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="output folder (created; replaced when the onnx version differs)")
    out = parser.parse_args().out
    warnings.simplefilter("ignore")  # numpy warnings from the case generators (inf on purpose)
    stamp = os.path.join(out, "STAMP")
    want = f"onnx {onnx.__version__}\n"
    if os.path.exists(stamp) and open(stamp).read() == want:
        print(f"conformance data in {out} is up to date ({want.strip()})")
        return 0
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    # The stock writer, fed with every node test case (it would otherwise only write real/ and simple/).
    cmd_tools.model_test.collect_testcases = lambda: node_cases.collect_testcases(None)
    cmd_tools.generate_data(argparse.Namespace(output=out, op_type=None))
    data = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
    for suite in ("pytorch-converted", "pytorch-operator"):
        src = os.path.join(data, suite)
        if not os.path.isdir(src):
            print(f"error: {src} is missing from the onnx wheel", file=sys.stderr)
            return 1
        shutil.copytree(src, os.path.join(out, suite))
    for extra in ("real", "simple", "light"):
        shutil.rmtree(os.path.join(out, extra), ignore_errors=True)
    with open(stamp, "w") as f:
        f.write(want)
    counts = {d: len(os.listdir(os.path.join(out, d))) for d in ("node", "pytorch-converted", "pytorch-operator")}
    print(f"wrote conformance cases to {out}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
