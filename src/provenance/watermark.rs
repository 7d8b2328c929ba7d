//! The invisible mark every generated frame carries: keyed spread spectrum
//! on a coarse grid of luma cells, with a convolutional code and pooling
//! over frames.
//!
//! **Design.** A frame is divided into a grid of cells, 64 along its short
//! side whatever its resolution (8 pixels at 768×512), so a resized copy
//! has the same grid. A key-seeded hash gives each cell a sign (±1) and a
//! role: a quarter of the cells carry a fixed *sync* chip, the rest one of
//! the 172 coded bits of the payload (64 bits + CRC-16, convolutional code
//! of rate 1/2, see `code.rs`). Each cell's luma moves by `α·m·sign·chip`
//! where `chip` is +1 for sync cells and ±1 for the coded bit, `m` is the
//! cell's masking weight (its own luma spread relative to a reference,
//! clamped to [0.25, 2]: textured cells hide more, flat ones less), and
//! `α` is 1.3/255 unless that would take the frame's PSNR under 46 dB, then
//! whatever keeps it at 46 dB. `α` is absolute, not normalised to the
//! frame, so a flat area moves by at most a third of a code value (8-bit
//! quantisation mostly removes it): no visible pattern there, at the cost
//! of a weaker mark in flat frames. The change is the same on R, G and B, so chroma is
//! untouched.
//!
//! Cells are low frequency (a cell is one JPEG/H.264 8×8 block at 768×512):
//! what compression keeps best. Detection first *whitens*: each cell's mean
//! luma minus the mean of its four neighbours, which removes most of the
//! picture (smooth at the cell scale) and any brightness offset, and keeps
//! the mark (independent from cell to cell). The sync statistic
//!
//! `z = Σ_sync sign_i·x_i / sqrt(Σ_sync x_i²)`
//!
//! is, for a picture that does not carry the mark, a sum of terms with
//! random signs: standard normal whatever the picture, so `Q(z)` (the
//! normal tail) is the chance that an unmarked picture scores as high. The
//! coded bits' correlations `Σ_bit sign_i·x_i` feed the soft Viterbi
//! decoder; a payload whose CRC and GenFX tag both hold is a further
//! 2^-32 event by chance. Frames of one shot are pooled by summing their
//! whitened cells before the statistics: the mark adds up coherently over
//! frames, the picture content does not (temporal redundancy).

use super::code::{self, CODED_BITS, PAYLOAD_BITS};

/// The key of every GenFX build unless `GENFX_WATERMARK_KEY` (hex) says
/// otherwise. It is public: the mark is a label anyone can check, not a
/// secret; a studio that wants a private mark sets its own key.
pub const DEFAULT_KEY: u64 = 0x4765_6E46_5857_4D31;
/// The payload's top 16 bits: "GF".
pub const TAG: u64 = 0x4746;
/// The payload format's version (4 bits).
pub const VERSION: u64 = 1;
/// Bits of the shot key a payload carries.
pub const SHOT_BITS: u32 = 44;
/// Cells along a frame's short side.
const CELLS_SHORT: usize = 64;
/// The mark's strength: the PSNR it leaves, in dB.
pub const TARGET_PSNR_DB: f64 = 46.0;
/// The change (in [0, 1] units) of a cell of masking weight 1.
const BASE_AMPLITUDE: f64 = 1.3 / 255.0;
/// Luma spread (in [0, 1] units) at which a cell gets masking weight 1.
const ACTIVITY_REF: f64 = 0.02;
const MASK_RANGE: (f64, f64) = (0.25, 2.0);
/// Estimated false-positive rate under which a picture counts as marked.
pub const MARKED_BELOW: f64 = 1e-6;

/// The key from `GENFX_WATERMARK_KEY` (hex), or [`DEFAULT_KEY`].
pub fn key_from_env() -> u64 {
    std::env::var("GENFX_WATERMARK_KEY")
        .ok()
        .and_then(|v| u64::from_str_radix(v.trim().trim_start_matches("0x"), 16).ok())
        .unwrap_or(DEFAULT_KEY)
}

