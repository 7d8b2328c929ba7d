//! `cargo xtask bench shot-gpu`: one whole 5 s shot (768×512, 121 frames,
//! image-to-video, LTX-Video 2B full size, distilled recipe) through the
//! engine on the GPU, stage by stage, against diffusers'
//! `LTXConditionPipeline` in bf16 on the same card with the same weights.
//!
//! The PyTorch half (tools/bench/shot_diffusers.py) makes the random-weight
//! model (2B transformer, 0.9.5 VAE, T5-XXL) on the card, writes it as a
//! diffusers folder (once; `GENFX_BENCH_SHOT_DIR` or
//! target/bench-ltx-2b-shot, about 16 GB) and times its own stages. Our
//! half then loads that folder through `LtxEngine`, runs one cold job
//! (loading included) and `--runs` warm ones, each with a new prompt and
//! seed (so T5 runs every time, as in diffusers' call), and times the
//! stages from the engine's progress calls. The denoising loop does not
//! synchronise inside a step, so per-step figures are the loop's time
//! divided by its steps; the loop's total is exact, because the final
//! latents are read back before decoding starts.
//!
//! Ends with one JSON line: ours and diffusers' seconds per stage, whole
//! shot medians and the speed-up.

mod common;
mod gpu_common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use genfx::backend::cuda::{CudaBackend, GpuDevice};
use genfx::backend::Device;
use genfx::engine::{Clip, Frame, Job, JobObserver, Quality, ShotEngine, ShotRequest, Stage};
use genfx::pipeline::engine::LtxEngine;
use parking_lot::Mutex;

const NAME: &str = "shot-gpu";
/// The shot: `--size WxHxF` changes it (a smoke run on the emulated device
/// uses a small one).
#[derive(Clone, Copy)]
struct Size {
    width: u32,
    height: u32,
    frames: u32,
}

const SHOT: Size = Size {
    width: 768,
    height: 512,
    frames: 121,
};

fn parse_size(text: &str) -> Option<Size> {
    let mut it = text.split('x').map(|v| v.parse::<u32>().ok());
    let size = Size {
        width: it.next()??,
        height: it.next()??,
        frames: it.next()??,
    };
    it.next().is_none().then_some(size)
}

fn model_dir() -> PathBuf {
    std::env::var_os("GENFX_BENCH_SHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::root().join("target").join("bench-ltx-2b-shot"))
}

fn fail(message: String) -> ! {
    println!("{NAME}: {message}");
    println!("{}", serde_json::json!({"bench": NAME, "error": message}));
    std::process::exit(1);
}

/// When each stage's progress calls came, in order.
#[derive(Default)]
struct Clock {
    marks: Mutex<Vec<(Stage, u32, u32, Instant)>>,
}

impl JobObserver for Clock {
    fn progress(&self, stage: Stage, done: u32, total: u32) {
        self.marks.lock().push((stage, done, total, Instant::now()));
    }
    fn should_abort(&self) -> bool {
        false
    }
}

/// Seconds per stage of one job: from a stage's first progress call to the
/// first call of the stage after it (or the job's end).
struct StageTimes {
    load_s: f64,
    t5_s: f64,
    vae_encode_s: f64,
    denoise_s: f64,
    steps: u32,
    decode_s: f64,
    total_s: f64,
}

impl StageTimes {
    fn from(clock: Clock, start: Instant, end: Instant) -> Self {
        let marks = clock.marks.into_inner();
        let span = |stage: Stage| -> f64 {
            let Some(first) = marks.iter().position(|m| m.0 == stage) else {
                return 0.0;
            };
            let until = marks[first..]
                .iter()
                .find(|m| m.0 != stage)
                .map_or(end, |m| m.3);
            until.duration_since(marks[first].3).as_secs_f64()
        };
        let steps = marks
            .iter()
            .filter(|m| m.0 == Stage::Denoising)
            .map(|m| m.2)
            .max()
            .unwrap_or(0);
        Self {
            load_s: span(Stage::LoadingModel),
            t5_s: span(Stage::EncodingPrompt),
            vae_encode_s: span(Stage::EncodingFrames),
            denoise_s: span(Stage::Denoising),
            steps,
            decode_s: span(Stage::Decoding),
            total_s: end.duration_since(start).as_secs_f64(),
        }
    }

    fn step_s(&self) -> f64 {
        self.denoise_s / self.steps.max(1) as f64
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "load_s": self.load_s,
            "t5_s": self.t5_s,
            "vae_encode_s": self.vae_encode_s,
            "denoise_s": self.denoise_s,
            "steps": self.steps,
            "step_s": self.step_s(),
            "decode_s": self.decode_s,
            "total_s": self.total_s,
        })
    }
}

/// The conditioning still: the same ramp the PyTorch half builds.
fn still(size: Size) -> Clip {
    let (w, h) = (size.width as usize, size.height as usize);
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            // 8-bit like the PIL image diffusers is given
            let q = |v: f64| (v * 255.0).floor() as f32 / 255.0;
            rgb.extend([q(x as f64 / w as f64), q(y as f64 / h as f64), q(0.5)]);
        }
    }
    Clip {
        frames: vec![Frame::new(size.width, size.height, rgb).expect("a whole frame")],
    }
}

