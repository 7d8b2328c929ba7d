//! GenFX Fill: the frames between two clips, conditioned on the end of one
//! and the start of the other. In a transition the span is the transition's;
//! in the General context it is the gap between `Before` and `After` (or
//! Length frames when they touch).

use super::*;

pub struct Fill;

pub const SOURCE_FROM: &str = "SourceFrom";
pub const SOURCE_TO: &str = "SourceTo";
pub const BEFORE: &str = "Before";
pub const AFTER: &str = "After";

/// The span of a transition whose host gives no frame range, from the
/// host-driven `Transition` parameter: it runs linearly from 0 on the
/// transition's first frame to 1 on its last, so its value at `time` and
/// its slope (from the values one frame before and after, whichever side
/// moves) place both ends. `None` when the parameter does not move with
/// time or gives an implausible span.
pub fn transition_span_from_progress(
    time: f64,
    before: Option<f64>,
    now: f64,
    after: Option<f64>,
) -> Option<(f64, f64)> {
    let slopes = [after.map(|a| a - now), before.map(|b| now - b)];
    let slope = slopes
        .into_iter()
        .flatten()
        .find(|s| s.is_finite() && *s > 1e-9)?;
    let frames_between = 1.0 / slope;
    // Fill needs two real ends and one new frame; a day of frames is not a
    // transition.
    if !now.is_finite() || !(2.0..=86_400.0).contains(&frames_between.round()) {
        return None;
    }
    // `+ 0.0` turns a rounded -0 into 0.
    let first = (time - now * frames_between).round() + 0.0;
    Some((first, first + frames_between.round()))
}