/// The 64-bit payload for a shot: tag, version, and the low 44 bits of the
/// shot's key.
pub fn payload_for(shot_key: u64) -> u64 {
    (TAG << 48) | (VERSION << SHOT_BITS) | (shot_key & ((1 << SHOT_BITS) - 1))
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The cell grid of a `w`×`h` frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Grid {
    w: usize,
    h: usize,
    gw: usize,
    gh: usize,
}

impl Grid {
    fn of(w: usize, h: usize) -> Self {
        let short = w.min(h).max(1);
        let across = CELLS_SHORT.min(short / 2).max(1);
        let other = ((across * w.max(h)) as f64 / short as f64).round() as usize;
        let (gw, gh) = if w <= h {
            (across, other.max(1))
        } else {
            (other.max(1), across)
        };
        Self { w, h, gw, gh }
    }

    fn cells(&self) -> usize {
        self.gw * self.gh
    }

    /// The cell of each pixel, row by row.
    fn cell_of_pixels(&self) -> Vec<u32> {
        let cols: Vec<usize> = (0..self.w).map(|x| x * self.gw / self.w).collect();
        let mut out = Vec::with_capacity(self.w * self.h);
        for y in 0..self.h {
            let row = y * self.gh / self.h * self.gw;
            out.extend(cols.iter().map(|&c| (row + c) as u32));
        }
        out
    }
}

/// What a cell carries.
#[derive(Clone, Copy)]
enum Role {
    Sync,
    Bit(usize),
}

/// Each cell's sign and role under `key`.
fn layout(key: u64, cells: usize) -> Vec<(f64, Role)> {
    (0..cells as u64)
        .map(|i| {
            let h = splitmix(key ^ splitmix(i));
            let sign = if h & 1 == 1 { 1.0 } else { -1.0 };
            let role = if (h >> 1) & 3 == 0 {
                Role::Sync
            } else {
                Role::Bit(((h >> 3) % CODED_BITS as u64) as usize)
            };
            (sign, role)
        })
        .collect()
}

fn luma(px: &[f32]) -> f64 {
    0.299 * f64::from(px[0]) + 0.587 * f64::from(px[1]) + 0.114 * f64::from(px[2])
}

/// Marks an interleaved RGB frame (`channels` 3 or 4, values in [0, 1]) in
/// place.
pub fn embed(rgb: &mut [f32], channels: usize, w: usize, h: usize, key: u64, payload: u64) {
    assert!(
        channels >= 3 && rgb.len() == w * h * channels,
        "a whole frame"
    );
    if w == 0 || h == 0 {
        return;
    }
    let grid = Grid::of(w, h);
    let cell_of = grid.cell_of_pixels();
    let coded = code::encode(payload);
    let mut stats = vec![(0.0f64, 0.0f64, 0u32); grid.cells()];
    for (p, &c) in cell_of.iter().enumerate() {
        let y = luma(&rgb[p * channels..]);
        let s = &mut stats[c as usize];
        s.0 += y;
        s.1 += y * y;
        s.2 += 1;
    }
    let signal: Vec<f64> = layout(key, grid.cells())
        .into_iter()
        .zip(&stats)
        .map(|((sign, role), &(sum, sq, n))| {
            let n = f64::from(n.max(1));
            let spread = (sq / n - (sum / n).powi(2)).max(0.0).sqrt();
            let mask = (spread / ACTIVITY_REF).clamp(MASK_RANGE.0, MASK_RANGE.1);
            let chip = match role {
                Role::Sync => 1.0,
                Role::Bit(b) => 2.0 * f64::from(coded[b]) - 1.0,
            };
            sign * chip * mask
        })
        .collect();
    let energy: f64 = cell_of.iter().map(|&c| signal[c as usize].powi(2)).sum();
    let target_rms = 10f64.powf(-TARGET_PSNR_DB / 20.0);
    let alpha = BASE_AMPLITUDE.min(target_rms / (energy / (w * h) as f64).sqrt().max(1e-12));
    for (p, &c) in cell_of.iter().enumerate() {
        let d = (alpha * signal[c as usize]) as f32;
        for v in &mut rgb[p * channels..p * channels + 3] {
            *v = (*v + d).clamp(0.0, 1.0);
        }
    }
}

/// The verdict on one picture or a pooled shot.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    pub marked: bool,
    /// The sync statistic, standard normal for unmarked pictures.
    pub z: f64,
    /// The chance that an unmarked picture scores as this one did.
    pub false_positive_rate: f64,
    /// The payload, when its CRC and tag hold.
    pub payload: Option<u64>,
    /// What the decoder made of the payload bits whether or not the CRC
    /// holds (for bit-accuracy figures).
    pub decoded: u64,
    pub frames: usize,
}

impl Detection {
    /// The shot-key bits of the payload.
    pub fn shot_bits(&self) -> Option<u64> {
        self.payload.map(|p| p & ((1 << SHOT_BITS) - 1))
    }
}

/// Pools the frames of one shot (all of one grid) and judges them.
pub struct Detector {
    key: u64,
    grid: Option<(usize, usize)>,
    sums: Vec<f64>,
    frames: usize,
}

