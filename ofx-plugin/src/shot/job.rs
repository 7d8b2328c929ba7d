//! Running one shot job: the disk cache first, then the engine, reporting
//! progress to the host and keeping the result on disk. A job runs either
//! inside a render (the host's render thread, its abort and progress) or
//! on its own thread after the Generate button (outside any action: every
//! host call goes through the instance's link, which DestroyInstance cuts).

use crate::instance::Instance;
use crate::ofx::message::{self, MessageKind};
use crate::ofx::progress::Progress;
use crate::ofx::{Effect, Status};
use crate::settings::{CacheSetting, Settings};
use crate::shot::{cache, disk, notes, status, ShotKey};
use genfx::engine::{self, EngineError, JobObserver, Shot, ShotRequest, Stage};
use ofx_sys as sys;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

/// Where a job's progress goes and where its stop request comes from.
pub(crate) trait Reporter: Sync {
    /// Starts the host's progress bar.
    fn start(&self, label: &str);
    /// `fraction` of the job is done; false when the user asked to stop.
    fn progress(&self, fraction: f64) -> bool;
    /// Whether the host (or the instance's end) asks the job to stop.
    fn aborted(&self) -> bool;
    /// Ends the host's progress bar.
    fn end(&self);
}

/// A job inside the render action: the host's progress bar and abort, and
/// the instance's status line.
pub(crate) struct InRender {
    pub effect: Effect,
    instance: Arc<Instance>,
    progress: parking_lot::Mutex<Option<Progress>>,
    /// The last whole percent shown on the status line.
    percent: AtomicU32,
}

impl InRender {
    pub fn new(effect: Effect, instance: Arc<Instance>) -> Self {
        Self {
            effect,
            instance,
            progress: parking_lot::Mutex::new(None),
            percent: AtomicU32::new(u32::MAX),
        }
    }
}

impl Reporter for InRender {
    fn start(&self, label: &str) {
        *self.progress.lock() = Progress::start(&self.effect, label);
    }
    fn progress(&self, fraction: f64) -> bool {
        post_percent(&self.instance, &self.percent, fraction);
        self.progress
            .lock()
            .as_ref()
            .map_or(true, |p| p.update(fraction))
    }
    fn aborted(&self) -> bool {
        self.effect.abort_requested()
    }
    fn end(&self) {
        self.progress.lock().take();
    }
}

/// Posts "generating N %" when the whole percent changed.
fn post_percent(instance: &Arc<Instance>, last: &AtomicU32, fraction: f64) {
    let percent = (fraction * 100.0).floor() as u32;
    if last.swap(percent, Ordering::Relaxed) != percent {
        status::post(instance, status::generating_text(fraction));
    }
}

/// A job the Generate button started, on its own thread: progress goes to
/// the instance's progress bar and status line while the instance lives;
/// the job stops when the user cancels the bar or deletes the instance.
pub(crate) struct Detached {
    pub instance: Arc<Instance>,
    progress: parking_lot::Mutex<Option<Progress>>,
    /// The last whole percent shown on the status line.
    percent: AtomicU32,
}

impl Detached {
    pub fn new(instance: Arc<Instance>) -> Self {
        Self {
            instance,
            progress: parking_lot::Mutex::new(None),
            percent: AtomicU32::new(u32::MAX),
        }
    }
}

impl Reporter for Detached {
    fn start(&self, label: &str) {
        let bar = self
            .instance
            .with_effect(|effect| Progress::start(effect, label))
            .flatten();
        *self.progress.lock() = bar;
    }
    fn progress(&self, fraction: f64) -> bool {
        post_percent(&self.instance, &self.percent, fraction);
        let bar = self.progress.lock();
        let Some(bar) = bar.as_ref() else {
            return true;
        };
        self.instance
            .with_effect(|_| bar.update(fraction))
            .unwrap_or(false)
    }
    fn aborted(&self) -> bool {
        !self.instance.alive()
    }
    fn end(&self) {
        if let Some(bar) = self.progress.lock().take() {
            // Ending the bar calls the host with the instance handle: only
            // while the instance lives; otherwise there is nothing to end.
            let mut bar = Some(bar);
            self.instance.with_effect(|_| drop(bar.take()));
            if let Some(bar) = bar {
                bar.abandon();
            }
        }
    }
}

