//! The three effects. Each says what it looks like to the host (contexts,
//! clips) and where its frames come from in time (`Layout`); the shared
//! machinery in `crate::actions` and `crate::render` does the rest.

mod extend;
mod fill;
mod generate;

pub use fill::transition_span_from_progress;

use crate::pixels::Premult;
use std::ffi::CStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EffectKind {
    Generate,
    Extend,
    Fill,
}

impl EffectKind {
    pub const ALL: [EffectKind; 3] = [EffectKind::Generate, EffectKind::Extend, EffectKind::Fill];

    pub fn def(self) -> &'static dyn EffectDef {
        match self {
            EffectKind::Generate => &generate::Generate,
            EffectKind::Extend => &extend::Extend,
            EffectKind::Fill => &fill::Fill,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Context {
    Generator,
    Filter,
    Transition,
    General,
}

impl Context {
    pub fn as_cstr(self) -> &'static CStr {
        use ofx_sys as sys;
        match self {
            Context::Generator => sys::kOfxImageEffectContextGenerator,
            Context::Filter => sys::kOfxImageEffectContextFilter,
            Context::Transition => sys::kOfxImageEffectContextTransition,
            Context::General => sys::kOfxImageEffectContextGeneral,
        }
    }

    pub fn parse(value: &[u8]) -> Option<Context> {
        [
            Context::Generator,
            Context::Filter,
            Context::Transition,
            Context::General,
        ]
        .into_iter()
        .find(|c| c.as_cstr().to_bytes() == value)
    }
}

/// An input clip of an effect in a context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClipDef {
    pub name: &'static str,
    pub optional: bool,
}

pub const OUTPUT: &str = "Output";

/// What the host told us about time, gathered before layout.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// Frame range of each connected input clip, by clip name.
    pub clip_ranges: Vec<(&'static str, (f64, f64))>,
    /// The instance's own frame range (transitions: the transition's span).
    pub effect_range: Option<(f64, f64)>,
    pub length: u32,
    pub context_frames: u32,
    pub backward: bool,
}

impl Timeline {
    pub fn range(&self, clip: &str) -> Option<(i64, i64)> {
        self.clip_ranges
            .iter()
            .find(|(name, _)| *name == clip)
            .map(|(_, (a, b))| (a.round() as i64, b.round() as i64))
    }
}

