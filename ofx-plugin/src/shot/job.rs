//! Running one shot job: the disk cache first, then the engine, reporting
//! progress to the host and streaming the frames to disk as the engine
//! hands them over (see `frames`). A job runs on a thread of its own,
//! started by a render (which returns its frame as soon as it exists) or by
//! the Generate button; it runs outside any action, so every host call goes
//! through the instance's link, which DestroyInstance cuts.

use crate::instance::Instance;
use crate::ofx::message::{self, MessageKind};
use crate::ofx::progress::Progress;
use crate::ofx::Status;
use crate::settings::{CacheSetting, Settings};
use crate::shot::cache::JobHandle;
use crate::shot::frames::{FrameWriter, Opened, ShotFrames};
use crate::shot::{cache, disk, notes, status, ShotKey};
use genfx::engine::{
    self, EngineError, Frame, FrameSink, JobObserver, ShotEngine, ShotRequest, Stage,
};
use genfx::pipeline::disk_cache::{DiskShotCache, ShotKey as DiskKey};
use ofx_sys as sys;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a job's progress goes and where its stop request comes from.
pub(crate) trait Reporter: Sync {
    /// Starts the host's progress bar.
    fn start(&self, label: &str);
    /// `fraction` of the job is done, within window `window` (index, count)
    /// of a shot made in windows; false when the user asked to stop.
    fn progress(&self, fraction: f64, window: Option<(u32, u32)>) -> bool;
    /// Whether the instance's end asks the job to stop.
    fn aborted(&self) -> bool;
    /// Ends the host's progress bar (again: nothing).
    fn end(&self);
    /// New frames of the shot can be served.
    fn frames_arrived(&self) {}
}

/// A job on a thread of its own (started by a render, which returns its
/// frame as soon as it exists while the job goes on, or by the Generate
/// button): progress goes to the instance's progress bar and status line
/// while the instance lives; the job stops when the user cancels the bar or
/// deletes the instance (and, for a render's job, when the host aborts the
/// last render waiting for it: see `cache`). Every host call goes through
/// the instance's link, which DestroyInstance cuts.
pub(crate) struct JobReporter {
    pub instance: Arc<Instance>,
    progress: parking_lot::Mutex<Option<Progress>>,
    /// The status text last posted.
    shown: parking_lot::Mutex<String>,
    /// Ask the host to render again as a long shot's frames arrive (the
    /// Generate button's jobs, whose frames an interactive host shows).
    refresh: bool,
    last_refresh: parking_lot::Mutex<Option<Instant>>,
}

/// How often a Generate job asks the host to render again while frames
/// arrive.
const REFRESH_EVERY: Duration = Duration::from_secs(2);

impl JobReporter {
    pub fn new(instance: Arc<Instance>, refresh: bool) -> Self {
        Self {
            instance,
            progress: parking_lot::Mutex::new(None),
            shown: parking_lot::Mutex::new(String::new()),
            refresh,
            last_refresh: parking_lot::Mutex::new(None),
        }
    }
}

impl Reporter for JobReporter {
    fn start(&self, label: &str) {
        let bar = self
            .instance
            .with_effect(|effect| Progress::start(effect, label))
            .flatten();
        *self.progress.lock() = bar;
    }
    fn progress(&self, fraction: f64, window: Option<(u32, u32)>) -> bool {
        let text = status::generating_text(fraction, window);
        let changed = {
            let mut shown = self.shown.lock();
            let changed = *shown != text;
            *shown = text.clone();
            changed
        };
        if changed {
            status::post(&self.instance, text);
        }
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
    fn frames_arrived(&self) {
        if !self.refresh {
            return;
        }
        let mut last = self.last_refresh.lock();
        if !matches!(*last, Some(t) if t.elapsed() < REFRESH_EVERY) {
            *last = Some(Instant::now());
            status::post_ready(&self.instance);
        }
    }
}

impl Drop for JobReporter {
    /// A job that panicked never ended its bar: end it now, the same way.
    fn drop(&mut self) {
        self.end();
    }
}

/// Turns the engine's stage progress into one fraction of the whole shot
/// for the host's bar and the status line (window k of n, stage within it),
/// and answers the engine's abort polls.
pub(crate) struct HostObserver<'a> {
    key: ShotKey,
    reporter: &'a dyn Reporter,
    handle: Option<&'a JobHandle>,
    stopped: AtomicBool,
    /// The window being made, as index << 32 | count; 0 before any.
    window: AtomicU64,
    /// The last fraction shown, so the bar never goes back.
    shown: parking_lot::Mutex<f64>,
    /// What was shown when the first window started: the stages before the
    /// plan (loading the model, the prompt) counted as the whole shot's,
    /// and the windows share the rest of the bar.
    base: parking_lot::Mutex<Option<f64>>,
}