fn run(engine: &LtxEngine, size: Size, prompt: &str, seed: u64) -> Result<StageTimes, String> {
    let request = ShotRequest {
        model: model_dir(),
        text_encoder: None,
        prompt: prompt.into(),
        negative_prompt: String::new(),
        seed,
        quality: Quality::Standard,
        guidance: 1.0,
        width: size.width,
        height: size.height,
        num_frames: size.frames,
        frame_rate: 24.0,
        strength: 1.0,
        job: Job::Generate {
            reference: Some(still(size)),
        },
        windows: Default::default(),
    };
    let clock = Clock::default();
    let start = Instant::now();
    let shot = engine
        .generate(&request, &clock)
        .map_err(|e| format!("our shot: {e}"))?;
    let end = Instant::now();
    if shot.frames.len() != size.frames as usize
        || !shot
            .frames
            .iter()
            .flat_map(|f| &f.rgb)
            .all(|v| v.is_finite())
    {
        return Err(format!(
            "our shot has {} frames or non-finite pixels",
            shot.frames.len()
        ));
    }
    Ok(StageTimes::from(clock, start, end))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let size = args
        .iter()
        .position(|a| a == "--size")
        .and_then(|i| args.get(i + 1))
        .map(|v| parse_size(v).unwrap_or_else(|| fail(format!("--size {v:?}: want WxHxF"))))
        .unwrap_or(SHOT);
    // `--ours-only`: no PyTorch half; the folder must already exist
    let ours_only = args.iter().any(|a| a == "--ours-only");
    // `--emulated`: on the emulated CUDA device (a smoke run of this bench's
    // own code; its seconds mean nothing)
    if args.iter().any(|a| a == "--emulated") {
        genfx_kernels_emu::device::EmulatedDevice::install().unwrap_or_else(|e| fail(e));
    }
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse::<usize>()
                .unwrap_or_else(|_| fail(format!("--runs {v:?}")))
        })
        .unwrap_or(3)
        .max(1);
    let gpu = match GpuDevice::get(None).and_then(CudaBackend::new) {
        Ok(g) => Arc::new(g),
        Err(e) => gpu_common::no_gpu(NAME, &e.to_string()),
    };
    println!(
        "{NAME}: {} ({}), {}x{}x{}, LTX-Video 2B distilled recipe, random weights",
        gpu.device().name(),
        gpu.device().arch(),
        size.width,
        size.height,
        size.frames
    );
    let fixtures = genfx::testing::fixtures_dir().join("pipeline/model");
    let dir = model_dir();
    let torch_args = [
        "--width".to_string(),
        size.width.to_string(),
        "--height".into(),
        size.height.to_string(),
        "--frames".into(),
        size.frames.to_string(),
        "--runs".into(),
        runs.to_string(),
        "--save".into(),
        dir.display().to_string(),
        "--spiece".into(),
        fixtures
            .join("tokenizer/spiece.model")
            .display()
            .to_string(),
        "--scheduler".into(),
        fixtures.join("scheduler").display().to_string(),
    ];
    let torch = if ours_only {
        serde_json::json!({})
    } else {
        common::run_torch("shot_diffusers.py", &torch_args, true).unwrap_or_else(|e| {
            fail(format!(
                "the PyTorch half failed (it also writes the weights): {e}"
            ))
        })
    };

    let engine = LtxEngine::new(Device::new(gpu.clone()));
    let cold =
        run(&engine, size, "a paper boat drifts down a rain gutter", 1).unwrap_or_else(|e| fail(e));
    let warm: Vec<StageTimes> = (0..runs)
        .map(|r| {
            run(
                &engine,
                size,
                &format!("a lighthouse at dusk, take {r}"),
                2 + r as u64,
            )
            .unwrap_or_else(|e| fail(e))
        })
        .collect();
    let med = |f: fn(&StageTimes) -> f64| common::median(warm.iter().map(f).collect());
    let ours_total = med(|t| t.total_s);
    let torch_total = torch["total_s"].as_f64();
    let speedup = torch_total.map(|t| t / ours_total);
    let stage_line = |label: &str, ours: f64, theirs: Option<f64>| {
        println!(
            "  {label:<12} ours {ours:>8.3} s | diffusers {}",
            theirs.map_or("n/a".into(), |t| format!("{t:>8.3} s"))
        )
    };
    println!("warm shot, median of {runs}:");
    stage_line("T5", med(|t| t.t5_s), torch["t5_s"].as_f64());
    stage_line(
        "VAE encode",
        med(|t| t.vae_encode_s),
        torch["vae_encode_s"].as_f64(),
    );
    stage_line("step", med(StageTimes::step_s), torch["step_s"].as_f64());
    stage_line("decode", med(|t| t.decode_s), torch["decode_s"].as_f64());
    stage_line("whole shot", ours_total, torch_total);
    println!(
        "cold shot (weights read from disk): {:.2} s, of which loading {:.2} s",
        cold.total_s, cold.load_s
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": NAME,
            "device": gpu.device().name(),
            "width": size.width,
            "height": size.height,
            "frames": size.frames,
            "runs": runs,
            "ours_total_s": ours_total,
            "ours_t5_s": med(|t| t.t5_s),
            "ours_vae_encode_s": med(|t| t.vae_encode_s),
            "ours_step_s": med(StageTimes::step_s),
            "ours_decode_s": med(|t| t.decode_s),
            "ours_cold": cold.json(),
            "diffusers": torch,
            "diffusers_total_s": torch_total,
            "speedup_vs_diffusers": speedup,
            "goal_total_s_h100": 1.5,
        })
    );
}
