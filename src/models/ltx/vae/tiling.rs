//! Tiled decoding, as diffusers' `AutoencoderKLLTXVideo` does it (`_decode`,
//! `tiled_decode`, `_temporal_tiled_decode`, `blend_v/h/t`): overlapping
//! tiles of latents are decoded one at a time and their overlaps cross-faded
//! linearly, so a long or large shot never holds the whole decoder's
//! activations at once. Tile sizes and strides are in output pixels / frames.

use super::decoder::Decoder;
use super::error::{Result, VaeError};
use crate::backend::Device;
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
///
/// Tiles are blended as they come and each finished piece of the output
/// leaves the device at once (the result of a tiled decode is on the CPU):
/// the device holds the tile being decoded and the neighbours it blends
/// with, never the whole shot, so that tiles bound the decode's memory.
/// The numbers are those of blending after decoding every tile, as the
/// reference does: each blend sees the same operands in the same order.
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
    let host = Device::cpu();
    spatial_or_whole(
        decoder,
        z,
        timesteps,
        &plan,
        [height, width, spatial_ratio],
        &host,
    )
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

/// `crop` copied to `device` (or compacted where it is), so that the tile
/// it was cut from can be freed.
fn keep(t: &Tensor, dim: usize, len: usize, device: &Device) -> Result<Tensor> {
    let piece = crop(t, dim, 0, len)?;
    Ok(if piece.device().same(device) {
        piece.contiguous()?
    } else {
        piece.to_device(device)?
    })
}

fn decode_tile(decoder: &Decoder, z: &Tensor, timesteps: &[f32]) -> Result<Tensor> {
    Ok(decoder.forward(z, timesteps)?.to_dtype(DType::F32)?)
}

