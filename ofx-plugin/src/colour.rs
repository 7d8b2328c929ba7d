//! Colour encodings of host pixels and the conversion to and from the
//! model's display-referred, sRGB-like values.
//!
//! Frames are resampled in linear light (when the encoding is known), so the
//! path is: host encoding -> linear -> resample -> sRGB for the model, and
//! back the same way.

/// The Colour parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColourMode {
    Auto,
    Linear,
    Srgb,
    Rec709,
    None,
}

impl ColourMode {
    pub fn from_index(index: i32) -> ColourMode {
        match index {
            1 => ColourMode::Linear,
            2 => ColourMode::Srgb,
            3 => ColourMode::Rec709,
            4 => ColourMode::None,
            _ => ColourMode::Auto,
        }
    }
}

/// How the host's values are encoded, once Auto is decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Scene-linear (Natron, Nuke and most compositors).
    Linear,
    /// sRGB transfer curve.
    Srgb,
    /// Rec.709 (BT.709 OETF) transfer curve.
    Rec709,
    /// Already what the model wants (Resolve's display-referred timeline), or
    /// the user asked for no conversion: values pass untouched.
    Raw,
}

/// Auto by host: Resolve hands display-referred timeline colour, compositors
/// hand scene-linear float.
pub fn resolve(mode: ColourMode, host_name: &str) -> Encoding {
    match mode {
        ColourMode::Linear => Encoding::Linear,
        ColourMode::Srgb => Encoding::Srgb,
        ColourMode::Rec709 => Encoding::Rec709,
        ColourMode::None => Encoding::Raw,
        ColourMode::Auto => {
            let name = host_name.to_ascii_lowercase();
            if name.contains("resolve") || name.contains("davinci") {
                Encoding::Raw
            } else {
                Encoding::Linear
            }
        }
    }
}

// Curves are applied with odd symmetry so negative (out of gamut) values
// survive a round trip instead of turning into NaN.
fn odd(v: f32, f: impl Fn(f32) -> f32) -> f32 {
    if v < 0.0 {
        -f(-v)
    } else {
        f(v)
    }
}

pub fn srgb_to_linear(v: f32) -> f32 {
    odd(v, |v| {
        if v <= 0.04045 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    })
}

pub fn linear_to_srgb(v: f32) -> f32 {
    odd(v, |v| {
        if v <= 0.003_130_8 {
            v * 12.92
        } else {
            1.055 * v.powf(1.0 / 2.4) - 0.055
        }
    })
}

pub fn rec709_to_linear(v: f32) -> f32 {
    odd(v, |v| {
        if v < 0.081 {
            v / 4.5
        } else {
            ((v + 0.099) / 1.099).powf(1.0 / 0.45)
        }
    })
}

pub fn linear_to_rec709(v: f32) -> f32 {
    odd(v, |v| {
        if v < 0.018 {
            v * 4.5
        } else {
            1.099 * v.powf(0.45) - 0.099
        }
    })
}

impl Encoding {
    /// Host value to the space frames are resampled in.
    pub fn decode(self, v: f32) -> f32 {
        match self {
            Encoding::Linear | Encoding::Raw => v,
            Encoding::Srgb => srgb_to_linear(v),
            Encoding::Rec709 => rec709_to_linear(v),
        }
    }

    /// Resampling space back to a host value.
    pub fn encode(self, v: f32) -> f32 {
        match self {
            Encoding::Linear | Encoding::Raw => v,
            Encoding::Srgb => linear_to_srgb(v),
            Encoding::Rec709 => linear_to_rec709(v),
        }
    }

    /// Resampling space to the model's display values.
    pub fn to_model(self, v: f32) -> f32 {
        match self {
            Encoding::Raw => v,
            _ => linear_to_srgb(v),
        }
    }

    /// The model's display values to resampling space.
    pub fn from_model(self, v: f32) -> f32 {
        match self {
            Encoding::Raw => v,
            _ => srgb_to_linear(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_round_trip_across_and_beyond_the_unit_range() {
        for i in -40..=240 {
            let v = i as f32 / 100.0;
            for (enc, dec) in [
                (
                    linear_to_srgb as fn(f32) -> f32,
                    srgb_to_linear as fn(f32) -> f32,
                ),
                (linear_to_rec709, rec709_to_linear),
            ] {
                let back = dec(enc(v));
                assert!((back - v).abs() <= 1e-5 * v.abs().max(1.0), "{v} -> {back}");
            }
            for e in [
                Encoding::Linear,
                Encoding::Srgb,
                Encoding::Rec709,
                Encoding::Raw,
            ] {
                assert!((e.encode(e.decode(v)) - v).abs() < 1e-5 * v.abs().max(1.0));
                assert!((e.from_model(e.to_model(v)) - v).abs() < 1e-5 * v.abs().max(1.0));
            }
        }
    }

    #[test]
    fn curves_hit_known_points_and_are_continuous() {
        assert!((linear_to_srgb(0.18) - 0.461).abs() < 1e-3);
        assert!((linear_to_rec709(0.18) - 0.409).abs() < 1e-3);
        assert!((linear_to_srgb(1.0) - 1.0).abs() < 1e-6);
        // Both pieces meet at the breakpoints.
        assert!((linear_to_srgb(0.003_130_7) - linear_to_srgb(0.003_130_9)).abs() < 1e-5);
        // The published Rec.709 constants leave a gap of ~3e-4 at the joint.
        assert!((linear_to_rec709(0.017_999) - linear_to_rec709(0.018_001)).abs() < 1e-3);
    }

    #[test]
    fn auto_follows_the_host() {
        assert_eq!(
            resolve(ColourMode::Auto, "fr.inria.Natron"),
            Encoding::Linear
        );
        assert_eq!(
            resolve(ColourMode::Auto, "DaVinciResolveLite"),
            Encoding::Raw
        );
        assert_eq!(resolve(ColourMode::Auto, "DaVinciResolve"), Encoding::Raw);
        assert_eq!(
            resolve(ColourMode::Rec709, "DaVinciResolve"),
            Encoding::Rec709
        );
        assert_eq!(resolve(ColourMode::None, "fr.inria.Natron"), Encoding::Raw);
        assert_eq!(ColourMode::from_index(99), ColourMode::Auto);
    }
}
