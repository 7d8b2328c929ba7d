//! Running one shot job: the disk cache first, then the engine, reporting
//! progress to the host and keeping the result on disk.

use crate::actions::Ctx;
use crate::ofx::progress::Progress;
use crate::ofx::Effect;
use crate::settings::{CacheSetting, Settings};
use crate::shot::{disk, notes, ShotKey};
use genfx::engine::{self, EngineError, JobObserver, Shot, ShotRequest, Stage};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// Reports job progress to the host's progress bar and answers its abort.
pub(crate) struct HostObserver {
    effect: Effect,
    key: ShotKey,
    progress: Option<Progress>,
    stopped: AtomicBool,
}

impl JobObserver for HostObserver {
    fn progress(&self, stage: Stage, done: u32, total: u32) {
        let within = if total == 0 {
            0.0
        } else {
            done.min(total) as f64 / total as f64
        };
        let (from, to) = match stage {
            Stage::LoadingModel => (0.0, 0.05),
            Stage::EncodingPrompt => (0.05, 0.1),
            Stage::EncodingFrames => (0.1, 0.15),
            Stage::Denoising => (0.15, 0.9),
            Stage::Decoding => (0.9, 1.0),
        };
        if let Some(p) = &self.progress {
            if !p.update(from + (to - from) * within) {
                self.stopped.store(true, Ordering::SeqCst);
            }
        }
    }

    fn should_abort(&self) -> bool {
        self.stopped.load(Ordering::SeqCst) || self.effect.abort_requested()
    }

    fn notice(&self, message: &str) {
        log::warn!("shot {}: {message}", self.key);
        notes::global().record(self.key, message);
    }
}

pub(crate) fn cache_dir(s: &Settings) -> Option<PathBuf> {
    match &s.cache {
        CacheSetting::Off => None,
        CacheSetting::Default => disk::default_dir(),
        CacheSetting::Folder(p) => Some(p.clone()),
    }
}

pub(crate) fn run_job(
    ctx: &Ctx,
    key: ShotKey,
    request: &ShotRequest,
    dir: Option<PathBuf>,
) -> Result<Shot, EngineError> {
    if let Some(dir) = &dir {
        if let Some(shot) = disk::load(dir, key) {
            if valid(&shot, request) {
                log::info!(
                    "{}: shot {key} read from {}",
                    ctx.def.label(),
                    dir.display()
                );
                return Ok(shot);
            }
        }
    }
    let label = format!(
        "{}: generating {} frames",
        ctx.def.label(),
        request.num_frames
    );
    let observer = HostObserver {
        effect: ctx.effect.clone(),
        key,
        progress: Progress::start(&ctx.effect, &label),
        stopped: AtomicBool::new(false),
    };
    log::info!(
        "{}: shot {key}: {}x{}, {} frames, job {:?}",
        ctx.def.label(),
        request.width,
        request.height,
        request.num_frames,
        std::mem::discriminant(&request.job)
    );
    // The plugin keeps finished shots itself, in the folder each instance's
    // Cache parameter names; the engine's process-wide disk cache (which
    // serves the command line) would store every shot a second time.
    static ENGINE_DISK_CACHE_OFF: std::sync::Once = std::sync::Once::new();
    ENGINE_DISK_CACHE_OFF.call_once(|| genfx::pipeline::disk_cache::set_cache_folder(None));
    let shot = engine::default_engine().generate(request, &observer)?;
    if !valid(&shot, request) {
        return Err(EngineError::Failed(format!(
            "the engine returned {} frames, expected {} of {}x{}",
            shot.frames.len(),
            request.num_frames,
            request.width,
            request.height
        )));
    }
    if let Some(dir) = &dir {
        if let Err(e) = disk::store(dir, key, &shot) {
            // The shot is still good; only the disk copy is lost.
            observer.notice(&format!(
                "the shot could not be kept in the cache folder {} ({e}), so reopening the \
                 project will generate it again; free some space or choose another Cache folder",
                dir.display()
            ));
        }
    }
    Ok(shot)
}

pub(crate) fn valid(shot: &Shot, r: &ShotRequest) -> bool {
    shot.frames.len() == r.num_frames as usize
        && shot
            .frames
            .iter()
            .all(|f| f.width == r.width && f.height == r.height)
}
