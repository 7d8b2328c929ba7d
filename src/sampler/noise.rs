//! Counter-based Gaussian noise: the same values for the same seed, stream and
//! position on any machine, in any process, on the CPU or in the CUDA kernel.
//!
//! The generator is Philox4x32-10 (Salmon et al., "Parallel random numbers: as
//! easy as 1, 2, 3", SC 2011). Each normal value is a pure function of
//! `(seed, stream, index)`, so a shot can be generated in pieces, in any order,
//! on different machines, and still be bit-identical. The exact recipe below is
//! shared with the CUDA kernel (`kernels/`); change neither without the other.
//!
//! `normal(seed, stream, i)`:
//! - block = philox(counter = [lo(i/4), hi(i/4), lo(stream), hi(stream)],
//!   key = [lo(seed), hi(seed)]);
//! - pair p = (i % 4) / 2 uses w0 = block[2p], w1 = block[2p + 1];
//! - u1 = (w0 + 1) / 2^32 (never 0), u2 = w1 / 2^32, in f64;
//! - Box–Muller: r = sqrt(-2 ln u1), t = 2π u2; even i takes r cos t, odd i
//!   takes r sin t; rounded once to f32.

use crate::backend::Device;
use crate::tensor::{Result, Tensor};

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;
const ROUNDS: usize = 10;

/// One Philox4x32 block for `counter` under `key`.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut ctr = counter;
    let mut key = key;
    for round in 0..ROUNDS {
        if round > 0 {
            key[0] = key[0].wrapping_add(W0);
            key[1] = key[1].wrapping_add(W1);
        }
        let p0 = u64::from(M0) * u64::from(ctr[0]);
        let p1 = u64::from(M1) * u64::from(ctr[2]);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        ctr = [hi1 ^ ctr[1] ^ key[0], lo1, hi0 ^ ctr[3] ^ key[1], lo0];
    }
    ctr
}

fn lo(x: u64) -> u32 {
    x as u32
}

fn hi(x: u64) -> u32 {
    (x >> 32) as u32
}

fn block(seed: u64, stream: u64, group: u64) -> [u32; 4] {
    philox4x32_10(
        [lo(group), hi(group), lo(stream), hi(stream)],
        [lo(seed), hi(seed)],
    )
}

/// Both Box–Muller outputs of one pair of words.
fn box_muller(w0: u32, w1: u32) -> (f32, f32) {
    const TWO_POW_32: f64 = 4_294_967_296.0;
    let u1 = (f64::from(w0) + 1.0) / TWO_POW_32;
    let u2 = f64::from(w1) / TWO_POW_32;
    let r = (-2.0 * u1.ln()).sqrt();
    let t = 2.0 * std::f64::consts::PI * u2;
    ((r * t.cos()) as f32, (r * t.sin()) as f32)
}

/// The standard normal value at position `i` of `stream` under `seed`.
pub fn normal(seed: u64, stream: u64, i: u64) -> f32 {
    let b = block(seed, stream, i / 4);
    let p = ((i % 4) / 2) as usize;
    let (c, s) = box_muller(b[2 * p], b[2 * p + 1]);
    if i % 2 == 0 {
        c
    } else {
        s
    }
}

/// Fills `out` with `normal(seed, stream, start + k)` for each k, computing
/// each Philox block once for the four values it yields.
pub fn fill_normal(seed: u64, stream: u64, start: u64, out: &mut [f32]) {
    let mut k = 0usize;
    while k < out.len() {
        let i = start + k as u64;
        let b = block(seed, stream, i / 4);
        let (c0, s0) = box_muller(b[0], b[1]);
        let (c1, s1) = box_muller(b[2], b[3]);
        let values = [c0, s0, c1, s1];
        let first = (i % 4) as usize;
        for &v in &values[first..] {
            if k == out.len() {
                break;
            }
            out[k] = v;
            k += 1;
        }
    }
}

/// What a stream of noise is for. Each purpose draws from its own stream so
/// that adding a use of noise never shifts the values of another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoisePurpose {
    /// The pure noise the denoising starts from, in the unpacked latent
    /// layout `[C, F, H, W]`.
    InitialLatents,
    /// The sample drawn from the VAE's posterior when condition `k` is encoded.
    ConditionEncode(u32),
    /// The noise a prefix condition `k` is lerped with by its strength.
    ConditionPrefix(u32),
    /// The noise added to hard-conditioned tokens at denoising step `s`.
    ConditionStep(u32),
    /// The noise mixed into the latents before the timestep-conditioned decode.
    Decode,
}

impl NoisePurpose {
    /// The stream number of this purpose within shot `shot`: the shot index in
    /// the high 32 bits, the purpose tag in bits 24..32, its index below.
    pub fn stream(self, shot: u32) -> u64 {
        let (tag, index): (u64, u32) = match self {
            NoisePurpose::InitialLatents => (1, 0),
            NoisePurpose::ConditionEncode(k) => (2, k),
            NoisePurpose::ConditionPrefix(k) => (3, k),
            NoisePurpose::ConditionStep(s) => (4, s),
            NoisePurpose::Decode => (5, 0),
        };
        (u64::from(shot) << 32) | (tag << 24) | u64::from(index & 0x00FF_FFFF)
    }
}

/// A source of Gaussian noise for a pipeline run. The production source is
/// [`PhiloxNoise`]; tests may inject recorded noise instead.
pub trait NoiseSource: Send + Sync {
    /// `len` standard normal values for `purpose`.
    fn draw(&self, purpose: NoisePurpose, len: usize) -> Vec<f32>;

