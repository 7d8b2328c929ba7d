//! `cargo xtask bench long-shot`: long shots on the CPU with the tiny
//! fixture model, N = 100, 400 and 1441 new frames in windows of 33
//! frames sharing 9, at 128×128. Each length runs in a process of its own
//! (this bench again, with `GENFX_LONG_SHOT_CHILD=N`) so its peak resident
//! memory (VmHWM) is its own; frames go to a sink that drops them, and the
//! windows to a temporary folder, as `genfx generate` does. Prints time
//! per window and peak RSS per length, then one JSON line. Flat memory
//! means the peaks agree; linear time means seconds per window do.

use std::time::Instant;

mod common;

use genfx::backend::Device;
use genfx::engine::{
    EngineError, Frame, FrameSink, Job, Quality, ShotEngine, ShotRequest, Silent, WindowSettings,
};
use genfx::pipeline::engine::LtxEngine;
use genfx::testing::fixtures_dir;

const CHILD_ENV: &str = "GENFX_LONG_SHOT_CHILD";
const LENGTHS: [u32; 3] = [100, 400, 1441];
const WINDOW: usize = 33;
const STRIDE: usize = 24;

struct Drop_ {
    frames: std::sync::atomic::AtomicUsize,
}

impl FrameSink for Drop_ {
    fn frames_ready(&self, _: usize, frames: &[Frame]) -> Result<(), EngineError> {
        self.frames
            .fetch_add(frames.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

fn child(n: u32) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("genfx-bench-long-{}", std::process::id()));
    let request = ShotRequest {
        model: fixtures_dir().join("pipeline/model"),
        text_encoder: None,
        prompt: "a lighthouse in fog".into(),
        negative_prompt: String::new(),
        seed: 1,
        quality: Quality::Steps(2),
        guidance: 3.0,
        width: 128,
        height: 128,
        num_frames: n,
        frame_rate: 24.0,
        strength: 1.0,
        job: Job::Generate { reference: None },
        windows: WindowSettings {
            length: Some(WINDOW as u32),
            overlap: Some(9),
            drift: None,
        },
    };
    let sink = Drop_ {
        frames: Default::default(),
    };
    let t = Instant::now();
    LtxEngine::new(Device::cpu())
        .generate_into(&request, &Silent, &sink, Some(&dir))
        .map_err(|e| e.to_string())?;
    let secs = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    let got = sink.frames.load(std::sync::atomic::Ordering::Relaxed);
    if got != n as usize {
        return Err(format!("{got} frames of {n}"));
    }
    let windows = 1 + (n as usize).saturating_sub(WINDOW).div_ceil(STRIDE);
    let hwm = common::status_kib("VmHWM").unwrap_or(0) * 1024;
    println!("{n} {windows} {secs} {hwm}");
    Ok(())
}

fn main() -> Result<(), String> {
    if let Ok(n) = std::env::var(CHILD_ENV) {
        return child(n.parse().map_err(|_| format!("{CHILD_ENV}={n}"))?);
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut json = vec![];
    println!("long shot, tiny model, 128x128, windows of {WINDOW} sharing 9, CPU");
    for n in LENGTHS {
        let out = std::process::Command::new(&exe)
            .env(CHILD_ENV, n.to_string())
            .env("GENFX_DEVICE", "cpu")
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().unwrap_or("");
        let f: Vec<f64> = line.split(' ').filter_map(|v| v.parse().ok()).collect();
        if !out.status.success() || f.len() != 4 {
            return Err(format!(
                "N={n} failed: {}{}",
                text,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let (windows, secs, hwm) = (f[1], f[2], f[3]);
        println!(
            "N={n:>5}: {windows:>3} windows, {:.3} s per window, {secs:.1} s, peak RSS {:.1} MiB",
            secs / windows,
            hwm / (1u64 << 20) as f64
        );
        json.push(format!(
            "\"seconds_per_window_{n}\": {:.4}, \"peak_rss_bytes_{n}\": {}",
            secs / windows,
            hwm as u64
        ));
    }
    println!("{{{}}}", json.join(", "));
    Ok(())
}
