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
                    LayoutError::Invalid("the host gave the transition no frame range".into())
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