impl Drop for Detached {
    /// A job that panicked never ended its bar: end it now, the same way.
    fn drop(&mut self) {
        self.end();
    }
}

/// Turns the engine's stage progress into one fraction for the host's bar
/// and the status line, and answers the engine's abort polls.
pub(crate) struct HostObserver<'a> {
    key: ShotKey,
    reporter: &'a dyn Reporter,
    stopped: AtomicBool,
}

impl JobObserver for HostObserver<'_> {
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
        let fraction = from + (to - from) * within;
        status::generating(self.key, fraction);
        if !self.reporter.progress(fraction) {
            self.stopped.store(true, Ordering::SeqCst);
        }
    }

    fn should_abort(&self) -> bool {
        self.stopped.load(Ordering::SeqCst) || self.reporter.aborted()
    }

    fn notice(&self, message: &str) {
        log::warn!("shot {}: {message}", self.key);
        notes::global().record(self.key, message);
    }
}

/// The cache folder an instance keeps its shots in, and its size limit
/// in bytes (`None`: no limit).
pub(crate) type CacheFolder = (PathBuf, Option<u64>);

pub(crate) fn cache_dir(s: &Settings) -> Option<CacheFolder> {
    let dir = match &s.cache {
        CacheSetting::Off => None,
        CacheSetting::Default => disk::default_dir(),
        CacheSetting::Folder(p) => Some(p.clone()),
    };
    dir.map(|d| (d, s.cache_limit))
}

/// The disk entry's key of `request`: it names the model by its weights'
/// fingerprint and is the one `genfx generate` uses for the same request.
/// `None` (with a note on the shot) when the model cannot be named.
fn disk_key(key: ShotKey, request: &ShotRequest) -> Option<genfx::pipeline::disk_cache::ShotKey> {
    match disk::key_of(request) {
        Ok(k) => k,
        Err(why) => {
            let note = format!("the shot is not kept in the cache folder: {why}");
            log::warn!("shot {key}: {note}");
            notes::global().record(key, &note);
            None
        }
    }
}

/// Runs the job for `key` (the caller holds the cache's slot): the disk
/// cache first, then the engine. `effect` names the effect in logs and on
/// the progress bar.
pub(crate) fn run_job(
    effect: &str,
    key: ShotKey,
    request: &ShotRequest,
    dir: Option<CacheFolder>,
    reporter: &dyn Reporter,
) -> Result<Shot, EngineError> {
    let result = run_job_inner(effect, key, request, dir, reporter);
    status::ended(key);
    result
}

