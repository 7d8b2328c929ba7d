"""PyTorch half of `cargo xtask bench shot-gpu`.

One whole image-to-video shot with diffusers' LTXConditionPipeline in bf16 on
the GPU, timed stage by stage: the T5-XXL encode, the VAE encode of the
conditioning frame, each transformer pass, the VAE decode, and the whole call.

The model is full size with random weights: the LTX-Video 2B transformer
(diffusers' default config, 28 blocks), the 0.9.5 VAE and the T5-v1.1-XXL
encoder, made on the GPU in bf16. With `--save DIR` the pipeline is first
written there in the diffusers folder layout (with a `genfx.json` saying the
checkpoint is sampled as a distilled one) unless DIR already holds it, so
that our side loads the very same weights. The tokenizer is the
`spiece.model` given by `--spiece` (the test fixture's; T5-XXL's vocabulary
is larger, so every id it makes is valid).

Distilled recipe, as LTX-Video's 2B distilled configs and our engine run it:
the eight-entry timestep list, guidance 1 (no CFG), decode timestep 0.05 and
decode noise 0.025, no image-conditioning noise.

Prints one JSON line: {"t5_s", "vae_encode_s", "step_s" (median transformer
pass), "steps", "decode_s", "total_s" (median whole call, no stage timers),
"device", "torch", "diffusers"}.
"""

import argparse
import json
import os
import statistics
import time

# LTX-Video 0.9.5's VAE (the 2B releases from 0.9.5 on share it).
VAE_095 = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=128,
    block_out_channels=(128, 256, 512, 1024, 2048),
    down_block_types=("LTXVideo095DownBlock3D",) * 4,
    decoder_block_out_channels=(256, 512, 1024),
    layers_per_block=(4, 6, 6, 2, 2),
    decoder_layers_per_block=(5, 5, 5, 5),
    spatio_temporal_scaling=(True, True, True, True),
    decoder_spatio_temporal_scaling=(True, True, True),
    decoder_inject_noise=(False, False, False, False),
    downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
    upsample_residual=(True, True, True),
    upsample_factor=(2, 2, 2),
    timestep_conditioning=True,
    patch_size=4,
    patch_size_t=1,
    resnet_norm_eps=1e-6,
    scaling_factor=1.0,
    encoder_causal=True,
    decoder_causal=False,
    spatial_compression_ratio=32,
    temporal_compression_ratio=8,
)

# google/t5-v1_1-xxl's encoder, as the LTX-Video repositories ship it.
T5_XXL = dict(
    d_ff=10240,
    d_kv=64,
    d_model=4096,
    dense_act_fn="gelu_new",
    feed_forward_proj="gated-gelu",
    layer_norm_epsilon=1e-6,
    num_heads=64,
    num_layers=24,
    relative_attention_max_distance=128,
    relative_attention_num_buckets=32,
    vocab_size=32128,
    is_encoder_decoder=False,
    use_cache=False,
)

DISTILLED_TIMESTEPS = [1000, 993, 987, 981, 975, 909, 725, 0.03]


def build(args, torch):
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXConditionPipeline,
        LTXVideoTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    if args.save and os.path.exists(os.path.join(args.save, "model_index.json")):
        return LTXConditionPipeline.from_pretrained(args.save, torch_dtype=torch.bfloat16).to("cuda")
    torch.manual_seed(0)
    with torch.device("cuda"):
        transformer = LTXVideoTransformer3DModel(num_layers=args.layers).to(torch.bfloat16)
        vae = AutoencoderKLLTXVideo(**VAE_095).to(torch.bfloat16)
        text_encoder = T5EncoderModel(T5Config(**T5_XXL)).to(torch.bfloat16)
    scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(args.scheduler)
    tokenizer = T5Tokenizer(vocab_file=args.spiece, legacy=True)
    pipe = LTXConditionPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
    )
    if args.save:
        pipe.save_pretrained(args.save, safe_serialization=True)
        with open(os.path.join(args.save, "genfx.json"), "w") as f:
            json.dump({"variant": "distilled"}, f)
        # transformers 5 may save only a tokenizer.json; our engine reads
        # the SentencePiece model
        import shutil

        shutil.copy(args.spiece, os.path.join(args.save, "tokenizer", "spiece.model"))
    return pipe


