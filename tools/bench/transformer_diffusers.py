"""PyTorch half of `cargo xtask bench transformer-gpu`.

One denoising step of diffusers' LTXVideoTransformer3DModel with the 2B
configuration (28 blocks, D=2048, 32 heads of 64, caption dim 4096), random
weights in bf16, on the GPU: a latent of `--frames x --height x --width`
tokens (128 channels), `--text` text tokens with the last quarter padded.
With `--save DIR` the random model is first written there in the diffusers
layout (safetensors, bf16) unless DIR already holds one, so that our side
loads the very same weights. Prints one JSON line: {"median_ms", "tokens", "text_tokens", "torch",
"diffusers", "device"}.
"""

import argparse
import json
import statistics
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--height", type=int, default=16)
    parser.add_argument("--width", type=int, default=24)
    parser.add_argument("--text", type=int, default=128)
    parser.add_argument("--layers", type=int, default=28)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--save", default=None)
    args = parser.parse_args()

    import diffusers
    import torch
    from diffusers import LTXVideoTransformer3DModel

    if not torch.cuda.is_available():
        print(json.dumps({"error": "torch sees no CUDA device"}))
        return 2
    torch.manual_seed(0)
    dev = torch.device("cuda")
    model = LTXVideoTransformer3DModel(num_layers=args.layers).to(dev, torch.bfloat16).eval()
    if args.save:
        import os

        if not os.path.exists(os.path.join(args.save, "config.json")):
            model.save_pretrained(args.save, safe_serialization=True)
    tokens = args.frames * args.height * args.width
    hidden = torch.randn(1, tokens, 128, device=dev, dtype=torch.bfloat16)
    text = torch.randn(1, args.text, 4096, device=dev, dtype=torch.bfloat16)
    mask = torch.ones(1, args.text, device=dev, dtype=torch.bfloat16)
    mask[:, args.text * 3 // 4 :] = 0
    timestep = torch.full((1, tokens), 500.0, device=dev)

    def step():
        with torch.no_grad():
            model(
                hidden_states=hidden,
                encoder_hidden_states=text,
                timestep=timestep,
                encoder_attention_mask=mask,
                num_frames=args.frames,
                height=args.height,
                width=args.width,
                rope_interpolation_scale=(8 / 25, 32, 32),
                return_dict=False,
            )

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(args.iters):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    print(
        json.dumps(
            {
                "median_ms": statistics.median(times),
                "tokens": tokens,
                "text_tokens": args.text,
                "layers": args.layers,
                "torch": torch.__version__,
                "diffusers": diffusers.__version__,
                "device": torch.cuda.get_device_name(0),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