fn run_job_inner(
    effect: &str,
    key: ShotKey,
    request: &ShotRequest,
    dir: Option<CacheFolder>,
    reporter: &dyn Reporter,
) -> Result<Shot, EngineError> {
    let disk = dir.and_then(|(dir, limit)| Some((dir, disk_key(key, request)?, limit)));
    if let Some((dir, disk_key, _)) = &disk {
        match disk::load(dir, disk_key) {
            disk::Loaded::Hit(shot) if valid(&shot, request) => {
                log::info!("{}: shot {key} read from {}", effect, dir.display());
                return Ok(shot);
            }
            disk::Loaded::Discarded(why) => {
                log::warn!(
                    "shot {key}: discarded a damaged cached shot ({why}); generating it again"
                );
            }
            disk::Loaded::Hit(_) | disk::Loaded::Miss => {}
        }
    }
    let label = format!("{}: generating {} frames", effect, request.num_frames);
    reporter.start(&label);
    let observer = HostObserver {
        key,
        reporter,
        stopped: AtomicBool::new(false),
    };
    log::info!(
        "{}: shot {key}: {}x{}, {} frames, job {:?}",
        effect,
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
    let shot = engine::default_engine().generate(request, &observer);
    reporter.end();
    let shot = shot?;
    if !valid(&shot, request) {
        return Err(EngineError::Failed(format!(
            "the engine returned {} frames, expected {} of {}x{}",
            shot.frames.len(),
            request.num_frames,
            request.width,
            request.height
        )));
    }
    if let Some((dir, disk_key, limit)) = &disk {
        if let Err(e) = disk::store_with_record(dir, disk_key, &shot, *limit, request) {
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

/// What the user is told about a failed job, and the status it answers.
pub(crate) fn explain(e: &EngineError) -> (String, Status) {
    let text = match e {
        // The text encoder's messages say what to get and where to put it;
        // the Model folder is not what is wrong then.
        EngineError::NoModel(m) if m.starts_with("text encoder:") => format!(
            "GenFX: {e}. The Text encoder parameter names a T5 file or folder (see the README)."
        ),
        EngineError::NoModel(_) => {
            format!("GenFX: {e}. Set Model to an LTX-Video checkpoint or model folder (see the README).")
        }
        _ => format!("GenFX: {e}"),
    };
    let status = if matches!(e, EngineError::OutOfMemory(_)) {
        sys::kOfxStatErrMemory
    } else {
        sys::kOfxStatFailed
    };
    (text, status)
}

/// The shot for `key` if it is finished: in memory, or in the disk cache
/// (then kept in memory). Never starts or waits for a job.
pub(crate) fn cached(
    key: ShotKey,
    request: &ShotRequest,
    dir: Option<&CacheFolder>,
) -> Option<Arc<Shot>> {
    if let cache::Peek::Done(shot) = cache::global().peek(key) {
        return Some(shot);
    }
    let (dir, _) = dir?;
    let shot = match disk::load(dir, &disk_key(key, request)?) {
        disk::Loaded::Hit(shot) if valid(&shot, request) => shot,
        _ => return None,
    };
    let shot = Arc::new(shot);
    cache::global().insert(key, shot.clone());
    Some(shot)
}

/// The Generate button: runs the job for `key` on its own thread. Its
/// progress goes to the instance's bar and status line; when it ends the
/// status says how, a failure is shown in the message area, and the host
/// is asked to render the frames again.
pub(crate) fn start_detached(
    effect: &'static str,
    instance: Arc<Instance>,
    key: ShotKey,
    request: ShotRequest,
    dir: Option<CacheFolder>,
) {
    // Pressing Generate is an explicit retry: a failure the cache still
    // remembers for this shot does not answer it.
    cache::global().forget_failure(key);
    status::queued(key);
    status::post_shot(&instance, key);
    let spawned = std::thread::Builder::new()
        .name(format!("genfx-shot-{key}"))
        .spawn({
            let instance = instance.clone();
            move || {
                let reporter = Detached::new(instance.clone());
                let result = cache::global().get_or_run(
                    key,
                    || run_job(effect, key, &request, dir, &reporter),
                    &|| !instance.alive(),
                );
                // Another thread's job for the same key reports through
                // its own instance; this one only says where it ended.
                status::ended(key);
                match &result {
                    Ok(_) => log::info!("{effect}: shot {key} ready"),
                    Err(EngineError::Aborted) => log::info!("{effect}: shot {key} stopped"),
                    Err(e) => {
                        log::error!("{effect}: shot {key}: {e}");
                        let (text, _) = explain(e);
                        instance.with_effect(|fx| {
                            if !message::set_persistent(fx, MessageKind::Error, &text) {
                                message::show(fx, MessageKind::Error, &text);
                            }
                        });
                        *instance.shown.lock() = Some(text);
                    }
                }
                status::post_shot(&instance, key);
                status::post_ready(&instance);
            }
        });
    if let Err(e) = spawned {
        status::ended(key);
        status::post(
            &instance,
            status::failed_text(&format!("no thread for the job ({e})")),
        );
    }
}

pub(crate) fn valid(shot: &Shot, r: &ShotRequest) -> bool {
    shot.frames.len() == r.num_frames as usize
        && shot
            .frames
            .iter()
            .all(|f| f.width == r.width && f.height == r.height)
}
