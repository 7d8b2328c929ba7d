//! Faults a real GPU can throw at the engine, injected through the emulated
//! CUDA driver: out of memory at the Nth allocation (weight upload, mid
//! denoise), a failed launch, a driver older than our kernels, no device, a
//! Turing card (compute capability 7.5: no bf16, no flash attention) and a
//! NaN out of a GEMM. Each must end in a clear error (or, for the old card,
//! a correct result on the slower path) with the process alive and the
//! device usable by the next job.
//!
//! Only the emulated device can inject these; on a real card (`cargo xtask
//! test-gpu`) the tests return at once. The emulator is one per process, so
//! the tests here take turns.

mod gpu_common;

use std::sync::Arc;

use genfx::backend::cuda::probe::Libraries;
use genfx::backend::cuda::{CudaBackend, CudaError, GpuDevice, Half};
use genfx::backend::Device;
use genfx::engine::{
    EngineError, Job, JobObserver, Quality, ShotEngine, ShotRequest, Silent, Stage,
};
use genfx::pipeline::engine::LtxEngine;
use genfx::tensor::DType;
use genfx::testing::fixtures_dir;
use gpu_common::{emulator, EmulatedDevice};
use parking_lot::{Mutex, MutexGuard};

/// The emulator with its settings restored when the test ends, however it
/// ends; `None` on a real card.
struct Faults {
    emu: &'static EmulatedDevice,
    _turn: MutexGuard<'static, ()>,
}

impl Faults {
    fn take() -> Option<Faults> {
        static TURN: Mutex<()> = Mutex::new(());
        let emu = emulator()?;
        let turn = TURN.lock();
        emu.set("reset", "").unwrap();
        Some(Faults { emu, _turn: turn })
    }

    fn set(&self, key: &str, value: &str) {
        self.emu.set(key, value).unwrap();
    }
}

impl Drop for Faults {
    fn drop(&mut self) {
        let _ = self.emu.set("reset", "");
    }
}

/// A device opened afresh (own modules and weight cache), as a new process
/// would, so that what one test uploads or compiles is not another's.
fn fresh_gpu() -> Result<Arc<CudaBackend>, CudaError> {
    let dev = Arc::new(GpuDevice::open(0, Libraries::detect())?);
    Ok(Arc::new(CudaBackend::new(dev)?))
}

fn fresh_device() -> Result<Device, CudaError> {
    Ok(Device::new(fresh_gpu()?))
}

fn request() -> ShotRequest {
    ShotRequest {
        model: fixtures_dir().join("pipeline/model"),
        text_encoder: None,
        prompt: "a lighthouse in a storm".into(),
        negative_prompt: String::new(),
        seed: 11,
        quality: Quality::Steps(2),
        guidance: 3.0,
        width: 64,
        height: 32,
        num_frames: 9,
        frame_rate: 24.0,
        strength: 1.0,
        job: Job::Generate { reference: None },
        windows: Default::default(),
    }
}

fn generate(device: &Device, dtype: DType) -> Result<Vec<f32>, EngineError> {
    let engine = LtxEngine::with_dtype(device.clone(), dtype);
    Ok(engine
        .generate(&request(), &Silent)?
        .frames
        .into_iter()
        .flat_map(|f| f.rgb)
        .collect())
}

fn expect_error(what: &str, r: Result<Vec<f32>, EngineError>, words: &[&str]) -> String {
    let e = match r {
        Ok(_) => panic!("{what}: the job succeeded"),
        Err(e) => e.to_string(),
    };
    println!("{what}: {e}");
    let lower = e.to_lowercase();
    assert!(
        words.iter().any(|w| lower.contains(w)),
        "{what}: the message does not say what happened ({words:?}): {e}"
    );
    e
}

#[test]
fn out_of_memory_during_weight_upload_is_reported_and_the_device_recovers() {
    let Some(f) = Faults::take() else { return };
    let device = fresh_device().unwrap();
    f.set("fail_alloc_at", "3");
    let e = expect_error(
        "OOM during weight upload",
        generate(&device, DType::BF16),
        &["out of memory"],
    );
    assert!(e.contains("cuda"), "names the device: {e}");
    f.set("fail_alloc_at", "off");
    let frames = generate(&device, DType::BF16).expect("the next job on the same device");
    assert!(frames.iter().all(|v| v.is_finite()));
}

/// Records the stages a job reported.
#[derive(Default)]
struct Stages(Mutex<Vec<Stage>>);

impl JobObserver for Stages {
    fn progress(&self, stage: Stage, _: u32, _: u32) {
        let mut seen = self.0.lock();
        if seen.last() != Some(&stage) {
            seen.push(stage);
        }
    }
    fn should_abort(&self) -> bool {
        false
    }
}

