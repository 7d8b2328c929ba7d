//! The interface between a host integration (the OpenFX plugin, the command
//! line) and the generative engine.
//!
//! A request describes one whole shot: a generation is never per frame. The
//! caller owns colour management and framing; the engine sees display-referred
//! RGB at the working resolution and gives the same back.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Interleaved RGB, display-referred, nominally in [0, 1], at the working
/// resolution. Row 0 is the top of the picture.
#[derive(Clone, PartialEq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<f32>,
}

impl Frame {
    pub fn new(width: u32, height: u32, rgb: Vec<f32>) -> Result<Self, EngineError> {
        let expected = width as usize * height as usize * 3;
        if rgb.len() != expected {
            return Err(EngineError::InvalidRequest(format!(
                "frame of {width}x{height} needs {expected} RGB values, got {}",
                rgb.len()
            )));
        }
        Ok(Self { width, height, rgb })
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Frame({}x{})", self.width, self.height)
    }
}

/// Real frames that condition a job, in clip order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Clip {
    pub frames: Vec<Frame>,
}

/// What the shot is made from.
#[derive(Clone, Debug, PartialEq)]
pub enum Job {
    /// A new shot from the prompt, optionally starting from a still or clip.
    Generate { reference: Option<Clip> },
    /// New frames after `context` (the last real frames of the source).
    ExtendForward { context: Clip },
    /// New frames before `context` (the first real frames of the source).
    ExtendBackward { context: Clip },
    /// New frames between the end of `before` and the start of `after`.
    Fill { before: Clip, after: Clip },
}

/// Sampling effort. Presets map to the schedules the model ships with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Quality {
    Draft,
    Standard,
    High,
    /// An explicit number of denoising steps.
    Steps(u32),
}

/// Everything that determines a shot. Two equal requests give equal frames.
#[derive(Clone, Debug, PartialEq)]
pub struct ShotRequest {
    /// Folder of weights (diffusers layout) or a Hugging Face repository name.
    pub model: PathBuf,
    /// The Text encoder setting: a T5 folder or single T5 file (with its
    /// tokenizer beside it). None: found beside the model or in the places
    /// `pipeline::text_encoder_location` searches.
    pub text_encoder: Option<PathBuf>,
    pub prompt: String,
    pub negative_prompt: String,
    pub seed: u64,
    pub quality: Quality,
    pub guidance: f32,
    /// Working resolution; multiples of 32.
    pub width: u32,
    pub height: u32,
    /// New frames the shot holds, any count from 1. Real frames that
    /// condition an Extend or Fill are not among them and never come back
    /// as new frames; Generate's Reference becomes the shot's first frames.
    /// The engine makes whatever length its model needs and returns exactly
    /// this many.
    pub num_frames: u32,
    /// Frames per second of the clip; LTX's positions depend on it.
    pub frame_rate: f64,
    /// Conditioning strength of real frames, in [0, 1].
    pub strength: f32,
    pub job: Job,
    /// How a shot longer than one pass of the model is cut into windows;
    /// the default chooses everything. Shots that fit one pass ignore it.
    pub windows: WindowSettings,
}

/// Overrides of a long shot's window plan (see
/// `pipeline::long_shot`). Each changes the frames of a long shot, so each
/// set one is part of the shot's key; the default (all automatic) adds
/// nothing to it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WindowSettings {
    /// Frames the model makes per window, 8k+1 from 25 to 257. `None`: the
    /// longest the model, resolution and memory allow.
    pub length: Option<u32>,
    /// Frames two neighbouring windows share, 8k+1 from 9 (two latent
    /// frames) up to less than half the window. `None`: 17 (three latent frames),
    /// less for short windows.
    pub overlap: Option<u32>,
    /// How strongly each window's latent statistics are pulled to the
    /// reference's, in [0, 1]. `None`: the default strength.
    pub drift: Option<f32>,
}

impl WindowSettings {
    /// True when nothing is overridden.
    pub fn is_automatic(&self) -> bool {
        *self == Self::default()
    }
}

/// A finished shot: `frames.len() == request.num_frames`, in time order.
#[derive(Clone, Debug)]
pub struct Shot {
    pub frames: Vec<Frame>,
}

/// Where a job is, for progress bars.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    LoadingModel,
    EncodingPrompt,
    EncodingFrames,
    Denoising,
    Decoding,
}

/// Receives progress and answers whether to stop. Called from the job's
/// thread; must be cheap.
pub trait JobObserver: Send + Sync {
    /// `done` of `total` units of `stage` are finished.
    fn progress(&self, stage: Stage, done: u32, total: u32);
    /// True when the user asked to stop; the job ends at the next step.
    fn should_abort(&self) -> bool;
    /// Something the user should know that does not stop the job: a length
    /// or size that was rounded, a prompt that was cut, a cache that could
    /// not be written. Hosts show it in their message area.
    fn notice(&self, message: &str) {
        log::warn!("{message}");
    }
    /// A shot longer than one pass of the model is made window by window;
    /// window `index` (from 0) of `count` starts now. Progress of the
    /// stages that follow is within that window. Shots of one window never
    /// call this.
    fn window(&self, index: u32, count: u32) {
        let _ = (index, count);
    }
}

