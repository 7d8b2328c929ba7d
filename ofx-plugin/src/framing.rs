//! The working picture: its size (multiples of 32 near the project's
//! aspect), how host frames fit it (crop or pad), and resampling both ways.

/// The Framing parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Framing {
    /// Scale to cover the working frame, cutting the overhang.
    Crop,
    /// Scale to fit inside the working frame, padding with black.
    Pad,
}

fn round32(v: f64) -> u32 {
    ((v / 32.0).round().max(1.0) * 32.0).min(8192.0) as u32
}

/// Working size for a picture `display_w` x `display_h` (display units,
/// i.e. pixel aspect applied) with its long side near `long_side`.
pub fn working_size(display_w: f64, display_h: f64, long_side: u32) -> (u32, u32) {
    let long = round32(long_side as f64) as f64;
    if !(display_w > 0.0 && display_h > 0.0 && display_w.is_finite() && display_h.is_finite()) {
        return (long as u32, long as u32);
    }
    let aspect = display_w / display_h;
    if aspect >= 1.0 {
        (long as u32, round32(long / aspect))
    } else {
        (round32(long * aspect), long as u32)
    }
}

/// Maps canvas pixel centres (x right, y down, in host pixels) to working
/// pixel coordinates: `w = c * scale + offset` per axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fit {
    pub scale: (f64, f64),
    pub offset: (f64, f64),
}

pub fn fit(
    canvas: (usize, usize),
    pixel_aspect: f64,
    working: (u32, u32),
    framing: Framing,
) -> Fit {
    let par = if pixel_aspect.is_finite() && pixel_aspect > 0.0 {
        pixel_aspect
    } else {
        1.0
    };
    let display_w = canvas.0.max(1) as f64 * par;
    let display_h = canvas.1.max(1) as f64;
    let (ww, wh) = (working.0 as f64, working.1 as f64);
    let (kx, ky) = (ww / display_w, wh / display_h);
    let s = match framing {
        Framing::Crop => kx.max(ky),
        Framing::Pad => kx.min(ky),
    };
    Fit {
        scale: (s * par, s),
        offset: ((ww - display_w * s) / 2.0, (wh - display_h * s) / 2.0),
    }
}

/// What a tap outside the source reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    /// Black (padding).
    Zero,
    /// The nearest edge pixel.
    Clamp,
}

/// Interleaved float planes, row 0 at the top.
#[derive(Clone, Debug, PartialEq)]
pub struct Plane {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<f32>,
}

/// Source coordinate of destination pixel centre d: `src = (d + 0.5) * a + b`,
/// in source pixel units (centre of source pixel i is i + 0.5).
#[derive(Clone, Copy, Debug)]
pub struct Axis {
    pub a: f64,
    pub b: f64,
}

struct Taps {
    start: Vec<usize>,
    index: Vec<usize>,
    weight: Vec<f32>,
}

fn taps(dst: usize, src: usize, axis: Axis, edge: Edge) -> Taps {
    // A tent as wide as one source pixel when enlarging, as one destination
    // pixel when reducing (so reductions average instead of aliasing).
    let radius = axis.a.abs().max(1.0);
    let mut t = Taps {
        start: Vec::with_capacity(dst + 1),
        index: Vec::new(),
        weight: Vec::new(),
    };
    for d in 0..dst {
        t.start.push(t.index.len());
        let centre = (d as f64 + 0.5) * axis.a + axis.b;
        let lo = (centre - radius - 0.5).floor() as i64;
        let hi = (centre + radius - 0.5).ceil() as i64;
        let first = t.index.len();
        let mut total = 0.0;
        for i in lo..=hi {
            let w = 1.0 - ((i as f64 + 0.5 - centre).abs() / radius);
            if w <= 0.0 {
                continue;
            }
            total += w;
            let inside = i >= 0 && (i as usize) < src;
            match (inside, edge) {
                (true, _) => {}
                (false, Edge::Zero) => continue,
                (false, Edge::Clamp) => {}
            }
            t.index.push(i.clamp(0, src as i64 - 1) as usize);
            t.weight.push(w as f32);
        }
        if total > 0.0 {
            for w in &mut t.weight[first..] {
                *w /= total as f32;
            }
        }
    }
    t.start.push(t.index.len());
    t
}

/// Resamples `src` to `dst_w` x `dst_h` with separable tent filtering.
pub fn resample(src: &Plane, dst_w: usize, dst_h: usize, x: Axis, y: Axis, edge: Edge) -> Plane {
    let c = src.channels;
    if src.width == 0 || src.height == 0 {
        return Plane {
            width: dst_w,
            height: dst_h,
            channels: c,
            data: vec![0.0; dst_w * dst_h * c],
        };
    }
    let tx = taps(dst_w, src.width, x, edge);
    let ty = taps(dst_h, src.height, y, edge);
    let mut mid = vec![0.0f32; dst_w * src.height * c];
    for row in 0..src.height {
        let s = &src.data[row * src.width * c..(row + 1) * src.width * c];
        let m = &mut mid[row * dst_w * c..(row + 1) * dst_w * c];
        for d in 0..dst_w {
            for k in tx.start[d]..tx.start[d + 1] {
                let (i, w) = (tx.index[k], tx.weight[k]);
                for ch in 0..c {
                    m[d * c + ch] += s[i * c + ch] * w;
                }
            }
        }
    }
    let mut out = vec![0.0f32; dst_w * dst_h * c];
    for d in 0..dst_h {
        let o = &mut out[d * dst_w * c..(d + 1) * dst_w * c];
        for k in ty.start[d]..ty.start[d + 1] {
            let (i, w) = (ty.index[k], ty.weight[k]);
            let m = &mid[i * dst_w * c..(i + 1) * dst_w * c];
            for (ov, mv) in o.iter_mut().zip(m) {
                *ov += mv * w;
            }
        }
    }
    Plane {
        width: dst_w,
        height: dst_h,
        channels: c,
        data: out,
    }
}