impl Detector {
    pub fn new(key: u64) -> Self {
        Self {
            key,
            grid: None,
            sums: Vec::new(),
            frames: 0,
        }
    }

    /// Adds an interleaved frame (`channels` ≥ 3). Frames of another cell
    /// grid (another aspect ratio) belong to another shot: an error.
    pub fn add_frame(
        &mut self,
        rgb: &[f32],
        channels: usize,
        w: usize,
        h: usize,
    ) -> Result<(), String> {
        if channels < 3 || rgb.len() != w * h * channels || w < 2 || h < 2 {
            return Err(format!(
                "a {w}x{h} frame with {channels} channels needs {} values, has {}",
                w * h * channels,
                rgb.len()
            ));
        }
        let grid = Grid::of(w, h);
        match self.grid {
            Some(dims) if dims != (grid.gw, grid.gh) => {
                return Err(format!(
                    "a {w}x{h} frame has another shape than the shot's other frames"
                ))
            }
            Some(_) => {}
            None => {
                self.grid = Some((grid.gw, grid.gh));
                self.sums = vec![0.0; grid.cells()];
            }
        }
        let mut mean = vec![(0.0f64, 0u32); grid.cells()];
        for (p, &c) in grid.cell_of_pixels().iter().enumerate() {
            let m = &mut mean[c as usize];
            m.0 += luma(&rgb[p * channels..]);
            m.1 += 1;
        }
        let mu: Vec<f64> = mean.iter().map(|&(s, n)| s / f64::from(n.max(1))).collect();
        let (gw, gh) = (grid.gw, grid.gh);
        for cy in 0..gh {
            for cx in 0..gw {
                let mut around = 0.0;
                let mut n = 0.0;
                for (dx, dy) in [(-1i64, 0i64), (1, 0), (0, -1), (0, 1)] {
                    let (x, y) = (cx as i64 + dx, cy as i64 + dy);
                    if x >= 0 && y >= 0 && (x as usize) < gw && (y as usize) < gh {
                        around += mu[y as usize * gw + x as usize];
                        n += 1.0;
                    }
                }
                let i = cy * gw + cx;
                self.sums[i] += mu[i] - around / f64::max(n, 1.0);
            }
        }
        self.frames += 1;
        Ok(())
    }

    pub fn frames(&self) -> usize {
        self.frames
    }

    /// The verdict on the frames added so far.
    pub fn result(&self) -> Detection {
        let mut sync = (0.0f64, 0.0f64);
        let mut soft = vec![0.0f64; CODED_BITS];
        for ((sign, role), &x) in layout(self.key, self.sums.len())
            .into_iter()
            .zip(&self.sums)
        {
            match role {
                Role::Sync => {
                    sync.0 += sign * x;
                    sync.1 += x * x;
                }
                Role::Bit(b) => soft[b] += sign * x,
            }
        }
        let z = if sync.1 > 0.0 {
            sync.0 / sync.1.sqrt()
        } else {
            0.0
        };
        let (payload, crc_ok) = code::decode(&soft);
        let valid = crc_ok && payload >> 48 == TAG;
        let mut fpr = normal_tail(z);
        if valid {
            fpr *= 2f64.powi(-32);
        }
        Detection {
            marked: self.frames > 0 && fpr < MARKED_BELOW,
            z,
            false_positive_rate: fpr,
            payload: valid.then_some(payload),
            decoded: payload,
            frames: self.frames,
        }
    }
}

/// `P(Z > z)` for a standard normal `Z`: the complementary error function
/// by its Chebyshev fit (fractional error under 1.2e-7 everywhere), good
/// far into the tail where `1 - Φ(z)` computed directly would be 0.
pub fn normal_tail(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    let erfc = if x >= 0.0 { erfc } else { 2.0 - erfc };
    0.5 * erfc
}

/// Bits of a payload, for reports.
pub const fn payload_bits() -> usize {
    PAYLOAD_BITS
}