/// Spatial tiles when the plan has them and the latents are larger than
/// one, assembled on `out`; else the whole volume, where it was decoded.
fn spatial_or_whole(
    decoder: &Decoder,
    z: &Tensor,
    timesteps: &[f32],
    plan: &Plan,
    [height, width, spatial_ratio]: [usize; 3],
    out: &Device,
) -> Result<Tensor> {
    match plan.spatial {
        Some((s, lat)) if height > lat[0] || width > lat[1] => {
            spatial_tiled(decoder, z, timesteps, s, lat, spatial_ratio, out)
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
    out: &Device,
) -> Result<Tensor> {
    let [_, _, _, height, width] = dims5(z);
    let blend_h = s.min_height - s.stride_height;
    let blend_w = s.min_width - s.stride_width;
    // Each tile keeps its first stride's worth of rows and columns, pasted
    // at multiples of the stride and clipped to the output, as the reference
    // writes it; a row leaves for `out` once the row below has blended
    // with it.
    let strip = |row: &[Tensor]| -> Result<Tensor> {
        let mut pieces = Vec::new();
        for (j, tile) in row.iter().enumerate() {
            pieces.push((j * s.stride_width, crop(tile, 4, 0, s.stride_width)?));
        }
        let strip = assemble(pieces, 4, width * ratio)?;
        keep(&strip, 3, s.stride_height, out)
    };
    let mut out_rows = Vec::new();
    let mut above: Vec<Tensor> = Vec::new();
    for (i, top) in (0..height).step_by(stride_h).enumerate() {
        // Blend in the reference's order: each tile first with the (already
        // blended) tile above, then with the one to its left.
        let mut row: Vec<Tensor> = Vec::new();
        for (j, left) in (0..width).step_by(stride_w).enumerate() {
            let tile = crop(&crop(z, 3, top, min_h)?, 4, left, min_w)?;
            let mut tile = decode_tile(decoder, &tile, timesteps)?;
            if let Some(up) = above.get(j) {
                tile = blend(up, &tile, 3, blend_h)?;
            }
            if let Some(prev) = row.last() {
                tile = blend(prev, &tile, 4, blend_w)?;
            }
            row.push(tile);
        }
        if i > 0 {
            out_rows.push(((i - 1) * s.stride_height, strip(&above)?));
        }
        above = row;
    }
    let last = out_rows.len();
    out_rows.push((last * s.stride_height, strip(&above)?));
    drop(above);
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
    let blend_frames = t.min_frames - t.stride_frames;
    let host = Device::cpu();
    let device = z.device().clone();
    let mut pieces = Vec::new();
    let mut at = 0;
    // The first tile keeps one frame more than the stride; the previous
    // (blended) tile leaves for the host once the next has blended with it.
    let mut emit = |k: usize, tile: &Tensor| -> Result<()> {
        let n = if k == 0 {
            t.stride_frames + 1
        } else {
            t.stride_frames
        };
        let kept = keep(tile, 2, n, &host)?;
        let n = kept.dims()[2];
        pieces.push((at, kept));
        at += n;
        Ok(())
    };
    let mut previous: Option<Tensor> = None;
    let mut count = 0;
    for (k, i) in (0..frames).step_by(stride_lat).enumerate() {
        let chunk = crop(z, 2, i, min_lat + 1)?;
        // A chunk's spatial tiles stay on the device: it blends with the
        // chunk before it there.
        let decoded = spatial_or_whole(
            decoder,
            &chunk,
            timesteps,
            plan,
            [height, width, spatial_ratio],
            &device,
        )?;
        let tile = if k > 0 {
            // The reference drops each later tile's last frame.
            let n = decoded.dims()[2].saturating_sub(1);
            crop(&decoded, 2, 0, n)?
        } else {
            decoded
        };
        let tile = match previous.take() {
            Some(before) => {
                let tile = blend(&before, &tile, 2, blend_frames)?;
                emit(k - 1, &before)?;
                tile
            }
            None => tile,
        };
        previous = Some(tile);
        count = k + 1;
    }
    if let Some(last) = previous.take() {
        emit(count - 1, &last)?;
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

/// What one decode costs in device memory, for choosing tiles: the
/// decoder's activations per output voxel of a tile, and the f32 bytes per
/// output voxel of what tiles are blended and assembled in.
#[derive(Clone, Copy, Debug)]
pub struct DecodeCost {
    pub activation_bytes_per_voxel: f64,
    pub output_bytes_per_voxel: f64,
}

/// Tiles a decode may be given, fewest tiles first: whole, then temporal
/// tiles of 64, 32 and 16 frames (each blending 8 with the next, as
/// diffusers' 16 every 8 does), then 16-frame tiles cut spatially into
/// 512, 384 and at the least 256 pixels a side (blending 64).
pub fn tiling_ladder() -> Vec<Tiling> {
    let temporal = |min_frames: usize| TemporalTiling {
        min_frames,
        stride_frames: min_frames - 8,
    };
    let spatial = |side: usize| SpatialTiling {
        min_height: side,
        min_width: side,
        stride_height: side - 64,
        stride_width: side - 64,
    };
    let mut ladder = vec![Tiling::default()];
    for frames in [64, 32, 16] {
        ladder.push(Tiling {
            spatial: None,
            temporal: Some(temporal(frames)),
        });
    }
    for side in [512, 384, 256] {
        ladder.push(Tiling {
            spatial: Some(spatial(side)),
            temporal: Some(temporal(16)),
        });
    }
    ladder
}

/// Device bytes a decode of latents `[frames, height, width]` in `tiling`
/// needs at its peak, estimated: the activations of the largest tile, plus
/// the f32 tiles it blends with and is assembled in (the neighbours of a
/// tile and the temporal chunk being built stay on the device; finished
/// pieces leave it, see [`decode`]).
pub fn decode_bytes(
    cost: &DecodeCost,
    tiling: &Tiling,
    [frames, height, width]: [usize; 3],
    [spatial_ratio, temporal_ratio]: [usize; 2],
) -> f64 {
    let out = [
        (frames - 1) * temporal_ratio + 1,
        height * spatial_ratio,
        width * spatial_ratio,
    ];
    // a temporal chunk: `min_frames / ratio + 1` latent frames
    let chunk_frames = match tiling.temporal {
        Some(t) if frames > t.min_frames / temporal_ratio => {
            (t.min_frames / temporal_ratio) * temporal_ratio + 1
        }
        _ => out[0],
    };
    let tiled = tiling
        .temporal
        .is_some_and(|t| frames > t.min_frames / temporal_ratio);
    let (tile_h, tile_w) = match tiling.spatial {
        Some(s) if height * spatial_ratio > s.min_height || width * spatial_ratio > s.min_width => {
            (s.min_height.min(out[1]), s.min_width.min(out[2]))
        }
        _ => (out[1], out[2]),
    };
    let tile = (chunk_frames * tile_h * tile_w) as f64;
    let chunk = (chunk_frames * out[1] * out[2]) as f64;
    let held = match (tiled, tile_h < out[1] || tile_w < out[2]) {
        // the whole shot's output, and its copy to f32
        (false, false) => 2.0 * chunk,
        // the chunk before (blended), this one, its blend and the copy out
        (true, false) => 4.0 * chunk,
        // the chunk before, two rows of this one's tiles, their strips
        (_, true) => 5.0 * chunk,
    };
    cost.activation_bytes_per_voxel * tile + cost.output_bytes_per_voxel * held
}

/// The first tiling of [`tiling_ladder`] whose decode fits `budget` bytes
/// by [`decode_bytes`]; the last (smallest tiles) when none does.
pub fn tiling_within(
    cost: &DecodeCost,
    budget: f64,
    latent: [usize; 3],
    ratios: [usize; 2],
) -> Tiling {
    let ladder = tiling_ladder();
    let floor = *ladder.last().expect("the ladder has rungs");
    ladder
        .into_iter()
        .find(|t| decode_bytes(cost, t, latent, ratios) <= budget)
        .unwrap_or(floor)
}
