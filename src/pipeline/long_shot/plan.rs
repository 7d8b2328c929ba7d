//! The window plan of a long shot: a shot too long for one pass of the
//! model becomes overlapping windows of 8k+1 frames, each one pass.
//!
//! Geometry (temporal compression `t` = 8): a window of `W = 8m+1` frames
//! has `m+1` latent frames; latent frame 0 holds pixel frame 0 and latent
//! frame `j ≥ 1` pixel frames `8j-7 ..= 8j`. Neighbouring windows share
//! `L ≥ 2` latent frames: the later window's latent frames `0..L` are the
//! earlier window's last `L` (copied, never decoded and encoded again).
//! Pixel frame `p` of the later window then lines up with pixel frame
//! `p + W - O` of the earlier one, where the overlap is `O = 8(L-1)+1`
//! pixel frames, so windows start `S = W - O` frames apart.
//!
//! All frames of a shot lie on one *timeline*: real frames (an Extend's
//! context, a Fill's clips, a Reference) and new ones. Windows cover the
//! timeline, overlapping by exactly `O` frames; every timeline frame is in
//! one window or in one overlap of two. Real frames are conditions of the
//! window they lie in and are never shown as new frames.

use super::super::plan::{at_least, usable, JobShape};

/// Which way windows are made: forward jobs make the first window first and
/// condition each later window on its predecessor's last latent frames; an
/// Extend backward makes the last window first (it holds the real frames)
/// and conditions each earlier window on its successor's first ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

/// Real frames placed in one window: which clip, where, how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RealFrames {
    /// Index of the clip in job order (Fill: 0 before, 1 after).
    pub clip: usize,
    /// Frame of the window the clip's first used frame lands on (a
    /// multiple of 8).
    pub at: usize,
    /// Frames of the clip used (8k+1).
    pub frames: usize,
}

/// One pass of the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Its first frame on the timeline.
    pub start: usize,
    /// Frames the model makes (8k+1).
    pub frames: usize,
    /// Real frames conditioning it.
    pub real: Vec<RealFrames>,
}

impl Window {
    pub fn end(&self) -> usize {
        self.start + self.frames
    }
}

/// The windows of a shot and which timeline frames are its new frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LongPlan {
    /// In timeline order.
    pub windows: Vec<Window>,
    pub direction: Direction,
    /// Frames neighbouring windows share (8(L-1)+1).
    pub overlap: usize,
    /// Latent frames neighbouring windows share (L).
    pub latent_overlap: usize,
    /// Frames on the timeline.
    pub timeline: usize,
    /// For each new frame asked for, its timeline frame (non-decreasing).
    pub shown: Vec<usize>,
    /// Timeline frames holding real frames (the drift reference of an
    /// Extend or Fill): a range in the window made first.
    pub real_range: Option<(usize, usize)>,
    /// New frames made between a Fill's clips when that is not the count
    /// asked for and `shown` retimes them.
    pub retimed_from: Option<usize>,
}

impl LongPlan {
    /// The windows in the order they are made.
    pub fn making_order(&self) -> Vec<usize> {
        let n = self.windows.len();
        match self.direction {
            Direction::Forward => (0..n).collect(),
            Direction::Backward => (0..n).rev().collect(),
        }
    }
}

/// Window length and overlap in frames, both 8k+1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowSize {
    pub length: usize,
    pub overlap: usize,
}

/// Longest window LTX-Video makes in one pass.
pub const MAX_WINDOW: usize = 257;
/// Shortest window a long shot may use.
pub const MIN_WINDOW: usize = 25;
/// Overlap when none is asked for: three latent frames, fewer where the
/// window is too short for that.
pub const DEFAULT_LATENT_OVERLAP: usize = 3;

