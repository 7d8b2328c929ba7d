//! Tiled decoding, as diffusers' `AutoencoderKLLTXVideo` does it (`_decode`,
//! `tiled_decode`, `_temporal_tiled_decode`, `blend_v/h/t`): overlapping
//! tiles of latents are decoded one at a time and their overlaps cross-faded
//! linearly, so a long or large shot never holds the whole decoder's
//! activations at once. Tile sizes and strides are in output pixels / frames.

use super::decoder::Decoder;
use super::error::{Result, VaeError};
use crate::tensor::{DType, Tensor};

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
/// Tiles are blended and assembled in f32 whatever the compute dtype: the
/// cross-fades then match the reference's arithmetic exactly on the CPU,
/// and a 16-bit decoder's tiles are rounded once, not again by the blend.
pub(crate) fn decode(
    decoder: &Decoder,
    z: &Tensor,
    timesteps: &[f32],
    tiling: &Tiling,
    spatial_ratio: usize,
    temporal_ratio: usize,
) -> Result<Tensor> {
    let plan = Plan::new(tiling, spatial_ratio, temporal_ratio)?;
    let [_, _, frames, height, width] = dims5(z);
    if let Some((t, [min_lat, stride_lat])) = plan.temporal {
        if frames > min_lat {
            let ratios = [spatial_ratio, temporal_ratio];
            return temporal_tiled(
                decoder,
                z,
                timesteps,
                &plan,
                t,
                [min_lat, stride_lat],
                ratios,
            );
        }
    }
    spatial_or_whole(decoder, z, timesteps, &plan, height, width, spatial_ratio)
}

fn dims5(t: &Tensor) -> [usize; 5] {
    t.dims()
        .try_into()
        .expect("VAE volumes are [batch, channels, frames, height, width]")
}

/// `narrow` clamped to the tensor, as Python slicing is.
fn crop(t: &Tensor, dim: usize, start: usize, len: usize) -> Result<Tensor> {
    let size = t.dims()[dim];
    let start = start.min(size);
    Ok(t.narrow(dim, start, len.min(size - start))?)
}

fn decode_tile(decoder: &Decoder, z: &Tensor, timesteps: &[f32]) -> Result<Tensor> {
    Ok(decoder.forward(z, timesteps)?.to_dtype(DType::F32)?)
}

fn spatial_or_whole(
    decoder: &Decoder,
    z: &Tensor,
    timesteps: &[f32],
    plan: &Plan,
    height: usize,
    width: usize,
    spatial_ratio: usize,
) -> Result<Tensor> {
    match plan.spatial {
        Some((s, lat)) if height > lat[0] || width > lat[1] => {
            spatial_tiled(decoder, z, timesteps, s, lat, spatial_ratio)
        }
        _ => decode_tile(decoder, z, timesteps),
    }
}

fn spatial_tiled(
    decoder: &Decoder,
    z: &Tensor,
    timesteps: &[f32],
    s: SpatialTiling,
    [min_h, min_w, stride_h, stride_w]: [usize; 4],
    ratio: usize,
) -> Result<Tensor> {
    let [_, _, _, height, width] = dims5(z);
    let blend_h = s.min_height - s.stride_height;
    let blend_w = s.min_width - s.stride_width;
    let mut rows: Vec<Vec<Tensor>> = Vec::new();
    for i in (0..height).step_by(stride_h) {
        let mut row = Vec::new();
        for j in (0..width).step_by(stride_w) {
            let tile = crop(&crop(z, 3, i, min_h)?, 4, j, min_w)?;
            row.push(decode_tile(decoder, &tile, timesteps)?);
        }
        rows.push(row);
    }

    // Blend in the reference's order: each tile first with the (already
    // blended) tile above, then with the one to its left.
    for i in 0..rows.len() {
        for j in 0..rows[i].len() {
            if i > 0 {
                rows[i][j] = blend(&rows[i - 1][j], &rows[i][j], 3, blend_h)?;
            }
            if j > 0 {
                rows[i][j] = blend(&rows[i][j - 1], &rows[i][j], 4, blend_w)?;
            }
        }
    }

    // Each tile keeps its first stride's worth of rows and columns, pasted
    // at multiples of the stride and clipped to the output, as the reference
    // writes it.
    let mut out_rows = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let mut pieces = Vec::new();
        for (j, tile) in row.iter().enumerate() {
            let kept = crop(tile, 4, 0, s.stride_width)?;
            pieces.push((j * s.stride_width, kept));
        }
        let strip = assemble(pieces, 4, width * ratio)?;
        out_rows.push((i * s.stride_height, crop(&strip, 3, 0, s.stride_height)?));
    }
    assemble(out_rows, 3, height * ratio)
}

