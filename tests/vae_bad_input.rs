//! Bad input to the VAE gets a typed error, never a panic: clips of the wrong
//! size, frame count or channel count, missing or mismatched latent
//! statistics, broken configs and weights, and bad decode conditioning.

mod vae_common;

use std::collections::HashMap;

use genfx::models::ltx::vae::{
    AutoencoderKLLTXVideo, DecodeConditioning, ShapedTensor, SpatialTiling, TemporalTiling,
    TensorSource, Tiling, VaeConfig, VaeError, Volume,
};
use genfx::weights::{WeightError, WeightFiles};
use vae_common::{fixture_dir, fixture_vae};

fn video(dims: [usize; 5]) -> Volume {
    let n = dims.iter().product::<usize>();
    Volume::new(dims, (0..n).map(|i| ((i % 7) as f32 - 3.0) / 3.0).collect()).expect("consistent")
}

fn config() -> VaeConfig {
    let text = std::fs::read_to_string(fixture_dir().join("config.json")).expect("config");
    VaeConfig::from_json(&text, "config.json").expect("parses")
}

/// A tensor name and what to serve for it (`None`: absent).
type Override = (&'static str, Option<ShapedTensor>);

/// The fixture's weights with some tensors replaced or removed.
struct Patched {
    base: WeightFiles,
    overrides: HashMap<&'static str, Option<ShapedTensor>>,
}

impl Patched {
    fn new(overrides: Vec<Override>) -> Self {
        Self {
            base: WeightFiles::open_file(
                &fixture_dir().join("diffusion_pytorch_model.safetensors"),
            )
            .expect("weights"),
            overrides: overrides.into_iter().collect(),
        }
    }
}

impl TensorSource for Patched {
    fn fetch(&self, name: &str) -> genfx::models::ltx::vae::Result<Option<ShapedTensor>> {
        match self.overrides.get(name) {
            Some(v) => Ok(v.clone()),
            None => self.base.fetch(name),
        }
    }
}

fn input_error<T>(r: Result<T, VaeError>, needle: &str) {
    match r {
        Err(VaeError::Input(m)) => assert!(m.contains(needle), "message `{m}` lacks `{needle}`"),
        Err(e) => panic!("expected an input error about {needle}, got {e}"),
        Ok(_) => panic!("expected an input error about {needle}, got success"),
    }
}

#[test]
fn clips_of_wrong_shape_are_rejected() {
    let vae = fixture_vae();
    input_error(vae.encode(&video([1, 3, 8, 32, 32])), "8k+1");
    input_error(vae.encode(&video([1, 3, 10, 32, 32])), "8k+1");
    input_error(vae.encode(&video([1, 3, 0, 32, 32])), "8k+1");
    input_error(vae.encode(&video([1, 3, 1, 48, 32])), "multiples of 32");
    input_error(vae.encode(&video([1, 3, 1, 32, 40])), "multiples of 32");
    input_error(vae.encode(&video([1, 3, 1, 0, 32])), "multiples of 32");
    input_error(vae.encode(&video([1, 4, 1, 32, 32])), "channels");
    input_error(vae.encode(&video([1, 1, 1, 32, 32])), "channels");
    input_error(vae.encode(&video([0, 3, 1, 32, 32])), "empty batch");
    input_error(vae.latent_size(16, 64, 64), "8k+1");
    assert_eq!(vae.latent_size(17, 64, 96).expect("valid"), [3, 2, 3]);

    let mut nan = video([1, 3, 1, 32, 32]);
    nan.data_mut()[5] = f32::NAN;
    input_error(vae.encode(&nan), "NaN");

    input_error(Volume::new([1, 3, 1, 32, 32], vec![0.0; 10]), "do not fill");
    let device = genfx::backend::Device::cpu();
    let clip = video([1, 3, 1, 2, 2]);
    assert_eq!(
        Volume::from_tensor(&clip.to_tensor(&device).expect("tensor")).expect("volume"),
        clip
    );
    let flat = genfx::tensor::Tensor::from_slice(&[0.0; 12], &[3, 2, 2], &device).expect("tensor");
    input_error(
        Volume::from_tensor(&flat),
        "[batch, channels, frames, height, width]",
    );
    input_error(Volume::new([usize::MAX, 2, 1, 1, 1], vec![]), "do not fill");
}

fn cond<'a>(
    timestep: &'a [f32],
    noise_scale: Option<&'a [f32]>,
    noise: Option<&'a Volume>,
) -> DecodeConditioning<'a> {
    DecodeConditioning {
        timestep,
        noise_scale,
        noise,
    }
}