impl<'a> HostObserver<'a> {
    pub fn new(key: ShotKey, reporter: &'a dyn Reporter, handle: Option<&'a JobHandle>) -> Self {
        Self {
            key,
            reporter,
            handle,
            stopped: AtomicBool::new(false),
            window: AtomicU64::new(0),
            shown: parking_lot::Mutex::new(0.0),
            base: parking_lot::Mutex::new(None),
        }
    }

    fn current_window(&self) -> Option<(u32, u32)> {
        let w = self.window.load(Ordering::SeqCst);
        (w != 0).then_some(((w >> 32) as u32, w as u32))
    }
}

/// Where a stage lies within one pass of the model.
fn stage_span(stage: Stage) -> (f64, f64) {
    match stage {
        Stage::LoadingModel => (0.0, 0.05),
        Stage::EncodingPrompt => (0.05, 0.1),
        Stage::EncodingFrames => (0.1, 0.15),
        Stage::Denoising => (0.15, 0.9),
        Stage::Decoding => (0.9, 1.0),
    }
}

/// The fraction of the whole shot done: `within` of `stage` in window
/// `window` (index, count), or of the only pass.
pub(crate) fn shot_fraction(
    stage: Stage,
    done: u32,
    total: u32,
    window: Option<(u32, u32)>,
) -> f64 {
    let within = if total == 0 {
        0.0
    } else {
        done.min(total) as f64 / total as f64
    };
    let (from, to) = stage_span(stage);
    let pass = from + (to - from) * within;
    match window {
        Some((index, count)) if count > 0 => (index.min(count - 1) as f64 + pass) / count as f64,
        _ => pass,
    }
}

impl JobObserver for HostObserver<'_> {
    fn progress(&self, stage: Stage, done: u32, total: u32) {
        let window = self.current_window();
        let base = self.base.lock().unwrap_or(0.0);
        let fraction = {
            let mut shown = self.shown.lock();
            let made = shot_fraction(stage, done, total, window);
            *shown = shown.max(base + (1.0 - base) * made);
            *shown
        };
        status::generating(self.key, fraction, window);
        if !self.reporter.progress(fraction, window) {
            self.stopped.store(true, Ordering::SeqCst);
        }
    }

    fn should_abort(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
            || self.reporter.aborted()
            || self.handle.is_some_and(|h| h.stop_requested())
    }

    fn notice(&self, message: &str) {
        log::warn!("shot {}: {message}", self.key);
        notes::global().record(self.key, message);
    }

    fn window(&self, index: u32, count: u32) {
        log::info!("shot {}: window {} of {count}", self.key, index + 1);
        self.base.lock().get_or_insert(*self.shown.lock());
        self.window
            .store((index as u64) << 32 | count as u64, Ordering::SeqCst);
        self.progress(Stage::LoadingModel, 0, 1);
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
/// cache first, then `engine`, whose frames stream to disk and are
/// published in the slot as they come. `effect` names the effect in logs
/// and on the progress bar.
pub(crate) fn run_job(
    effect: &str,
    key: ShotKey,
    request: &ShotRequest,
    dir: Option<CacheFolder>,
    reporter: &dyn Reporter,
    handle: &JobHandle,
    engine: &dyn ShotEngine,
) -> Result<Arc<ShotFrames>, EngineError> {
    let result = run_job_inner(effect, key, request, dir, reporter, handle, engine);
    reporter.end();
    status::ended(key);
    result
}

/// The engine jobs run on: the build's default, with the engine's own
/// process-wide disk cache off, because the plugin keeps finished shots
/// itself, in the folder each instance's Cache parameter names (the
/// engine's cache, which serves the command line, would store every shot a
/// second time).
pub(crate) fn plugin_engine() -> Arc<dyn ShotEngine> {
    static ENGINE_DISK_CACHE_OFF: std::sync::Once = std::sync::Once::new();
    ENGINE_DISK_CACHE_OFF.call_once(|| genfx::pipeline::disk_cache::set_cache_folder(None));
    engine::default_engine()
}

/// The sink a job hands the engine: frames to the writer, the progress bar
/// ended before the last frames are served, and the reporter told.
struct JobSink<'a> {
    writer: &'a FrameWriter,
    reporter: &'a dyn Reporter,
}