impl WindowSize {
    /// Checks an asked-for length and overlap (frames), filling in the
    /// default overlap; the message says what is wrong and what to ask.
    pub fn new(length: usize, overlap: Option<usize>, t: usize) -> Result<Self, String> {
        if !(MIN_WINDOW..=MAX_WINDOW).contains(&length) || (length - 1) % t != 0 {
            return Err(format!(
                "a window of {length} frames: give {t}k+1 frames from {MIN_WINDOW} to {MAX_WINDOW} (e.g. 97, 121, 257)"
            ));
        }
        // Only neighbours may share frames: the stride W − O is at least
        // the overlap O, so with W = 8m+1 and O = 8a+1, m ≥ 2a + 1.
        let m = (length - 1) / t;
        let most = (m - 1) / 2;
        let overlap = match overlap {
            Some(o) => o,
            None => t * (DEFAULT_LATENT_OVERLAP - 1).min(most) + 1,
        };
        if overlap < t + 1 || (overlap - 1) % t != 0 || (overlap - 1) / t > most {
            return Err(format!(
                "an overlap of {overlap} frames in windows of {length}: give {t}k+1 frames, at \
                 least {} (two latent frames) and at most {} (less than half the window)",
                t + 1,
                t * most + 1
            ));
        }
        Ok(Self { length, overlap })
    }

    fn latent_overlap(&self, t: usize) -> usize {
        (self.overlap - 1) / t + 1
    }

    fn stride(&self) -> usize {
        self.length - self.overlap
    }
}

