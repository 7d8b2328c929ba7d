//! Making a long shot window by window: each window claimed from the store
//! (reused when finished), else denoised with its neighbour's latent frames
//! in place, matched to the drift reference, decoded and stored; frames
//! handed to the sink in time order as soon as they are final. Only the
//! current window's latents and frames (and the shared frames of the seam
//! before it) are held.

use super::plan::{Direction, LongPlan, Window};
use super::seam;
use super::stats::{self, ChannelStats};
use super::store::{Claim, WindowEntry, WindowStore};
use crate::engine::{EngineError, Frame, FrameSink, JobObserver};

/// What a long run needs from the engine: one window's latents, and their
/// decode.
pub trait WindowMaker {
    /// Denoises window `index` with `link` (`[C, L, h, w]` latents of the
    /// neighbour) placed at latent frame `link_at`; returns `[C, f, h, w]`
    /// latents and their dims.
    fn denoise(
        &self,
        index: usize,
        window: &Window,
        link: Option<(&[f32], usize)>,
        observer: &dyn JobObserver,
    ) -> Result<(Vec<f32>, [usize; 4]), EngineError>;

    /// Decodes window `index`'s latents to `[3, F, H, W]` in [0, 1].
    fn decode(
        &self,
        index: usize,
        window: &Window,
        latents: Vec<f32>,
        dims: [usize; 4],
        observer: &dyn JobObserver,
    ) -> Result<Vec<f32>, EngineError>;
}

/// How many windows were made and how many reused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub made: usize,
    pub reused: usize,
}

/// Latent frames `range` of `[C, f, plane]` latents, as `[C, n, plane]`.
fn latent_frames(latents: &[f32], dims: [usize; 4], range: std::ops::Range<usize>) -> Vec<f32> {
    let [c, f, h, w] = dims;
    let plane = h * w;
    (0..c)
        .flat_map(|ch| latents[(ch * f + range.start) * plane..(ch * f + range.end) * plane].iter())
        .copied()
        .collect()
}

/// Latent frames of `window` that hold real frames.
fn real_latents(window: &Window) -> Vec<std::ops::Range<usize>> {
    window
        .real
        .iter()
        .map(|r| r.at / 8..r.at / 8 + (r.frames - 1) / 8 + 1)
        .collect()
}

/// Timeline frames in time order to the sink: the shown ones, marked.
struct Emitter<'a> {
    sink: &'a dyn FrameSink,
    shown: &'a [usize],
    next_out: usize,
    mark: &'a dyn Fn(&mut [Frame]),
}

impl Emitter<'_> {
    fn timeline_frame(&mut self, f: usize, frame: &Frame) -> Result<(), EngineError> {
        let first = self.next_out;
        while self.next_out < self.shown.len() && self.shown[self.next_out] == f {
            self.next_out += 1;
        }
        if self.next_out > first {
            let mut frames = vec![frame.clone(); self.next_out - first];
            (self.mark)(&mut frames);
            self.sink.frames_ready(first, &frames)?;
        }
        Ok(())
    }

    /// Whether timeline frame `f` is shown at all (else it need not be
    /// built): frames come in time order and `shown` does not decrease.
    fn wanted(&self, f: usize) -> bool {
        self.shown.get(self.next_out) == Some(&f)
    }
}

/// Frame `i` of a `[3, F, H, W]` video, interleaved.
fn frame_at(entry: &WindowEntry, i: usize) -> Frame {
    let plane = entry.width * entry.height;
    let per_channel = plane * entry.frames;
    let mut rgb = vec![0.0f32; 3 * plane];
    for p in 0..plane {
        for c in 0..3 {
            rgb[p * 3 + c] = entry.video[c * per_channel + i * plane + p];
        }
    }
    Frame {
        width: entry.width as u32,
        height: entry.height as u32,
        rgb,
    }
}

/// Hands window `k`'s frames to the emitter: the shared frames of the seam
/// before it blended with `tail` (the previous window's decode of them),
/// the rest as decoded; returns the shared frames of the seam after it.
fn emit_window(
    plan: &LongPlan,
    k: usize,
    entry: &WindowEntry,
    tail: Vec<Frame>,
    out: &mut Emitter,
) -> Result<Vec<Frame>, EngineError> {
    let win = &plan.windows[k];
    let o = plan.overlap;
    let last = k + 1 == plan.windows.len();
    let own_end = if last { win.frames } else { win.frames - o };
    let mut tail = tail.into_iter();
    for i in 0..own_end {
        let f = win.start + i;
        if k > 0 && i < o {
            // seam::blend_into: (1 − wᵢ)·earlier + wᵢ·later.
            let mut frame = tail.next().ok_or_else(|| {
                EngineError::Failed(format!("window {k} has no shared frames before it"))
            })?;
            seam::blend_into(&mut frame.rgb, &frame_at(entry, i).rgb, i, o);
            out.timeline_frame(f, &frame)?;
        } else if out.wanted(f) {
            out.timeline_frame(f, &frame_at(entry, i))?;
        }
    }
    Ok(if last {
        vec![]
    } else {
        (own_end..win.frames).map(|i| frame_at(entry, i)).collect()
    })
}