impl FrameSink for JobSink<'_> {
    fn frames_ready(&self, first: usize, frames: &[Frame]) -> Result<(), EngineError> {
        self.writer.write(first, frames, &|| self.reporter.end())?;
        self.reporter.frames_arrived();
        Ok(())
    }
}

/// The note for a shot that cannot be kept in its cache folder.
fn not_kept(dir: &std::path::Path, e: &std::io::Error) -> String {
    format!(
        "the shot could not be kept in the cache folder {} ({e}), so reopening the project will \
         generate it again; free some space or choose another Cache folder",
        dir.display()
    )
}

/// Where a new shot's frames are written: its cache entry when there is a
/// cache folder it fits in, else an anonymous file.
fn frame_writer(
    key: ShotKey,
    request: &ShotRequest,
    disk: Option<(DiskShotCache, DiskKey)>,
    observer: &dyn JobObserver,
) -> Result<FrameWriter, EngineError> {
    let (count, w, h) = (request.num_frames as usize, request.width, request.height);
    if let Some((cache, disk_key)) = disk {
        let bytes = (count as u64) * (w as u64 * h as u64 * 12) + 84;
        let dir = cache.dir().to_path_buf();
        match cache.limit() {
            Some(limit) if bytes > limit => observer.notice(&format!(
                "the shot ({} MB) is larger than the Cache size ({} MB), so it is not kept in \
                 the cache folder and reopening the project will generate it again",
                bytes >> 20,
                limit >> 20
            )),
            _ => match FrameWriter::to_entry(cache, disk_key, count, w, h) {
                Ok(writer) => return Ok(writer),
                Err(e) => observer.notice(&not_kept(&dir, &e)),
            },
        }
    }
    let temp = std::env::temp_dir();
    log::info!(
        "shot {key}: frames go to an anonymous file in {}",
        temp.display()
    );
    FrameWriter::anonymous(&temp, count, w, h).map_err(|e| {
        EngineError::Failed(format!(
            "cannot make a file for the shot's frames in {} ({e}); free some space there or \
             set a Cache folder",
            temp.display()
        ))
    })
}

