#!/usr/bin/env python3
"""PyTorch half of `cargo xtask bench transformer-cpu`.

    transformer_cpu.py MODEL_DIR INPUTS.safetensors --threads N --runs K [--check OUT.safetensors]

Loads the diffusers LTXVideoTransformer3DModel the Rust bench wrote (same
weights), runs one warm-up and K timed forward passes in float32 on the CPU
with N threads, and prints one JSON line {"median_s": .., "times_s": [..]}.
With --check it also saves the output so the bench can confirm both sides
computed the same thing.
"""

import argparse
import json
import statistics
import sys
import time

import torch
from safetensors.torch import load_file, save_file


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("model_dir")
    p.add_argument("inputs")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--check")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    from diffusers import LTXVideoTransformer3DModel

    model = LTXVideoTransformer3DModel.from_pretrained(args.model_dir, torch_dtype=torch.float32).eval()
    x = load_file(args.inputs)
    inputs = dict(
        hidden_states=x["hidden_states"],
        encoder_hidden_states=x["encoder_hidden_states"],
        encoder_attention_mask=x["encoder_attention_mask"],
        timestep=x["timestep"],
        video_coords=x["video_coords"],
        return_dict=False,
    )
    times = []
    with torch.inference_mode():
        out = model(**inputs)[0]
        for _ in range(args.runs):
            start = time.perf_counter()
            out = model(**inputs)[0]
            times.append(time.perf_counter() - start)
    if args.check:
        save_file({"output": out.contiguous()}, args.check)
    print(json.dumps({"median_s": statistics.median(times), "times_s": times}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
