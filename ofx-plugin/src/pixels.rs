//! Pixel formats the host can hand over, and conversion of rows between them
//! and straight (unpremultiplied) f32 RGBA.

use ofx_sys as sys;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    Byte,
    Short,
    Half,
    Float,
}

impl Depth {
    pub fn parse(value: &[u8]) -> Option<Depth> {
        [
            (sys::kOfxBitDepthByte, Depth::Byte),
            (sys::kOfxBitDepthShort, Depth::Short),
            (sys::kOfxBitDepthHalf, Depth::Half),
            (sys::kOfxBitDepthFloat, Depth::Float),
        ]
        .into_iter()
        .find(|(name, _)| name.to_bytes() == value)
        .map(|(_, d)| d)
    }

    pub fn bytes(self) -> usize {
        match self {
            Depth::Byte => 1,
            Depth::Short | Depth::Half => 2,
            Depth::Float => 4,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Components {
    Rgba,
    Rgb,
    Alpha,
}

impl Components {
    pub fn parse(value: &[u8]) -> Option<Components> {
        [
            (sys::kOfxImageComponentRGBA, Components::Rgba),
            (sys::kOfxImageComponentRGB, Components::Rgb),
            (sys::kOfxImageComponentAlpha, Components::Alpha),
        ]
        .into_iter()
        .find(|(name, _)| name.to_bytes() == value)
        .map(|(_, c)| c)
    }

    pub fn count(self) -> usize {
        match self {
            Components::Rgba => 4,
            Components::Rgb => 3,
            Components::Alpha => 1,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Premult {
    Opaque,
    Premultiplied,
    Unpremultiplied,
}

impl Premult {
    pub fn parse(value: &[u8]) -> Option<Premult> {
        [
            (sys::kOfxImageOpaque, Premult::Opaque),
            (sys::kOfxImagePreMultiplied, Premult::Premultiplied),
            (sys::kOfxImageUnPreMultiplied, Premult::Unpremultiplied),
        ]
        .into_iter()
        .find(|(name, _)| name.to_bytes() == value)
        .map(|(_, p)| p)
    }

    pub fn as_cstr(self) -> &'static std::ffi::CStr {
        match self {
            Premult::Opaque => sys::kOfxImageOpaque,
            Premult::Premultiplied => sys::kOfxImagePreMultiplied,
            Premult::Unpremultiplied => sys::kOfxImageUnPreMultiplied,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelLayout {
    pub depth: Depth,
    pub components: Components,
}

impl PixelLayout {
    pub fn bytes_per_pixel(&self) -> usize {
        self.depth.bytes() * self.components.count()
    }

    /// Whether rows of this layout can be converted (half floats cannot: no
    /// GenFX descriptor offers them, so a host sending them is refused).
    pub fn supported(&self) -> bool {
        self.depth != Depth::Half
    }
}

fn sample(bytes: &[u8], depth: Depth, index: usize) -> f32 {
    let at = index * depth.bytes();
    match depth {
        Depth::Byte => bytes[at] as f32 / 255.0,
        Depth::Short => u16::from_ne_bytes([bytes[at], bytes[at + 1]]) as f32 / 65535.0,
        Depth::Float => {
            f32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        }
        Depth::Half => f32::NAN,
    }
}

fn store(bytes: &mut [u8], depth: Depth, index: usize, value: f32) {
    let at = index * depth.bytes();
    match depth {
        Depth::Byte => bytes[at] = (value.clamp(0.0, 1.0) * 255.0).round() as u8,
        Depth::Short => {
            let v = (value.clamp(0.0, 1.0) * 65535.0).round() as u16;
            bytes[at..at + 2].copy_from_slice(&v.to_ne_bytes());
        }
        Depth::Float => bytes[at..at + 4].copy_from_slice(&value.to_ne_bytes()),
        Depth::Half => {}
    }
}

/// Converts one host row into straight RGBA (`out.len() == 4 * pixels`).
/// Premultiplied colour is divided by alpha where alpha is non-zero; RGB reads
/// as opaque, alpha-only as white with that alpha.
pub fn read_row(row: &[u8], layout: PixelLayout, premult: Premult, out: &mut [f32]) {
    let n = out.len() / 4;
    let comps = layout.components.count();
    for i in 0..n.min(row.len() / layout.bytes_per_pixel()) {
        let px = &mut out[i * 4..i * 4 + 4];
        match layout.components {
            Components::Rgba | Components::Rgb => {
                for (c, slot) in px.iter_mut().enumerate().take(3) {
                    *slot = sample(row, layout.depth, i * comps + c);
                }
                px[3] = if comps == 4 {
                    sample(row, layout.depth, i * comps + 3)
                } else {
                    1.0
                };
            }
            Components::Alpha => {
                let a = sample(row, layout.depth, i);
                px.copy_from_slice(&[a, a, a, a]);
            }
        }
        match premult {
            Premult::Premultiplied if px[3] > 0.0 && layout.components == Components::Rgba => {
                let a = px[3];
                px[0] /= a;
                px[1] /= a;
                px[2] /= a;
            }
            Premult::Opaque => px[3] = 1.0,
            _ => {}
        }
    }
}

/// Writes straight RGBA into a host row, premultiplying when the host wants
/// it; the inverse of `read_row` for representable values.
pub fn write_row(pixels: &[f32], layout: PixelLayout, premult: Premult, row: &mut [u8]) {
    let comps = layout.components.count();
    let n = (pixels.len() / 4).min(row.len() / layout.bytes_per_pixel());
    for i in 0..n {
        let mut px = [
            pixels[i * 4],
            pixels[i * 4 + 1],
            pixels[i * 4 + 2],
            pixels[i * 4 + 3],
        ];
        if premult == Premult::Premultiplied {
            px[0] *= px[3];
            px[1] *= px[3];
            px[2] *= px[3];
        }
        match layout.components {
            Components::Rgba | Components::Rgb => {
                for (c, value) in px.iter().enumerate().take(comps) {
                    store(row, layout.depth, i * comps + c, *value);
                }
            }
            Components::Alpha => store(row, layout.depth, i, px[3]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layouts() -> Vec<PixelLayout> {
        let mut v = Vec::new();
        for depth in [Depth::Byte, Depth::Short, Depth::Float] {
            for components in [Components::Rgba, Components::Rgb] {
                v.push(PixelLayout { depth, components });
            }
        }
        v
    }

    #[test]
    fn rows_round_trip_through_every_depth() {
        for layout in layouts() {
            let n = 5;
            let mut row = vec![0u8; n * layout.bytes_per_pixel()];
            let mut src = Vec::new();
            for i in 0..n {
                let a = if layout.components == Components::Rgba {
                    0.2 + 0.2 * i as f32
                } else {
                    1.0
                };
                src.extend_from_slice(&[i as f32 / 5.0, 0.5, 1.0 - i as f32 / 7.0, a]);
            }
            for premult in [Premult::Premultiplied, Premult::Unpremultiplied] {
                write_row(&src, layout, premult, &mut row);
                let mut back = vec![0.0; n * 4];
                read_row(&row, layout, premult, &mut back);
                let tol = match layout.depth {
                    Depth::Byte => 3.0 / 255.0 / 0.2,
                    Depth::Short => 3.0 / 65535.0 / 0.2,
                    _ => 1e-6,
                };
                for (a, b) in src.iter().zip(&back) {
                    assert!((a - b).abs() <= tol, "{layout:?} {premult:?}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn premultiplied_zero_alpha_stays_finite() {
        let layout = PixelLayout {
            depth: Depth::Float,
            components: Components::Rgba,
        };
        let row: Vec<u8> = [0.0f32, 0.0, 0.0, 0.0]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        let mut out = [1.0; 4];
        read_row(&row, layout, Premult::Premultiplied, &mut out);
        assert!(out.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn names_parse_from_the_ofx_strings() {
        assert_eq!(Depth::parse(b"OfxBitDepthShort"), Some(Depth::Short));
        assert_eq!(Depth::parse(b"OfxBitDepthDouble"), None);
        assert_eq!(
            Components::parse(b"OfxImageComponentRGB"),
            Some(Components::Rgb)
        );
        assert_eq!(
            Premult::parse(b"OfxImageAlphaUnPremultiplied"),
            Some(Premult::Unpremultiplied)
        );
        assert_eq!(
            Premult::parse(Premult::Opaque.as_cstr().to_bytes()),
            Some(Premult::Opaque)
        );
    }
}
