"""PyTorch half of `cargo xtask bench t5-cpu`.

    t5_cpu.py MODEL_DIR INPUTS THREADS RUNS

Loads the transformers folder the Rust bench wrote (same weights), encodes
the same 128-token prompt RUNS times on THREADS threads and prints one JSON
line: {"torch_s": median seconds, "torch_load_s": ..., "torch_peak_rss_mb": ...}.
"""

import json
import resource
import statistics
import sys
import time

import torch
from safetensors.torch import load_file


def main() -> None:
    model_dir, inputs_path = sys.argv[1], sys.argv[2]
    threads, runs = int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    from transformers import T5EncoderModel

    start = time.perf_counter()
    model = T5EncoderModel.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    load_s = time.perf_counter() - start
    inputs = load_file(inputs_path)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    times = []
    with torch.inference_mode():
        for _ in range(2):
            model(input_ids=ids, attention_mask=mask)
        for _ in range(runs):
            start = time.perf_counter()
            model(input_ids=ids, attention_mask=mask)
            times.append(time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "torch_s": statistics.median(times),
                "torch_load_s": load_s,
                "torch_peak_rss_mb": peak_mb,
                "attn_implementation": model.config._attn_implementation,
            }
        )
    )


if __name__ == "__main__":
    main()
