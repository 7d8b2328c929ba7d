#!/usr/bin/env python3
"""PyTorch half of `cargo xtask bench vae-cpu`.

    vae_cpu.py MODEL_DIR INPUTS.safetensors --threads N --runs K [--check OUT.safetensors]

Loads the diffusers AutoencoderKLLTXVideo the Rust bench wrote (same
weights), runs one warm-up and K timed `vae.decode(latents, timestep)` calls
in float32 on the CPU with N threads, and prints one JSON line
{"median_s", "times_s", "vm_hwm_kib", "rss_before_kib"}: the process's peak
resident memory (VmHWM) and its resident memory once the model was loaded.
With --check it also saves the decoded video.
"""

import argparse
import json
import statistics
import sys
import time

import torch
from safetensors.torch import load_file, save_file


def status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("model_dir")
    p.add_argument("inputs")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--check")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    from diffusers import AutoencoderKLLTXVideo

    vae = AutoencoderKLLTXVideo.from_pretrained(args.model_dir, torch_dtype=torch.float32).eval()
    x = load_file(args.inputs)
    latents, timestep = x["latents"], x["timestep"]
    rss_before = status_kib("VmRSS")
    times = []
    with torch.inference_mode():
        out = vae.decode(latents, timestep, return_dict=False)[0]
        for _ in range(args.runs):
            start = time.perf_counter()
            out = vae.decode(latents, timestep, return_dict=False)[0]
            times.append(time.perf_counter() - start)
    if args.check:
        save_file({"video": out.contiguous()}, args.check)
    print(
        json.dumps(
            {
                "median_s": statistics.median(times),
                "times_s": times,
                "vm_hwm_kib": status_kib("VmHWM"),
                "rss_before_kib": rss_before,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