#[test]
fn bad_latents_and_decode_conditioning_are_rejected() {
    let vae = fixture_vae();
    let z = video([1, 8, 2, 1, 1]);
    let noise = video([1, 8, 2, 1, 1]);
    let none = Tiling::default();
    input_error(
        vae.decode(&video([1, 4, 2, 1, 1]), &[0.05], &none),
        "channels",
    );
    input_error(vae.decode(&video([1, 8, 0, 1, 1]), &[0.05], &none), "empty");
    input_error(vae.decode(&z, &[], &none), "timestep");
    input_error(vae.decode(&z, &[0.1, 0.2], &none), "batch of 1");

    let wrong = video([1, 8, 1, 1, 1]);
    input_error(
        vae.decode_latents(&z, &cond(&[0.05], None, None), &none),
        "no noise",
    );
    input_error(
        vae.decode_latents(&z, &cond(&[0.05], None, Some(&wrong)), &none),
        "decode noise has shape",
    );
    input_error(
        vae.decode_latents(
            &z,
            &cond(&[0.05], Some(&[0.1, 0.2, 0.3]), Some(&noise)),
            &none,
        ),
        "noise scale",
    );
    input_error(
        vae.decode_latents(&z, &cond(&[], None, Some(&noise)), &none),
        "timestep",
    );
    // Zero noise scale needs no noise.
    assert!(vae
        .decode_latents(&z, &cond(&[0.05], Some(&[0.0]), None), &none)
        .is_ok());

    let dist = vae.encode(&video([1, 3, 1, 32, 32])).expect("encode");
    input_error(dist.sample(&video([1, 8, 2, 1, 1])), "posterior noise");
    let mut wrong_latents = video([1, 3, 1, 1, 1]);
    input_error(vae.normalize_latents(&mut wrong_latents, 1.0), "channels");

    for bad in [
        SpatialTiling {
            min_height: 64,
            min_width: 64,
            stride_height: 16,
            stride_width: 32,
        },
        SpatialTiling {
            min_height: 32,
            min_width: 32,
            stride_height: 64,
            stride_width: 64,
        },
    ] {
        let tiling = Tiling {
            spatial: Some(bad),
            temporal: None,
        };
        assert!(matches!(
            vae.decode(&z, &[0.05], &tiling),
            Err(VaeError::Tiling(_))
        ));
    }
    let tiling = Tiling {
        spatial: None,
        temporal: Some(TemporalTiling {
            min_frames: 16,
            stride_frames: 4,
        }),
    };
    assert!(matches!(
        vae.decode(&z, &[0.05], &tiling),
        Err(VaeError::Tiling(_))
    ));
}

#[test]
fn missing_or_mismatched_statistics_are_rejected() {
    let stats_error =
        |overrides: Vec<Override>, needle: &str| match AutoencoderKLLTXVideo::from_source(
            config(),
            &Patched::new(overrides),
        ) {
            Err(VaeError::Statistics(m)) => {
                assert!(m.contains(needle), "message `{m}` lacks `{needle}`")
            }
            Err(e) => panic!("expected a statistics error, got {e}"),
            Ok(_) => panic!("expected a statistics error, got a model"),
        };
    stats_error(vec![("latents_mean", None)], "latents_mean` is missing");
    stats_error(vec![("latents_std", None)], "latents_std` is missing");
    stats_error(
        vec![("latents_mean", Some((vec![7], vec![0.0; 7])))],
        "8 latent channels",
    );
    stats_error(
        vec![("latents_std", Some((vec![128], vec![1.0; 128])))],
        "8 latent channels",
    );
    stats_error(
        vec![("latents_std", Some((vec![8], vec![0.0; 8])))],
        "positive",
    );
    stats_error(
        vec![("latents_std", Some((vec![8], vec![-1.0; 8])))],
        "positive",
    );
    stats_error(
        vec![("latents_mean", Some((vec![8], vec![f32::NAN; 8])))],
        "NaN",
    );

    let mut vae = fixture_vae();
    assert!(matches!(
        vae.set_statistics(vec![0.0; 3], vec![1.0; 8]),
        Err(VaeError::Statistics(_))
    ));
    let mut cfg = config();
    cfg.scaling_factor = 0.0;
    assert!(matches!(
        AutoencoderKLLTXVideo::from_source(cfg, &Patched::new(vec![])),
        Err(VaeError::Statistics(_))
    ));
}

