//! `cargo xtask bench memory`: how much memory a full-size LTX-Video 2B job
//! takes, on the host and on the device.
//!
//! It needs a full-size model folder: the real 2B transformer, 0.9.5 VAE and
//! T5-XXL, e.g. the random-weight one `tools/make_fullsize_model.py` writes
//! (about 16 GB, no download). The folder is `--model DIR`, else
//! `$GENFX_FULLSIZE_MODEL`, else `target/fullsize-model`; without it the
//! bench says how to make it and ends with a `skipped` JSON line.
//!
//! Two jobs run, each in a child process of this bench whose
//! `/proc/PID/status` is sampled every 10 ms:
//! 1. **CPU only**: the whole job (T5 encode, denoising, VAE decode) on the
//!    CPU at a small size (`--cpu-size WxHxF`, default 256x160x9: the
//!    weights dominate), inside a memory cgroup limited to 16 GiB where one
//!    can be made. Reports peak RSS (`VmHWM`, with the file-backed pages of
//!    the memory-mapped weights) and peak `RssAnon` (private memory).
//!    Budget: completes inside the cgroup, peak RssAnon <= 8 GB.
//! 2. **GPU**: the same engine on the emulated CUDA device in dry-run mode
//!    (a 10 GB card; kernels are checked and counted, not computed) at
//!    768x512x121, distilled. Reports peak host RssAnon and the device's
//!    peak bytes. Budget: RssAnon <= 4 GB, device <= 10 GB.
//!
//! Ends with one JSON line holding `peak_rss_cpu_bytes`,
//! `peak_rss_anon_cpu_bytes`, `peak_rss_anon_gpu_bytes`,
//! `peak_device_bytes` and whether each budget held. `--only cpu|gpu` runs
//! one of the two.

/// Measured as shipped: the allocator the plugin and `genfx` use (why: the workspace Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "common/gpu_plan.rs"]
mod plan;
#[path = "memory/probe.rs"]
mod probe;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use genfx::backend::Device;
use genfx::engine::{Job, JobObserver, Quality, ShotEngine, ShotRequest, Stage};
use genfx::pipeline::engine::LtxEngine;
use genfx_kernels_emu::device::EmulatedDevice;
use serde_json::{json, Value};

use probe::{MemoryCgroup, Sampler};

const CGROUP_BYTES: u64 = 16 << 30;
const CPU_ANON_BUDGET: u64 = 8_000_000_000;
const GPU_ANON_BUDGET: u64 = 4_000_000_000;
const DEVICE_BUDGET: u64 = 10_000_000_000;

fn arg(args: &[String], name: &str) -> Option<String> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

fn fail(message: String) -> ! {
    println!("memory: {message}");
    println!("{}", json!({"bench": "memory", "error": message}));
    std::process::exit(1);
}

/// Progress on stderr, so the job's stages show in the parent's log.
struct Progress;

impl JobObserver for Progress {
    fn progress(&self, stage: Stage, done: u32, total: u32) {
        eprintln!("  {stage:?} {done}/{total}");
    }
    fn should_abort(&self) -> bool {
        false
    }
}

fn request(model: &Path, size: [usize; 3]) -> ShotRequest {
    ShotRequest {
        text_encoder: None,
        model: model.to_path_buf(),
        prompt: "a red fox runs through fresh snow at dawn, cinematic".into(),
        negative_prompt: "worst quality, blurry".into(),
        seed: 7,
        quality: Quality::Standard,
        guidance: 3.0,
        width: size[0] as u32,
        height: size[1] as u32,
        num_frames: size[2] as u32,
        frame_rate: 24.0,
        strength: 1.0,
        job: Job::Generate { reference: None },
        windows: Default::default(),
    }
}

fn parse_size(text: &str) -> Result<[usize; 3], String> {
    let parts: Vec<usize> = text
        .split('x')
        .map(|p| {
            p.parse()
                .map_err(|_| format!("--cpu-size {text:?}: want WxHxF"))
        })
        .collect::<Result<_, _>>()?;
    parts
        .try_into()
        .map_err(|_| format!("--cpu-size {text:?}: want WxHxF, e.g. 256x160x9"))
}

/// The job of one child process; prints one JSON line with what it saw.
fn child(kind: &str, model: &Path, args: &[String]) -> Result<Value, String> {
    if let Some(dir) = arg(args, "--cgroup") {
        MemoryCgroup::enter(Path::new(&dir))?;
    }
    let start = Instant::now();
    let (device, emu, size) = match kind {
        "cpu" => {
            let size = parse_size(&arg(args, "--cpu-size").unwrap_or("256x160x9".into()))?;
            (Device::cpu(), None, size)
        }
        "gpu" => {
            let emu = EmulatedDevice::install()?;
            let device = plan::open_device(emu, plan::CARD_BYTES)?;
            emu.reset_counters();
            (device, Some(emu), [plan::WIDTH, plan::HEIGHT, plan::FRAMES])
        }
        other => return Err(format!("unknown child {other:?}")),
    };
    let shot = LtxEngine::new(device)
        .generate(&request(model, size), &Progress)
        .map_err(|e| format!("the {kind} job failed: {e}"))?;
    let me = std::process::id().to_string();
    Ok(json!({
        "frames": shot.frames.len(),
        "size": size,
        "seconds": start.elapsed().as_secs_f64(),
        "vm_hwm": probe::status_bytes(&me, "VmHWM"),
        "peak_device_bytes": emu.map(|e| e.counters().peak_bytes),
        "device_faults": emu.map(|e| e.counters().faults),
    }))
}