    /// The same values as [`NoiseSource::draw`], `[len]` f32 on `device`.
    /// The default draws on the host and uploads them; a generator that
    /// can run on the device (as [`PhiloxNoise`]) makes them there.
    fn draw_on(&self, purpose: NoisePurpose, len: usize, device: &Device) -> Result<Tensor> {
        Tensor::from_vec(self.draw(purpose, len), &[len], device)
    }
}

/// Noise keyed by the request's seed and a shot index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhiloxNoise {
    pub seed: u64,
    pub shot: u32,
}

impl PhiloxNoise {
    pub fn new(seed: u64, shot: u32) -> Self {
        Self { seed, shot }
    }
}

impl NoiseSource for PhiloxNoise {
    fn draw(&self, purpose: NoisePurpose, len: usize) -> Vec<f32> {
        let mut out = vec![0.0; len];
        fill_normal(self.seed, purpose.stream(self.shot), 0, &mut out);
        out
    }

    fn draw_on(&self, purpose: NoisePurpose, len: usize, device: &Device) -> Result<Tensor> {
        Tensor::noise_normal(&[len], self.seed, purpose.stream(self.shot), 0, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors published with Random123 (kat_vectors, philox4x32 10).
    #[test]
    fn philox_matches_random123_known_answers() {
        let cases: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
            (
                [0, 0, 0, 0],
                [0, 0],
                [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8],
            ),
            (
                [u32::MAX; 4],
                [u32::MAX; 2],
                [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd],
            ),
            (
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0],
                [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1],
            ),
        ];
        for (counter, key, expected) in cases {
            assert_eq!(
                philox4x32_10(counter, key),
                expected,
                "counter {counter:x?}"
            );
        }
    }

    #[test]
    fn normal_follows_the_shared_recipe() {
        // Value 6 comes from block 1 (counter 6/4), words 2 and 3, cosine (even); 7 is its sine.
        let (seed, stream) = (0x0123_4567_89ab_cdef_u64, 0xfeed_0000_0000_0042_u64);
        let b = philox4x32_10([1, 0, 0x0000_0042, 0xfeed_0000], [0x89ab_cdef, 0x0123_4567]);
        let u1 = (f64::from(b[2]) + 1.0) / 4_294_967_296.0;
        let u2 = f64::from(b[3]) / 4_294_967_296.0;
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        assert_eq!(normal(seed, stream, 6), (r * t.cos()) as f32);
        assert_eq!(normal(seed, stream, 7), (r * t.sin()) as f32);
    }

    #[test]
    fn fill_agrees_with_single_values_at_any_offset() {
        for start in [0u64, 1, 2, 3, 5, 1 << 33] {
            let mut out = vec![0.0f32; 23];
            fill_normal(7, 9, start, &mut out);
            for (k, v) in out.iter().enumerate() {
                assert_eq!(*v, normal(7, 9, start + k as u64), "start {start} k {k}");
            }
        }
    }

    #[test]
    fn values_look_standard_normal() {
        let n = 200_000usize;
        let mut xs = vec![0.0f32; n];
        fill_normal(42, NoisePurpose::InitialLatents.stream(0), 0, &mut xs);
        let mean = xs.iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
        let var = xs
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        let skew = xs
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(3))
            .sum::<f64>()
            / n as f64;
        let kurt = xs
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(4))
            .sum::<f64>()
            / n as f64;
        // Standard errors at n = 2e5: mean 0.0022, var 0.0032, skew 0.0055, kurt 0.011.
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.015, "var {var}");
        assert!(skew.abs() < 0.03, "skew {skew}");
        assert!((kurt - 3.0).abs() < 0.06, "kurtosis {kurt}");
        // Tail mass beyond 2σ is 4.55% for a normal.
        let tail = xs.iter().filter(|x| x.abs() > 2.0).count() as f64 / n as f64;
        assert!((tail - 0.0455).abs() < 0.003, "tail {tail}");
        // Neighbouring values are independent.
        let lag1 = xs
            .windows(2)
            .map(|w| f64::from(w[0]) * f64::from(w[1]))
            .sum::<f64>()
            / n as f64;
        assert!(lag1.abs() < 0.01, "lag-1 correlation {lag1}");
    }

    #[test]
    fn streams_and_seeds_are_independent() {
        let a = PhiloxNoise::new(1, 0).draw(NoisePurpose::InitialLatents, 64);
        let b = PhiloxNoise::new(1, 0).draw(NoisePurpose::Decode, 64);
        let c = PhiloxNoise::new(2, 0).draw(NoisePurpose::InitialLatents, 64);
        let d = PhiloxNoise::new(1, 1).draw(NoisePurpose::InitialLatents, 64);
        let again = PhiloxNoise::new(1, 0).draw(NoisePurpose::InitialLatents, 64);
        assert_eq!(a, again);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        let streams = [
            NoisePurpose::InitialLatents.stream(0),
            NoisePurpose::ConditionEncode(0).stream(0),
            NoisePurpose::ConditionEncode(1).stream(0),
            NoisePurpose::ConditionPrefix(0).stream(0),
            NoisePurpose::ConditionStep(0).stream(0),
            NoisePurpose::Decode.stream(0),
            NoisePurpose::InitialLatents.stream(1),
        ];
        for (i, s) in streams.iter().enumerate() {
            for t in &streams[i + 1..] {
                assert_ne!(s, t);
            }
        }
    }
}