/// The PSNR (dB, peak 1) between two frames of equal size.
pub fn psnr(a: &[f32], b: &[f32]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum::<f64>()
        / a.len().max(1) as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        -10.0 * mse.log10()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::test_pictures::natural as picture;

    fn quantise(v: &[f32]) -> Vec<f32> {
        v.iter().map(|x| (x * 255.0).round() / 255.0).collect()
    }

    #[test]
    fn the_normal_tail_is_right_far_out() {
        assert!((normal_tail(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_tail(1.96) - 0.024_997_9).abs() < 1e-6);
        let t = normal_tail(4.753_424);
        assert!((t / 1e-6 - 1.0).abs() < 1e-3, "{t}");
        assert!((normal_tail(-3.0) - 0.998_650_1).abs() < 1e-6);
        assert!(normal_tail(10.0) > 0.0 && normal_tail(10.0) < 1e-22);
    }

    #[test]
    fn a_marked_frame_keeps_46_db_and_gives_back_its_payload() {
        let (w, h) = (384, 256);
        let clean = picture(w, h, 1);
        let mut marked = clean.clone();
        let payload = payload_for(0x0ABC_DEF0_1234);
        embed(&mut marked, 3, w, h, DEFAULT_KEY, payload);
        let psnr = psnr(&quantise(&clean), &quantise(&marked));
        assert!(psnr >= 45.0, "PSNR {psnr:.2} dB");
        let mut det = Detector::new(DEFAULT_KEY);
        det.add_frame(&quantise(&marked), 3, w, h).unwrap();
        let d = det.result();
        assert!(d.marked, "{d:?}");
        assert_eq!(d.payload, Some(payload));
        assert_eq!(d.shot_bits(), Some(0x0ABC_DEF0_1234));
    }

    #[test]
    fn unmarked_frames_and_other_keys_are_not_marked() {
        let (w, h) = (256, 160);
        let mut worst: f64 = 0.0;
        for seed in 0..40 {
            let mut det = Detector::new(DEFAULT_KEY);
            det.add_frame(&picture(w, h, 100 + seed), 3, w, h).unwrap();
            let d = det.result();
            assert!(!d.marked && d.payload.is_none(), "seed {seed}: {d:?}");
            worst = worst.max(d.z);
        }
        assert!(worst < 4.0, "an unmarked picture scored z = {worst}");
        let mut marked = picture(w, h, 7);
        embed(&mut marked, 3, w, h, DEFAULT_KEY, payload_for(5));
        let mut det = Detector::new(DEFAULT_KEY ^ 1);
        det.add_frame(&marked, 3, w, h).unwrap();
        assert!(!det.result().marked);
    }

    #[test]
    fn pooling_frames_strengthens_the_verdict_and_brightness_does_not_matter() {
        let (w, h) = (256, 160);
        let mut one = Detector::new(DEFAULT_KEY);
        let mut many = Detector::new(DEFAULT_KEY);
        for f in 0..8 {
            let mut frame = picture(w, h, 40 + f);
            embed(&mut frame, 3, w, h, DEFAULT_KEY, payload_for(9));
            // 10 % brighter
            let bright: Vec<f32> = frame.iter().map(|v| (v * 1.1).min(1.0)).collect();
            if f == 0 {
                one.add_frame(&bright, 3, w, h).unwrap();
            }
            many.add_frame(&bright, 3, w, h).unwrap();
        }
        let (one, many) = (one.result(), many.result());
        assert!(many.z > one.z * 1.2, "{} vs {}", many.z, one.z);
        assert!(many.marked && many.payload == Some(payload_for(9)));
        // a frame of another shape is another shot
        assert!(Detector::new(DEFAULT_KEY)
            .add_frame(&[0.0; 12], 3, 2, 2)
            .is_ok());
        let mut mixed = Detector::new(DEFAULT_KEY);
        mixed.add_frame(&picture(64, 64, 1), 3, 64, 64).unwrap();
        assert!(mixed.add_frame(&picture(128, 64, 1), 3, 128, 64).is_err());
    }

    #[test]
    fn a_half_size_copy_is_still_detected() {
        let (w, h) = (512, 320);
        let mut frame = picture(w, h, 3);
        embed(&mut frame, 3, w, h, DEFAULT_KEY, payload_for(77));
        // 2×2 box filter
        let (hw, hh) = (w / 2, h / 2);
        let mut half = vec![0.0f32; hw * hh * 3];
        for y in 0..hh {
            for x in 0..hw {
                for c in 0..3 {
                    let at = |xx: usize, yy: usize| frame[(yy * w + xx) * 3 + c];
                    half[(y * hw + x) * 3 + c] = (at(2 * x, 2 * y)
                        + at(2 * x + 1, 2 * y)
                        + at(2 * x, 2 * y + 1)
                        + at(2 * x + 1, 2 * y + 1))
                        / 4.0;
                }
            }
        }
        let mut det = Detector::new(DEFAULT_KEY);
        det.add_frame(&quantise(&half), 3, hw, hh).unwrap();
        let d = det.result();
        assert!(d.marked && d.payload == Some(payload_for(77)), "{d:?}");
    }
}