/// Receives a shot's finished frames as they are made: a long shot's
/// windows finish one after another, and a host can show frame 0 long
/// before the last frame exists. Every frame of the shot arrives exactly
/// once, in time order, final (never revised); `first` is the index in the
/// shot of `frames[0]`.
pub trait FrameSink: Send + Sync {
    /// An error here (a full disk, say) ends the job with that error.
    fn frames_ready(&self, first: usize, frames: &[Frame]) -> Result<(), EngineError>;
}

/// A sink that keeps every frame in memory, for callers that want the whole
/// [`Shot`] (memory grows with the shot's length).
#[derive(Default)]
pub struct CollectFrames {
    frames: std::sync::Mutex<Vec<Frame>>,
}

impl CollectFrames {
    pub fn into_shot(self) -> Shot {
        Shot {
            frames: self.frames.into_inner().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// `engine`'s whole shot, from its `generate_into` with no window
    /// folder: `generate` for an engine that streams.
    pub fn shot_of<E: ShotEngine + ?Sized>(
        engine: &E,
        request: &ShotRequest,
        observer: &dyn JobObserver,
    ) -> Result<Shot, EngineError> {
        let sink = Self::default();
        engine.generate_into(request, observer, &sink, None)?;
        Ok(sink.into_shot())
    }
}

impl FrameSink for CollectFrames {
    fn frames_ready(&self, first: usize, frames: &[Frame]) -> Result<(), EngineError> {
        let mut held = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        if first != held.len() {
            return Err(EngineError::Failed(format!(
                "frames arrived out of order: expected frame {}, got {first}",
                held.len()
            )));
        }
        held.extend_from_slice(frames);
        Ok(())
    }
}

/// An observer that reports nowhere and never aborts.
pub struct Silent;

impl JobObserver for Silent {
    fn progress(&self, _: Stage, _: u32, _: u32) {}
    fn should_abort(&self) -> bool {
        false
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum EngineError {
    /// No usable model: missing folder, files, or an unsupported version.
    #[error("no model available: {0}")]
    NoModel(String),
    /// The request itself cannot be served (shapes, parameters, inputs).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The observer asked to stop.
    #[error("aborted")]
    Aborted,
    /// Out of memory on the device doing the work.
    #[error("out of memory: {0}")]
    OutOfMemory(String),
    /// Anything else, with the reason.
    #[error("{0}")]
    Failed(String),
}

/// Generates whole shots. Implementations are shared by every plugin
/// instance and render thread of a process.
pub trait ShotEngine: Send + Sync {
    /// The whole shot in memory.
    fn generate(
        &self,
        request: &ShotRequest,
        observer: &dyn JobObserver,
    ) -> Result<Shot, EngineError>;

    /// The shot's frames handed to `sink` as they are finished. Engines
    /// that make long shots in windows override this so that memory does
    /// not grow with the shot's length; the default makes the whole shot
    /// and hands it over at once.
    ///
    /// `windows` is the folder where a long shot keeps each finished
    /// window (latents and frames), so a killed or aborted job resumes at
    /// its first unfinished window and processes sharing the folder make
    /// each window once. `None` keeps nothing: an interrupted long shot
    /// starts again.
    fn generate_into(
        &self,
        request: &ShotRequest,
        observer: &dyn JobObserver,
        sink: &dyn FrameSink,
        windows: Option<&std::path::Path>,
    ) -> Result<(), EngineError> {
        let _ = windows;
        let shot = self.generate(request, observer)?;
        sink.frames_ready(0, &shot.frames)
    }
}

/// The engine a host integration should use in this build: LTX-Video with
/// its transformer on the GPU where one can be used (else the CPU; see
/// `pipeline::engine::transformer_device`), behind the disk cache of
/// finished shots.
pub fn default_engine() -> Arc<dyn ShotEngine> {
    let ltx =
        crate::pipeline::engine::LtxEngine::new(crate::pipeline::engine::transformer_device());
    Arc::new(crate::pipeline::disk_cache::DiskCachedEngine::new(
        Arc::new(ltx),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(value: f32) -> Frame {
        Frame::new(1, 1, vec![value; 3]).unwrap()
    }

    #[test]
    fn collected_frames_keep_time_order_and_refuse_a_gap() {
        let sink = CollectFrames::default();
        sink.frames_ready(0, &[frame(0.0), frame(1.0)]).unwrap();
        sink.frames_ready(2, &[frame(2.0)]).unwrap();
        let err = sink.frames_ready(5, &[frame(5.0)]).unwrap_err();
        assert!(err.to_string().contains("expected frame 3"), "{err}");
        let shot = sink.into_shot();
        let firsts: Vec<f32> = shot.frames.iter().map(|f| f.rgb[0]).collect();
        assert_eq!(firsts, [0.0, 1.0, 2.0]);
    }
}
