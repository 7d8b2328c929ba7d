//! 3-D convolution with stride 1 on `[batch, channels, frames, height, width]`
//! f32 data, as an implicit GEMM: no im2col matrix is ever built.
//!
//! The input is copied once into a frame-major, spatially zero-padded buffer
//! `[batch, frames + time padding, in_channels, height + 2ph, width + 2pw]`.
//! In that layout the rows `(dt, ci)` of the virtual im2col matrix for one
//! output frame lie at a constant stride (one padded plane), and a spatial tap
//! `(dh, dw)` is a constant offset, so each tap is a plain strided GEMM
//! `[Co, kt*Ci] x [kt*Ci, pixels]` accumulated into the same output tile. The
//! pixel axis runs over padded rows; the `2pw` columns per row that fall into
//! the padding are computed and dropped, a waste of `2pw / (W + 2pw)`.

use rayon::prelude::*;

use super::buffers;

pub use crate::backend::TimePadding;

/// Weights of one convolution, repacked at load time for the implicit GEMM.
#[derive(Clone, Debug)]
pub struct Conv3dWeights {
    out_channels: usize,
    in_channels: usize,
    kernel: [usize; 3],
    /// `[kh * kw][out_channels][kt * in_channels]`, row index `dt * Ci + ci`.
    taps: Vec<f32>,
    bias: Vec<f32>,
}

/// Why a convolution cannot be built from the given arrays.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Conv3dError {
    #[error(
        "conv3d weight has {got} values, expected {expected} for [{co}, {ci}, {kt}, {kh}, {kw}]"
    )]
    WeightLength {
        got: usize,
        expected: usize,
        co: usize,
        ci: usize,
        kt: usize,
        kh: usize,
        kw: usize,
    },
    #[error("conv3d bias has {got} values, expected {expected}")]
    BiasLength { got: usize, expected: usize },
    #[error("conv3d kernel {kernel:?} must be odd in height and width and non-zero")]
    Kernel { kernel: [usize; 3] },
}

impl Conv3dWeights {
    /// `weight` is PyTorch's `[Co, Ci, kt, kh, kw]`, `bias` is `[Co]` or empty.
    pub fn new(
        weight: &[f32],
        bias: &[f32],
        out_channels: usize,
        in_channels: usize,
        kernel: [usize; 3],
    ) -> Result<Self, Conv3dError> {
        let [kt, kh, kw] = kernel;
        if kt == 0 || kh % 2 == 0 || kw % 2 == 0 {
            return Err(Conv3dError::Kernel { kernel });
        }
        let expected = out_channels * in_channels * kt * kh * kw;
        if weight.len() != expected {
            return Err(Conv3dError::WeightLength {
                got: weight.len(),
                expected,
                co: out_channels,
                ci: in_channels,
                kt,
                kh,
                kw,
            });
        }
        if !bias.is_empty() && bias.len() != out_channels {
            return Err(Conv3dError::BiasLength {
                got: bias.len(),
                expected: out_channels,
            });
        }
        let k = kt * in_channels;
        let mut taps = vec![0.0; kh * kw * out_channels * k];
        for co in 0..out_channels {
            for ci in 0..in_channels {
                for dt in 0..kt {
                    for dh in 0..kh {
                        for dw in 0..kw {
                            let src = (((co * in_channels + ci) * kt + dt) * kh + dh) * kw + dw;
                            let dst =
                                ((dh * kw + dw) * out_channels + co) * k + dt * in_channels + ci;
                            taps[dst] = weight[src];
                        }
                    }
                }
            }
        }
        let bias = if bias.is_empty() {
            vec![0.0; out_channels]
        } else {
            bias.to_vec()
        };
        Ok(Self {
            out_channels,
            in_channels,
            kernel,
            taps,
            bias,
        })
    }

    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    pub fn kernel(&self) -> [usize; 3] {
        self.kernel
    }
}

