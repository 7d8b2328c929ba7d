#!/usr/bin/env python3
"""Writes a full-size random-weight LTX-Video 2B model folder (diffusers layout).

The folder has the real architecture of Lightricks/LTX-Video-0.9.5-class
checkpoints: the 2B transformer (28 blocks, D=2048), the 0.9.5 VAE and the
T5-v1.1-XXL encoder (24 layers, D=4096), with their real configs, tensor
names and shapes, stored in bf16 and sharded with index files as the
published repositories are. The values are random (no download is needed),
scaled so that activations stay finite: weights ~ N(0, 1/fan_in), norm
weights and statistics 1, biases 0. It exists to measure memory and speed
of full-size jobs (`cargo xtask bench memory`); its output is noise.

Nothing holds the model in memory: every tensor is written in chunks,
drawn from one fixed pool of normal values at a random offset. Needs only
numpy (any version with `default_rng`).

    python tools/make_fullsize_model.py --out /work/fullsize
    python tools/make_fullsize_model.py --out DIR --t5-layers 4   # less disk

The folder is about 15.9 GB with all 24 T5 layers (T5-XXL alone is 9.5 GB).
"""

import argparse
import json
import os
import shutil
import struct
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

# transformer/config.json of Lightricks/LTX-Video-0.9.5 (the 2B model).
TRANSFORMER_CONFIG = {
    "_class_name": "LTXVideoTransformer3DModel",
    "_diffusers_version": "0.32.2",
    "activation_fn": "gelu-approximate",
    "attention_bias": True,
    "attention_head_dim": 64,
    "attention_out_bias": True,
    "caption_channels": 4096,
    "cross_attention_dim": 2048,
    "in_channels": 128,
    "norm_elementwise_affine": False,
    "norm_eps": 1e-06,
    "num_attention_heads": 32,
    "num_layers": 28,
    "out_channels": 128,
    "patch_size": 1,
    "patch_size_t": 1,
    "qk_norm": "rms_norm_across_heads",
}

# vae/config.json of Lightricks/LTX-Video-0.9.5 (shared by the 2B releases
# from 0.9.5 on).
VAE_CONFIG = {
    "_class_name": "AutoencoderKLLTXVideo",
    "_diffusers_version": "0.32.2",
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 128,
    "block_out_channels": [128, 256, 512, 1024, 2048],
    "down_block_types": ["LTXVideo095DownBlock3D"] * 4,
    "decoder_block_out_channels": [256, 512, 1024],
    "layers_per_block": [4, 6, 6, 2, 2],
    "decoder_layers_per_block": [5, 5, 5, 5],
    "spatio_temporal_scaling": [True, True, True, True],
    "decoder_spatio_temporal_scaling": [True, True, True],
    "decoder_inject_noise": [False, False, False, False],
    "downsample_type": ["spatial", "temporal", "spatiotemporal", "spatiotemporal"],
    "upsample_residual": [True, True, True],
    "upsample_factor": [2, 2, 2],
    "timestep_conditioning": True,
    "patch_size": 4,
    "patch_size_t": 1,
    "resnet_norm_eps": 1e-06,
    "scaling_factor": 1.0,
    "encoder_causal": True,
    "decoder_causal": False,
    "spatial_compression_ratio": 32,
    "temporal_compression_ratio": 8,
}

# text_encoder/config.json of the LTX-Video repositories (google/t5-v1_1-xxl).
T5_CONFIG = {
    "architectures": ["T5EncoderModel"],
    "classifier_dropout": 0.0,
    "d_ff": 10240,
    "d_kv": 64,
    "d_model": 4096,
    "decoder_start_token_id": 0,
    "dense_act_fn": "gelu_new",
    "dropout_rate": 0.1,
    "eos_token_id": 1,
    "feed_forward_proj": "gated-gelu",
    "initializer_factor": 1.0,
    "is_encoder_decoder": True,
    "is_gated_act": True,
    "layer_norm_epsilon": 1e-06,
    "model_type": "t5",
    "num_decoder_layers": 24,
    "num_heads": 64,
    "num_layers": 24,
    "output_past": True,
    "pad_token_id": 0,
    "relative_attention_max_distance": 128,
    "relative_attention_num_buckets": 32,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "vocab_size": 32128,
}

