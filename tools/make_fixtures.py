#!/usr/bin/env python3
"""Regenerates the reference fixtures under tests/fixtures/.

    tools/make_fixtures.py --out DIR --seed N [--only NAME ...]

Each component lives in tools/fixtures/<name>.py and exposes
``make(out_dir: pathlib.Path, seed: int) -> None``; it is called with
``DIR/<name>`` (created empty first). Components build tiny random-weight
models with the reference classes (diffusers / transformers, versions pinned
in tools/requirements.txt), run them in float32 on the CPU and write configs,
weights and cases as safetensors. Any seed must give fixtures the Rust tests
accept, so the tests never hard-code reference numbers.
"""

import argparse
import importlib
import pathlib
import random
import shutil
import sys

HERE = pathlib.Path(__file__).resolve().parent


def components():
    return sorted(p.stem for p in (HERE / "fixtures").glob("*.py") if not p.stem.startswith("_"))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    try:
        import numpy

        numpy.random.seed(seed % (2**32))
    except ImportError:
        pass
    import torch

    torch.manual_seed(seed)
    # Reference numbers must not depend on the machine's core count.
    torch.use_deterministic_algorithms(True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, default=HERE.parent / "tests" / "fixtures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", default=None, help="component names (default: all)")
    args = parser.parse_args()

    known = components()
    wanted = args.only or known
    unknown = [n for n in wanted if n not in known]
    if unknown:
        print(f"unknown component(s) {unknown}; known: {known}", file=sys.stderr)
        return 2

    sys.path.insert(0, str(HERE))
    for name in wanted:
        module = importlib.import_module(f"fixtures.{name}")
        out_dir = args.out / name
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)
        seed_everything(args.seed)
        print(f"[{name}] -> {out_dir}", flush=True)
        module.make(out_dir, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