#[test]
fn out_of_memory_mid_denoise_is_reported_and_the_device_recovers() {
    let Some(f) = Faults::take() else { return };
    // an identical job on a device of its own: how many allocations it has
    // made when denoising first reports progress (weights, the encode and
    // the first steps are behind it then; the decode is not)
    let marks = AllocMarks {
        emu: f.emu,
        start: f.emu.counters().allocs,
        first_step: Mutex::new(None),
    };
    LtxEngine::with_dtype(fresh_device().unwrap(), DType::BF16)
        .generate(&request(), &marks)
        .unwrap();
    let nth = marks
        .first_step
        .lock()
        .expect("denoising reported progress");
    let device = fresh_device().unwrap();
    f.set("fail_alloc_at", &nth.to_string());
    let stages = Stages::default();
    let r = LtxEngine::with_dtype(device.clone(), DType::BF16)
        .generate(&request(), &stages)
        .map(|_| Vec::new());
    expect_error("OOM mid-denoise", r, &["out of memory"]);
    let seen = stages.0.lock().clone();
    assert!(
        seen.contains(&Stage::EncodingPrompt) && !seen.contains(&Stage::Decoding),
        "the allocation failed between the encode and the decode: {seen:?}"
    );
    f.set("fail_alloc_at", "off");
    generate(&device, DType::BF16).expect("the next job after an OOM");
}

/// The emulator's allocation count at the first denoising progress report.
struct AllocMarks {
    emu: &'static EmulatedDevice,
    start: u64,
    first_step: Mutex<Option<u64>>,
}

impl JobObserver for AllocMarks {
    fn progress(&self, stage: Stage, _: u32, _: u32) {
        let mut first = self.first_step.lock();
        if stage == Stage::Denoising && first.is_none() {
            *first = Some(self.emu.counters().allocs - self.start);
        }
    }
    fn should_abort(&self) -> bool {
        false
    }
}

/// A failed launch poisons a real CUDA context for good, so only the error
/// is required here, not a working next job.
#[test]
fn a_failed_launch_is_reported() {
    let Some(f) = Faults::take() else { return };
    let device = fresh_device().unwrap();
    f.set("fail_launch_at", "20");
    expect_error(
        "launch failure",
        generate(&device, DType::BF16),
        &["launch", "kernel"],
    );
}

#[test]
fn a_driver_older_than_our_kernels_is_named_as_such() {
    let Some(f) = Faults::take() else { return };
    f.set("driver_version", "12000");
    let device = fresh_device().unwrap();
    let e = expect_error(
        "old driver",
        generate(&device, DType::BF16),
        &["driver is too old", "update"],
    );
    assert!(e.contains("12.0"), "says which driver it found: {e}");
}

#[test]
fn no_device_is_no_driver_and_jobs_fall_back_to_the_cpu() {
    let Some(f) = Faults::take() else { return };
    f.set("devices", "0");
    match GpuDevice::open(0, Libraries::detect()) {
        Err(e @ CudaError::NoDriver(_)) => {
            println!("zero devices: {e}");
            assert!(e.to_string().contains("no CUDA device"), "{e}");
        }
        other => panic!("zero devices opened: {other:?}"),
    }
}

#[test]
fn a_turing_card_runs_in_f16_without_flash_attention() {
    let Some(f) = Faults::take() else { return };
    f.set("cc", "7.5");
    let gpu = fresh_gpu().unwrap();
    assert_eq!(gpu.device().half(), Half::F16, "Turing stores f16");
    let device = Device::new(gpu);
    let want = generate(&Device::cpu(), DType::F32).unwrap();
    let got = generate(&device, device.compute_dtype()).unwrap();
    assert!(got.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
    let mean = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / want.len() as f32;
    println!("sm_75, f16: mean abs err {mean:.3e} against the CPU");
    assert!(mean <= 3e-2, "f16 on sm_75 differs by {mean} on average");
}

#[test]
fn a_nan_from_the_gpu_fails_the_job_instead_of_making_frames() {
    let Some(f) = Faults::take() else { return };
    // Early in the job: in the text encoder, which runs first.
    let device = fresh_device().unwrap();
    f.set("nan_gemm_at", "30");
    let e = expect_error(
        "NaN in the text encoder",
        generate(&device, DType::BF16),
        &["non-finite", "nan"],
    );
    assert!(e.contains("text encoder"), "{e}");
    // Later: the last GEMM before the decode starts (the transformer's last
    // step) and the job's last GEMM (in the VAE decode), counted on an
    // identical job on a device of its own.
    let marks = GemmMarks {
        emu: f.emu,
        start: f.emu.counters().gemms,
        before_decode: Mutex::new(None),
    };
    LtxEngine::with_dtype(fresh_device().unwrap(), DType::BF16)
        .generate(&request(), &marks)
        .unwrap();
    let per_job = f.emu.counters().gemms - marks.start;
    let before_decode = marks.before_decode.lock().expect("the decode started");
    assert!(
        before_decode < per_job,
        "the VAE decode runs GEMMs on the GPU"
    );
    for (what, nth, words) in [
        ("NaN in the last step", before_decode, "denoising"),
        ("NaN in the decode", per_job, "VAE decode"),
    ] {
        let device = fresh_device().unwrap();
        f.set("nan_gemm_at", &nth.to_string());
        let e = expect_error(what, generate(&device, DType::BF16), &["non-finite", "nan"]);
        assert!(e.contains(words), "{what}: {e}");
    }
}

/// The emulator's GEMM count when the decode starts.
struct GemmMarks {
    emu: &'static EmulatedDevice,
    start: u64,
    before_decode: Mutex<Option<u64>>,
}

impl JobObserver for GemmMarks {
    fn progress(&self, stage: Stage, done: u32, _: u32) {
        if (stage, done) == (Stage::Decoding, 0) {
            *self.before_decode.lock() = Some(self.emu.counters().gemms - self.start);
        }
    }
    fn should_abort(&self) -> bool {
        false
    }
}