#[test]
fn broken_configs_and_weights_are_rejected() {
    // The 0.9.0 layout (strided-conv down blocks) is not the 0.9.5+ one.
    let old = VaeConfig::from_json("{}", "config.json").expect("defaults parse");
    assert!(matches!(
        AutoencoderKLLTXVideo::from_source(old, &Patched::new(vec![])),
        Err(VaeError::UnsupportedConfig(_))
    ));
    let mut cfg = config();
    cfg.decoder_inject_noise[1] = true;
    assert!(matches!(
        AutoencoderKLLTXVideo::from_source(cfg, &Patched::new(vec![])),
        Err(VaeError::UnsupportedConfig(_))
    ));
    let mut cfg = config();
    cfg.spatial_compression_ratio = Some(16);
    assert!(matches!(
        AutoencoderKLLTXVideo::from_source(cfg, &Patched::new(vec![])),
        Err(VaeError::UnsupportedConfig(_))
    ));
    let mut cfg = config();
    cfg.block_out_channels.pop();
    assert!(matches!(
        AutoencoderKLLTXVideo::from_source(cfg, &Patched::new(vec![])),
        Err(VaeError::UnsupportedConfig(_))
    ));
    let mut cfg = config();
    cfg.decoder_block_out_channels = vec![4, 4, 16];
    assert!(matches!(
        AutoencoderKLLTXVideo::from_source(cfg, &Patched::new(vec![])),
        Err(VaeError::UnsupportedConfig(_))
    ));
    // A zero anywhere in the channel lists is refused by name, never a
    // division by zero (issue 15: entries 1-4 of block_out_channels
    // panicked; entry 0 was already checked).
    for i in 0..config().block_out_channels.len() {
        let mut cfg = config();
        cfg.block_out_channels[i] = 0;
        match AutoencoderKLLTXVideo::from_source(cfg, &Patched::new(vec![])) {
            Err(VaeError::UnsupportedConfig(m)) => {
                assert!(m.contains(&format!("block_out_channels[{i}] is 0")), "{m}")
            }
            Err(e) => panic!("block_out_channels[{i}] = 0: expected a config error, got {e}"),
            Ok(_) => panic!("block_out_channels[{i}] = 0 was accepted"),
        }
    }
    for i in 0..config().decoder_block_out_channels.len() {
        let mut cfg = config();
        cfg.decoder_block_out_channels[i] = 0;
        assert!(matches!(
            AutoencoderKLLTXVideo::from_source(cfg, &Patched::new(vec![])),
            Err(VaeError::UnsupportedConfig(m)) if m.contains("decoder_block_out_channels")
        ));
    }
    assert!(matches!(
        VaeConfig::from_json("{\"latent_channels\": \"many\"}", "config.json"),
        Err(VaeError::ConfigParse { .. })
    ));

    let name = "decoder.up_blocks.1.resnets.0.conv2.conv.weight";
    match AutoencoderKLLTXVideo::from_source(config(), &Patched::new(vec![(name, None)])) {
        Err(VaeError::MissingWeight(n)) => assert_eq!(n, name),
        Err(e) => panic!("expected a missing weight, got {e}"),
        Ok(_) => panic!("expected a missing weight, got a model"),
    }
    let bad_shape = Patched::new(vec![(name, Some((vec![4, 4, 3, 3], vec![0.0; 144])))]);
    assert!(matches!(
        AutoencoderKLLTXVideo::from_source(config(), &bad_shape),
        Err(VaeError::WeightShape { .. })
    ));
    // A folder whose weights file is garbage, or holds tensors this layout
    // does not have (0.9.1's decoder noise scales).
    let dir = std::env::temp_dir().join(format!("genfx-vae-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::copy(fixture_dir().join("config.json"), dir.join("config.json")).expect("copy config");
    let weights = dir.join("diffusion_pytorch_model.safetensors");
    std::fs::write(&weights, b"not a safetensors file").expect("write");
    assert!(matches!(
        AutoencoderKLLTXVideo::load(&dir),
        Err(VaeError::Weights(WeightError::Corrupt { .. }))
    ));
    let original =
        std::fs::read(fixture_dir().join("diffusion_pytorch_model.safetensors")).expect("read");
    let parsed = safetensors::SafeTensors::deserialize(&original).expect("fixture parses");
    let extra = vec![0u8; 4 * 16];
    let mut tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> =
        parsed.tensors().into_iter().collect();
    tensors.push((
        "decoder.mid_block.resnets.0.per_channel_scale1".into(),
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![16, 1, 1], &extra)
            .expect("view"),
    ));
    safetensors::serialize_to_file(tensors, None, &weights).expect("write weights");
    match AutoencoderKLLTXVideo::load(&dir) {
        Err(VaeError::Weights(WeightError::UnexpectedTensors { examples, .. })) => {
            assert!(examples[0].contains("per_channel_scale1"))
        }
        Err(e) => panic!("expected unexpected tensors, got {e}"),
        Ok(_) => panic!("expected unexpected tensors, got a model"),
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(matches!(
        AutoencoderKLLTXVideo::load(&fixture_dir().join("no-such-folder")),
        Err(VaeError::Io { .. })
    ));
}
