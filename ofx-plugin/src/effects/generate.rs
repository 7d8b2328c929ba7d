//! GenFX Generate: a new shot from the prompt, optionally from a reference
//! still or clip (General context only: Resolve cannot fetch inputs of
//! generators).

use super::*;

pub struct Generate;

pub const REFERENCE: &str = "Reference";

impl EffectDef for Generate {
    fn kind(&self) -> EffectKind {
        EffectKind::Generate
    }
    fn id(&self) -> &'static CStr {
        c"org.genfx.Generate"
    }
    fn label(&self) -> &'static str {
        "GenFX Generate"
    }
    fn description(&self) -> &'static str {
        "Generates a new shot from a prompt with a local video model, optionally starting from a \
         reference still or clip."
    }
    fn contexts(&self) -> &'static [Context] {
        &[Context::Generator, Context::General]
    }
    fn clips(&self, context: Context) -> &'static [ClipDef] {
        match context {
            Context::General => &[ClipDef {
                name: REFERENCE,
                optional: true,
            }],
            _ => &[],
        }
    }
    fn temporal(&self) -> bool {
        // The reference's first frames are read whatever frame is rendered.
        true
    }
    fn layout(&self, context: Context, timeline: &Timeline) -> Result<Layout, LayoutError> {
        let count = timeline.length.max(1);
        let mut inputs = Vec::new();
        if context == Context::General {
            if let Some((first, last)) = timeline.range(REFERENCE) {
                inputs.push(InputSpan {
                    role: InputRole::Reference,
                    clip: REFERENCE,
                    times: head(first, last, timeline.context_frames),
                });
            }
        }
        Ok(Layout {
            generated: Some((0, count)),
            domain: (0.0, count as f64 - 1.0),
            real: Vec::new(),
            inputs,
            job: JobKind::Generate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shot_starts_at_zero_and_reference_gives_its_first_frames() {
        let t = Timeline {
            clip_ranges: vec![(REFERENCE, (5.0, 20.0))],
            length: 25,
            context_frames: 1,
            ..Default::default()
        };
        let l = Generate.layout(Context::General, &t).unwrap();
        assert_eq!(l.domain, (0.0, 24.0));
        assert_eq!(l.role_at(0.0), FrameRole::Generated { index: 0 });
        assert_eq!(l.role_at(24.0), FrameRole::Generated { index: 24 });
        assert_eq!(l.role_at(25.0), FrameRole::Empty);
        assert_eq!(l.role_at(-1.0), FrameRole::Empty);
        assert_eq!(l.frames_needed(3.0), vec![(REFERENCE, (5.0, 5.0))]);
        let g = Generate.layout(Context::Generator, &t).unwrap();
        assert!(g.inputs.is_empty(), "generators never read an input");
        // A clip as Reference: its first frames, no further than its end.
        let clip = Timeline {
            context_frames: 9,
            ..t.clone()
        };
        let l = Generate.layout(Context::General, &clip).unwrap();
        assert_eq!(l.inputs[0].times, (5..14).collect::<Vec<_>>());
        assert_eq!(l.frames_needed(3.0), vec![(REFERENCE, (5.0, 13.0))]);
        let still = Timeline {
            clip_ranges: vec![(REFERENCE, (0.0, 0.0))],
            ..clip
        };
        let l = Generate.layout(Context::General, &still).unwrap();
        assert_eq!(l.inputs[0].times, vec![0]);
    }
}
