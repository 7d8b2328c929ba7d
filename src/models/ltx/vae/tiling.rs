//! Tiled decoding, as diffusers' `AutoencoderKLLTXVideo` does it (`_decode`,
//! `tiled_decode`, `_temporal_tiled_decode`, `blend_v/h/t`): overlapping
//! tiles of latents are decoded one at a time and their overlaps cross-faded
//! linearly, so a long or large shot never holds the whole decoder's
//! activations at once. Tile sizes and strides are in output pixels / frames.

use super::decoder::Decoder;
use super::error::{Result, VaeError};
use super::volume::Volume;

/// Spatial tiles (`enable_tiling`): tiles of `min_*` pixels every `stride_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpatialTiling {
    pub min_height: usize,
    pub min_width: usize,
    pub stride_height: usize,
    pub stride_width: usize,
}

impl Default for SpatialTiling {
    /// diffusers' defaults.
    fn default() -> Self {
        Self {
            min_height: 512,
            min_width: 512,
            stride_height: 448,
            stride_width: 448,
        }
    }
}

/// Temporal tiles (`use_framewise_decoding`): `min_frames` every `stride_frames`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TemporalTiling {
    pub min_frames: usize,
    pub stride_frames: usize,
}

impl Default for TemporalTiling {
    /// diffusers' defaults.
    fn default() -> Self {
        Self {
            min_frames: 16,
            stride_frames: 8,
        }
    }
}

/// Which tilings a decode may use; `Tiling::default()` decodes in one piece.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tiling {
    pub spatial: Option<SpatialTiling>,
    pub temporal: Option<TemporalTiling>,
}

/// Tile geometry in latent units, checked once.
struct Plan {
    spatial: Option<(SpatialTiling, [usize; 4])>,
    temporal: Option<(TemporalTiling, [usize; 2])>,
}

impl Plan {
    fn new(tiling: &Tiling, spatial_ratio: usize, temporal_ratio: usize) -> Result<Self> {
        let spatial = tiling
            .spatial
            .map(|s| {
                let lat = [
                    s.min_height / spatial_ratio,
                    s.min_width / spatial_ratio,
                    s.stride_height / spatial_ratio,
                    s.stride_width / spatial_ratio,
                ];
                if lat.contains(&0) || s.stride_height > s.min_height || s.stride_width > s.min_width {
                    return Err(VaeError::Tiling(format!(
                        "spatial tiles {s:?} need strides of at least {spatial_ratio} pixels and no larger than the tiles"
                    )));
                }
                Ok((s, lat))
            })
            .transpose()?;
        let temporal = tiling
            .temporal
            .map(|t| {
                let lat = [t.min_frames / temporal_ratio, t.stride_frames / temporal_ratio];
                if lat.contains(&0) || t.stride_frames > t.min_frames {
                    return Err(VaeError::Tiling(format!(
                        "temporal tiles {t:?} need strides of at least {temporal_ratio} frames and no larger than the tiles"
                    )));
                }
                Ok((t, lat))
            })
            .transpose()?;
        Ok(Self { spatial, temporal })
    }
}

/// Decodes `z` with the tiling the reference would use for this shape.
pub(crate) fn decode(
    decoder: &Decoder,
    z: &Volume,
    timesteps: &[f32],
    tiling: &Tiling,
    spatial_ratio: usize,
    temporal_ratio: usize,
) -> Result<Volume> {
    let plan = Plan::new(tiling, spatial_ratio, temporal_ratio)?;
    let [_, _, frames, height, width] = z.dims();
    if let Some((t, [min_lat, stride_lat])) = plan.temporal {
        if frames > min_lat {
            let ratios = [spatial_ratio, temporal_ratio];
            return Ok(temporal_tiled(
                decoder,
                z,
                timesteps,
                &plan,
                t,
                [min_lat, stride_lat],
                ratios,
            ));
        }
    }
    Ok(spatial_or_whole(
        decoder,
        z,
        timesteps,
        &plan,
        height,
        width,
        spatial_ratio,
    ))
}

fn spatial_or_whole(
    decoder: &Decoder,
    z: &Volume,
    timesteps: &[f32],
    plan: &Plan,
    height: usize,
    width: usize,
    spatial_ratio: usize,
) -> Volume {
    match plan.spatial {
        Some((s, lat)) if height > lat[0] || width > lat[1] => {
            spatial_tiled(decoder, z, timesteps, s, lat, spatial_ratio)
        }
        _ => decoder.forward(z, timesteps),
    }
}

