//! Normalisation across the channel axis of `[batch, channels, positions]`
//! data, the form LTX-Video's VAE uses for `RMSNorm` over
//! `movedim(1, -1)`: every (frame, row, column) position is normalised over
//! its channels. Channels sit one plane apart, so the kernels sweep positions
//! in short contiguous runs, accumulating over channels, and fuse the
//! per-(batch, channel) modulation and SiLU that always follow the norm.

use rayon::prelude::*;

use super::buffers;

/// Positions handled together: long enough for contiguous vector loads, short
/// enough that the run of every channel stays in L1/L2.
const RUN: usize = 256;

/// Per-(batch, channel) affine modulation `x * (1 + scale) + shift`, as the
/// timestep-conditioned blocks apply after their norm. Both are
/// `[batch * channels]`.
#[derive(Clone, Copy, Debug)]
pub struct Modulation<'a> {
    pub scale: &'a [f32],
    pub shift: &'a [f32],
}

/// `y = silu?( rms_norm(x) * (1 + scale) + shift )` over channels, without a
/// learned weight (the VAE's norms have `elementwise_affine=False`).
/// `dims` is `[batch, channels, positions]`.
pub fn rms_norm_channels(
    x: &[f32],
    dims: [usize; 3],
    eps: f32,
    modulation: Option<Modulation<'_>>,
    silu: bool,
) -> Vec<f32> {
    let [batch, channels, positions] = dims;
    assert_eq!(
        x.len(),
        batch * channels * positions,
        "rms_norm_channels input length"
    );
    if let Some(m) = modulation {
        assert_eq!(m.scale.len(), batch * channels, "modulation scale length");
        assert_eq!(m.shift.len(), batch * channels, "modulation shift length");
    }
    let mut out = buffers::zeroed(x.len());
    if out.is_empty() {
        return out;
    }
    let runs = positions.div_ceil(RUN);
    let out_ptr = SharedOut(out.as_mut_ptr());
    (0..batch * runs).into_par_iter().for_each(|job| {
        let b = job / runs;
        let start = (job % runs) * RUN;
        let len = RUN.min(positions - start);
        let base = b * channels * positions + start;
        let mut inv = [0.0f32; RUN];
        let inv = &mut inv[..len];
        for c in 0..channels {
            let row = &x[base + c * positions..][..len];
            for (acc, v) in inv.iter_mut().zip(row) {
                *acc += v * v;
            }
        }
        let denom = 1.0 / channels as f32;
        for acc in inv.iter_mut() {
            *acc = 1.0 / (*acc * denom + eps).sqrt();
        }
        for c in 0..channels {
            let (mul, add) = match modulation {
                Some(m) => (1.0 + m.scale[b * channels + c], m.shift[b * channels + c]),
                None => (1.0, 0.0),
            };
            let row = &x[base + c * positions..][..len];
            // SAFETY: job (b, run) writes only positions [start, start+len) of
            // every channel of batch b; runs and batches partition the
            // buffer, so writes from different jobs never overlap, and
            // base + c*positions + len <= out.len().
            let dst = unsafe {
                std::slice::from_raw_parts_mut(out_ptr.get().add(base + c * positions), len)
            };
            for ((d, v), r) in dst.iter_mut().zip(row).zip(inv.iter()) {
                let y = v * r * mul + add;
                *d = if silu { y / (1.0 + (-y).exp()) } else { y };
            }
        }
    });
    out
}

#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: only used to write disjoint regions of a buffer that outlives the
// parallel loop (see `rms_norm_channels`).
unsafe impl Send for SharedOut {}
// SAFETY: as above.
unsafe impl Sync for SharedOut {}
impl SharedOut {
    fn get(self) -> *mut f32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_matches_definition() {
        let (b, c, p) = (2, 3, 300);
        let x: Vec<f32> = (0..b * c * p)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
            .collect();
        let scale: Vec<f32> = (0..b * c).map(|i| i as f32 * 0.1 - 0.2).collect();
        let shift: Vec<f32> = (0..b * c).map(|i| 0.3 - i as f32 * 0.05).collect();
        let y = rms_norm_channels(
            &x,
            [b, c, p],
            1e-8,
            Some(Modulation {
                scale: &scale,
                shift: &shift,
            }),
            true,
        );
        for bi in 0..b {
            for pi in 0..p {
                let ms = (0..c)
                    .map(|ci| x[(bi * c + ci) * p + pi].powi(2))
                    .sum::<f32>()
                    / c as f32;
                for ci in 0..c {
                    let i = (bi * c + ci) * p + pi;
                    let v =
                        x[i] / (ms + 1e-8).sqrt() * (1.0 + scale[bi * c + ci]) + shift[bi * c + ci];
                    let expect = v / (1.0 + (-v).exp());
                    assert!((y[i] - expect).abs() < 1e-5, "{} vs {}", y[i], expect);
                }
            }
        }
    }
}