impl Fit {
    /// Axes to build the working picture from the canvas.
    pub fn canvas_to_working(&self) -> (Axis, Axis) {
        (
            Axis {
                a: 1.0 / self.scale.0,
                b: -self.offset.0 / self.scale.0,
            },
            Axis {
                a: 1.0 / self.scale.1,
                b: -self.offset.1 / self.scale.1,
            },
        )
    }

    /// Axes to build the canvas back from the working picture.
    pub fn working_to_canvas(&self) -> (Axis, Axis) {
        (
            Axis {
                a: self.scale.0,
                b: self.offset.0,
            },
            Axis {
                a: self.scale.1,
                b: self.offset.1,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_sizes_are_multiples_of_32_near_the_aspect() {
        assert_eq!(working_size(1920.0, 1080.0, 768), (768, 448));
        assert_eq!(working_size(1080.0, 1920.0, 768), (448, 768));
        assert_eq!(working_size(1000.0, 1000.0, 700), (704, 704));
        let (w, h) = working_size(4096.0, 1716.0, 1024);
        assert!(w % 32 == 0 && h % 32 == 0);
        assert!(((w as f64 / h as f64) - 4096.0 / 1716.0).abs() < 0.1);
        assert_eq!(working_size(0.0, 10.0, 512), (512, 512));
        assert_eq!(working_size(100000.0, 1.0, 512), (512, 32));
    }

    #[test]
    fn crop_covers_and_pad_contains() {
        let crop = fit((1920, 1080), 1.0, (768, 448), Framing::Crop);
        let pad = fit((1920, 1080), 1.0, (768, 448), Framing::Pad);
        // Crop: the canvas covers the working frame in both axes.
        assert!(1920.0 * crop.scale.0 >= 768.0 - 1e-9 && 1080.0 * crop.scale.1 >= 448.0 - 1e-9);
        assert!(crop.offset.0 <= 1e-9 && crop.offset.1 <= 1e-9);
        // Pad: it fits inside.
        assert!(1920.0 * pad.scale.0 <= 768.0 + 1e-9 && 1080.0 * pad.scale.1 <= 448.0 + 1e-9);
        assert!(pad.offset.0 >= -1e-9 && pad.offset.1 >= -1e-9);
        // Anamorphic pixels are twice as wide on screen.
        let ana = fit((960, 1080), 2.0, (768, 448), Framing::Pad);
        assert!((ana.scale.0 - 2.0 * ana.scale.1).abs() < 1e-12);
    }

    fn plane(w: usize, h: usize, f: impl Fn(usize, usize) -> f32) -> Plane {
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                data.push(f(x, y));
            }
        }
        Plane {
            width: w,
            height: h,
            channels: 1,
            data,
        }
    }

    #[test]
    fn resampling_preserves_flat_fields_and_identity() {
        let flat = plane(37, 23, |_, _| 0.7);
        let fit = fit((37, 23), 1.0, (64, 32), Framing::Crop);
        let (ax, ay) = fit.canvas_to_working();
        let w = resample(&flat, 64, 32, ax, ay, Edge::Clamp);
        assert!(w.data.iter().all(|v| (v - 0.7).abs() < 1e-5));
        let ramp = plane(16, 8, |x, y| (x * 3 + y) as f32);
        let same = resample(
            &ramp,
            16,
            8,
            Axis { a: 1.0, b: 0.0 },
            Axis { a: 1.0, b: 0.0 },
            Edge::Clamp,
        );
        for (a, b) in ramp.data.iter().zip(&same.data) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn pad_leaves_black_bars_and_round_trip_is_close() {
        let img = plane(64, 16, |x, _| 0.2 + x as f32 / 100.0);
        let f = fit((64, 16), 1.0, (32, 32), Framing::Pad);
        let (ax, ay) = f.canvas_to_working();
        let w = resample(&img, 32, 32, ax, ay, Edge::Zero);
        assert!(w.data[0].abs() < 1e-6, "top row is padding");
        assert!(w.data[16 * 32 + 16] > 0.2);
        let (bx, by) = f.working_to_canvas();
        let back = resample(&w, 64, 16, bx, by, Edge::Clamp);
        let mid = back.data[8 * 64 + 32];
        assert!((mid - img.data[8 * 64 + 32]).abs() < 0.05, "{mid}");
    }
}
