#!/usr/bin/env python3
"""A float16/bfloat16 export against its fp32 twin, in Swerve: latency and resident memory.

For each pair (exports of tools/export_real_models.py: `<model>_<exporter>` and
`<model>_<precision>_<exporter>`), batch and thread count, alternates

    swerve bench MODEL --batch B --threads T --iterations K --warmup W

on the fp32 export and on the 16-bit one, --rounds times (default 3), and reports each one's median
latency over the rounds, the median of the per-round ratios 16-bit/fp32 with their range (< 1: the
16-bit model is faster), the file size, and the resident-memory growth of loading it (`rss_loaded -
rss_before` of `swerve bench`, which holds the weights as the session keeps them). Swerve keeps a
16-bit model's packed weights 16-bit (docs/architecture.md, "16-bit floats"), so the memory should be
about half the fp32 twin's where the weights dominate it.

    .venv-realmodels/bin/python bench/engine/precision.py --swerve .build/release/swerve --store .realmodels

`--wide-encoder` adds a BERT-base-wide pair: nn.TransformerEncoder, 4 layers of d_model 768, 12
heads, feed-forward 3072 (one layer's weights, shared: 28 MB as fp32), at sequence 128, exported
with torch.onnx (TorchScript, opset 17) as fp32 and after `.half()` into `--wide-store` (default
.bench-precision, git-ignored; not the test store, whose server would load them) when absent.

Prints a Markdown table and the CPU line (model name and the flags that matter) to paste next to it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path

PAIRS = [
    # (fp32 export, 16-bit export, batches)
    ("resnet18_torchscript", "resnet18_fp16_torchscript", (1, 8)),
    ("small_cnn_torchscript", "small_cnn_fp16_torchscript", (1, 32)),
    ("small_cnn_torchscript", "small_cnn_bf16_torchscript", (1, 32)),
    ("transformer_encoder_torchscript", "transformer_encoder_fp16_torchscript", (1, 8)),
    ("transformer_encoder_torchscript", "transformer_encoder_bf16_torchscript", (1, 8)),
]
WIDE = ("encoder768_torchscript", "encoder768_fp16_torchscript", (1, 8))
FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16")


def bench(binary: str, path: Path, batch: int, threads: int, iterations: int, warmup: int) -> dict:
    out = subprocess.run([binary, "bench", str(path), "--batch", str(batch), "--threads", str(threads),
                          "--iterations", str(iterations), "--warmup", str(warmup)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def cpu_line() -> str:
    info = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    cores = info.count("processor\t:")
    present = [f for f in FLAGS if f in flags]
    absent = [f for f in FLAGS if f not in flags]
    return f"CPU: {model}, {cores} vCPUs; flags {' '.join(present)}" + (f"; no {' '.join(absent)}" if absent else "")


def export_wide_encoder(store: Path) -> None:
    """The `--wide-encoder` pair, exported when absent (needs torch: .venv-realmodels)."""
    paths = [store / name / "1" / "model.onnx" for name in WIDE[:2]]
    if all(p.exists() for p in paths):
        return
    import torch

    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(d_model=768, nhead=12, dim_feedforward=3072, batch_first=True)
    model = torch.nn.TransformerEncoder(layer, num_layers=4, enable_nested_tensor=False).eval()
    x = torch.randn(1, 128, 768)
    for path, (m, xx) in zip(paths, [(model, x), (None, None)]):
        if m is None:
            m, xx = model.half(), x.half()
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.onnx.export(m, (xx,), str(path), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17, dynamo=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--swerve", default=".build/release/swerve")
    parser.add_argument("--store", type=Path, default=Path(".realmodels"))
    parser.add_argument("--threads", type=int, nargs="*", default=[1])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="16-bit exports to run (default: all pairs)")
    parser.add_argument("--wide-encoder", action="store_true", help="add the 768-wide encoder pair (exported when absent)")
    parser.add_argument("--wide-store", type=Path, default=Path(".bench-precision"))
    args = parser.parse_args()
    pairs = [(base, half, batches, args.store) for base, half, batches in PAIRS]
    if args.wide_encoder:
        export_wide_encoder(args.wide_store)
        pairs.append((*WIDE, args.wide_store))

    print(cpu_line())
    print()
    print("| 16-bit export | fp32 twin | batch | threads | fp32 ms | 16-bit ms | 16-bit/fp32 (range) "
          "| file MB fp32 / 16-bit | load RSS MB fp32 / 16-bit |")
    print("|---|---|---|---|---|---|---|---|---|")
    for base, half, batches, store in pairs:
        if args.only and half not in args.only:
            continue
        paths = [store / name / "1" / "model.onnx" for name in (base, half)]
        if not all(p.exists() for p in paths):
            print(f"| {half} | {base} | - | - | not exported: run tools/export_real_models.py | | | | |")
            continue
        sizes = [sum(f.stat().st_size for f in p.parent.iterdir()) / 1e6 for p in paths]
        for batch in batches:
            for threads in args.threads:
                medians: list[list[float]] = [[], []]
                rss: list[list[float]] = [[], []]
                for _ in range(args.rounds):
                    for i, path in enumerate(paths):
                        r = bench(args.swerve, path, batch, threads, args.iterations, args.warmup)
                        medians[i].append(r["median_ms"])
                        rss[i].append((r["rss_loaded"] - r["rss_before"]) / 1e6)
                ratios = [h / f for f, h in zip(*medians)]
                print(f"| {half} | {base} | {batch} | {threads} | {statistics.median(medians[0]):.2f} "
                      f"| {statistics.median(medians[1]):.2f} | {statistics.median(ratios):.2f} "
                      f"({min(ratios):.2f}-{max(ratios):.2f}) | {sizes[0]:.1f} / {sizes[1]:.1f} "
                      f"| {statistics.median(rss[0]):.1f} / {statistics.median(rss[1]):.1f} |", flush=True)


if __name__ == "__main__":
    main()
