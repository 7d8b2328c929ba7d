//! Parity of the latent upsampler with diffusers on the tiny random-weight
//! fixture (`tools/fixtures/upsampler.py`): every configuration the
//! reference builds (3-D spatial as published, 2-D per frame,
//! spatio-temporal, temporal), read from LTX-Video's single-file layout
//! (config in the safetensors metadata), the raw model and
//! `LTXLatentUpsamplePipeline`'s normalise / AdaIN / tone-map step. Both
//! sides compute in f32; the tolerance is the VAE's (1e-4 of the largest
//! reference value), for convolution sums taken in another order.
//! Also the messages for files that are not an upsampler.

mod upsampler_common;

use genfx::backend::Device;
use genfx::models::ltx::latent_upsampler::{LatentUpsampler, UpsamplerConfig};
use genfx::pipeline::upsample::{upsample_latents, DeviceUpscaler, LatentUpscaler};
use genfx::tensor::DType;
use genfx::testing::{assert_close, fixtures_dir, max_abs_err};
use upsampler_common::{cases, denormalize, dims4, dir, statistics, tensor};

/// Relative to max(1, max|reference|), as the VAE's parity tests.
const TOL: f32 = 1e-4;

#[test]
fn every_configuration_matches_the_reference() {
    let cases = cases();
    let stats = statistics();
    assert_eq!(cases.variants.len(), 4);
    for name in &cases.variants {
        let path = dir().join(name).join("upscaler.safetensors");
        let upscaler = DeviceUpscaler::load(&path, &Device::cpu(), DType::F32).expect(name);
        let expected_config = &cases.doc["variants"][name]["config"];
        let config = upscaler.model().config();
        assert_eq!(
            config.dims as u64,
            expected_config["dims"].as_u64().unwrap()
        );
        let (dims, input) = tensor(&cases.files, &format!("{name}.input"));
        let dims = dims4(&dims);

        let (raw_dims, raw_expected) = tensor(&cases.files, &format!("{name}.raw"));
        let (raw, got_dims) = upscaler
            .upscale(&denormalize(&input, &stats), dims)
            .expect("upscale");
        assert_eq!(got_dims, dims4(&raw_dims), "{name}");
        let (err, scale) = max_abs_err(&raw, &raw_expected);
        println!("{name} raw: max abs err {err:.2e} (scale {scale:.2})");
        assert_close(&format!("{name} raw"), &raw, &raw_expected, TOL);

        for (setting, settings) in &cases.settings {
            let (_, expected) = tensor(&cases.files, &format!("{name}.{setting}"));
            let (out, _) =
                upsample_latents(&upscaler, &stats, &input, dims, *settings).expect("upsample");
            let (err, scale) = max_abs_err(&out, &expected);
            println!("{name} {setting}: max abs err {err:.2e} (scale {scale:.2})");
            assert_close(&format!("{name} {setting}"), &out, &expected, TOL);
        }
    }
}

#[test]
fn the_diffusers_folder_and_the_single_file_agree() {
    let folder = fixtures_dir()
        .join("upsampler")
        .join("two_pass")
        .join("model")
        .join("latent_upsampler");
    let model = LatentUpsampler::load(&folder, &Device::cpu(), DType::F32).expect("folder");
    let expected = UpsamplerConfig {
        in_channels: 8,
        mid_channels: 32,
        num_blocks_per_stage: 1,
        dims: 3,
        spatial_upsample: true,
        temporal_upsample: false,
    };
    assert_eq!(*model.config(), expected);
    // The folder's weights file alone has no config in its metadata: the
    // config its shapes imply is the same.
    let file = folder.join("diffusion_pytorch_model.safetensors");
    let alone = LatentUpsampler::load(&file, &Device::cpu(), DType::F32).expect("file alone");
    assert_eq!(*alone.config(), expected);
    // And so for every fixture configuration, against its metadata.
    for name in cases().variants {
        let path = dir().join(&name).join("upscaler.safetensors");
        let files = genfx::weights::WeightFiles::open_file(&path).unwrap();
        let implied =
            UpsamplerConfig::from_shapes(&path, |n| files.shape(n).map(<[usize]>::to_vec)).unwrap();
        let stated = UpsamplerConfig::from_safetensors_metadata(&path)
            .unwrap()
            .unwrap();
        assert_eq!(implied, stated, "{name}");
    }
}

fn load_error(path: &std::path::Path) -> String {
    match LatentUpsampler::load(path, &Device::cpu(), DType::F32) {
        Ok(_) => panic!("{} loaded as an upsampler", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn files_that_are_not_an_upsampler_are_named() {
    let tmp = std::env::temp_dir().join(format!("genfx-upsampler-bad-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();

    // A safetensors file without the config metadata or an upsampler's
    // tensors (the VAE's weights).
    let vae = fixtures_dir()
        .join("pipeline")
        .join("model")
        .join("vae")
        .join("diffusion_pytorch_model.safetensors");
    let msg = load_error(&vae);
    println!("no metadata: {msg}");
    assert!(msg.contains("neither a `config` entry"), "{msg}");

    // A folder whose config is another model's.
    let other = tmp.join("vae_as_upsampler");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(vae.with_file_name("config.json"), other.join("config.json")).unwrap();
    let msg = load_error(&other);
    println!("wrong class: {msg}");
    assert!(msg.contains("AutoencoderKLLTXVideo"), "{msg}");

    // A truncated file.
    let good = dir().join("spatial3d").join("upscaler.safetensors");
    let bytes = std::fs::read(&good).unwrap();
    let cut = tmp.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let msg = load_error(&cut);
    println!("truncated: {msg}");
    assert!(msg.contains("cut.safetensors"), "{msg}");

    // Weights of another configuration under this config (a file whose
    // metadata lies about its tensors).
    let wrong = tmp.join("wrong.safetensors");
    let other_file = dir().join("spatial2d").join("upscaler.safetensors");
    std::fs::copy(&other_file, &wrong).unwrap();
    let mut data = std::fs::read(&wrong).unwrap();
    let header = String::from_utf8_lossy(&data[8..]).into_owned();
    // The config is a JSON string inside the JSON header: its quotes are
    // escaped. One digit changes, so the header keeps its length.
    let key = "dims\\\": ";
    let at = header.find(key).expect("dims in the metadata") + key.len();
    assert_eq!(data[8 + at], b'2');
    data[8 + at] = b'3';
    std::fs::write(&wrong, &data).unwrap();
    let msg = load_error(&wrong);
    println!("wrong shapes: {msg}");
    assert!(msg.contains("shape"), "{msg}");

    std::fs::remove_dir_all(&tmp).unwrap();
}
