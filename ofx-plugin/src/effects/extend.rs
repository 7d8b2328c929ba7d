//! GenFX Extend: continues a clip past its last real frame (or before its
//! first), conditioned on the real frames next to the seam. Real frames pass
//! through untouched.

use super::*;

pub struct Extend;

pub const SOURCE: &str = "Source";

impl EffectDef for Extend {
    fn kind(&self) -> EffectKind {
        EffectKind::Extend
    }
    fn id(&self) -> &'static CStr {
        c"org.genfx.Extend"
    }
    fn label(&self) -> &'static str {
        "GenFX Extend"
    }
    fn description(&self) -> &'static str {
        "Continues a clip forward past its last frame, or backward before its first, with a local \
         video model conditioned on the real frames at the seam. Real frames pass through untouched."
    }
    fn contexts(&self) -> &'static [Context] {
        &[Context::Filter, Context::General]
    }
    fn clips(&self, _: Context) -> &'static [ClipDef] {
        &[ClipDef {
            name: SOURCE,
            optional: false,
        }]
    }
    fn temporal(&self) -> bool {
        true
    }
    fn layout(&self, _: Context, timeline: &Timeline) -> Result<Layout, LayoutError> {
        let (a, b) = timeline
            .range(SOURCE)
            .ok_or(LayoutError::NotConnected(SOURCE))?;
        let n = timeline.length.max(1);
        let real = vec![RealSpan {
            clip: SOURCE,
            first: a,
            last: b,
            offset: 0,
        }];
        let layout = if timeline.backward {
            Layout {
                generated: Some((a - n as i64, n)),
                domain: ((a - n as i64) as f64, b as f64),
                real,
                inputs: vec![InputSpan {
                    role: InputRole::Context,
                    clip: SOURCE,
                    times: head(a, b, timeline.context_frames),
                }],
                job: JobKind::ExtendBackward,
            }
        } else {
            Layout {
                generated: Some((b + 1, n)),
                domain: (a as f64, (b + n as i64) as f64),
                real,
                inputs: vec![InputSpan {
                    role: InputRole::Context,
                    clip: SOURCE,
                    times: tail(a, b, timeline.context_frames),
                }],
                job: JobKind::ExtendForward,
            }
        };
        Ok(layout)
    }
    fn output_premult(&self, input: Option<Premult>) -> Premult {
        // Real frames pass through, so the output is what the source is.
        input.unwrap_or(Premult::Premultiplied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline(backward: bool) -> Timeline {
        Timeline {
            clip_ranges: vec![(SOURCE, (10.0, 40.0))],
            length: 17,
            context_frames: 9,
            backward,
            ..Default::default()
        }
    }

    #[test]
    fn forward_grows_the_domain_after_the_clip() {
        let l = Extend.layout(Context::General, &timeline(false)).unwrap();
        assert_eq!(l.domain, (10.0, 57.0));
        assert_eq!(
            l.role_at(10.0),
            FrameRole::Real {
                clip: SOURCE,
                time: 10.0
            }
        );
        assert_eq!(
            l.role_at(40.0),
            FrameRole::Real {
                clip: SOURCE,
                time: 40.0
            }
        );
        assert_eq!(l.role_at(41.0), FrameRole::Generated { index: 0 });
        assert_eq!(l.role_at(57.0), FrameRole::Generated { index: 16 });
        assert_eq!(l.role_at(58.0), FrameRole::Empty);
        assert_eq!(l.job, JobKind::ExtendForward);
        // Only what is needed: the frame itself inside, the context outside.
        assert_eq!(l.frames_needed(20.0), vec![(SOURCE, (20.0, 20.0))]);
        assert_eq!(l.frames_needed(45.0), vec![(SOURCE, (32.0, 40.0))]);
        assert!(l.frames_needed(99.0).is_empty());
    }

    #[test]
    fn backward_grows_the_domain_before_the_clip() {
        let l = Extend.layout(Context::Filter, &timeline(true)).unwrap();
        assert_eq!(l.domain, (-7.0, 40.0));
        assert_eq!(l.role_at(-7.0), FrameRole::Generated { index: 0 });
        assert_eq!(l.role_at(9.0), FrameRole::Generated { index: 16 });
        assert_eq!(
            l.role_at(10.0),
            FrameRole::Real {
                clip: SOURCE,
                time: 10.0
            }
        );
        assert_eq!(l.inputs[0].times, (10..=18).collect::<Vec<_>>());
        assert_eq!(l.job, JobKind::ExtendBackward);
    }

    #[test]
    fn a_missing_source_is_a_clear_error() {
        let t = Timeline {
            length: 9,
            ..Default::default()
        };
        assert_eq!(
            Extend.layout(Context::General, &t),
            Err(LayoutError::NotConnected(SOURCE))
        );
    }
}