/// Convolves `input` (`[b, Ci, t, h, w]` as `dims`) and returns
/// `[b, Co, t, h, w]`; when `residual` is given (same shape as the output) it
/// is added in the same pass. Shapes must already be checked by the caller:
/// this panics on inconsistent lengths, which would be a bug, not bad input.
pub fn conv3d(
    input: &[f32],
    dims: [usize; 5],
    weights: &Conv3dWeights,
    padding: TimePadding,
    residual: Option<&[f32]>,
) -> Vec<f32> {
    let [batch, ci, frames, height, width] = dims;
    let co = weights.out_channels;
    let [kt, kh, kw] = weights.kernel;
    assert_eq!(ci, weights.in_channels, "conv3d input channels");
    assert_eq!(
        input.len(),
        batch * ci * frames * height * width,
        "conv3d input length"
    );
    let plane_out = frames * height * width;
    if let Some(r) = residual {
        assert_eq!(r.len(), batch * co * plane_out, "conv3d residual length");
    }
    let mut output = buffers::zeroed(batch * co * plane_out);
    if batch * frames * height * width == 0 || co == 0 {
        return output;
    }

    // The output always has as many frames as the input.
    let pad_front = match padding {
        TimePadding::Causal => kt - 1,
        TimePadding::Symmetric => (kt - 1) / 2,
    };
    let pad_back = kt - 1 - pad_front;
    let ph = kh / 2;
    let pw = kw / 2;
    let hp = height + 2 * ph;
    let wp = width + 2 * pw;
    let plane = hp * wp;
    let padded_frames = frames + pad_front + pad_back;
    let padded = pad_frame_major(input, dims, pad_front, padded_frames, ph, pw);

    // Output pixels in padded-row coordinates: row y, column x sits at y*wp+x;
    // the last row stops at the last real column so every read stays inside
    // the padded frame.
    let n = (height - 1) * wp + width;
    let k = kt * ci;
    let jobs = batch * frames;
    let threads = rayon::current_num_threads().max(1);
    let inner_parallel = jobs < 2 * threads;

    let out_ptr = SendPtr(output.as_mut_ptr());
    let run = |job: usize| {
        let b = job / frames;
        let t = job % frames;
        let mut tile = vec![0.0f32; co * n];
        // Output frame t reads padded frames t..t+kt; in the frame-major
        // layout their channels are consecutive planes.
        let frame_base = (b * padded_frames + t) * ci * plane;
        for dh in 0..kh {
            for dw in 0..kw {
                let tap = dh * kw + dw;
                let lhs = &weights.taps[tap * co * k..(tap + 1) * co * k];
                let rhs_offset = frame_base + dh * wp + dw;
                // The rhs view spans k planes from rhs_offset, n columns wide.
                debug_assert!(rhs_offset + (k - 1) * plane + n <= padded.len());
                let parallelism = if inner_parallel {
                    gemm::Parallelism::Rayon(threads)
                } else {
                    gemm::Parallelism::None
                };
                // SAFETY: dst is `tile`, co x n row-major, exclusively borrowed.
                // lhs is co x k row-major inside `weights.taps` (length co*k by
                // construction). rhs is k x n with row stride `plane` and column
                // stride 1 starting at rhs_offset; its last element is at
                // rhs_offset + (k-1)*plane + n-1, and rhs_offset + (k-1)*plane
                // + n <= padded.len() because t + kt - 1 < padded_frames,
                // dh*wp + dw + n <= (2ph + height - 1)*wp + 2pw + width = plane.
                unsafe {
                    gemm::gemm(
                        co,
                        n,
                        k,
                        tile.as_mut_ptr(),
                        1,
                        n as isize,
                        tap != 0,
                        lhs.as_ptr(),
                        1,
                        k as isize,
                        padded.as_ptr().add(rhs_offset),
                        1,
                        plane as isize,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        parallelism,
                    );
                }
            }
        }
        for (c, row) in tile.chunks_exact(n).enumerate() {
            let dst_start = (b * co + c) * plane_out + t * height * width;
            // SAFETY: job (b, t) owns exactly the output rows
            // [b, c, t, .., ..] for every c; no two jobs share a (b, t), so the
            // slices written here never overlap between threads, and they lie
            // inside `output` (dst_start + height*width <= batch*co*plane_out).
            let dst = unsafe {
                std::slice::from_raw_parts_mut(out_ptr.get().add(dst_start), height * width)
            };
            let bias = weights.bias[c];
            for y in 0..height {
                let src = &row[y * wp..y * wp + width];
                let d = &mut dst[y * width..(y + 1) * width];
                match residual {
                    Some(r) => {
                        let r = &r[dst_start + y * width..dst_start + (y + 1) * width];
                        for ((d, s), r) in d.iter_mut().zip(src).zip(r) {
                            *d = s + bias + r;
                        }
                    }
                    None => {
                        for (d, s) in d.iter_mut().zip(src) {
                            *d = s + bias;
                        }
                    }
                }
            }
        }
    };
    if inner_parallel {
        (0..jobs).for_each(run);
    } else {
        (0..jobs).into_par_iter().for_each(run);
    }
    output
}

/// Raw output pointer shared by jobs that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: the pointer is only used to write disjoint regions (see `conv3d`),
// and the buffer outlives the parallel loop that uses it.
unsafe impl Send for SendPtr {}
// SAFETY: as above; shared references only hand out the raw address.
unsafe impl Sync for SendPtr {}
impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Copies `[b, c, t, h, w]` into `[b, padded_frames, c, h + 2ph, w + 2pw]`
/// with zero borders; padded frame `p` holds input frame
/// `clamp(p - pad_front, 0, t - 1)` (edge replication in time).
fn pad_frame_major(
    input: &[f32],
    dims: [usize; 5],
    pad_front: usize,
    padded_frames: usize,
    ph: usize,
    pw: usize,
) -> Vec<f32> {
    let [batch, ci, frames, height, width] = dims;
    let hp = height + 2 * ph;
    let wp = width + 2 * pw;
    let plane = hp * wp;
    // The borders stay as handed over: zero.
    buffers::computed_rows(
        batch * padded_frames * ci * plane,
        ci * plane,
        |bp, frame| {
            let b = bp / padded_frames;
            let p = bp % padded_frames;
            let t = p.saturating_sub(pad_front).min(frames - 1);
            for c in 0..ci {
                let src_plane =
                    &input[((b * ci + c) * frames + t) * height * width..][..height * width];
                let dst_plane = &mut frame[c * plane..(c + 1) * plane];
                for y in 0..height {
                    dst_plane[(y + ph) * wp + pw..(y + ph) * wp + pw + width]
                        .copy_from_slice(&src_plane[y * width..(y + 1) * width]);
                }
            }
        },
    )
}