fn run_job_inner(
    effect: &str,
    key: ShotKey,
    request: &ShotRequest,
    dir: Option<CacheFolder>,
    reporter: &dyn Reporter,
    handle: &JobHandle,
    engine: &dyn ShotEngine,
) -> Result<Arc<ShotFrames>, EngineError> {
    let observer = HostObserver::new(key, reporter, Some(handle));
    let folder = dir.as_ref().map(|(d, _)| d.clone());
    let disk = dir.and_then(|(dir, limit)| {
        let disk_key = disk_key(key, request)?;
        match DiskShotCache::open(&dir) {
            Ok(cache) => Some((cache.with_limit(limit), disk_key)),
            Err(e) => {
                observer.notice(&not_kept(&dir, &e));
                None
            }
        }
    });
    if let Some((cache, disk_key)) = &disk {
        match ShotFrames::open_entry(cache, disk_key, expected(request)) {
            Opened::Hit(frames) => {
                log::info!("{}: shot {key} read from {}", effect, cache.dir().display());
                return Ok(frames);
            }
            Opened::Discarded(why) => {
                log::warn!(
                    "shot {key}: discarded a damaged cached shot ({why}); generating it again"
                );
            }
            Opened::Other | Opened::Miss => {}
        }
    }
    let entry = disk.as_ref().map(|(cache, k)| cache.entry_path(k));
    let record_key = disk.as_ref().map(|(_, k)| *k);
    let writer = frame_writer(key, request, disk, &observer)?;
    handle.publish(writer.frames());
    let label = format!("{}: generating {} frames", effect, request.num_frames);
    reporter.start(&label);
    log::info!(
        "{}: shot {key}: {}x{}, {} frames, job {:?}",
        effect,
        request.width,
        request.height,
        request.num_frames,
        std::mem::discriminant(&request.job)
    );
    let sink = JobSink {
        writer: &writer,
        reporter,
    };
    // The cache folder also keeps a long shot's finished windows, so a
    // killed or aborted job resumes where it was.
    engine.generate_into(request, &observer, &sink, folder.as_deref())?;
    reporter.end();
    let (frames, note) = writer.finish()?;
    if let Some(note) = note {
        observer.notice(&note);
    }
    // A shot kept whole in its cache entry gets its provenance record
    // beside it, as every shot the cache keeps.
    if let Some(entry) = entry.filter(|e| e.is_file()) {
        if let Some(disk_key) = &record_key {
            disk::write_record(&entry, disk_key, request);
        }
    }
    Ok(frames)
}

/// The (frames, width, height) a request's shot has.
fn expected(r: &ShotRequest) -> (usize, u32, u32) {
    (r.num_frames as usize, r.width, r.height)
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
) -> Option<Arc<ShotFrames>> {
    match cache::global().peek(key) {
        cache::Peek::Done(frames) => return Some(frames),
        // Its job is writing the entry; the disk has nothing finished yet.
        cache::Peek::Running => return None,
        cache::Peek::Absent | cache::Peek::Failed(_) => {}
    }
    let (dir, _) = dir?;
    if !dir.is_dir() {
        return None;
    }
    let disk_key = disk_key(key, request)?;
    let disk = DiskShotCache::open(dir).ok()?;
    let frames = match ShotFrames::open_entry(&disk, &disk_key, expected(request)) {
        Opened::Hit(frames) => frames,
        _ => return None,
    };
    cache::global().insert(key, frames.clone());
    Some(frames)
}

/// The Generate button: runs the job for `key` on its own thread. Its
/// progress goes to the instance's bar and status line, and the host is
/// asked to render again as frames arrive (an interactive host shows a
/// long shot's first frames while later windows are made); when it ends
/// the status says how and a failure is shown in the message area.
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
                let reporter = JobReporter::new(instance.clone(), true);
                let job: cache::Job = Box::new(move |handle| {
                    let engine = plugin_engine();
                    run_job(effect, key, &request, dir, &reporter, handle, &*engine)
                });
                let result = cache::global().get_or_run(key, job, &|| !instance.alive());
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

#[cfg(test)]
mod tests {
    use super::*;
    use genfx::engine::{Job, Quality, Shot};
    use std::sync::atomic::AtomicUsize;

    /// An engine that makes a shot in windows of `per` frames, `delay`
    /// apart, as a long-shot engine hands them over; frame i is all `i`.
    struct Windowed {
        per: usize,
        delay: Duration,
        fail_after: Option<usize>,
        windows_seen: parking_lot::Mutex<Option<PathBuf>>,
    }

