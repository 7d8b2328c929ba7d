//! Parity of the LTX-Video VAE with diffusers on the tiny random-weight
//! fixture (`tools/fixtures/vae.py`): encode, the pipeline's conditioning
//! latents, decode with decode timestep and noise, and the reference's
//! spatial and temporal tiled decodes. Both sides compute in f32; the
//! tolerance allows for different summation orders in the convolutions.

mod vae_common;

use genfx::models::ltx::vae::{DecodeConditioning, SpatialTiling, TemporalTiling, Tiling, Volume};
use vae_common::{assert_close, cases, fixture_vae, tensor, CaseList};

#[test]
fn encode_matches_reference() {
    let vae = fixture_vae();
    let (source, list): (_, CaseList) = cases();
    assert!(!list.encode.is_empty());
    for case in &list.encode {
        let video = tensor(&source, &format!("{}.video", case.name));
        let dist = vae.encode(&video).expect("encode");
        let params = tensor(&source, &format!("{}.params", case.name));
        assert_close(
            dist.parameters(),
            &params,
            &format!("{} posterior parameters", case.name),
        );

        let noise = tensor(&source, &format!("{}.noise", case.name));
        let latents = vae
            .encode_conditioning(&video, &noise)
            .expect("encode_conditioning");
        let expected = tensor(&source, &format!("{}.latents", case.name));
        assert_close(
            &latents,
            &expected,
            &format!("{} normalised latents", case.name),
        );
    }
}

#[test]
fn decode_matches_reference() {
    let vae = fixture_vae();
    let (source, list) = cases();
    assert!(list.decode.len() >= 5);
    for case in &list.decode {
        let z = tensor(&source, &format!("{}.latents", case.name));
        let noise = tensor(&source, &format!("{}.noise", case.name));
        let expected = tensor(&source, &format!("{}.video", case.name));
        let tiling = case.tiling();
        let cond = DecodeConditioning {
            timestep: &case.decode_timestep,
            noise_scale: Some(&case.decode_noise_scale),
            noise: Some(&noise),
        };
        let video = vae.decode_latents(&z, &cond, &tiling).expect("decode");
        assert_close(&video, &expected, &format!("{} video", case.name));
    }
}

/// Tiled decodes are the reference's cross-fades of one-piece decodes:
/// checked against independent whole decodes of the tiles' latents. (How
/// far tiles drift from the whole decode depends on the weights; with random
/// tiny weights the decoder's receptive field spans the whole shot, so only
/// the decomposition is asserted and the drift is printed.)
#[test]
fn tiled_decode_agrees_with_untiled() {
    let vae = fixture_vae();
    let (source, _) = cases();
    let t = [0.05f32];
    let all = (0, usize::MAX);

    // Temporal: 3 latent frames, tiles of 2(+1) latent frames every 1. The
    // first tile is the whole shot, so frames 0..9 are the whole decode and
    // frames 9..17 fade from it into the decode of latent frames 1..3.
    let z = tensor(&source, "dec_f17_ttiled.latents");
    let whole = vae.decode(&z, &t, &Tiling::default()).expect("untiled");
    let temporal = Tiling {
        spatial: None,
        temporal: Some(TemporalTiling {
            min_frames: 16,
            stride_frames: 8,
        }),
    };
    let tiled = vae.decode(&z, &t, &temporal).expect("temporal tiles");
    assert_eq!(tiled.dims(), whole.dims());
    assert_eq!(whole.frames(), 17);
    let second = vae
        .decode(&z.crop((1, 3), all, all), &t, &Tiling::default())
        .expect("second tile");
    let frame = |v: &Volume, f: usize| v.crop((f, f + 1), all, all).into_data();
    assert_eq!(tiled.crop((0, 9), all, all), whole.crop((0, 9), all, all));
    for x in 0..8 {
        let r = x as f32 / 8.0;
        let expect: Vec<f32> = frame(&whole, 9 + x)
            .iter()
            .zip(frame(&second, x))
            .map(|(a, b)| a * (1.0 - r) + b * r)
            .collect();
        let got = frame(&tiled, 9 + x);
        let worst = got
            .iter()
            .zip(&expect)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(worst < 1e-5, "blended frame {} off by {worst}", 9 + x);
    }
    eprintln!(
        "temporal tiles vs whole decode: relative max difference {:.2e}",
        vae_common::relative_error(&tiled, &whole)
    );

    // Spatial: 3x3 latents, tiles of 2x2 latents every 1 (64-pixel tiles,
    // 32-pixel blends). The top-left 32x32 pixels come from the first tile
    // alone; the pixels right of them fade from it into the next tile.
    let z = tensor(&source, "dec_s3x3_stiled.latents");
    let whole = vae.decode(&z, &t, &Tiling::default()).expect("untiled");
    let spatial = Tiling {
        spatial: Some(SpatialTiling {
            min_height: 64,
            min_width: 64,
            stride_height: 32,
            stride_width: 32,
        }),
        temporal: None,
    };
    let tiled = vae.decode(&z, &t, &spatial).expect("spatial tiles");
    assert_eq!(tiled.dims(), whole.dims());
    let tile00 = vae
        .decode(&z.crop(all, (0, 2), (0, 2)), &t, &Tiling::default())
        .expect("tile 0,0");
    let tile01 = vae
        .decode(&z.crop(all, (0, 2), (1, 3)), &t, &Tiling::default())
        .expect("tile 0,1");
    assert_eq!(
        tiled.crop(all, (0, 32), (0, 32)),
        tile00.crop(all, (0, 32), (0, 32))
    );
    let [_, _, _, _, w] = tiled.dims();
    for y in 0..32 {
        for x in 0..32 {
            let r = x as f32 / 32.0;
            for c in 0..3 {
                let at = |v: &Volume, xx: usize| {
                    let [_, _, _, hh, ww] = v.dims();
                    v.data()[(c * hh + y) * ww + xx]
                };
                let expect = at(&tile00, 32 + x) * (1.0 - r) + at(&tile01, x) * r;
                let got = tiled.data()[(c * 96 + y) * w + 32 + x];
                assert!(
                    (got - expect).abs() < 1e-5,
                    "pixel ({y}, {}) channel {c}",
                    32 + x
                );
            }
        }
    }
    eprintln!(
        "spatial tiles vs whole decode: relative max difference {:.2e}",
        vae_common::relative_error(&tiled, &whole)
    );

    // Tiles as large as the shot decode it in one piece.
    let huge = Tiling {
        spatial: Some(SpatialTiling {
            min_height: 96,
            min_width: 96,
            stride_height: 64,
            stride_width: 64,
        }),
        temporal: Some(TemporalTiling {
            min_frames: 16,
            stride_frames: 8,
        }),
    };
    assert_eq!(vae.decode(&z, &t, &huge).expect("one tile"), whole);
}
