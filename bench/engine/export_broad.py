#!/usr/bin/env python3
"""Export the broad engine benchmark's models at their real sizes, random weights, no downloads.

The engine was tuned on four small models (tools/export_real_models.py: mlp, resnet18,
mobilenet_v2, tiny BERT); this adds the common architectures it was not tuned on, at the sizes
people deploy: torchvision resnet50, efficientnet_b0, mobilenet_v3_large, convnext_tiny and
vit_b_16 at 224x224; a BERT-base encoder (12 layers, 768 wide) and DistilBERT-base with a free
sequence length (run.py measures sequence 128); the encoder of a Whisper-base-sized model (6
layers, 512 wide, 80 x 3000 log-mel frames). BatchNorm statistics are calibrated on random inputs
(tools/export_zoo.py) so activations stay of order 1.

Writes the layout bench/engine/run.py reads (`<out>/<model>_torchscript/1/model.onnx`, about
1.3 GB in all, git-ignored):

    .venv-realmodels/bin/python bench/engine/export_broad.py --out .bench-models
    .venv-realmodels/bin/python bench/engine/run.py --store .bench-models --models resnet50 ... (see BROAD)
    (or: make bench-engine-broad)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# This folder holds a profile.py, which would shadow the standard library's (torch imports cProfile).
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402
from torch import nn  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import export_zoo as zoo  # noqa: E402

BROAD = ["resnet50", "efficientnet_b0", "mobilenet_v3_large", "convnext_tiny", "vit_b_16", "bert_base", "distilbert",
         "whisper_encoder"]


def vision(name: str) -> zoo.Built:
    return zoo.classification(zoo.tv(name), 224)()


def text(class_name: str, config_name: str, **config) -> zoo.Built:
    # export_zoo's text models use its small vocabulary for the example ids; these keep the
    # default (30522), so the embedding table has the real size too.
    built = zoo.text_model(zoo.hf(class_name, config_name, **config), ["last_hidden_state"])()
    return built


class WhisperEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        zoo.import_torchvision()
        import transformers  # noqa: PLC0415

        config = transformers.WhisperConfig(d_model=512, encoder_layers=6, encoder_attention_heads=8,
                                            encoder_ffn_dim=2048, decoder_layers=1, decoder_attention_heads=8,
                                            decoder_ffn_dim=2048, num_mel_bins=80, max_source_positions=1500)
        self.encoder = transformers.WhisperModel(config).get_encoder()

    def forward(self, features):
        return self.encoder(input_features=features, return_dict=True).last_hidden_state


def whisper() -> zoo.Built:
    torch.manual_seed(zoo.SEED)
    return zoo.Built(WhisperEncoder().eval(), (torch.randn(1, 80, 3000),),
                     [{"name": "input_features", "dtype": "float32", "shape": ["batch", 80, 3000]}],
                     ["last_hidden_state"], [{"batch": 1}])


BUILDERS = {
    "resnet50": lambda: vision("resnet50"),
    "efficientnet_b0": lambda: vision("efficientnet_b0"),
    "mobilenet_v3_large": lambda: vision("mobilenet_v3_large"),
    "convnext_tiny": lambda: vision("convnext_tiny"),
    "vit_b_16": lambda: vision("vit_b_16"),
    "bert_base": lambda: text("BertModel", "BertConfig"),
    "distilbert": lambda: text("DistilBertModel", "DistilBertConfig"),
    "whisper_encoder": whisper,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / ".bench-models")
    parser.add_argument("--only", nargs="*", default=BROAD, choices=BROAD)
    args = parser.parse_args()
    for name in args.only:
        path = args.out / f"{name}_torchscript" / "1" / "model.onnx"
        if path.exists():
            print(f"{name}: {path} exists", flush=True)
            continue
        built = BUILDERS[name]()
        zoo.export(built, "torchscript", path)
        print(f"{name}: {path} ({path.stat().st_size / 1e6:.0f} MB)", flush=True)


if __name__ == "__main__":
    main()