    impl ShotEngine for Windowed {
        fn generate(&self, _: &ShotRequest, _: &dyn JobObserver) -> Result<Shot, EngineError> {
            unreachable!("the plugin streams")
        }

        fn generate_into(
            &self,
            request: &ShotRequest,
            observer: &dyn JobObserver,
            sink: &dyn FrameSink,
            windows: Option<&std::path::Path>,
        ) -> Result<(), EngineError> {
            *self.windows_seen.lock() = windows.map(|p| p.to_path_buf());
            let n = request.num_frames as usize;
            let count = n.div_ceil(self.per) as u32;
            observer.notice("plan: windows of a few frames");
            for w in 0..count as usize {
                observer.window(w as u32, count);
                for step in 0..4 {
                    if observer.should_abort() {
                        return Err(EngineError::Aborted);
                    }
                    observer.progress(Stage::Denoising, step + 1, 4);
                }
                std::thread::sleep(self.delay);
                if self.fail_after == Some(w) {
                    return Err(EngineError::Failed("the device fell over".into()));
                }
                let first = w * self.per;
                let batch: Vec<Frame> = (first..n.min(first + self.per))
                    .map(|i| {
                        Frame::new(request.width, request.height, vec![i as f32; 3 * 64]).unwrap()
                    })
                    .collect();
                sink.frames_ready(first, &batch)?;
            }
            Ok(())
        }
    }

    /// Fractions shown, with the window they were in.
    type Shown = Vec<(f64, Option<(u32, u32)>)>;

    #[derive(Default)]
    struct Recorder {
        fractions: parking_lot::Mutex<Shown>,
        ended: AtomicUsize,
    }