class StageTimer:
    """Wraps a module's method so each call is timed between two GPU
    synchronisations. Only used for the per-stage run; the whole-call
    medians run without it."""

    def __init__(self, torch):
        self.torch = torch
        self.times = {}
        self.restore = []

    def wrap(self, obj, name, key):
        original = getattr(obj, name)
        torch = self.torch

        def timed(*a, **k):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = original(*a, **k)
            torch.cuda.synchronize()
            self.times.setdefault(key, []).append(time.perf_counter() - t0)
            return out

        setattr(obj, name, timed)
        self.restore.append((obj, name, original))

    def unwrap(self):
        for obj, name, original in reversed(self.restore):
            setattr(obj, name, original)
        self.restore.clear()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--frames", type=int, default=121)
    parser.add_argument("--layers", type=int, default=28)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--save", default=None)
    parser.add_argument("--spiece", required=True)
    parser.add_argument("--scheduler", required=True, help="folder with scheduler_config.json")
    args = parser.parse_args()

    import diffusers
    import numpy as np
    import PIL.Image
    import torch
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

    if not torch.cuda.is_available():
        print(json.dumps({"error": "torch sees no CUDA device"}))
        return 2
    pipe = build(args, torch)
    pipe.set_progress_bar_config(disable=True)
    # the same picture our side conditions on: a smooth ramp
    y, x = np.mgrid[0 : args.height, 0 : args.width]
    rgb = np.stack([x / args.width, y / args.height, 0.5 + 0 * x], axis=-1)
    image = PIL.Image.fromarray((rgb * 255).astype(np.uint8))

    def shot(prompt, seed):
        with torch.no_grad():
            return pipe(
                conditions=[LTXVideoCondition(image=image, frame_index=0)],
                prompt=prompt,
                width=args.width,
                height=args.height,
                num_frames=args.frames,
                frame_rate=24,
                timesteps=DISTILLED_TIMESTEPS,
                guidance_scale=1.0,
                image_cond_noise_scale=0.0,
                decode_timestep=0.05,
                decode_noise_scale=0.025,
                generator=torch.Generator("cuda").manual_seed(seed),
                output_type="pt",
                max_sequence_length=256,
            ).frames

    shot("warm-up", 0)
    timer = StageTimer(torch)
    timer.wrap(pipe.text_encoder, "forward", "t5")
    timer.wrap(pipe.vae, "encode", "vae_encode")
    timer.wrap(pipe.transformer, "forward", "step")
    timer.wrap(pipe.vae, "decode", "decode")
    shot("a paper boat drifts down a rain gutter", 1)
    timer.unwrap()
    totals = []
    for run in range(args.runs):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        frames = shot(f"a lighthouse at dusk, take {run}", 2 + run)
        torch.cuda.synchronize()
        totals.append(time.perf_counter() - t0)
    finite = bool(torch.isfinite(frames).all())
    t = timer.times
    print(
        json.dumps(
            {
                "t5_s": sum(t.get("t5", [0.0])),
                "vae_encode_s": sum(t.get("vae_encode", [0.0])),
                "step_s": statistics.median(t.get("step", [0.0])),
                "steps": len(t.get("step", [])),
                "decode_s": sum(t.get("decode", [0.0])),
                "total_s": statistics.median(totals),
                "finite": finite,
                "peak_device_bytes": torch.cuda.max_memory_allocated(),
                "device": torch.cuda.get_device_name(),
                "torch": torch.__version__,
                "diffusers": diffusers.__version__,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