/// Makes (or reuses) every window of `plan` and hands the shot's frames to
/// `sink`. `keys[k]` names window `k` in `store`; `mark` marks frames
/// before they leave.
#[allow(clippy::too_many_arguments)]
pub fn run(
    plan: &LongPlan,
    maker: &dyn WindowMaker,
    store: Option<&WindowStore>,
    keys: &[[u8; 32]],
    drift: f32,
    (width, height): (usize, usize),
    observer: &dyn JobObserver,
    sink: &dyn FrameSink,
    mark: &dyn Fn(&mut [Frame]),
) -> Result<Counts, EngineError> {
    let count = plan.windows.len();
    let l = plan.latent_overlap;
    let mut counts = Counts::default();
    let mut out = Emitter {
        sink,
        shown: &plan.shown,
        next_out: 0,
        mark,
    };
    let mut tail: Vec<Frame> = vec![];
    // A backward shot's frames leave once all windows exist; without a
    // store its windows wait in memory.
    let mut held: Vec<Option<WindowEntry>> = vec![None; count];
    let mut link: Option<Vec<f32>> = None;
    let mut reference: Option<ChannelStats> = None;
    for (nth, &k) in plan.making_order().iter().enumerate() {
        observer.window(nth as u32, count as u32);
        let win = &plan.windows[k];
        let claim = match store {
            Some(s) => s.claim(&keys[k], k, observer)?,
            None => Claim::Make(None),
        };
        let entry = match claim {
            Claim::Done(entry) => {
                counts.reused += 1;
                entry
            }
            Claim::Make(lock) => {
                let lf = (win.frames - 1) / 8 + 1;
                let link_at = match plan.direction {
                    Direction::Forward => 0,
                    Direction::Backward => lf - l,
                };
                let (mut latents, dims) =
                    maker.denoise(k, win, link.as_deref().map(|x| (x, link_at)), observer)?;
                let [channels, lf, _, _] = dims;
                // The drift reference: the real frames' latents where the
                // job has them, else the first window made.
                let real = real_latents(win);
                let reference = match &reference {
                    Some(r) => r.clone(),
                    None => match real.first() {
                        Some(range) => ChannelStats::of(&latents, channels, lf, range.clone()),
                        None => ChannelStats::of(&latents, channels, lf, 0..lf),
                    },
                };
                // stats::match_to: x' = x + s·((x − μx)/σx·σref + μref − x)
                // over the window's new latent frames (those not taken
                // from the neighbour or from real frames).
                let fixed = |f: usize| {
                    (link.is_some() && f >= link_at && f < link_at + l)
                        || real.iter().any(|r| r.contains(&f))
                };
                let mut f = 0;
                while f < lf {
                    if fixed(f) {
                        f += 1;
                        continue;
                    }
                    let from = f;
                    while f < lf && !fixed(f) {
                        f += 1;
                    }
                    stats::match_to(&mut latents, channels, lf, from..f, &reference, drift);
                }
                let video = maker.decode(k, win, latents.clone(), dims, observer)?;
                let entry = WindowEntry {
                    latent_dims: dims,
                    latents,
                    frames: win.frames,
                    width,
                    height,
                    video,
                    reference: reference.to_vec(),
                };
                if let Some(s) = store {
                    if let Err(e) = s.put(&keys[k], &entry) {
                        observer.notice(&format!(
                            "could not save window {} of the long shot ({e}); it would be made again after an interruption",
                            k + 1
                        ));
                    }
                }
                drop(lock);
                counts.made += 1;
                entry
            }
        };
        if reference.is_none() {
            reference = Some(ChannelStats::from_slice(&entry.reference));
        }
        let lf = entry.latent_dims[1];
        link = Some(match plan.direction {
            Direction::Forward => latent_frames(&entry.latents, entry.latent_dims, lf - l..lf),
            Direction::Backward => latent_frames(&entry.latents, entry.latent_dims, 0..l),
        });
        match plan.direction {
            Direction::Forward => tail = emit_window(plan, k, &entry, tail, &mut out)?,
            Direction::Backward if store.is_none() => held[k] = Some(entry),
            Direction::Backward => {}
        }
    }
    if plan.direction == Direction::Backward {
        for k in 0..count {
            let entry = match held[k].take() {
                Some(e) => e,
                None => {
                    let s = store.expect("windows are held or stored");
                    s.get(&keys[k])
                        .map_err(EngineError::Failed)?
                        .ok_or_else(|| {
                            EngineError::Failed(format!(
                                "window {} of the long shot left the store while the shot was made",
                                k + 1
                            ))
                        })?
                }
            };
            tail = emit_window(plan, k, &entry, tail, &mut out)?;
        }
    }
    if out.next_out != plan.shown.len() {
        return Err(EngineError::Failed(format!(
            "the long shot gave {} of its {} frames",
            out.next_out,
            plan.shown.len()
        )));
    }
    Ok(counts)
}
