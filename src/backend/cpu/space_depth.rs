//! Space-to-depth and depth-to-space on `[batch, channels, frames, height,
//! width]` f32 data, with the sub-position orders LTX-Video uses: its
//! (down/up)samplers order a block's sub-positions (time, height, width),
//! while its patchify / unpatchify order them (time, width, height).

use rayon::prelude::*;

use super::buffers;

pub use crate::backend::SubOrder;

/// The input channel that holds sub-position `(a, i, j)` of channel `c`.
fn sub_channel(
    order: SubOrder,
    c: usize,
    [a, i, j]: [usize; 3],
    [ft, fh, fw]: [usize; 3],
) -> usize {
    match order {
        SubOrder::TimeHeightWidth => ((c * ft + a) * fh + i) * fw + j,
        SubOrder::TimeWidthHeight => ((c * ft + a) * fw + j) * fh + i,
    }
}

/// `[b, c, t, h, w]` -> `[b, c*ft*fh*fw, t/ft, h/fh, w/fw]`. The caller checks
/// divisibility.
pub fn space_to_depth(
    x: &[f32],
    dims: [usize; 5],
    factors: [usize; 3],
    order: SubOrder,
) -> Vec<f32> {
    let [batch, channels, frames, height, width] = dims;
    let [ft, fh, fw] = factors;
    assert_eq!(
        x.len(),
        dims.iter().product::<usize>(),
        "space_to_depth input length"
    );
    assert!(
        frames % ft == 0 && height % fh == 0 && width % fw == 0,
        "space_to_depth divisibility"
    );
    let (to, ho, wo) = (frames / ft, height / fh, width / fw);
    let out_channels = channels * ft * fh * fw;
    let plane_out = to * ho * wo;
    buffers::computed_rows(batch * out_channels * plane_out, plane_out, |bo, dst| {
        let b = bo / out_channels;
        let oc = bo % out_channels;
        let (c, sub) = split_channel(oc, factors, order);
        let [a, i, j] = sub;
        let src_base = (b * channels + c) * frames * height * width;
        for t in 0..to {
            for y in 0..ho {
                let src_row = src_base + ((t * ft + a) * height + y * fh + i) * width + j;
                let dst_row = &mut dst[(t * ho + y) * wo..(t * ho + y + 1) * wo];
                for (xo, d) in dst_row.iter_mut().enumerate() {
                    *d = x[src_row + xo * fw];
                }
            }
        }
    })
}

/// `[b, c*ft*fh*fw, t, h, w]` -> `[b, c, t*ft - drop_front, h*fh, w*fw]`,
/// dropping the first `drop_front` output frames (LTX's upsampler drops the
/// `ft - 1` frames its causal time axis invents before the first one).
pub fn depth_to_space(
    x: &[f32],
    dims: [usize; 5],
    factors: [usize; 3],
    order: SubOrder,
    drop_front: usize,
) -> Vec<f32> {
    let [batch, in_channels, frames, height, width] = dims;
    let [ft, fh, fw] = factors;
    let block = ft * fh * fw;
    assert_eq!(
        x.len(),
        dims.iter().product::<usize>(),
        "depth_to_space input length"
    );
    assert!(in_channels % block == 0, "depth_to_space channels");
    assert!(drop_front <= frames * ft, "depth_to_space drop");
    let channels = in_channels / block;
    let (to, ho, wo) = (frames * ft - drop_front, height * fh, width * fw);
    let plane_out = to * ho * wo;
    let plane_in = frames * height * width;
    buffers::computed_rows(batch * channels * plane_out, plane_out, |bc, dst| {
        let b = bc / channels;
        let c = bc % channels;
        for t_out in 0..to {
            let tf = t_out + drop_front;
            let (t, a) = (tf / ft, tf % ft);
            for y_out in 0..ho {
                let (y, i) = (y_out / fh, y_out % fh);
                let dst_row = &mut dst[(t_out * ho + y_out) * wo..(t_out * ho + y_out + 1) * wo];
                for j in 0..fw {
                    let ic = sub_channel(order, c, [a, i, j], factors);
                    let src_row =
                        &x[(b * in_channels + ic) * plane_in + (t * height + y) * width..][..width];
                    for (xi, v) in src_row.iter().enumerate() {
                        dst_row[xi * fw + j] = *v;
                    }
                }
            }
        }
    })
}