    impl Reporter for Recorder {
        fn start(&self, _: &str) {}
        fn progress(&self, fraction: f64, window: Option<(u32, u32)>) -> bool {
            self.fractions.lock().push((fraction, window));
            true
        }
        fn aborted(&self) -> bool {
            false
        }
        fn end(&self) {
            self.ended.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn request(frames: u32) -> ShotRequest {
        ShotRequest {
            model: genfx::testing::fixtures_dir().join("pipeline/model"),
            text_encoder: None,
            prompt: "a lighthouse at dusk".into(),
            negative_prompt: String::new(),
            seed: 5,
            quality: Quality::Draft,
            guidance: 3.0,
            width: 8,
            height: 8,
            num_frames: frames,
            frame_rate: 24.0,
            strength: 1.0,
            job: Job::Generate { reference: None },
            windows: Default::default(),
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("genfx-job-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn windowed(per: usize, delay_ms: u64, fail_after: Option<usize>) -> Arc<Windowed> {
        Arc::new(Windowed {
            per,
            delay: Duration::from_millis(delay_ms),
            fail_after,
            windows_seen: parking_lot::Mutex::new(None),
        })
    }

    fn render_job(
        request: ShotRequest,
        dir: Option<CacheFolder>,
        engine: Arc<Windowed>,
        recorder: Arc<Recorder>,
    ) -> impl FnOnce() -> cache::Job {
        move || {
            Box::new(move |handle| {
                let key = crate::shot::shot_key(&request);
                run_job("Test", key, &request, dir, &*recorder, handle, &*engine)
            })
        }
    }

    #[test]
    fn a_long_shot_streams_into_its_cache_entry_and_reopens_from_disk() {
        let cache = Box::leak(Box::new(cache::ShotCache::new(u64::MAX)));
        let dir = temp_dir("stream");
        let request = request(40);
        let key = crate::shot::shot_key(&request);
        let engine = windowed(8, 120, None);
        let recorder = Arc::new(Recorder::default());
        let folder = Some((dir.clone(), None));
        let t = Instant::now();
        let job = render_job(
            request.clone(),
            folder.clone(),
            engine.clone(),
            recorder.clone(),
        );
        let first = cache.frame(key, 0, job, &|| false).unwrap();
        let took = t.elapsed();
        assert_eq!(first.rgb[0], 0.0);
        // Frame 0 comes with the first of five windows.
        assert!(took < Duration::from_millis(480), "frame 0 after {took:?}");
        let last = cache
            .frame(key, 39, || panic!("a second job"), &|| false)
            .unwrap();
        assert_eq!(last.rgb[0], 39.0);
        // The cache folder is where the engine keeps its windows.
        assert_eq!(engine.windows_seen.lock().as_deref(), Some(dir.as_path()));
        // Progress covers the whole shot: window k of n, never back.
        let seen = recorder.fractions.lock().clone();
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
        assert_eq!(seen.last().unwrap().1, Some((4, 5)));
        assert!(seen.last().unwrap().0 > 0.95, "{seen:?}");
        assert!(seen
            .iter()
            .any(|(f, w)| *w == Some((2, 5)) && *f > 0.4 && *f < 0.6));
        assert!(notes::global()
            .message(key)
            .is_some_and(|m| m.contains("plan")));
        // Wait for the job to put its entry in place, then a new process
        // (an empty memory cache) serves it from disk without the engine.
        let t = Instant::now();
        while !matches!(cache.peek(key), cache::Peek::Done(_)) {
            assert!(t.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(5));
        }
        let disk = DiskShotCache::open(&dir).unwrap();
        let disk_key = disk::key_of(&request).unwrap().unwrap();
        match ShotFrames::open_entry(&disk, &disk_key, (40, 8, 8)) {
            Opened::Hit(frames) => {
                assert_eq!(frames.try_frame(17).unwrap().unwrap().rgb[5], 17.0)
            }
            _ => panic!("the shot is not in its cache folder"),
        }
        let reopened = Box::leak(Box::new(cache::ShotCache::new(u64::MAX)));
        let job = render_job(request.clone(), folder, windowed(8, 0, Some(0)), recorder);
        assert_eq!(
            reopened.frame(key, 23, job, &|| false).unwrap().rgb[0],
            23.0
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_long_shot_keeps_nothing_and_says_why() {
        let cache = Box::leak(Box::new(cache::ShotCache::new(u64::MAX)));
        let dir = temp_dir("fail");
        let request = request(24);
        let key = crate::shot::shot_key(&request);
        let recorder = Arc::new(Recorder::default());
        let job = render_job(
            request,
            Some((dir.clone(), None)),
            windowed(8, 100, Some(1)),
            recorder.clone(),
        );
        // Frames of the first window are served; a later one gets the error.
        let f0 = cache.frame(key, 3, job, &|| false).unwrap();
        assert_eq!(f0.rgb[0], 3.0);
        let err = cache
            .frame(key, 20, || panic!("rerun"), &|| false)
            .unwrap_err();
        assert!(err.to_string().contains("fell over"), "{err}");
        assert!(
            recorder.ended.load(Ordering::SeqCst) > 0,
            "the bar never ended"
        );
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert!(left.is_empty(), "{left:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn without_a_cache_folder_frames_go_to_an_anonymous_file() {
        let cache = Box::leak(Box::new(cache::ShotCache::new(u64::MAX)));
        let request = request(12);
        let key = crate::shot::shot_key(&request);
        let engine = windowed(5, 0, None);
        let job = render_job(request, None, engine.clone(), Arc::new(Recorder::default()));
        assert_eq!(cache.frame(key, 11, job, &|| false).unwrap().rgb[0], 11.0);
        assert_eq!(*engine.windows_seen.lock(), None);
    }

    #[test]
    fn fractions_cover_the_whole_shot() {
        assert_eq!(shot_fraction(Stage::Denoising, 0, 10, None), 0.15);
        assert_eq!(shot_fraction(Stage::Decoding, 1, 1, None), 1.0);
        let f = shot_fraction(Stage::Decoding, 1, 1, Some((0, 4)));
        assert!((f - 0.25).abs() < 1e-12);
        let f = shot_fraction(Stage::LoadingModel, 0, 1, Some((3, 4)));
        assert!((f - 0.75).abs() < 1e-12);
    }
}