/// The window plan of `new_frames` new frames of `job` in windows of
/// `size`, or `None` when the shot fits one window (it is then made the
/// single-pass way, [`super::super::plan::plan`]).
pub fn long_plan(job: JobShape, new_frames: usize, size: WindowSize, t: usize) -> Option<LongPlan> {
    let single = super::super::plan::plan(job, new_frames, t);
    if single.total <= size.length {
        return None;
    }
    let n = new_frames.max(1);
    let w = size.length;
    let l = size.latent_overlap(t);
    let stride = size.stride();
    // Windows forward from timeline frame 0 until `need` frames are
    // covered; the last is cut to the 8k+1 frames it needs.
    let forward = |need: usize| -> Vec<Window> {
        let count = 1 + need.saturating_sub(w).div_ceil(stride);
        (0..count)
            .map(|k| {
                let start = k * stride;
                let frames = if k + 1 == count {
                    at_least(need - start, t)
                } else {
                    w
                };
                Window {
                    start,
                    frames,
                    real: vec![],
                }
            })
            .collect()
    };
    let make = |windows: Vec<Window>, direction, shown: Vec<usize>, real_range, retimed_from| {
        let timeline = windows.last().map_or(0, Window::end);
        LongPlan {
            windows,
            direction,
            overlap: size.overlap,
            latent_overlap: l,
            timeline,
            shown,
            real_range,
            retimed_from,
        }
    };
    // A clip must leave a window at least one latent frame of new frames.
    let clip_cap = |c: usize| usable(c.min(w - t), t);
    Some(match job {
        JobShape::Generate { reference } => {
            let mut windows = forward(n);
            let r = reference.filter(|&r| r > 0).map(clip_cap);
            if let Some(r) = r {
                windows[0].real.push(RealFrames {
                    clip: 0,
                    at: 0,
                    frames: r,
                });
            }
            make(windows, Direction::Forward, (0..n).collect(), None, None)
        }
        JobShape::ExtendForward { context } => {
            let c = clip_cap(context);
            let mut windows = forward(c + n);
            windows[0].real.push(RealFrames {
                clip: 0,
                at: 0,
                frames: c,
            });
            make(
                windows,
                Direction::Forward,
                (c..c + n).collect(),
                Some((0, c)),
                None,
            )
        }
        JobShape::ExtendBackward { context } => {
            // The mirror of an Extend forward: the same window lengths in
            // reverse, the short one first, the context at the very end.
            let c = clip_cap(context);
            let lengths: Vec<usize> = forward(c + n).iter().rev().map(|w| w.frames).collect();
            let mut windows = Vec::with_capacity(lengths.len());
            let mut start = 0;
            for (k, frames) in lengths.iter().enumerate() {
                if k > 0 {
                    start += lengths[k - 1] - size.overlap;
                }
                windows.push(Window {
                    start,
                    frames: *frames,
                    real: vec![],
                });
            }
            let timeline = windows.last().map_or(0, Window::end);
            let last = windows.last_mut().expect("a long plan has windows");
            last.real.push(RealFrames {
                clip: 0,
                at: last.frames - c,
                frames: c,
            });
            let first_new = timeline - c - n;
            make(
                windows,
                Direction::Backward,
                (first_new..first_new + n).collect(),
                Some((timeline - c, timeline)),
                None,
            )
        }
        JobShape::Fill { before, after } => {
            let b = clip_cap(before);
            // The last window holds L shared latent frames, then new ones,
            // then the clip after on a latent frame past them.
            let a = usable(after.min(w - t * l), t);
            // Gap lengths reachable with k+1 windows: the last window of
            // `last` frames (8j+1, from a + 8L to W) puts the clip after at
            // timeline frame k·S + last - a. The nearest to n is made and
            // retimed to n (ties towards more frames).
            let mut best: Option<(usize, usize, usize)> = None; // (made, k, last)
            let mut k = 1;
            loop {
                let lo = (k * stride + t * l).saturating_sub(b);
                if lo > n + w {
                    break;
                }
                let mut last = a + t * l;
                while last <= w {
                    let at = k * stride + last - a;
                    if at > b {
                        let made = at - b;
                        let better = best.map_or(true, |(m, _, _)| {
                            made.abs_diff(n) < m.abs_diff(n)
                                || (made.abs_diff(n) == m.abs_diff(n) && made > m)
                        });
                        if better {
                            best = Some((made, k, last));
                        }
                    }
                    last += t;
                }
                k += 1;
            }
            let (made, k, last) = best.expect("a long fill always has a plan");
            let mut windows: Vec<Window> = (0..=k)
                .map(|i| Window {
                    start: i * stride,
                    frames: if i == k { last } else { w },
                    real: vec![],
                })
                .collect();
            windows[0].real.push(RealFrames {
                clip: 0,
                at: 0,
                frames: b,
            });
            windows[k].real.push(RealFrames {
                clip: 1,
                at: last - a,
                frames: a,
            });
            // Nearest-frame retiming, centre to centre, as a single pass does.
            let shown = (0..n).map(|i| b + (2 * i + 1) * made / (2 * n)).collect();
            make(
                windows,
                Direction::Forward,
                shown,
                Some((0, b)),
                (made != n).then_some(made),
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: usize = 8;

    /// Every timeline frame lies in one window or in exactly one overlap of
    /// two neighbours, which overlap by exactly the stated frames; windows
    /// are 8k+1 and no longer than asked.
    fn check_cover(p: &LongPlan, size: WindowSize) {
        assert!(p.windows.len() >= 2);
        assert_eq!(p.windows[0].start, 0);
        let mut covered = vec![0u8; p.timeline];
        for (k, win) in p.windows.iter().enumerate() {
            assert_eq!((win.frames - 1) % T, 0, "{k}: {win:?}");
            assert!(win.frames <= size.length && win.frames > size.overlap);
            if k > 0 {
                assert_eq!(p.windows[k - 1].end() - win.start, size.overlap, "{k}");
            }
            for c in &mut covered[win.start..win.end()] {
                *c += 1;
            }
            for r in &win.real {
                assert_eq!(r.at % T, 0);
                assert_eq!((r.frames - 1) % T, 0);
                assert!(r.at + r.frames <= win.frames);
            }
        }
        for (k, pair) in p.windows.windows(2).enumerate() {
            for (f, c) in covered
                .iter_mut()
                .enumerate()
                .take(pair[0].end())
                .skip(pair[1].start)
            {
                assert_eq!(*c, 2, "frame {f} of seam {k}");
                *c = 1;
            }
        }
        assert!(covered.iter().all(|&c| c == 1));
        assert!(p.shown.windows(2).all(|s| s[0] <= s[1]));
        assert!(p.shown.last().is_some_and(|&f| f < p.timeline));
    }

    /// No shown frame is a real one, and real frames sit where the plan
    /// says (in the window made first, except a Fill's clip after).
    fn check_real(p: &LongPlan) {
        for win in &p.windows {
            for r in &win.real {
                let (from, to) = (win.start + r.at, win.start + r.at + r.frames);
                assert!(
                    p.shown.iter().all(|&f| f < from || f >= to),
                    "a real frame is shown: {r:?} in {win:?}"
                );
            }
        }
    }

    fn sizes() -> Vec<WindowSize> {
        [
            (25, None),
            (33, Some(9)),
            (41, Some(17)),
            (97, None),
            (121, Some(25)),
            (257, None),
        ]
        .into_iter()
        .map(|(l, o)| WindowSize::new(l, o, T).unwrap())
        .collect()
    }

    #[test]
    fn generate_and_extend_cover_every_frame_once_for_every_length() {
        for size in sizes() {
            for n in 1..=1441usize {
                for job in [
                    JobShape::Generate { reference: None },
                    JobShape::Generate { reference: Some(9) },
                    JobShape::ExtendForward { context: 9 },
                    JobShape::ExtendBackward { context: 9 },
                ] {
                    let Some(p) = long_plan(job, n, size, T) else {
                        assert!(super::super::super::plan::plan(job, n, T).total <= size.length);
                        continue;
                    };
                    check_cover(&p, size);
                    assert_eq!(p.shown.len(), n, "{job:?} {n}");
                    // Consecutive new frames: no retiming outside a Fill.
                    assert!(p.shown.windows(2).all(|s| s[1] == s[0] + 1));
                    assert!(p.timeline - p.shown.last().unwrap() - 1 < 8 + 9);
                    if !matches!(job, JobShape::Generate { reference: Some(_) }) {
                        check_real(&p);
                    }
                }
            }
        }
    }

    #[test]
    fn fills_cover_every_frame_once_and_retime_little() {
        for size in sizes() {
            for n in (1..=1441usize).step_by(7).chain([200, 1441]) {
                for (before, after) in [(9, 9), (1, 1), (17, 9), (9, 1)] {
                    let job = JobShape::Fill { before, after };
                    let Some(p) = long_plan(job, n, size, T) else {
                        continue;
                    };
                    check_cover(&p, size);
                    check_real(&p);
                    assert_eq!(p.shown.len(), n);
                    let made = p.retimed_from.unwrap_or(n);
                    // The reachable gap lengths are 8 apart within a window
                    // count, with holes of the clip after's length between
                    // counts: the retiming stays within them.
                    // Just past what one window holds, the shortest gap two
                    // windows can make is longer than asked.
                    let shortest = size.length + 8 - before.min(size.length - 8);
                    assert!(
                        made.abs_diff(n) <= 4 + after || made <= shortest,
                        "{size:?} {n} {made}"
                    );
                    let last = p.windows.last().unwrap();
                    assert_eq!(last.real.len(), 1);
                    assert_eq!(last.start + last.frames, p.timeline);
                    // The clip after lies past the shared latent frames.
                    assert!(last.real[0].at >= T * p.latent_overlap);
                }
            }
        }
    }

    #[test]
    fn a_shot_that_fits_one_window_has_no_long_plan() {
        let size = WindowSize::new(257, None, T).unwrap();
        assert!(long_plan(JobShape::Generate { reference: None }, 257, size, T).is_none());
        assert!(long_plan(JobShape::Generate { reference: None }, 258, size, T).is_some());
        assert!(long_plan(JobShape::ExtendForward { context: 9 }, 248, size, T).is_none());
        assert!(long_plan(JobShape::ExtendForward { context: 9 }, 249, size, T).is_some());
    }

    #[test]
    fn minute_long_generate_uses_six_windows_of_257() {
        let size = WindowSize::new(257, None, T).unwrap();
        assert_eq!(size.overlap, 17);
        let p = long_plan(JobShape::Generate { reference: None }, 1441, size, T).unwrap();
        // 257 + 5·240 = 1457 ≥ 1441 > 1217.
        assert_eq!(p.windows.len(), 6);
        assert_eq!(p.windows[5].start, 1200);
        assert_eq!(p.windows[5].frames, 241);
    }

    #[test]
    fn bad_window_sizes_are_explained() {
        assert!(WindowSize::new(30, None, T).unwrap_err().contains("8k+1"));
        assert!(WindowSize::new(17, None, T).is_err());
        assert!(WindowSize::new(265, None, T).is_err());
        assert!(WindowSize::new(33, Some(1), T)
            .unwrap_err()
            .contains("two latent"));
        assert!(WindowSize::new(33, Some(17), T)
            .unwrap_err()
            .contains("at most 9"));
        assert_eq!(WindowSize::new(25, None, T).unwrap().overlap, 9);
        assert_eq!(WindowSize::new(41, None, T).unwrap().overlap, 17);
    }
}
