//! `cargo xtask fuzz NAME --seconds S`: coverage-guided fuzzing of GenFX's
//! parsers with libFuzzer, on stable Rust.
//!
//! `fuzz/` (the `genfx-fuzz` crate) holds the targets; `fuzz/corpus/NAME/`
//! their committed seeds. Coverage comes from LLVM's SanitizerCoverage pass,
//! which stable rustc runs when asked through codegen flags (`-Cpasses`,
//! `-Cllvm-args`); only `-Zsanitizer` (ASan and friends) needs nightly, and
//! safe Rust does not need ASan. The flags are added by this program acting
//! as the `RUSTC_WORKSPACE_WRAPPER`, to our own crates only: the
//! dependencies are the ones the normal debug build already compiled
//! (shared in `target/debug`), and the wrapper changes the instrumented
//! crates' artifact hashes, so the normal build is never invalidated.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::util::{cargo, root};

/// Set in the environment of `cargo build` when this program is its rustc
/// wrapper.
const WRAPPER_ENV: &str = "GENFX_XTASK_SANCOV_WRAPPER";

/// Crates compiled with coverage: the parsers' and the targets'.
const INSTRUMENTED: [&str; 3] = ["genfx", "genfx_host", "genfx_fuzz"];

/// SanitizerCoverage as cargo-fuzz asks for it, minus the sanitizer. The
/// dev profile these crates build in already has debug assertions and
/// overflow checks on: an overflow is a finding too.
const SANCOV: [&str; 7] = [
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "--cfg",
    "fuzzing",
];

/// A target: name (as `genfx-fuzz` knows it), the largest input, the
/// largest single allocation (MB) it may make, and what it parses.
pub struct Target {
    pub name: &'static str,
    pub max_len: usize,
    pub malloc_limit_mb: usize,
    pub what: &'static str,
}

const fn t(name: &'static str, max_len: usize, what: &'static str) -> Target {
    Target {
        name,
        max_len,
        malloc_limit_mb: 64,
        what,
    }
}

/// A picture reader: it may allocate the 1 GiB RGBA f32 copy of the largest
/// picture `genfx` reads (`genfx_host::files::MAX_PICTURE_PIXELS`), no more.
const fn picture(name: &'static str, what: &'static str) -> Target {
    Target {
        name,
        max_len: 64 << 10,
        malloc_limit_mb: 1100,
        what,
    }
}

pub const TARGETS: [Target; 15] = [
    t(
        "safetensors",
        16 << 10,
        "safetensors header and tensor reads (src/weights)",
    ),
    t(
        "shard_index",
        16 << 10,
        "*.safetensors.index.json (src/weights)",
    ),
    t("transformer_config", 8 << 10, "transformer/config.json"),
    t(
        "vae_config",
        8 << 10,
        "vae/config.json and its encoder/decoder plans",
    ),
    t("t5_config", 8 << 10, "text_encoder/config.json"),
    t(
        "scheduler_config",
        8 << 10,
        "scheduler_config.json and schedules built from it",
    ),
    t("upsampler_config", 8 << 10, "latent_upsampler/config.json"),
    t(
        "upsampler_file",
        16 << 10,
        "single-file upsampler's safetensors metadata",
    ),
    t("tokenizer_config", 8 << 10, "tokenizer_config.json"),
    t(
        "spiece_model",
        64 << 10,
        "spiece.model protobuf, then encoding a prompt",
    ),
    t(
        "tokenizer_json",
        64 << 10,
        "tokenizer.json, then encoding a prompt",
    ),
    t(
        "single_file",
        16 << 10,
        "single-file checkpoint's config metadata",
    ),
    t("disk_cache", 16 << 10, "disk shot cache entry (.genfxshot)"),
    picture("png", "PNG input of genfx"),
    picture("exr", "EXR input of genfx"),
];

const USAGE: &str = "usage: cargo xtask fuzz NAME [--seconds S] [-- LIBFUZZER_ARGS...]
       cargo xtask fuzz --list
       cargo xtask fuzz all [--seconds S]   (each target in turn)
       cargo xtask fuzz --smoke             (what `cargo xtask test` runs)";

