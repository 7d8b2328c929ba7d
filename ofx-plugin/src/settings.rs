//! The parameter values of an instance at a time, read through the table.

use crate::colour::ColourMode;
use crate::effects::EffectKind;
use crate::framing::Framing;
use crate::ofx::param::ParamSet;
use crate::ofx::OfxResult;
use crate::params::{self, Kind};
use genfx::engine::{Quality, WindowSettings};
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub prompt: String,
    pub negative_prompt: String,
    pub seed: u64,
    pub length: u32,
    pub context_frames: u32,
    /// A long shot's window plan; automatic unless set.
    pub windows: WindowSettings,
    pub strength: f32,
    pub backward: bool,
    pub quality: Quality,
    pub guidance: f32,
    pub resolution: u32,
    pub framing: Framing,
    pub colour: ColourMode,
    pub model: PathBuf,
    /// The Text encoder setting; None when empty (found automatically).
    pub text_encoder: Option<PathBuf>,
    pub cache: CacheSetting,
    /// Size limit of the cache folder in bytes (`None`: no limit).
    pub cache_limit: Option<u64>,
    /// In an interactive host, start a job on the first render of a shot
    /// that is not cached ("When to generate" = "On first render").
    pub generate_on_render: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CacheSetting {
    Default,
    Off,
    Folder(PathBuf),
}

/// Raw values by name, so the conversion to `Settings` is testable without
/// a host.
pub trait Values {
    fn int(&self, name: &str) -> OfxResult<i32>;
    fn double(&self, name: &str) -> OfxResult<f64>;
    fn text(&self, name: &str) -> OfxResult<Vec<u8>>;
}

pub struct HostValues<'a> {
    pub params: &'a ParamSet,
    pub time: f64,
}

impl Values for HostValues<'_> {
    fn int(&self, name: &str) -> OfxResult<i32> {
        self.params.param(name)?.get_int(self.time)
    }
    fn double(&self, name: &str) -> OfxResult<f64> {
        self.params.param(name)?.get_double(self.time)
    }
    fn text(&self, name: &str) -> OfxResult<Vec<u8>> {
        self.params.param(name)?.get_bytes(self.time)
    }
}

fn int(values: &dyn Values, kind: EffectKind, name: &str) -> OfxResult<i32> {
    let spec = params::spec(name).filter(|s| s.uses.includes(kind));
    match spec.map(|s| s.kind) {
        Some(Kind::Int { min, max, .. }) => Ok(values.int(name)?.clamp(min, max)),
        Some(Kind::Choice { options, .. }) => {
            Ok(values.int(name)?.clamp(0, options.len() as i32 - 1))
        }
        // Not shown by this effect: its default.
        _ => Ok(match params::spec(name).map(|s| s.kind) {
            Some(Kind::Int { default, .. }) => default,
            Some(Kind::Choice { default, .. }) => default as i32,
            _ => 0,
        }),
    }
}

fn double(values: &dyn Values, kind: EffectKind, name: &str) -> OfxResult<f64> {
    match params::spec(name).map(|s| (s.uses.includes(kind), s.kind)) {
        Some((true, Kind::Double { min, max, .. })) => {
            let v = values.double(name)?;
            Ok(if v.is_finite() {
                v.clamp(min, max)
            } else {
                min
            })
        }
        Some((_, Kind::Double { default, .. })) => Ok(default),
        _ => Ok(0.0),
    }
}

fn text(values: &dyn Values, name: &str) -> OfxResult<String> {
    let bytes = values.text(name)?;
    // Hosts should hand UTF-8; anything else is kept readable, not refused.
    match String::from_utf8(bytes) {
        Ok(s) => Ok(s),
        Err(e) => {
            log::warn!("parameter {name} is not valid UTF-8; invalid bytes were replaced");
            Ok(String::from_utf8_lossy(e.as_bytes()).into_owned())
        }
    }
}

/// The window settings: 0 is automatic, and so is the engine's own drift
/// strength, so a shot's key changes only for what the user set.
fn windows(values: &dyn Values, kind: EffectKind) -> OfxResult<WindowSettings> {
    let frames = |name| -> OfxResult<Option<u32>> {
        Ok(Some(int(values, kind, name)? as u32).filter(|&n| n > 0))
    };
    let drift = double(values, kind, params::DRIFT)? as f32;
    Ok(WindowSettings {
        length: frames(params::WINDOW)?,
        overlap: frames(params::WINDOW_OVERLAP)?,
        drift: (drift != genfx::pipeline::long_shot::DEFAULT_DRIFT).then_some(drift),
    })
}