/// Runs `--child kind` of this executable, sampling its memory.
fn run_child(kind: &str, model: &Path, extra: &[String]) -> Result<Value, String> {
    let cgroup = if kind == "cpu" {
        let name = format!("genfx-bench-memory-{}", std::process::id());
        Some(MemoryCgroup::create(&name, CGROUP_BYTES))
    } else {
        None
    };
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.args(["--child", kind, "--model"])
        .arg(model)
        .args(extra)
        .env("GENFX_CACHE_DIR", "off")
        .stdout(Stdio::piped());
    if let Some(Ok(group)) = &cgroup {
        cmd.arg("--cgroup").arg(&group.dir);
    }
    let started = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| format!("starting the {kind} job: {e}"))?;
    let sampler = Sampler::start(child.id());
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for the {kind} job: {e}"))?;
    let peaks = sampler.finish();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    let (cgroup_note, cgroup_peak, oom_kills) = match &cgroup {
        None => (Value::Null, None, None),
        Some(Ok(g)) => (
            json!(format!(
                "{} GiB limit at {}",
                CGROUP_BYTES >> 30,
                g.dir.display()
            )),
            g.peak(),
            g.oom_kills(),
        ),
        Some(Err(e)) => (json!(format!("no cgroup: {e}")), None, None),
    };
    Ok(json!({
        "ok": out.status.success() && report.get("error").is_none(),
        "exit": out.status.code(),
        "wall_seconds": started.elapsed().as_secs_f64(),
        "sampled_peak_rss_bytes": peaks.rss,
        "peak_rss_anon_bytes": peaks.rss_anon,
        "samples": peaks.samples,
        "cgroup": cgroup_note,
        "cgroup_peak_bytes": cgroup_peak,
        "oom_kills": oom_kills,
        "job": report,
    }))
}

fn default_model() -> PathBuf {
    std::env::var_os("GENFX_FULLSIZE_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fullsize-model"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = arg(&args, "--model")
        .map(PathBuf::from)
        .unwrap_or_else(default_model);
    if let Some(kind) = arg(&args, "--child") {
        match child(&kind, &model, &args) {
            Ok(report) => println!("{report}"),
            Err(e) => {
                println!("{}", json!({"error": e}));
                std::process::exit(1);
            }
        }
        return;
    }
    if !model.join("model_index.json").is_file() {
        let make = format!(
            "python tools/make_fullsize_model.py --out {} (numpy only; about 16 GB of disk, \
             or fewer T5 layers with --t5-layers N), or pass --model DIR / set GENFX_FULLSIZE_MODEL",
            model.display()
        );
        println!(
            "memory: no full-size model folder at {} (no model_index.json); make one with: {make}",
            model.display()
        );
        println!(
            "{}",
            json!({"bench": "memory", "skipped": format!("no full-size model at {}", model.display()), "make_it": make})
        );
        return;
    }
    let only = arg(&args, "--only");
    let mut extra = Vec::new();
    if let Some(size) = arg(&args, "--cpu-size") {
        extra.extend(["--cpu-size".to_string(), size]);
    }
    let run = |kind: &str| -> Value {
        if only.as_deref().is_some_and(|o| o != kind) {
            return Value::Null;
        }
        println!("memory: the {kind} job on {} ...", model.display());
        let report = run_child(kind, &model, &extra).unwrap_or_else(|e| fail(e));
        println!("memory: {kind}: {report}");
        report
    };
    let cpu = run("cpu");
    let gpu = run("gpu");
    let get = |v: &Value, path: &[&str]| -> Option<u64> {
        path.iter().try_fold(v, |v, k| v.get(k))?.as_u64()
    };
    let peak_rss_cpu = get(&cpu, &["job", "vm_hwm"]).or(get(&cpu, &["sampled_peak_rss_bytes"]));
    let anon_cpu = get(&cpu, &["peak_rss_anon_bytes"]);
    let anon_gpu = get(&gpu, &["peak_rss_anon_bytes"]);
    let device = get(&gpu, &["job", "peak_device_bytes"]);
    let ok = |v: &Value| v.get("ok").and_then(Value::as_bool);
    let within = |x: Option<u64>, budget: u64, ran: Option<bool>| {
        ran.map(|ran| ran && x.is_some_and(|x| x <= budget))
    };
    let gb = |b: Option<u64>| b.map_or("-".to_string(), |b| format!("{:.2} GB", b as f64 / 1e9));
    println!(
        "memory: CPU job: peak RSS {}, peak RssAnon {} (budget 8 GB); GPU job (emulated, dry run): \
         peak host RssAnon {} (budget 4 GB), peak device {} (budget 10 GB)",
        gb(peak_rss_cpu),
        gb(anon_cpu),
        gb(anon_gpu),
        gb(device)
    );
    println!(
        "{}",
        json!({
            "bench": "memory",
            "model": model.display().to_string(),
            "peak_rss_cpu_bytes": peak_rss_cpu,
            "peak_rss_anon_cpu_bytes": anon_cpu,
            "cpu_job_ok": ok(&cpu),
            "cpu_job_seconds": cpu.get("wall_seconds"),
            "cpu_cgroup": cpu.get("cgroup"),
            "cpu_cgroup_peak_bytes": get(&cpu, &["cgroup_peak_bytes"]),
            "cpu_oom_kills": get(&cpu, &["oom_kills"]),
            "cpu_within_budget": within(anon_cpu, CPU_ANON_BUDGET, ok(&cpu)),
            "peak_rss_anon_gpu_bytes": anon_gpu,
            "peak_rss_gpu_bytes": get(&gpu, &["job", "vm_hwm"]),
            "peak_device_bytes": device,
            "gpu_job_ok": ok(&gpu),
            "gpu_within_budget": within(anon_gpu, GPU_ANON_BUDGET, ok(&gpu))
                .zip(within(device, DEVICE_BUDGET, ok(&gpu)))
                .map(|(a, d)| a && d),
        })
    );
}