/// Entry point of `cargo xtask fuzz`.
pub fn run(args: &[String]) -> Result<(), String> {
    let (ours, extra) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[][..]),
    };
    let mut name = None;
    let mut seconds = 60u64;
    let mut it = ours.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--smoke" => return smoke(SMOKE_SECONDS),
            "--list" => {
                for t in &TARGETS {
                    println!("{:20} {}", t.name, t.what);
                }
                return Ok(());
            }
            "--seconds" => {
                let v = it.next().ok_or("--seconds needs a number")?;
                seconds = v
                    .parse()
                    .map_err(|_| format!("--seconds {v:?} is not a whole number"))?;
            }
            other if name.is_none() && !other.starts_with('-') => name = Some(other.to_string()),
            other => return Err(format!("unexpected argument {other:?}\n{USAGE}")),
        }
    }
    let name = name.ok_or(USAGE)?;
    let chosen: Vec<&Target> = if name == "all" {
        TARGETS.iter().collect()
    } else {
        vec![TARGETS.iter().find(|t| t.name == name).ok_or_else(|| {
            format!("no fuzz target {name:?}; `cargo xtask fuzz --list` names them")
        })?]
    };
    let exe = build()?;
    let mut failed = Vec::new();
    for target in chosen {
        let outcome = fuzz(&exe, target, seconds, extra, true)?;
        println!("{}", outcome.summary(target.name));
        if !outcome.clean {
            failed.push(target.name);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "findings in {}: inputs under target/fuzz/artifacts/",
            failed.join(", ")
        ))
    }
}

/// Seconds each target runs in `cargo xtask test`.
pub const SMOKE_SECONDS: u64 = 1;

/// The short run `cargo xtask test` makes: every target for `seconds`,
/// starting from its seeds, with no corpus kept.
pub fn smoke(seconds: u64) -> Result<(), String> {
    let start = Instant::now();
    if let Err(e) = cxx_compiler() {
        let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        if in_ci {
            return Err(e);
        }
        eprintln!("xtask: warning: {e}; the fuzz run is skipped");
        return Ok(());
    }
    let exe = build()?;
    let built = start.elapsed().as_secs_f64();
    let mut failed = Vec::new();
    for target in &TARGETS {
        let outcome = fuzz(&exe, target, seconds, &[], false)?;
        eprintln!("{}", outcome.summary(target.name));
        if !outcome.clean {
            failed.push(target.name);
        }
    }
    eprintln!(
        "fuzz: built in {built:.0} s, {} targets in {:.0} s in all",
        TARGETS.len(),
        start.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "fuzzing found inputs that crash, hang or over-allocate in {}: see \
             target/fuzz/artifacts/, make each a regression test and fix the parser",
            failed.join(", ")
        ))
    }
}

/// When this program runs as cargo's rustc wrapper: runs rustc, adding the
/// coverage flags for the crates in [`INSTRUMENTED`]. `None` otherwise.
pub fn as_rustc_wrapper() -> Option<std::process::ExitCode> {
    std::env::var_os(WRAPPER_ENV)?;
    let mut args = std::env::args_os().skip(1);
    let rustc = args.next()?;
    let args: Vec<_> = args.collect();
    let crate_name = args
        .iter()
        .position(|a| a == "--crate-name")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.to_str());
    let mut command = Command::new(rustc);
    command.args(&args);
    if crate_name.is_some_and(|n| INSTRUMENTED.contains(&n)) {
        command.args(SANCOV);
    }
    let status = command.status().ok()?;
    Some(std::process::ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8,
    ))
}

/// libFuzzer is C++, compiled by libfuzzer-sys's build script through the
/// `cc` crate: `$CXX` or `c++` must run.
pub fn cxx_compiler() -> Result<(), String> {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    match Command::new(&cxx).arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err(format!(
            "no C++ compiler ({cxx}) to build libFuzzer for the fuzz targets: install one \
             (Debian/Ubuntu: apt-get install g++) or set CXX"
        )),
    }
}

/// Builds `genfx-fuzz` with coverage and returns its executable.
fn build() -> Result<PathBuf, String> {
    cxx_compiler()?;
    let wrapper =
        std::env::current_exe().map_err(|e| format!("cannot find the xtask program: {e}"))?;
    let mut build = cargo();
    build
        .args([
            "build",
            "-p",
            "genfx-fuzz",
            "--bin",
            "genfx-fuzz",
            "--features",
            "libfuzzer",
            "--message-format=json-render-diagnostics",
        ])
        .env("RUSTC_WORKSPACE_WRAPPER", &wrapper)
        .env(WRAPPER_ENV, "1")
        .stdout(Stdio::piped());
    eprintln!("$ {build:?}");
    let output = build
        .spawn()
        .and_then(|c| c.wait_with_output())
        .map_err(|e| format!("could not start cargo build: {e}"))?;
    if !output.status.success() {
        return Err("building the fuzz targets failed (cargo's errors are above)".into());
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "genfx-fuzz")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo built no genfx-fuzz executable".into())
}