/// Direct (slow, obviously correct) convolution used to check the fast one.
#[cfg(test)]
pub(crate) fn conv3d_naive(
    input: &[f32],
    dims: [usize; 5],
    weight: &[f32],
    bias: &[f32],
    co: usize,
    kernel: [usize; 3],
    padding: TimePadding,
) -> Vec<f32> {
    let [batch, ci, frames, height, width] = dims;
    let [kt, kh, kw] = kernel;
    let pad_front = match padding {
        TimePadding::Causal => kt - 1,
        TimePadding::Symmetric => (kt - 1) / 2,
    } as isize;
    let mut out = buffers::zeroed(batch * co * frames * height * width);
    for b in 0..batch {
        for o in 0..co {
            for t in 0..frames {
                for y in 0..height {
                    for x in 0..width {
                        let mut acc = bias.get(o).copied().unwrap_or(0.0) as f64;
                        for c in 0..ci {
                            for dt in 0..kt {
                                let ts = (t as isize + dt as isize - pad_front)
                                    .clamp(0, frames as isize - 1)
                                    as usize;
                                for dy in 0..kh {
                                    let ys = y as isize + dy as isize - (kh / 2) as isize;
                                    if ys < 0 || ys >= height as isize {
                                        continue;
                                    }
                                    for dx in 0..kw {
                                        let xs = x as isize + dx as isize - (kw / 2) as isize;
                                        if xs < 0 || xs >= width as isize {
                                            continue;
                                        }
                                        let wv =
                                            weight[(((o * ci + c) * kt + dt) * kh + dy) * kw + dx];
                                        let iv = input[(((b * ci + c) * frames + ts) * height
                                            + ys as usize)
                                            * width
                                            + xs as usize];
                                        acc += (wv * iv) as f64;
                                    }
                                }
                            }
                        }
                        out[(((b * co + o) * frames + t) * height + y) * width + x] = acc as f32;
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn check(
        dims: [usize; 5],
        co: usize,
        kernel: [usize; 3],
        padding: TimePadding,
        with_residual: bool,
    ) {
        let [b, ci, t, h, w] = dims;
        let input = pseudo_random(b * ci * t * h * w, 1);
        let weight = pseudo_random(co * ci * kernel.iter().product::<usize>(), 2);
        let bias = pseudo_random(co, 3);
        let residual = pseudo_random(b * co * t * h * w, 4);
        let conv = Conv3dWeights::new(&weight, &bias, co, ci, kernel).unwrap();
        let fast = conv3d(
            &input,
            dims,
            &conv,
            padding,
            with_residual.then_some(residual.as_slice()),
        );
        let mut slow = conv3d_naive(&input, dims, &weight, &bias, co, kernel, padding);
        if with_residual {
            for (s, r) in slow.iter_mut().zip(&residual) {
                *s += r;
            }
        }
        let worst = fast
            .iter()
            .zip(&slow)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < 1e-4,
            "dims {dims:?} kernel {kernel:?} {padding:?}: max diff {worst}"
        );
    }

    #[test]
    fn matches_direct_convolution() {
        check([1, 3, 4, 5, 6], 4, [3, 3, 3], TimePadding::Causal, false);
        check([2, 2, 3, 4, 3], 5, [3, 3, 3], TimePadding::Symmetric, true);
        check([1, 4, 1, 3, 7], 2, [3, 3, 3], TimePadding::Causal, false);
        check([1, 3, 2, 4, 4], 3, [1, 1, 1], TimePadding::Causal, true);
        check([1, 2, 5, 3, 3], 2, [3, 1, 1], TimePadding::Symmetric, false);
    }

    #[test]
    fn rejects_inconsistent_weights() {
        assert!(matches!(
            Conv3dWeights::new(&[0.0; 10], &[], 2, 2, [3, 3, 3]),
            Err(Conv3dError::WeightLength { .. })
        ));
        assert!(matches!(
            Conv3dWeights::new(&[0.0; 4], &[0.0; 3], 2, 2, [1, 1, 1]),
            Err(Conv3dError::BiasLength { .. })
        ));
        assert!(matches!(
            Conv3dWeights::new(&[0.0; 8], &[], 2, 2, [1, 2, 1]),
            Err(Conv3dError::Kernel { .. })
        ));
    }
}
