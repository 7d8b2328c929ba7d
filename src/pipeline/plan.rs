//! Where a job's new frames and real frames sit in the video the model
//! makes. LTX-Video makes 8k+1 frames and reproduces each conditioning clip
//! in the frames it is placed on, at frame indices that are multiples of 8.
//! A job asks for an exact number of *new* frames, so the plan makes a
//! video long enough to hold the real frames and the new ones, and says
//! which of its frames are shown. Real frames are never shown again as new
//! ones.

/// The frames (8k+1) a model with temporal compression `t` takes for at
/// least `n` frames.
pub fn at_least(n: usize, t: usize) -> usize {
    n.saturating_sub(1).div_ceil(t) * t + 1
}

/// The most frames of `n` a condition can use: 8k+1.
pub fn usable(n: usize, t: usize) -> usize {
    if n == 0 {
        0
    } else {
        (n - 1) / t * t + 1
    }
}

/// A job by the sizes that matter to its layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobShape {
    /// A new shot; a reference clip (if any) is its first frames.
    Generate { reference: Option<usize> },
    /// New frames after `context` real frames.
    ExtendForward { context: usize },
    /// New frames before `context` real frames.
    ExtendBackward { context: usize },
    /// New frames between `before` and `after` real frames.
    Fill { before: usize, after: usize },
}

/// The layout of one generated video.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShotPlan {
    /// Frames the model generates (8k+1).
    pub total: usize,
    /// Each condition in job order: (frame index, frames used).
    pub conditions: Vec<(usize, usize)>,
    /// For each new frame asked for, the frame of the video shown.
    pub shown: Vec<usize>,
    /// New frames the model makes between the real ones, when that is not
    /// the count asked for and `shown` retimes them.
    pub retimed_from: Option<usize>,
}