/// What one run did.
struct Outcome {
    clean: bool,
    seconds: f64,
    runs: Option<u64>,
    cov: Option<u64>,
    ft: Option<u64>,
    corpus: Option<u64>,
    finding: Option<String>,
}

impl Outcome {
    fn summary(&self, name: &str) -> String {
        let n = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
        format!(
            "fuzz {name}: {} execs in {:.0} s, cov {} ft {} corpus {}: {}",
            n(self.runs),
            self.seconds,
            n(self.cov),
            n(self.ft),
            n(self.corpus),
            self.finding.as_deref().unwrap_or("no findings")
        )
    }
}

/// Runs `target` for `seconds`. With `keep`, new inputs go to
/// `target/fuzz/corpus/NAME` (read again next time); otherwise to a scratch
/// folder removed afterwards. Findings go to `target/fuzz/artifacts/NAME/`.
fn fuzz(
    exe: &Path,
    target: &Target,
    seconds: u64,
    extra: &[String],
    keep: bool,
) -> Result<Outcome, String> {
    let root = root();
    let work = root.join("target").join("fuzz");
    let seeds = root.join("fuzz").join("corpus").join(target.name);
    let corpus = if keep {
        work.join("corpus").join(target.name)
    } else {
        work.join("smoke").join(target.name)
    };
    let artifacts = work.join("artifacts").join(target.name);
    // Targets that parse a path write each input to a file: in memory
    // where there is a tmpfs (several times the executions per second).
    let shm = Path::new("/dev/shm");
    let tmp = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        work.join("tmp")
    }
    .join(format!("genfx-fuzz-{}-{}", std::process::id(), target.name));
    for dir in [&corpus, &artifacts, &tmp] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut command = Command::new(exe);
    command
        .env("GENFX_FUZZ_TARGET", target.name)
        .env("GENFX_FUZZ_TMP", &tmp)
        .env(
            "GENFX_FUZZ_MALLOC_LIMIT_MB",
            target.malloc_limit_mb.to_string(),
        )
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-max_len={}", target.max_len))
        // A hang: one input running over 10 s (the build is optimised).
        .arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .args(extra)
        .arg(&corpus)
        .arg(&seeds)
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped());
    eprintln!("$ {command:?}");
    let start = Instant::now();
    let output = command
        .spawn()
        .and_then(|c| c.wait_with_output())
        .map_err(|e| format!("could not run {}: {e}", exe.display()))?;
    let seconds = start.elapsed().as_secs_f64();
    let log = String::from_utf8_lossy(&output.stderr);
    let _ = std::fs::remove_dir_all(&tmp);
    if !keep {
        let _ = std::fs::remove_dir_all(&corpus);
    }
    let log_path = work.join(format!("{}.log", target.name));
    let _ = std::fs::write(&log_path, log.as_bytes());
    let last_status = log
        .lines()
        .rev()
        .find(|l| l.starts_with('#') && l.contains(" cov: "));
    let field = |line: Option<&str>, key: &str| -> Option<u64> {
        let rest = line?.split(key).nth(1)?;
        // `corp: 120/3Kb` counts inputs before the slash
        rest.split_whitespace()
            .next()?
            .split('/')
            .next()?
            .parse()
            .ok()
    };
    let stat = |key: &str| -> Option<u64> {
        log.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|r| r.trim_start_matches(':').trim().parse().ok())
    };
    let finding = (!output.status.success()).then(|| {
        log.lines()
            .filter(|l| {
                l.starts_with("==")
                    || l.contains("panicked at")
                    || l.contains("Test unit written to")
            })
            .take(4)
            .collect::<Vec<_>>()
            .join(" | ")
    });
    if let Some(f) = &finding {
        eprintln!("{log}");
        eprintln!(
            "fuzz {}: FINDING: {f} (log: {})",
            target.name,
            log_path.display()
        );
    }
    Ok(Outcome {
        clean: output.status.success(),
        seconds,
        runs: stat("stat::number_of_executed_units"),
        cov: field(last_status, " cov: "),
        ft: field(last_status, " ft: "),
        corpus: field(last_status, " corp: ").or_else(|| stat("stat::new_units_added")),
        finding,
    })
}