/// Where each output frame of an instance comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// The generated frames occupy output times `first..first + count`.
    pub generated: Option<(i64, u32)>,
    /// The time domain reported in the General context.
    pub domain: (f64, f64),
    /// Real frames passed through: output times `first..=last` show `clip`
    /// at the output time plus `offset`.
    pub real: Vec<RealSpan>,
    /// Frames that condition the job, by role.
    pub inputs: Vec<InputSpan>,
    pub job: JobKind,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RealSpan {
    pub clip: &'static str,
    pub first: i64,
    pub last: i64,
    pub offset: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InputRole {
    Reference,
    Context,
    Before,
    After,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InputSpan {
    pub role: InputRole,
    pub clip: &'static str,
    /// Source times, in clip order.
    pub times: Vec<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobKind {
    Generate,
    ExtendForward,
    ExtendBackward,
    Fill,
}

/// What an output frame at one time is.
#[derive(Clone, Debug, PartialEq)]
pub enum FrameRole {
    Real {
        clip: &'static str,
        time: f64,
    },
    Generated {
        index: u32,
    },
    /// Outside everything the effect makes: transparent black.
    Empty,
}

impl Layout {
    pub fn role_at(&self, time: f64) -> FrameRole {
        if !time.is_finite() {
            return FrameRole::Empty;
        }
        let t = time.round() as i64;
        if let Some((first, count)) = self.generated {
            if t >= first && t < first + count as i64 {
                return FrameRole::Generated {
                    index: (t - first) as u32,
                };
            }
        }
        for span in &self.real {
            if t >= span.first && t <= span.last {
                return FrameRole::Real {
                    clip: span.clip,
                    time: (t + span.offset) as f64,
                };
            }
        }
        FrameRole::Empty
    }

    /// The frames an output frame at `time` needs, per clip, as inclusive
    /// ranges.
    pub fn frames_needed(&self, time: f64) -> Vec<(&'static str, (f64, f64))> {
        match self.role_at(time) {
            FrameRole::Real { clip, time } => vec![(clip, (time, time))],
            FrameRole::Generated { .. } => self
                .inputs
                .iter()
                .filter_map(|s| {
                    let lo = *s.times.iter().min()?;
                    let hi = *s.times.iter().max()?;
                    Some((s.clip, (lo as f64, hi as f64)))
                })
                .collect(),
            FrameRole::Empty => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LayoutError {
    #[error("connect the {0} input")]
    NotConnected(&'static str),
    #[error("{0}")]
    Invalid(String),
}

/// One effect, as the host sees it.
pub trait EffectDef: Sync {
    fn kind(&self) -> EffectKind;
    fn id(&self) -> &'static CStr;
    fn label(&self) -> &'static str;
    fn description(&self) -> &'static str;
    fn contexts(&self) -> &'static [Context];
    fn clips(&self, context: Context) -> &'static [ClipDef];
    /// Whether the effect reads frames at other times than the one rendered.
    fn temporal(&self) -> bool;
    fn layout(&self, context: Context, timeline: &Timeline) -> Result<Layout, LayoutError>;
    /// Premultiplication of the output given the first input's.
    fn output_premult(&self, input: Option<Premult>) -> Premult {
        let _ = input;
        Premult::Opaque
    }
}

/// The `n` times ending at `last` (inclusive) but not before `first`.
pub(crate) fn tail(first: i64, last: i64, n: u32) -> Vec<i64> {
    ((last - n as i64 + 1).max(first)..=last).collect()
}

/// The `n` times starting at `first` but not after `last`.
pub(crate) fn head(first: i64, last: i64, n: u32) -> Vec<i64> {
    (first..=(first + n as i64 - 1).min(last)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_names_round_trip() {
        for c in [
            Context::Generator,
            Context::Filter,
            Context::Transition,
            Context::General,
        ] {
            assert_eq!(Context::parse(c.as_cstr().to_bytes()), Some(c));
        }
        assert_eq!(Context::parse(b"OfxImageEffectContextPaint"), None);
    }

    #[test]
    fn ids_and_contexts_match_the_design() {
        let g = EffectKind::Generate.def();
        assert_eq!(g.id(), c"org.genfx.Generate");
        assert_eq!(g.contexts(), [Context::Generator, Context::General]);
        assert!(g.clips(Context::Generator).is_empty());
        assert_eq!(
            g.clips(Context::General),
            [ClipDef {
                name: "Reference",
                optional: true
            }]
        );
        let e = EffectKind::Extend.def();
        assert_eq!(e.id(), c"org.genfx.Extend");
        assert_eq!(e.contexts(), [Context::Filter, Context::General]);
        assert_eq!(
            e.clips(Context::General),
            [ClipDef {
                name: "Source",
                optional: false
            }]
        );
        assert!(e.temporal());
        let f = EffectKind::Fill.def();
        assert_eq!(f.id(), c"org.genfx.Fill");
        assert_eq!(f.contexts(), [Context::Transition, Context::General]);
        let names = |c| f.clips(c).iter().map(|d| d.name).collect::<Vec<_>>();
        assert_eq!(names(Context::Transition), ["SourceFrom", "SourceTo"]);
        assert_eq!(names(Context::General), ["Before", "After"]);
        assert!(f.temporal());
    }

    #[test]
    fn head_and_tail_stay_inside_the_clip() {
        assert_eq!(tail(0, 10, 3), vec![8, 9, 10]);
        assert_eq!(tail(9, 10, 5), vec![9, 10]);
        assert_eq!(head(0, 10, 3), vec![0, 1, 2]);
        assert_eq!(head(0, 1, 5), vec![0, 1]);
    }
}