impl EffectDef for Fill {
    fn kind(&self) -> EffectKind {
        EffectKind::Fill
    }
    fn id(&self) -> &'static CStr {
        c"org.genfx.Fill"
    }
    fn label(&self) -> &'static str {
        "GenFX Fill"
    }
    fn description(&self) -> &'static str {
        "Generates the frames between two clips with a local video model, conditioned on the end of \
         the first and the start of the second. In an editor, use it as a transition on the cut."
    }
    fn contexts(&self) -> &'static [Context] {
        &[Context::Transition, Context::General]
    }
    fn clips(&self, context: Context) -> &'static [ClipDef] {
        match context {
            Context::Transition => &[
                ClipDef {
                    name: SOURCE_FROM,
                    optional: false,
                },
                ClipDef {
                    name: SOURCE_TO,
                    optional: false,
                },
            ],
            _ => &[
                ClipDef {
                    name: BEFORE,
                    optional: false,
                },
                ClipDef {
                    name: AFTER,
                    optional: false,
                },
            ],
        }
    }
    fn temporal(&self) -> bool {
        true
    }
    fn layout(&self, context: Context, timeline: &Timeline) -> Result<Layout, LayoutError> {
        let c = timeline.context_frames;
        if context == Context::Transition {
            // The transition's first and last frames are the real ends of the
            // two clips; everything between is generated.
            let (s, e) = timeline
                .effect_range
                .map(|(a, b)| (a.round() as i64, b.round() as i64))
                .ok_or_else(|| {
                    LayoutError::Invalid(
                        "the host gave the transition no frame range and its Transition parameter does not move over time"
                            .into(),
                    )
                })?;
            if e - s < 2 {
                return Err(LayoutError::Invalid(format!(
                    "the transition spans {} frame(s); Fill needs at least 3 (two real ends and one new frame)",
                    e - s + 1
                )));
            }
            return Ok(Layout {
                generated: Some((s + 1, (e - s - 1) as u32)),
                domain: (s as f64, e as f64),
                real: vec![
                    RealSpan {
                        clip: SOURCE_FROM,
                        first: s,
                        last: s,
                        offset: 0,
                    },
                    RealSpan {
                        clip: SOURCE_TO,
                        first: e,
                        last: e,
                        offset: 0,
                    },
                ],
                inputs: vec![
                    InputSpan {
                        role: InputRole::Before,
                        clip: SOURCE_FROM,
                        times: tail(i64::MIN / 2, s, c),
                    },
                    InputSpan {
                        role: InputRole::After,
                        clip: SOURCE_TO,
                        times: head(e, i64::MAX / 2, c),
                    },
                ],
                job: JobKind::Fill,
            });
        }
        let (a1, b1) = timeline
            .range(BEFORE)
            .ok_or(LayoutError::NotConnected(BEFORE))?;
        let (a2, b2) = timeline
            .range(AFTER)
            .ok_or(LayoutError::NotConnected(AFTER))?;
        // A real gap on the timeline sets the length; clips that touch or
        // overlap get Length new frames and After is shown after them.
        let (count, after_offset) = if a2 > b1 + 1 {
            ((a2 - b1 - 1) as u32, 0)
        } else {
            let n = timeline.length.max(1);
            (n, a2 - (b1 + n as i64 + 1))
        };
        let gap_first = b1 + 1;
        let gap_last = b1 + count as i64;
        Ok(Layout {
            generated: Some((gap_first, count)),
            domain: (gap_first as f64, gap_last as f64),
            real: vec![
                RealSpan {
                    clip: BEFORE,
                    first: a1,
                    last: b1,
                    offset: 0,
                },
                RealSpan {
                    clip: AFTER,
                    first: gap_last + 1,
                    last: b2 - after_offset,
                    offset: after_offset,
                },
            ],
            inputs: vec![
                InputSpan {
                    role: InputRole::Before,
                    clip: BEFORE,
                    times: tail(a1, b1, c),
                },
                InputSpan {
                    role: InputRole::After,
                    clip: AFTER,
                    times: head(a2, b2, c),
                },
            ],
            job: JobKind::Fill,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn general_fills_exactly_the_gap() {
        let t = Timeline {
            clip_ranges: vec![(BEFORE, (0.0, 20.0)), (AFTER, (30.0, 50.0))],
            length: 97,
            context_frames: 4,
            ..Default::default()
        };
        let l = Fill.layout(Context::General, &t).unwrap();
        assert_eq!(l.generated, Some((21, 9)));
        assert_eq!(l.domain, (21.0, 29.0));
        assert_eq!(
            l.role_at(20.0),
            FrameRole::Real {
                clip: BEFORE,
                time: 20.0
            }
        );
        assert_eq!(l.role_at(21.0), FrameRole::Generated { index: 0 });
        assert_eq!(
            l.role_at(30.0),
            FrameRole::Real {
                clip: AFTER,
                time: 30.0
            }
        );
        assert_eq!(
            l.frames_needed(25.0),
            vec![(BEFORE, (17.0, 20.0)), (AFTER, (30.0, 33.0))]
        );
    }

    #[test]
    fn touching_clips_get_length_frames_between_them() {
        let t = Timeline {
            clip_ranges: vec![(BEFORE, (0.0, 20.0)), (AFTER, (21.0, 40.0))],
            length: 9,
            context_frames: 2,
            ..Default::default()
        };
        let l = Fill.layout(Context::General, &t).unwrap();
        assert_eq!(l.generated, Some((21, 9)));
        // After's first frame now shows at 30.
        assert_eq!(
            l.role_at(30.0),
            FrameRole::Real {
                clip: AFTER,
                time: 21.0
            }
        );
        assert_eq!(
            l.role_at(49.0),
            FrameRole::Real {
                clip: AFTER,
                time: 40.0
            }
        );
        assert_eq!(l.role_at(50.0), FrameRole::Empty);
    }

    #[test]
    fn transition_span_follows_the_transition_parameter() {
        // 25 frames from 100 to 124: the parameter steps by 1/24.
        let at = |t: f64| (t - 100.0) / 24.0;
        for time in [100.0, 101.0, 112.0, 124.0] {
            let span = transition_span_from_progress(
                time,
                Some(at(time - 1.0)),
                at(time),
                Some(at(time + 1.0)),
            );
            assert_eq!(span, Some((100.0, 124.0)), "at {time}");
        }
        // Clamped at the ends by the host: the other side still moves.
        assert_eq!(
            transition_span_from_progress(100.0, Some(0.0), 0.0, Some(at(101.0))),
            Some((100.0, 124.0))
        );
        assert_eq!(
            transition_span_from_progress(124.0, Some(at(123.0)), 1.0, Some(1.0)),
            Some((100.0, 124.0))
        );
        // A parameter that never moves, or one that gives an absurd span.
        assert_eq!(
            transition_span_from_progress(5.0, Some(0.5), 0.5, Some(0.5)),
            None
        );
        assert_eq!(transition_span_from_progress(5.0, None, 0.5, None), None);
        // Two frames (slope 1) is too short; three is the least Fill takes.
        assert_eq!(
            transition_span_from_progress(5.0, None, 0.0, Some(1.0)),
            None
        );
        assert_eq!(
            transition_span_from_progress(5.0, Some(0.0), 0.5, Some(1.0)),
            Some((4.0, 6.0))
        );
        assert_eq!(
            transition_span_from_progress(5.0, Some(0.5), 0.5, Some(0.5 + 1e-7)),
            None
        );
        assert_eq!(
            transition_span_from_progress(5.0, Some(f64::NAN), f64::NAN, None),
            None
        );
    }

    #[test]
    fn transition_ends_are_real_frames() {
        let t = Timeline {
            effect_range: Some((100.0, 124.0)),
            context_frames: 3,
            ..Default::default()
        };
        let l = Fill.layout(Context::Transition, &t).unwrap();
        assert_eq!(
            l.role_at(100.0),
            FrameRole::Real {
                clip: SOURCE_FROM,
                time: 100.0
            }
        );
        assert_eq!(l.role_at(101.0), FrameRole::Generated { index: 0 });
        assert_eq!(l.role_at(123.0), FrameRole::Generated { index: 22 });
        assert_eq!(
            l.role_at(124.0),
            FrameRole::Real {
                clip: SOURCE_TO,
                time: 124.0
            }
        );
        assert_eq!(l.inputs[0].times, vec![98, 99, 100]);
        assert_eq!(l.inputs[1].times, vec![124, 125, 126]);
        let short = Timeline {
            effect_range: Some((0.0, 1.0)),
            ..Default::default()
        };
        assert!(matches!(
            Fill.layout(Context::Transition, &short),
            Err(LayoutError::Invalid(_))
        ));
    }
}
