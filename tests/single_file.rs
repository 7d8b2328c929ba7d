//! Single-file LTX-Video checkpoints (tests/fixtures/single_file, made by
//! tools/fixtures/single_file.py from the pipeline fixture's weights): the
//! configs in the metadata read in our terms, every tensor read under our
//! name equal to the diffusers folder's, the variant told from the metadata,
//! the text encoder found beside the file, and each bad file refused with a
//! message that says what is wrong and what to do.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use genfx::backend::Device;
use genfx::models::ltx::transformer::TransformerConfig;
use genfx::models::ltx::vae::VaeConfig;
use genfx::pipeline::model_folder::{ModelFolder, ModelFolderError, Variant};
use genfx::pipeline::single_file::{configs, Checkpoint, CheckpointError};
use genfx::sampler::schedule::SchedulerConfig;
use genfx::tensor::DType;
use genfx::testing::fixtures_dir;
use genfx::weights::WeightFiles;
use safetensors::tensor::TensorView;
use safetensors::SafeTensors;
use serde_json::{json, Value};

fn fixture() -> PathBuf {
    fixtures_dir()
        .join("single_file")
        .join("ltxv-tiny.safetensors")
}

fn folder_model() -> PathBuf {
    fixtures_dir().join("pipeline").join("model")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures_dir().join("single_file/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A fresh folder under the system's temporary folder.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "genfx-single-file-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

/// The fixture's metadata configs.
fn fixture_configs() -> Value {
    let bytes = std::fs::read(fixture()).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    serde_json::from_str(&meta.metadata().as_ref().unwrap()["config"]).unwrap()
}

/// Writes the fixture's tensors that `keep` accepts, with `configs` as the
/// metadata (none when `None`), to `path`.
fn rewrite(path: &Path, configs: Option<&Value>, keep: impl Fn(&str) -> bool) {
    let bytes = std::fs::read(fixture()).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<(String, TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .filter(|(name, _)| keep(name))
        .collect();
    let metadata = configs.map(|c| HashMap::from([("config".to_string(), c.to_string())]));
    safetensors::serialize_to_file(tensors, metadata, path).unwrap();
}

fn open_err(path: &Path) -> CheckpointError {
    Checkpoint::open(path).expect_err("the checkpoint must be refused")
}

#[test]
fn the_configs_in_the_metadata_read_as_the_diffusers_configs_they_stand_for() {
    let ckpt = Checkpoint::open(&fixture()).unwrap();
    let want = expected();
    let transformer: TransformerConfig =
        serde_json::from_value(want["transformer_config"].clone()).unwrap();
    assert_eq!(ckpt.transformer, transformer);
    let vae: VaeConfig = serde_json::from_value(want["vae_config"].clone()).unwrap();
    assert_eq!(format!("{:?}", ckpt.vae), format!("{vae:?}"));
    let scheduler = SchedulerConfig::from_json(&want["scheduler"].to_string()).unwrap();
    assert_eq!(ckpt.scheduler, scheduler);
    assert_eq!(ckpt.variant, Variant::Dev);
    assert_eq!(ckpt.allowed_inference_steps, None);
}

/// The published 0.9.5+ VAE config, as LTX-Video writes it, against the
/// diffusers config of Lightricks/LTX-Video-0.9.5: the tiny fixture has one
/// layer per block and equal multipliers, so it cannot catch an order mixed
/// up between encoder and decoder or between levels.
#[test]
fn the_published_095_vae_config_is_the_diffusers_095_config() {
    let original = json!({
        "_class_name": "CausalVideoAutoencoder", "dims": 3, "in_channels": 3, "out_channels": 3,
        "latent_channels": 128,
        "encoder_blocks": [["res_x", {"num_layers": 4}], ["compress_space_res", {"multiplier": 2}],
            ["res_x", {"num_layers": 6}], ["compress_time_res", {"multiplier": 2}],
            ["res_x", {"num_layers": 6}], ["compress_all_res", {"multiplier": 2}],
            ["res_x", {"num_layers": 2}], ["compress_all_res", {"multiplier": 2}],
            ["res_x", {"num_layers": 2}]],
        "decoder_blocks": [["res_x", {"num_layers": 5, "inject_noise": false}],
            ["compress_all", {"residual": true, "multiplier": 2}],
            ["res_x", {"num_layers": 5, "inject_noise": false}],
            ["compress_all", {"residual": true, "multiplier": 2}],
            ["res_x", {"num_layers": 5, "inject_noise": false}],
            ["compress_all", {"residual": true, "multiplier": 2}],
            ["res_x", {"num_layers": 5, "inject_noise": false}]],
        "scaling_factor": 1.0, "norm_layer": "pixel_norm", "patch_size": 4,
        "latent_log_var": "uniform", "use_quant_conv": false, "causal_decoder": false,
        "timestep_conditioning": true
    });
    let diffusers = json!({
        "in_channels": 3, "out_channels": 3, "latent_channels": 128,
        "block_out_channels": [128, 256, 512, 1024, 2048],
        "down_block_types": ["LTXVideo095DownBlock3D", "LTXVideo095DownBlock3D",
                             "LTXVideo095DownBlock3D", "LTXVideo095DownBlock3D"],
        "decoder_block_out_channels": [256, 512, 1024],
        "layers_per_block": [4, 6, 6, 2, 2],
        "decoder_layers_per_block": [5, 5, 5, 5],
        "spatio_temporal_scaling": [true, true, true, true],
        "decoder_spatio_temporal_scaling": [true, true, true],
        "decoder_inject_noise": [false, false, false, false],
        "downsample_type": ["spatial", "temporal", "spatiotemporal", "spatiotemporal"],
        "upsample_residual": [true, true, true], "upsample_factor": [2, 2, 2],
        "timestep_conditioning": true, "patch_size": 4, "patch_size_t": 1,
        "resnet_norm_eps": 1e-06, "scaling_factor": 1.0, "encoder_causal": true,
        "decoder_causal": false, "spatial_compression_ratio": 32, "temporal_compression_ratio": 8
    });
    let ours = configs::vae(original.as_object().unwrap()).unwrap();
    let want: VaeConfig = serde_json::from_value(diffusers).unwrap();
    assert_eq!(format!("{ours:?}"), format!("{want:?}"));
}

#[test]
fn the_scheduler_without_shifting_is_plain_and_other_shiftings_are_refused() {
    let plain = json!({"_class_name": "RectifiedFlowScheduler", "num_train_timesteps": 1000,
                       "shifting": null, "target_shift_terminal": 0.1, "sampler": "Uniform"});
    assert_eq!(
        configs::scheduler(plain.as_object().unwrap()).unwrap(),
        SchedulerConfig::default()
    );
    let other = json!({"_class_name": "RectifiedFlowScheduler", "shifting": "SimpleDiffusion"});
    let err = configs::scheduler(other.as_object().unwrap()).unwrap_err();
    assert!(err.contains("SimpleDiffusion"), "{err}");
}

/// Every tensor of the diffusers folder, read from the checkpoint under the
/// same name, holds the same values; and the checkpoint has no others.
#[test]
fn every_tensor_reads_as_the_folders() {
    let ckpt = Checkpoint::open(&fixture()).unwrap();
    let model = folder_model();
    let pairs = [
        (
            WeightFiles::open_dir(&model.join("transformer")).unwrap(),
            ckpt.transformer_weights().unwrap(),
        ),
        (
            WeightFiles::open_file(&model.join("vae/diffusion_pytorch_model.safetensors")).unwrap(),
            ckpt.vae_weights().unwrap(),
        ),
    ];
    let counts = expected()["tensors"].clone();
    for ((folder, single), part) in pairs.iter().zip(["transformer", "vae"]) {
        assert_eq!(folder.names(), single.names(), "{part} names");
        assert_eq!(single.names().len() as u64, counts[part].as_u64().unwrap());
        for name in folder.names() {
            let dims = folder.shape(name).unwrap().to_vec();
            let a = folder
                .load(name, &dims, DType::F32, &Device::cpu())
                .unwrap();
            let b = single
                .load(name, &dims, DType::F32, &Device::cpu())
                .unwrap();
            assert_eq!(
                a.to_vec_f32().unwrap(),
                b.to_vec_f32().unwrap(),
                "{part}: {name}"
            );
        }
    }
    // And both build, using every tensor.
    ckpt.load_transformer(DType::F32, &Device::cpu()).unwrap();
    ckpt.load_vae(&Device::cpu(), DType::F32).unwrap();
}

#[test]
fn a_distilled_checkpoint_is_told_by_its_metadata_not_its_name() {
    let s = Scratch::new("variant");
    let mut configs = fixture_configs();
    configs["allowed_inference_steps"] =
        json!([1.0, 0.9937, 0.9875, 0.9812, 0.975, 0.9094, 0.725, 0.4219]);
    // Named like a dev model, distilled by its metadata.
    let path = s.0.join("ltxv-2b-0.9.6-dev-04-25.safetensors");
    rewrite(&path, Some(&configs), |_| true);
    let ckpt = Checkpoint::open(&path).unwrap();
    assert_eq!(ckpt.variant, Variant::Distilled);
    assert_eq!(ckpt.allowed_inference_steps.as_ref().unwrap().len(), 8);
    // And a file named "distilled" without the list is a dev model.
    let dev = s.0.join("ltxv-2b-0.9.8-distilled.safetensors");
    std::fs::copy(fixture(), &dev).unwrap();
    assert_eq!(Checkpoint::open(&dev).unwrap().variant, Variant::Dev);
}

#[test]
fn the_model_parameter_takes_the_checkpoint_with_the_text_encoder_beside_it() {
    let s = Scratch::new("beside");
    let path = s.0.join("ltxv-tiny.safetensors");
    std::fs::copy(fixture(), &path).unwrap();

    // Without T5: what is missing and where to get it.
    let message = ModelFolder::open(&path).unwrap_err().to_string();
    println!("no text encoder:\n{message}");
    for part in [
        "text_encoder",
        "spiece.model",
        "do not contain the T5 text encoder",
        "PixArt-alpha/PixArt-XL-2-1024-MS",
    ] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }

    copy_dir(
        &folder_model().join("text_encoder"),
        &s.0.join("text_encoder"),
    );
    copy_dir(&folder_model().join("tokenizer"), &s.0.join("tokenizer"));
    let model = ModelFolder::open(&path).unwrap();
    assert_eq!(model.root, path);
    assert_eq!(model.text_encoder_root, s.0);
    assert_eq!(model.variant, Variant::Dev);
    assert!(model.checkpoint.is_some());
    assert_eq!(model.scheduler, Checkpoint::open(&path).unwrap().scheduler);

    // A diffusers folder picked through its model_index.json is the folder.
    let index = folder_model().join("model_index.json");
    assert_eq!(ModelFolder::open(&index).unwrap().root, folder_model());
    // Any other file is neither.
    let other = s.0.join("notes.txt");
    std::fs::write(&other, "x").unwrap();
    assert!(matches!(
        ModelFolder::open(&other),
        Err(ModelFolderError::NotAFolder(_))
    ));
}

#[test]
fn a_checkpoint_without_metadata_is_refused_with_what_to_use() {
    let s = Scratch::new("nometa");
    let path = s.0.join("ltxv-2b-0.9.8-distilled.safetensors");
    rewrite(&path, None, |_| true);
    let err = open_err(&path);
    println!("no metadata: {err}");
    assert!(matches!(err, CheckpointError::NoMetadata { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("no LTX-Video configs in its metadata"),
        "{text}"
    );
    assert!(text.contains("Lightricks/LTX-Video"), "{text}");
}

#[test]
fn weights_larger_than_the_config_are_refused_before_loading() {
    // The shape of a 13B transformer in a file whose metadata describes a
    // 2B one, scaled down: the weights are 24 wide with 2 blocks, the
    // config says 12 wide with 1 block.
    let s = Scratch::new("mismatch");
    let mut configs = fixture_configs();
    configs["transformer"]["num_attention_heads"] = json!(1);
    configs["transformer"]["cross_attention_dim"] = json!(12);
    configs["transformer"]["num_layers"] = json!(1);
    let path = s.0.join("ltxv-13b-0.9.8-distilled.safetensors");
    rewrite(&path, Some(&configs), |_| true);
    let err = open_err(&path);
    println!("13B weights, 2B config: {err}");
    assert!(matches!(err, CheckpointError::Mismatch { .. }), "{err:?}");
    let text = err.to_string();
    for part in [
        "patchify_proj.weight",
        "[24, 8]",
        "[12, 8]",
        "13B weights with a 2B config",
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }

    // Same depth and width but another shape deeper in: found as the model
    // is built, naming the stored tensor.
    let mut configs = fixture_configs();
    configs["transformer"]["caption_channels"] = json!(16);
    let path = s.0.join("caption.safetensors");
    rewrite(&path, Some(&configs), |_| true);
    let ckpt = Checkpoint::open(&path).unwrap();
    let err = ckpt
        .load_transformer(DType::F32, &Device::cpu())
        .unwrap_err();
    let text = err.to_string();
    println!("deeper mismatch: {text}");
    assert!(
        text.contains("model.diffusion_model.caption_projection.linear_1.weight"),
        "{text}"
    );
}

#[test]
fn a_checkpoint_without_its_vae_says_what_to_get() {
    let s = Scratch::new("novae");
    // Transformer-only, as GGUF users keep them: the tensors and the config gone.
    let mut configs = fixture_configs();
    configs.as_object_mut().unwrap().remove("vae");
    let path = s.0.join("ltxv-2b-0.9.8-distilled-transformer.safetensors");
    rewrite(&path, Some(&configs), |n| !n.starts_with("vae."));
    let err = open_err(&path);
    println!("no VAE: {err}");
    assert!(matches!(err, CheckpointError::NoVae { .. }), "{err:?}");
    let text = err.to_string();
    for part in [
        "holds no VAE",
        "transformer-only",
        "ltxv-2b-0.9.8-distilled.safetensors",
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    // Tensors gone but the config kept, and a bare transformer without metadata.
    let path = s.0.join("b.safetensors");
    rewrite(&path, Some(&fixture_configs()), |n| !n.starts_with("vae."));
    assert!(matches!(open_err(&path), CheckpointError::NoVae { .. }));
    rewrite(&path, None, |n| !n.starts_with("vae."));
    assert!(matches!(open_err(&path), CheckpointError::NoVae { .. }));
}

#[test]
fn a_truncated_checkpoint_is_refused_as_damaged() {
    let s = Scratch::new("truncated");
    let bytes = std::fs::read(fixture()).unwrap();
    for keep in [bytes.len() - 1, bytes.len() / 2, 100, 4] {
        let path = s.0.join("ltxv-2b-0.9.8-distilled.safetensors");
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let err = open_err(&path);
        if keep == bytes.len() / 2 {
            println!("truncated: {err}");
        }
        assert!(
            matches!(err, CheckpointError::Unreadable { .. }),
            "{keep}: {err:?}"
        );
        assert!(err.to_string().contains("download it again"), "{err}");
        // Through the Model parameter too.
        let text = ModelFolder::open(&path).unwrap_err().to_string();
        assert!(text.contains("damaged or incomplete"), "{text}");
    }
}

#[test]
fn a_vae_older_than_095_is_refused_by_its_config() {
    let s = Scratch::new("old");
    let mut configs = fixture_configs();
    // 0.9.0's VAE: plain compress_all encoder blocks, no decoder timestep.
    configs["vae"] = json!({
        "_class_name": "CausalVideoAutoencoder", "dims": 3, "in_channels": 3, "out_channels": 3,
        "latent_channels": 8,
        "blocks": [["res_x", 4], ["compress_all", 1], ["res_x_y", 1], ["res_x", 3],
                   ["compress_all", 1], ["res_x_y", 1], ["res_x", 3], ["compress_all", 1],
                   ["res_x", 3], ["res_x", 4]],
        "scaling_factor": 1.0, "norm_layer": "pixel_norm", "patch_size": 4,
        "latent_log_var": "uniform", "use_quant_conv": false, "causal_decoder": false,
        "timestep_conditioning": true
    });
    let path = s.0.join("ltx-video-2b-v0.9.safetensors");
    rewrite(&path, Some(&configs), |_| true);
    let err = open_err(&path);
    println!("0.9.0 VAE: {err}");
    assert!(err.to_string().contains("before 0.9.5"), "{err}");
}

/// The disk cache's model identity of a checkpoint covers the file and the
/// text encoder beside it, not the rest of its folder.
#[test]
fn a_checkpoints_identity_is_the_file_and_its_text_encoder() {
    use genfx::pipeline::disk_cache::model_identity;
    let s = Scratch::new("identity");
    let path = s.0.join("ltxv-tiny.safetensors");
    std::fs::copy(fixture(), &path).unwrap();
    copy_dir(
        &folder_model().join("text_encoder"),
        &s.0.join("text_encoder"),
    );
    copy_dir(&folder_model().join("tokenizer"), &s.0.join("tokenizer"));
    let first = model_identity(&path).unwrap();
    // Another checkpoint or notes in the same folder change nothing.
    std::fs::copy(fixture(), s.0.join("other.safetensors")).unwrap();
    std::fs::write(s.0.join("notes.json"), "{}").unwrap();
    assert_eq!(model_identity(&path).unwrap(), first);
    // Another text encoder config does.
    let config = s.0.join("text_encoder/config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}\n")).unwrap();
    let second = model_identity(&path).unwrap();
    assert_ne!(second, first);
    // And so do other weights in the checkpoint.
    let mut configs = fixture_configs();
    configs["allowed_inference_steps"] = json!([1.0]);
    rewrite(&path, Some(&configs), |_| true);
    assert_ne!(model_identity(&path).unwrap(), second);
}