/// Lays out `new_frames` new frames (at least 1) for `job` on a model with
/// temporal compression `t`. Condition sizes are cut to 8k+1 here.
pub fn plan(job: JobShape, new_frames: usize, t: usize) -> ShotPlan {
    let n = new_frames.max(1);
    let straight = |from: usize| (from..from + n).collect::<Vec<_>>();
    match job {
        JobShape::Generate { reference } => {
            let total = at_least(n, t);
            let conditions = reference
                .filter(|&r| r > 0)
                .map(|r| vec![(0, usable(r.min(total), t))])
                .unwrap_or_default();
            ShotPlan {
                total,
                conditions,
                shown: straight(0),
                retimed_from: None,
            }
        }
        JobShape::ExtendForward { context } => {
            let c = usable(context, t);
            ShotPlan {
                total: at_least(c + n, t),
                conditions: vec![(0, c)],
                shown: straight(c),
                retimed_from: None,
            }
        }
        JobShape::ExtendBackward { context } => {
            let c = usable(context, t);
            let total = at_least(n + c, t);
            // total and c are both 8k+1, so the context lands on a multiple of t.
            let at = total - c;
            ShotPlan {
                total,
                conditions: vec![(at, c)],
                shown: straight(at - n),
                retimed_from: None,
            }
        }
        JobShape::Fill { before, after } => {
            let (b, a) = (usable(before, t), usable(after, t));
            // `after` must start on a multiple of t: the nearest one that
            // leaves at least one new frame, ties towards more frames.
            let exact = b + n;
            let lower = exact / t * t;
            let upper = lower + if exact % t == 0 { 0 } else { t };
            let at = if lower > b && exact - lower < upper - exact {
                lower
            } else {
                upper
            };
            let made = at - b;
            // Nearest-frame retiming of `made` frames onto `n`, centre to
            // centre, so motion keeps its pace and only its timing shifts.
            let shown = (0..n).map(|i| b + (2 * i + 1) * made / (2 * n)).collect();
            ShotPlan {
                total: at + a,
                conditions: vec![(0, b), (at, a)],
                shown,
                retimed_from: (made != n).then_some(made),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_to_the_models_steps() {
        assert_eq!(at_least(1, 8), 1);
        assert_eq!(at_least(9, 8), 9);
        assert_eq!(at_least(10, 8), 17);
        assert_eq!(at_least(0, 8), 1);
        assert_eq!(usable(12, 8), 9);
        assert_eq!(usable(1, 8), 1);
        assert_eq!(usable(0, 8), 0);
    }

    #[test]
    fn generate_keeps_the_first_frames_asked_for() {
        let p = plan(JobShape::Generate { reference: None }, 10, 8);
        assert_eq!(p.total, 17);
        assert_eq!(p.shown, (0..10).collect::<Vec<_>>());
        assert!(p.conditions.is_empty());
        let p = plan(
            JobShape::Generate {
                reference: Some(30),
            },
            9,
            8,
        );
        assert_eq!(p.conditions, vec![(0, 9)]);
    }

    #[test]
    fn extend_never_shows_the_real_frames_again() {
        let p = plan(JobShape::ExtendForward { context: 9 }, 24, 8);
        assert_eq!(p.total, 33);
        assert_eq!(p.conditions, vec![(0, 9)]);
        assert_eq!(p.shown.first(), Some(&9));
        assert_eq!(p.shown.len(), 24);
        assert!(p.shown.iter().all(|&f| f >= 9 && f < p.total));

        let p = plan(JobShape::ExtendBackward { context: 12 }, 10, 8);
        // 9 context frames used; 10 new ones end right before them.
        assert_eq!(p.total, 25);
        assert_eq!(p.conditions, vec![(16, 9)]);
        assert_eq!(p.shown, (6..16).collect::<Vec<_>>());
    }

    #[test]
    fn fill_places_the_second_clip_on_a_latent_frame_and_retimes() {
        // 9 + 7 = 16: exact.
        let p = plan(
            JobShape::Fill {
                before: 9,
                after: 9,
            },
            7,
            8,
        );
        assert_eq!(p.conditions, vec![(0, 9), (16, 9)]);
        assert_eq!(p.total, 25);
        assert_eq!(p.shown, (9..16).collect::<Vec<_>>());
        assert_eq!(p.retimed_from, None);

        // A 10-frame gap: 9 + 10 = 19 is nearest 16 (7 new frames).
        let p = plan(
            JobShape::Fill {
                before: 9,
                after: 1,
            },
            10,
            8,
        );
        assert_eq!(p.conditions, vec![(0, 9), (16, 1)]);
        assert_eq!(p.retimed_from, Some(7));
        assert_eq!(p.shown.len(), 10);
        assert!(p.shown.windows(2).all(|w| w[0] <= w[1]));
        assert!(p.shown.iter().all(|&f| (9..16).contains(&f)));

        // A 1-frame gap between one-frame contexts cannot go down to 0.
        let p = plan(
            JobShape::Fill {
                before: 1,
                after: 1,
            },
            1,
            8,
        );
        assert_eq!(p.conditions, vec![(0, 1), (8, 1)]);
        assert_eq!(p.retimed_from, Some(7));
        assert_eq!(p.shown, vec![4]);
        for n in 1..40 {
            let p = plan(
                JobShape::Fill {
                    before: 9,
                    after: 9,
                },
                n,
                8,
            );
            let (at, _) = p.conditions[1];
            assert_eq!(at % 8, 0);
            assert_eq!((p.total - 1) % 8, 0);
            assert_eq!(p.shown.len(), n);
            assert!(p.shown.iter().all(|&f| (9..at).contains(&f)), "{n}: {p:?}");
            let made = at - 9;
            // The nearest count, except that short gaps cannot go below
            // the first latent frame after the clip before.
            assert!(
                made.abs_diff(n) <= 4 || (n < 4 && made == 7),
                "{n}: made {made}"
            );
        }
    }
}
