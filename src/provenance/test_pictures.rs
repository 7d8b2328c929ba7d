//! Natural-looking pictures made from a seed, for the watermark's tests and
//! `cargo xtask bench watermark`: smooth gradients, soft blobs and fine
//! texture (what a mark hides in and what compression keeps or drops),
//! optionally panning over time like a camera move.

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A `w`×`h` interleaved RGB picture in [0, 1] from `seed`.
pub fn natural(w: usize, h: usize, seed: u64) -> Vec<f32> {
    panning(w, h, seed, 0)
}

/// Frame `t` of a clip from `seed`: the picture of [`natural`] panned
/// right by `t` pixels (texture included), as a slow camera move.
pub fn panning(w: usize, h: usize, seed: u64, t: usize) -> Vec<f32> {
    let r = |k: u64| {
        (splitmix(seed.wrapping_mul(31).wrapping_add(k)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut out = vec![0.0f32; w * h * 3];
    let span = (w + t) as f64;
    for y in 0..h {
        for x in 0..w {
            let xs = x + t;
            let (u, v) = (xs as f64 / span.max(w as f64), y as f64 / h as f64);
            for c in 0..3 {
                let k = c as u64 * 10;
                let mut val = 0.3 + 0.4 * r(k) * u + 0.3 * r(k + 1) * v;
                for b in 0..4u64 {
                    let (bx, by) = (r(k + 2 + b), r(k + 6 + b));
                    let d = (u - bx).powi(2) + (v - by).powi(2);
                    val += 0.25 * (-d * 30.0).exp() * (r(k + 3 + b) - 0.5);
                }
                let tex = (splitmix(seed ^ ((y * (w + 4096) + xs) as u64 * 3 + c as u64)) >> 40)
                    as f64
                    / (1u64 << 24) as f64;
                val += 0.04 * (tex - 0.5);
                out[(y * w + x) * 3 + c] = val.clamp(0.0, 1.0) as f32;
            }
        }
    }
    out
}