pub fn read(values: &dyn Values, kind: EffectKind) -> OfxResult<Settings> {
    let quality = match int(values, kind, params::QUALITY)? {
        0 => Quality::Draft,
        1 => Quality::Standard,
        2 => Quality::High,
        _ => Quality::Steps(int(values, kind, params::STEPS)? as u32),
    };
    let cache = text(values, params::CACHE_FOLDER)?;
    let cache = match cache.trim() {
        "" => CacheSetting::Default,
        s if s.eq_ignore_ascii_case("off") => CacheSetting::Off,
        s => CacheSetting::Folder(PathBuf::from(s)),
    };
    Ok(Settings {
        prompt: text(values, params::PROMPT)?,
        negative_prompt: text(values, params::NEGATIVE_PROMPT)?,
        seed: int(values, kind, params::SEED)? as u64,
        length: int(values, kind, params::LENGTH)? as u32,
        context_frames: int(values, kind, params::CONTEXT_FRAMES)? as u32,
        windows: windows(values, kind)?,
        strength: double(values, kind, params::STRENGTH)? as f32,
        backward: int(values, kind, params::DIRECTION)? == 1,
        quality,
        guidance: double(values, kind, params::GUIDANCE)? as f32,
        resolution: int(values, kind, params::RESOLUTION)? as u32,
        framing: if int(values, kind, params::FRAMING)? == 1 {
            Framing::Pad
        } else {
            Framing::Crop
        },
        colour: ColourMode::from_index(int(values, kind, params::COLOUR)?),
        model: PathBuf::from(text(values, params::MODEL)?.trim()),
        text_encoder: Some(text(values, params::TEXT_ENCODER)?.trim().to_string())
            .filter(|t| !t.is_empty())
            .map(PathBuf::from),
        cache,
        cache_limit: {
            let gb = double(values, kind, params::CACHE_SIZE)?;
            (gb > 0.0).then_some((gb * (1u64 << 30) as f64) as u64)
        },
        generate_on_render: int(values, kind, params::WHEN)? == 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ofx::OfxError;
    use std::collections::HashMap;

    struct Fake(HashMap<&'static str, (i32, f64, Vec<u8>)>);

    impl Values for Fake {
        fn int(&self, name: &str) -> OfxResult<i32> {
            self.0
                .get(name)
                .map(|v| v.0)
                .ok_or(OfxError::BadHandle("no such parameter"))
        }
        fn double(&self, name: &str) -> OfxResult<f64> {
            self.0
                .get(name)
                .map(|v| v.1)
                .ok_or(OfxError::BadHandle("no such parameter"))
        }
        fn text(&self, name: &str) -> OfxResult<Vec<u8>> {
            self.0
                .get(name)
                .map(|v| v.2.clone())
                .ok_or(OfxError::BadHandle("no such parameter"))
        }
    }

    fn defaults(kind: EffectKind) -> Fake {
        let mut m = HashMap::new();
        for p in params::for_effect(kind) {
            let v = match p.kind {
                Kind::Int { default, .. } => (default, 0.0, vec![]),
                Kind::Double { default, .. } => (0, default, vec![]),
                Kind::Choice { default, .. } => (default as i32, 0.0, vec![]),
                Kind::Text { default, .. } => (0, 0.0, default.as_bytes().to_vec()),
                Kind::Button | Kind::Status | Kind::Trigger => continue,
            };
            m.insert(p.name, v);
        }
        Fake(m)
    }

    #[test]
    fn defaults_read_back_for_every_effect() {
        for kind in EffectKind::ALL {
            let s = read(&defaults(kind), kind).unwrap();
            assert_eq!(s.length, 97);
            assert!(s.windows.is_automatic(), "{:?}", s.windows);
            assert_eq!(s.quality, Quality::Standard);
            assert_eq!(s.colour, ColourMode::Auto);
            assert_eq!(s.cache, CacheSetting::Default);
            assert_eq!(s.cache_limit, Some(20 << 30));
            assert_eq!(s.strength, 1.0);
            assert_eq!(s.text_encoder, None);
            assert!(!s.generate_on_render);
        }
    }

    #[test]
    fn out_of_range_and_invalid_values_are_tamed() {
        let mut f = defaults(EffectKind::Extend);
        f.0.insert(params::LENGTH, (-5, 0.0, vec![]));
        f.0.insert(params::WINDOW, (33, 0.0, vec![]));
        f.0.insert(params::DRIFT, (0, 7.0, vec![]));
        f.0.insert(params::STRENGTH, (0, f64::NAN, vec![]));
        f.0.insert(params::GUIDANCE, (0, 1e9, vec![]));
        f.0.insert(params::QUALITY, (3, 0.0, vec![]));
        f.0.insert(params::PROMPT, (0, 0.0, vec![b'a', 0xff, b'b']));
        f.0.insert(params::CACHE_FOLDER, (0, 0.0, b" OFF ".to_vec()));
        f.0.insert(params::CACHE_SIZE, (0, -3.0, vec![]));
        f.0.insert(
            params::TEXT_ENCODER,
            (0, 0.0, b" /m/t5xxl_fp16.safetensors ".to_vec()),
        );
        let s = read(&f, EffectKind::Extend).unwrap();
        assert_eq!(
            s.cache_limit, None,
            "a negative size is no limit, not a panic"
        );
        assert_eq!(s.length, 1);
        assert_eq!(s.windows.length, Some(33));
        assert_eq!(s.windows.overlap, None);
        assert_eq!(s.windows.drift, Some(1.0));
        assert_eq!(s.strength, 0.0);
        assert_eq!(s.guidance, 30.0);
        assert_eq!(s.quality, Quality::Steps(30));
        assert_eq!(s.prompt, "a\u{fffd}b");
        assert_eq!(s.cache, CacheSetting::Off);
        assert_eq!(
            s.text_encoder.as_deref(),
            Some(std::path::Path::new("/m/t5xxl_fp16.safetensors"))
        );
    }
}
