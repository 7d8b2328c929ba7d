//! `cargo xtask bench NAME`: each benchmark is a `harness = false` bench
//! target of the engine; it prints its figures and ends with one JSON line.

use crate::util::{cargo, exec};

/// Benchmarks by the name users type, with the bench target that runs each.
const BENCHES: &[(&str, &str)] = &[
    ("transformer-cpu", "transformer_cpu"),
    ("vae-cpu", "vae_cpu"),
    ("attention-gpu", "attention_gpu"),
    ("transformer-gpu", "transformer_gpu"),
    ("t5-cpu", "t5_cpu"),
    ("gpu-plan", "gpu_plan"),
    ("shot-gpu", "shot_gpu"),
    ("memory", "memory"),
    ("watermark", "watermark"),
    ("long-shot", "long_shot"),
];

pub fn run(args: &[String]) -> Result<(), String> {
    let names = || {
        BENCHES
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(name) = args.first() else {
        return Err(format!("bench needs a NAME; known: {}", names()));
    };
    let Some((_, target)) = BENCHES.iter().find(|(n, _)| n == name) else {
        return Err(format!("unknown benchmark '{name}'; known: {}", names()));
    };
    let mut bench = cargo();
    bench
        .args(["bench", "-p", "genfx", "--bench", target, "--"])
        .args(&args[1..]);
    exec(bench)
}
