//! `cargo xtask <task>`: the project's commands, so that a fresh machine needs
//! nothing but cargo.

mod bench;
mod bundle;
mod demo;
mod fuzz;
mod gpu;
mod pack;
mod setup;
mod test;
mod util;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  test            install what tests need, then fmt --check, clippy -D warnings, every test
  test-gpu [--allow-skip]  CUDA-vs-CPU tests; fails when any was skipped
                  for want of a GPU unless --allow-skip
  demo            build the bundle and render a shot through the plugin, headless
  bundle          build target/bundle/GenFX.ofx.bundle
  install [--prefix DIR]  copy the bundle to the OFX plugin folder or DIR
  bench NAME      run a benchmark; the last line printed is JSON
  fuzz NAME [--seconds S] [-- LIBFUZZER_ARGS]
                  coverage-guided fuzzing of one parser (libFuzzer, stable
                  Rust); `fuzz --list` names the targets, `fuzz all` runs each,
                  `fuzz --smoke` is the short run of `test`
  gpu-pack [--out DIR] [--check [--budget SECS]]
                  build target/gpu-pack/: stripped GPU tests and benches, the
                  emulated driver, fixtures, wheels and run.sh, for a GPU machine
                  with no Rust; --check runs it here on the emulated driver";

fn main() -> ExitCode {
    // `cargo xtask fuzz` builds the fuzz targets with this program as the
    // rustc wrapper that adds the coverage flags.
    if let Some(code) = fuzz::as_rustc_wrapper() {
        return code;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let result = match task.as_str() {
        "test" => test::run(rest),
        "bench" => bench::run(rest),
        "bundle" => bundle::bundle().map(drop),
        "install" => bundle::install(rest),
        "demo" => demo::run(),
        "test-gpu" => gpu::run(rest),
        "fuzz" => fuzz::run(rest),
        "gpu-pack" => pack::run(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown task '{other}'\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