/// Mean of each run of `group` consecutive channels:
/// `[b, c, positions]` -> `[b, c / group, positions]`.
pub fn group_mean_channels(x: &[f32], dims: [usize; 3], group: usize) -> Vec<f32> {
    let [batch, channels, positions] = dims;
    assert_eq!(
        x.len(),
        batch * channels * positions,
        "group_mean input length"
    );
    assert!(group > 0 && channels % group == 0, "group_mean group size");
    let out_channels = channels / group;
    let inv = 1.0 / group as f32;
    buffers::computed_rows(batch * out_channels * positions, positions, |bo, dst| {
        let src = &x[bo * group * positions..(bo + 1) * group * positions];
        for g in src.chunks_exact(positions) {
            for (d, v) in dst.iter_mut().zip(g) {
                *d += v;
            }
        }
        for d in dst.iter_mut() {
            *d *= inv;
        }
    })
}

/// `dst[b, k, p] += src[b, k % src_channels, p]`: adds a residual with fewer
/// channels, tiled along the channel axis (PyTorch's `repeat` on dim 1).
pub fn add_channel_tiled(
    dst: &mut [f32],
    dst_channels: usize,
    src: &[f32],
    src_channels: usize,
    batch: usize,
) {
    assert!(
        src_channels > 0 && dst_channels % src_channels == 0,
        "channel tiling"
    );
    assert_eq!(
        dst.len() * src_channels,
        src.len() * dst_channels,
        "channel tiling lengths"
    );
    let positions = dst.len() / (batch * dst_channels).max(1);
    dst.par_chunks_mut(positions.max(1))
        .take(batch * dst_channels)
        .enumerate()
        .for_each(|(bk, d)| {
            let b = bk / dst_channels;
            let k = bk % dst_channels;
            let s = &src[(b * src_channels + k % src_channels) * positions..][..positions];
            for (d, s) in d.iter_mut().zip(s) {
                *d += s;
            }
        });
}

fn split_channel(oc: usize, [ft, fh, fw]: [usize; 3], order: SubOrder) -> (usize, [usize; 3]) {
    match order {
        SubOrder::TimeHeightWidth => {
            let j = oc % fw;
            let i = (oc / fw) % fh;
            let a = (oc / (fw * fh)) % ft;
            (oc / (fw * fh * ft), [a, i, j])
        }
        SubOrder::TimeWidthHeight => {
            let i = oc % fh;
            let j = (oc / fh) % fw;
            let a = (oc / (fw * fh)) % ft;
            (oc / (fw * fh * ft), [a, i, j])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_to_space_inverts_space_to_depth() {
        let dims = [2, 3, 4, 6, 8];
        let x: Vec<f32> = (0..dims.iter().product::<usize>())
            .map(|i| i as f32)
            .collect();
        for order in [SubOrder::TimeHeightWidth, SubOrder::TimeWidthHeight] {
            for factors in [[1, 2, 2], [2, 1, 1], [2, 2, 2], [1, 2, 4]] {
                let packed = space_to_depth(&x, dims, factors, order);
                let [ft, fh, fw] = factors;
                let packed_dims = [2, 3 * ft * fh * fw, 4 / ft, 6 / fh, 8 / fw];
                assert_eq!(depth_to_space(&packed, packed_dims, factors, order, 0), x);
            }
        }
    }

    #[test]
    fn orders_place_sub_positions_as_documented() {
        // One channel, 1x2x2 block: values are 10*y + x.
        let x = [0.0, 1.0, 10.0, 11.0];
        let thw = space_to_depth(&x, [1, 1, 1, 2, 2], [1, 2, 2], SubOrder::TimeHeightWidth);
        assert_eq!(thw, vec![0.0, 1.0, 10.0, 11.0]);
        let twh = space_to_depth(&x, [1, 1, 1, 2, 2], [1, 2, 2], SubOrder::TimeWidthHeight);
        assert_eq!(twh, vec![0.0, 10.0, 1.0, 11.0]);
    }

    #[test]
    fn group_mean_and_tiling() {
        let x = [1.0, 2.0, 3.0, 5.0, 7.0, 9.0, 0.0, 4.0];
        assert_eq!(
            group_mean_channels(&x, [1, 4, 2], 2),
            vec![2.0, 3.5, 3.5, 6.5]
        );
        let mut dst = vec![0.0; 8];
        add_channel_tiled(&mut dst, 4, &[1.0, 2.0, 3.0, 4.0], 2, 1);
        assert_eq!(dst, vec![1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0]);
    }
}