SCHEDULER_CONFIG = {
    "_class_name": "FlowMatchEulerDiscreteScheduler",
    "_diffusers_version": "0.32.2",
    "base_image_seq_len": 1024,
    "base_shift": 0.95,
    "invert_sigmas": False,
    "max_image_seq_len": 4096,
    "max_shift": 2.05,
    "num_train_timesteps": 1000,
    "shift": 1.0,
    "shift_terminal": 0.1,
    "use_beta_sigmas": False,
    "use_dynamic_shifting": False,
    "use_exponential_sigmas": False,
    "use_karras_sigmas": False,
}

MODEL_INDEX = {
    "_class_name": "LTXConditionPipeline",
    "_diffusers_version": "0.32.2",
    "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    "text_encoder": ["transformers", "T5EncoderModel"],
    "tokenizer": ["transformers", "T5Tokenizer"],
    "transformer": ["diffusers", "LTXVideoTransformer3DModel"],
    "vae": ["diffusers", "AutoencoderKLLTXVideo"],
}

# A tensor to write: (name, shape, kind) where kind is ("normal", std),
# ("const", value).


def normal(fan_in):
    return ("normal", 1.0 / np.sqrt(fan_in))


ONE = ("const", 1.0)
ZERO = ("const", 0.0)


def linear(prefix, n_out, n_in, bias=True):
    out = [(f"{prefix}.weight", [n_out, n_in], normal(n_in))]
    if bias:
        out.append((f"{prefix}.bias", [n_out], ZERO))
    return out


def conv3d(prefix, c_out, c_in, k=3):
    return [
        (f"{prefix}.weight", [c_out, c_in, k, k, k], normal(c_in * k**3)),
        (f"{prefix}.bias", [c_out], ZERO),
    ]


def transformer_tensors(c):
    d = c["num_attention_heads"] * c["attention_head_dim"]
    ch = c["in_channels"]
    t = [("scale_shift_table", [2, d], ("normal", 0.05))]
    t += linear("proj_in", d, ch)
    t += linear("time_embed.emb.timestep_embedder.linear_1", d, 256)
    t += linear("time_embed.emb.timestep_embedder.linear_2", d, d)
    t += linear("time_embed.linear", 6 * d, d)
    t += linear("caption_projection.linear_1", d, c["caption_channels"])
    t += linear("caption_projection.linear_2", d, d)
    for i in range(c["num_layers"]):
        b = f"transformer_blocks.{i}"
        t.append((f"{b}.scale_shift_table", [6, d], ("normal", 0.05)))
        for attn in ("attn1", "attn2"):
            t.append((f"{b}.{attn}.norm_q.weight", [d], ONE))
            t.append((f"{b}.{attn}.norm_k.weight", [d], ONE))
            for proj in ("to_q", "to_k", "to_v", "to_out.0"):
                t += linear(f"{b}.{attn}.{proj}", d, d)
        t += linear(f"{b}.ff.net.0.proj", 4 * d, d)
        t += linear(f"{b}.ff.net.2", d, 4 * d)
    t += linear("proj_out", c["out_channels"], d)
    return t


def time_embedder(prefix, dim):
    return linear(f"{prefix}.timestep_embedder.linear_1", dim, 256) + linear(
        f"{prefix}.timestep_embedder.linear_2", dim, dim
    )


def resnet(prefix, ch, conditioned):
    t = conv3d(f"{prefix}.conv1.conv", ch, ch) + conv3d(f"{prefix}.conv2.conv", ch, ch)
    if conditioned:
        t.append((f"{prefix}.scale_shift_table", [4, ch], ("normal", 0.05)))
    return t


# Channels a downsampler's convolution makes: the block's output channels
# before they are folded by its stride (space-to-depth).
DOWN_STRIDE = {"spatial": 4, "temporal": 2, "spatiotemporal": 8}


