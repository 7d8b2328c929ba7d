"""PyTorch half of `cargo xtask bench attention-gpu`.

Times torch.nn.functional.scaled_dot_product_attention on the GPU at the
shapes given, in the same layout our kernel takes ([batch, tokens, heads,
head_dim], viewed as [batch, heads, tokens, head_dim] for SDPA, no copy), and
prints one JSON line: {"shapes": [{"tokens", "heads", "head_dim", "median_ms",
"backend"}...], "torch": version, "device": name}.
"""

import argparse
import json
import statistics
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, nargs="+", default=[6144, 13376])
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--dtype", choices=["bf16", "f16"], default="bf16")
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F

    if not torch.cuda.is_available():
        print(json.dumps({"error": "torch sees no CUDA device"}))
        return 2
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float16
    dev = torch.device("cuda")
    results = []
    for tokens in args.tokens:
        shape = (args.batch, tokens, args.heads, args.head_dim)
        gen = torch.Generator(device=dev).manual_seed(0)
        q, k, v = (
            torch.randn(shape, generator=gen, device=dev, dtype=dtype).transpose(1, 2)
            for _ in range(3)
        )
        for _ in range(args.warmup):
            F.scaled_dot_product_attention(q, k, v)
        torch.cuda.synchronize()
        times = []
        for _ in range(args.iters):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            F.scaled_dot_product_attention(q, k, v)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        # which fused kernel PyTorch picked, for the record
        backend = "unknown"
        try:
            from torch.nn.attention import SDPBackend, sdpa_kernel

            for name, b in [
                ("cudnn", SDPBackend.CUDNN_ATTENTION),
                ("flash", SDPBackend.FLASH_ATTENTION),
                ("efficient", SDPBackend.EFFICIENT_ATTENTION),
            ]:
                try:
                    with sdpa_kernel([b]):
                        F.scaled_dot_product_attention(q, k, v)
                    backend = f"{name} available (default dispatch)"
                    break
                except RuntimeError:
                    continue
        except ImportError:
            pass
        results.append(
            {
                "tokens": tokens,
                "heads": args.heads,
                "head_dim": args.head_dim,
                "median_ms": statistics.median(times),
                "backend": backend,
            }
        )
    print(
        json.dumps(
            {
                "shapes": results,
                "torch": torch.__version__,
                "device": torch.cuda.get_device_name(0),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