fn spatial_tiled(
    decoder: &Decoder,
    z: &Volume,
    timesteps: &[f32],
    s: SpatialTiling,
    [min_h, min_w, stride_h, stride_w]: [usize; 4],
    ratio: usize,
) -> Volume {
    let [_, _, frames, height, width] = z.dims();
    let blend_h = s.min_height - s.stride_height;
    let blend_w = s.min_width - s.stride_width;
    let mut rows: Vec<Vec<Volume>> = (0..height)
        .step_by(stride_h)
        .map(|i| {
            (0..width)
                .step_by(stride_w)
                .map(|j| {
                    decoder.forward(
                        &z.crop((0, frames), (i, i + min_h), (j, j + min_w)),
                        timesteps,
                    )
                })
                .collect()
        })
        .collect();

    // Blend in place in the reference's order: each tile first with the
    // (already blended) tile above, then with the one to its left.
    for i in 0..rows.len() {
        let (above, rest) = rows.split_at_mut(i);
        let row = &mut rest[0];
        for j in 0..row.len() {
            if i > 0 {
                blend_rows(&above[i - 1][j], &mut row[j], blend_h);
            }
            if j > 0 {
                let (left, cur) = row.split_at_mut(j);
                blend_cols(&left[j - 1], &mut cur[0], blend_w);
            }
        }
    }

    let first = &rows[0][0];
    let [b, c, out_frames, _, _] = first.dims();
    let mut out = Volume::zeros([b, c, out_frames, height * ratio, width * ratio]);
    for (i, row) in rows.iter().enumerate() {
        for (j, tile) in row.iter().enumerate() {
            let kept = tile.crop((0, out_frames), (0, s.stride_height), (0, s.stride_width));
            out.paste(&kept, 0, i * s.stride_height, j * s.stride_width);
        }
    }
    out
}

fn temporal_tiled(
    decoder: &Decoder,
    z: &Volume,
    timesteps: &[f32],
    plan: &Plan,
    t: TemporalTiling,
    [min_lat, stride_lat]: [usize; 2],
    [spatial_ratio, ratio]: [usize; 2],
) -> Volume {
    let [_, _, frames, height, width] = z.dims();
    let out_frames = (frames - 1) * ratio + 1;
    let mut tiles: Vec<Volume> = (0..frames)
        .step_by(stride_lat)
        .enumerate()
        .map(|(k, i)| {
            let chunk = z.crop((i, i + min_lat + 1), (0, height), (0, width));
            let decoded = spatial_or_whole(
                decoder,
                &chunk,
                timesteps,
                plan,
                height,
                width,
                spatial_ratio,
            );
            if k > 0 {
                // The reference drops each later tile's last frame.
                let n = decoded.frames().saturating_sub(1);
                decoded.crop((0, n), (0, usize::MAX), (0, usize::MAX))
            } else {
                decoded
            }
        })
        .collect();

    let blend = t.min_frames - t.stride_frames;
    for k in 1..tiles.len() {
        let (before, rest) = tiles.split_at_mut(k);
        blend_frames(&before[k - 1], &mut rest[0], blend);
    }
    let [b, c, _, h, w] = tiles[0].dims();
    let mut out = Volume::zeros([b, c, out_frames, h, w]);
    let mut at = 0;
    for (k, tile) in tiles.iter().enumerate() {
        let keep = if k == 0 {
            t.stride_frames + 1
        } else {
            t.stride_frames
        };
        let kept = tile.crop((0, keep), (0, usize::MAX), (0, usize::MAX));
        out.paste(&kept, at, 0, 0);
        at += kept.frames();
    }
    out
}

/// The reference's blend weight `y / extent` (computed in double, used as f32).
fn ramp(y: usize, extent: usize) -> (f32, f32) {
    let r = y as f64 / extent as f64;
    ((1.0 - r) as f32, r as f32)
}

/// `blend_v`: the first rows of `b` fade in from the last rows of `a`.
fn blend_rows(a: &Volume, b: &mut Volume, extent: usize) {
    let [_, _, _, ha, _] = a.dims();
    let [nb, nc, nt, hb, w] = b.dims();
    let extent = extent.min(ha).min(hb);
    let a_data = a.data();
    let b_data = b.data_mut();
    for bct in 0..nb * nc * nt {
        for y in 0..extent {
            let (wa, wb) = ramp(y, extent);
            let ar = (bct * ha + ha - extent + y) * w;
            let br = (bct * hb + y) * w;
            for x in 0..w {
                b_data[br + x] = a_data[ar + x] * wa + b_data[br + x] * wb;
            }
        }
    }
}

/// `blend_h`: the first columns of `b` fade in from the last columns of `a`.
fn blend_cols(a: &Volume, b: &mut Volume, extent: usize) {
    let [_, _, _, _, wa_len] = a.dims();
    let [nb, nc, nt, h, wb_len] = b.dims();
    let extent = extent.min(wa_len).min(wb_len);
    let a_data = a.data();
    let b_data = b.data_mut();
    for row in 0..nb * nc * nt * h {
        for x in 0..extent {
            let (wa, wb) = ramp(x, extent);
            let bi = row * wb_len + x;
            b_data[bi] = a_data[row * wa_len + wa_len - extent + x] * wa + b_data[bi] * wb;
        }
    }
}

/// `blend_t`: the first frames of `b` fade in from the last frames of `a`.
fn blend_frames(a: &Volume, b: &mut Volume, extent: usize) {
    let [_, _, ta, h, w] = a.dims();
    let [nb, nc, tb, _, _] = b.dims();
    let extent = extent.min(ta).min(tb);
    let plane = h * w;
    let a_data = a.data();
    let b_data = b.data_mut();
    for bc in 0..nb * nc {
        for f in 0..extent {
            let (wa, wb) = ramp(f, extent);
            let ar = (bc * ta + ta - extent + f) * plane;
            let br = (bc * tb + f) * plane;
            for p in 0..plane {
                b_data[br + p] = a_data[ar + p] * wa + b_data[br + p] * wb;
            }
        }
    }
}