def vae_tensors(c):
    p = c["patch_size"]
    boc = c["block_out_channels"]
    lat = c["latent_channels"]
    t = [("latents_mean", [lat], ZERO), ("latents_std", [lat], ONE)]
    t += conv3d("encoder.conv_in.conv", boc[0], c["in_channels"] * p * p * c["patch_size_t"])
    for i, kind in enumerate(c["downsample_type"]):
        for r in range(c["layers_per_block"][i]):
            t += resnet(f"encoder.down_blocks.{i}.resnets.{r}", boc[i], False)
        t += conv3d(
            f"encoder.down_blocks.{i}.downsamplers.0.conv.conv",
            boc[i + 1] // DOWN_STRIDE[kind],
            boc[i],
        )
    for r in range(c["layers_per_block"][-1]):
        t += resnet(f"encoder.mid_block.resnets.{r}", boc[-1], False)
    t += conv3d("encoder.conv_out.conv", lat + 1, boc[-1])

    dec = list(reversed(c["decoder_block_out_channels"]))
    layers = c["decoder_layers_per_block"]
    t.append(("decoder.timestep_scale_multiplier", [], ("const", 1000.0)))
    t.append(("decoder.scale_shift_table", [2, dec[-1] // c["upsample_factor"][-1]], ("normal", 0.05)))
    t += conv3d("decoder.conv_in.conv", dec[0], lat)
    t += time_embedder("decoder.mid_block.time_embedder", 4 * dec[0])
    for r in range(layers[0]):
        t += resnet(f"decoder.mid_block.resnets.{r}", dec[0], True)
    for i, ch in enumerate(dec):
        factor = c["upsample_factor"][i]
        out = ch // factor
        up = f"decoder.up_blocks.{i}"
        t += time_embedder(f"{up}.time_embedder", 4 * out)
        t += conv3d(f"{up}.upsamplers.0.conv.conv", ch * 8 // factor, ch)
        for r in range(layers[i + 1]):
            t += resnet(f"{up}.resnets.{r}", out, True)
    last = dec[-1] // c["upsample_factor"][-1]
    t += conv3d("decoder.conv_out.conv", c["out_channels"] * p * p, last)
    t += time_embedder("decoder.time_embedder", last * 2)
    return t


def t5_tensors(c, layers):
    d, ff = c["d_model"], c["d_ff"]
    inner = c["num_heads"] * c["d_kv"]
    # T5 embeddings are large (the model never scales them); unit normal
    # keeps the first RMS norm's input well away from its epsilon.
    t = [
        ("shared.weight", [c["vocab_size"], d], ("normal", 1.0)),
        ("encoder.embed_tokens.weight", [c["vocab_size"], d], ("normal", 1.0)),
    ]
    for i in range(layers):
        b = f"encoder.block.{i}.layer"
        for proj, n_out, n_in in (("q", inner, d), ("k", inner, d), ("v", inner, d), ("o", d, inner)):
            t += linear(f"{b}.0.SelfAttention.{proj}", n_out, n_in, bias=False)
        if i == 0:
            t.append(
                (
                    f"{b}.0.SelfAttention.relative_attention_bias.weight",
                    [c["relative_attention_num_buckets"], c["num_heads"]],
                    ("normal", 0.5),
                )
            )
        t.append((f"{b}.0.layer_norm.weight", [d], ONE))
        t += linear(f"{b}.1.DenseReluDense.wi_0", ff, d, bias=False)
        t += linear(f"{b}.1.DenseReluDense.wi_1", ff, d, bias=False)
        t += linear(f"{b}.1.DenseReluDense.wo", d, ff, bias=False)
        t.append((f"{b}.1.layer_norm.weight", [d], ONE))
    t.append(("encoder.final_layer_norm.weight", [d], ONE))
    return t


class Pool:
    """One fixed block of N(0, 1) values, read at random offsets."""

    SIZE = 1 << 24

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.values = self.rng.standard_normal(self.SIZE, dtype=np.float32)

    def take(self, n):
        start = int(self.rng.integers(0, self.SIZE))
        out = np.empty(n, dtype=np.float32)
        filled = 0
        while filled < n:
            part = self.values[start : start + n - filled]
            out[filled : filled + len(part)] = part
            filled += len(part)
            start = 0
        return out


def to_bf16(x):
    """float32 -> bf16 bits, rounded to nearest even (values are finite)."""
    bits = x.view(np.uint32)
    rounded = bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    return (rounded >> np.uint32(16)).astype("<u2")


CHUNK = 1 << 23  # elements per write: 16 MB of bf16


def write_tensor(f, shape, kind, pool):
    n = int(np.prod(shape)) if shape else 1
    done = 0
    while done < n:
        m = min(CHUNK, n - done)
        if kind[0] == "const":
            x = np.full(m, kind[1], dtype=np.float32)
        else:
            x = pool.take(m) * np.float32(kind[1])
        f.write(to_bf16(x).tobytes())
        done += m


def nbytes(shape):
    return 2 * (int(np.prod(shape)) if shape else 1)


def write_safetensors(path, tensors, pool):
    header = {}
    offset = 0
    for name, shape, _ in tensors:
        size = nbytes(shape)
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # tensors start 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, shape, kind in tensors:
            write_tensor(f, shape, kind, pool)
    return offset


def write_component(folder, stem, tensors, shards, pool):
    """`stem.safetensors`, or `shards` files `stem-0000i-of-0000n` plus the
    index, each about the same size, tensors in order."""
    folder.mkdir(parents=True, exist_ok=True)
    if shards == 1:
        write_safetensors(folder / f"{stem}.safetensors", tensors, pool)
        return
    total = sum(nbytes(s) for _, s, _ in tensors)
    target = total / shards
    groups = [[]]
    size = 0
    for t in tensors:
        if size >= target * len(groups) and len(groups) < shards:
            groups.append([])
        groups[-1].append(t)
        size += nbytes(t[1])
    weight_map = {}
    n = len(groups)
    for i, group in enumerate(groups, 1):
        name = f"{stem}-{i:05d}-of-{n:05d}.safetensors"
        print(f"  {folder.name}/{name}: {len(group)} tensors", flush=True)
        write_safetensors(folder / name, group, pool)
        for t in group:
            weight_map[t[0]] = name
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / f"{stem}.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


def write_json(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="folder to write (created; must be empty or absent)")
    ap.add_argument("--t5-layers", type=int, default=24, help="T5 encoder layers (24 is T5-XXL; fewer saves 0.4 GB each)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--tokenizer",
        type=Path,
        default=ROOT / "tests/fixtures/pipeline/model/tokenizer",
        help="folder with spiece.model (and tokenizer_config.json) to copy",
    )
    args = ap.parse_args()
    if not 1 <= args.t5_layers <= 24:
        sys.exit("--t5-layers must be 1..24")
    out = args.out
    if out.exists() and any(out.iterdir()):
        sys.exit(f"{out} is not empty: remove it or choose another --out")

    t5_config = dict(T5_CONFIG, num_layers=args.t5_layers)
    components = [
        ("transformer", "diffusion_pytorch_model", transformer_tensors(TRANSFORMER_CONFIG), 2),
        ("vae", "diffusion_pytorch_model", vae_tensors(VAE_CONFIG), 1),
        ("text_encoder", "model", t5_tensors(t5_config, args.t5_layers), 4),
    ]
    need = sum(nbytes(s) for _, _, ts, _ in components for _, s, _ in ts)
    out.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(out).free
    if free < need + (1 << 30):
        sys.exit(
            f"{out}: {need / 1e9:.1f} GB needed, {free / 1e9:.1f} GB free; "
            "pass --t5-layers N (0.4 GB per layer) to write less"
        )
    print(f"writing {need / 1e9:.1f} GB to {out} (T5 with {args.t5_layers} layers)", flush=True)

    pool = Pool(args.seed)
    write_json(out / "model_index.json", MODEL_INDEX)
    # The folder name need not say "distilled": this file does (see
    # VARIANT_FILE in src/pipeline/model_folder.rs).
    write_json(out / "genfx.json", {"variant": "distilled"})
    write_json(out / "scheduler/scheduler_config.json", SCHEDULER_CONFIG)
    write_json(out / "transformer/config.json", TRANSFORMER_CONFIG)
    write_json(out / "vae/config.json", VAE_CONFIG)
    write_json(out / "text_encoder/config.json", t5_config)
    tok = out / "tokenizer"
    tok.mkdir(parents=True, exist_ok=True)
    for name in ("spiece.model", "tokenizer_config.json"):
        if (args.tokenizer / name).is_file():
            shutil.copy(args.tokenizer / name, tok / name)
    for folder, stem, tensors, shards in components:
        params = sum(int(np.prod(s)) if s else 1 for _, s, _ in tensors)
        print(f"{folder}: {len(tensors)} tensors, {params / 1e9:.3f} B parameters", flush=True)
        write_component(out / folder, stem, tensors, shards, pool)
    print("done", flush=True)


if __name__ == "__main__":
    main()
