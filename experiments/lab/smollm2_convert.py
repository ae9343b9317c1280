"""Write SmolLM2's GGUF once as a transformers folder (config, tokenizer, fp32 safetensors) and check it.

De-quantising the Q4_1 GGUF takes ~10-30 s per process; every training job of a GPU call loading the folder
instead takes seconds. The weights stay float32 (the de-quantised values exactly; bf16 would round them again).
The check: the folder's model gives the same logits as the GGUF's on one sentence (max |diff| printed).
    python3 experiments/lab/smollm2_convert.py "$SMOLLM2_DIR/SmolLM2-135M-Instruct.Q4_1.gguf" "$SMOLLM2_DIR/hf"
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("gguf", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    t0 = time.time()
    folder, name = str(args.gguf.parent), args.gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    print(
        f"de-quantised {name}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, "
        f"{time.time() - t0:.0f} s",
        flush=True,
    )
    tmp = args.out.with_name(args.out.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    # a GGUF-loaded model is marked quantized and refuses save_pretrained: copy its (de-quantised) weights into a
    # plain model of the same config
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict())
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32).eval()
    ids = AutoTokenizer.from_pretrained(tmp)(
        "The quick brown fox jumps over the lazy dog.", return_tensors="pt"
    )
    with torch.no_grad():
        diff = (model(**ids).logits - reloaded(**ids).logits).abs().max().item()
    print(f"folder vs GGUF logits: max |diff| {diff:.2e}", flush=True)
    if diff > 1e-4:
        print("the converted folder does not reproduce the GGUF's logits: not installed", file=sys.stderr)
        return 1
    tmp.rename(args.out)
    print(f"wrote {args.out} in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