fn temporal_tiled(
    decoder: &Decoder,
    z: &Tensor,
    timesteps: &[f32],
    plan: &Plan,
    t: TemporalTiling,
    [min_lat, stride_lat]: [usize; 2],
    [spatial_ratio, ratio]: [usize; 2],
) -> Result<Tensor> {
    let [_, _, frames, height, width] = dims5(z);
    let out_frames = (frames - 1) * ratio + 1;
    let mut tiles: Vec<Tensor> = Vec::new();
    for (k, i) in (0..frames).step_by(stride_lat).enumerate() {
        let chunk = crop(z, 2, i, min_lat + 1)?;
        let decoded = spatial_or_whole(
            decoder,
            &chunk,
            timesteps,
            plan,
            height,
            width,
            spatial_ratio,
        )?;
        tiles.push(if k > 0 {
            // The reference drops each later tile's last frame.
            let n = decoded.dims()[2].saturating_sub(1);
            crop(&decoded, 2, 0, n)?
        } else {
            decoded
        });
    }

    let blend_frames = t.min_frames - t.stride_frames;
    for k in 1..tiles.len() {
        tiles[k] = blend(&tiles[k - 1], &tiles[k], 2, blend_frames)?;
    }
    let mut pieces = Vec::new();
    let mut at = 0;
    for (k, tile) in tiles.iter().enumerate() {
        let keep = if k == 0 {
            t.stride_frames + 1
        } else {
            t.stride_frames
        };
        let kept = crop(tile, 2, 0, keep)?;
        let n = kept.dims()[2];
        pieces.push((at, kept));
        at += n;
    }
    assemble(pieces, 2, out_frames)
}

/// `blend_v` / `blend_h` / `blend_t` along `dim`: the first `extent` slices
/// of `b` fade in from the last `extent` slices of `a`, with the
/// reference's weights `y / extent` (computed in double, used as f32).
fn blend(a: &Tensor, b: &Tensor, dim: usize, extent: usize) -> Result<Tensor> {
    let (na, nb) = (a.dims()[dim], b.dims()[dim]);
    let extent = extent.min(na).min(nb);
    if extent == 0 {
        return Ok(b.clone());
    }
    let (wa, wb): (Vec<f32>, Vec<f32>) = (0..extent)
        .map(|y| {
            let r = y as f64 / extent as f64;
            ((1.0 - r) as f32, r as f32)
        })
        .unzip();
    let mut ramp_dims = [1usize; 5];
    ramp_dims[dim] = extent;
    let device = b.device();
    let wa = Tensor::from_vec(wa, &ramp_dims, device)?;
    let wb = Tensor::from_vec(wb, &ramp_dims, device)?;
    let faded = a
        .narrow(dim, na - extent, extent)?
        .mul(&wa)?
        .add(&b.narrow(dim, 0, extent)?.mul(&wb)?)?;
    if extent == nb {
        return Ok(faded);
    }
    Ok(Tensor::cat(
        &[&faded, &b.narrow(dim, extent, nb - extent)?],
        dim,
    )?)
}

/// Pastes `(start, piece)` along `dim` into a `total`-long result; pieces
/// come in order without overlapping, are clipped at `total`, and what no
/// piece covers is zero (as in the reference's preallocated output).
fn assemble(pieces: Vec<(usize, Tensor)>, dim: usize, total: usize) -> Result<Tensor> {
    let first = &pieces.first().expect("at least one tile").1;
    let (device, dtype, dims) = (first.device().clone(), first.dtype(), first.dims().to_vec());
    let zeros = |len: usize| -> Result<Tensor> {
        let mut dims = dims.clone();
        dims[dim] = len;
        Ok(Tensor::zeros(&dims, dtype, &device)?)
    };
    let mut parts = Vec::new();
    let mut at = 0;
    for (start, piece) in pieces {
        if start >= total {
            continue;
        }
        if start > at {
            parts.push(zeros(start - at)?);
            at = start;
        }
        // Pieces never overlap: each is cut to its stride before pasting.
        debug_assert!(start >= at, "tile pieces overlap");
        let n = piece.dims()[dim].min(total - start);
        parts.push(piece.narrow(dim, 0, n)?);
        at += n;
    }
    if at < total {
        parts.push(zeros(total - at)?);
    }
    let refs: Vec<&Tensor> = parts.iter().collect();
    Ok(Tensor::cat(&refs, dim)?)
}
