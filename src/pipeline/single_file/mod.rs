//! LTX-Video single-file checkpoints, read in place: the way Lightricks
//! publishes every 2B release (`ltx-video-2b-v0.9.5.safetensors`,
//! `ltxv-2b-0.9.6-dev-04-25.safetensors`, `ltxv-2b-0.9.8-distilled.safetensors`,
//! ...). One safetensors file holds the transformer under
//! `model.diffusion_model.*` and the VAE under `vae.*`, in the original
//! LTX-Video names, and its configs as JSON in the header's metadata:
//! `{"config": "{\"transformer\": {...}, \"vae\": {...}, \"scheduler\": {...},
//! \"allowed_inference_steps\": [...]}"}` (the last only in distilled models).
//! The T5 text encoder is not inside.
//!
//! Opening reads only the header: configs, names and shapes are checked
//! there, so a file that cannot work is refused with a reason before any
//! weight is read. The weights stay memory-mapped where they are and are
//! read under our names ([`names`]) when a model is built.

pub mod configs;
pub mod names;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::model_folder::Variant;
use crate::backend::Device;
use crate::models::ltx::transformer::TransformerConfig;
use crate::models::ltx::vae::{AutoencoderKLLTXVideo, VaeConfig, VaeError};
use crate::models::ltx::LtxVideoTransformer3DModel;
use crate::sampler::schedule::SchedulerConfig;
use crate::tensor::DType;
use crate::weights::{SafetensorsFile, VarBuilder, WeightError, WeightFiles};

/// The metadata entry holding the configs.
pub const CONFIG_KEY: &str = "config";

/// Where to get a complete checkpoint, for messages.
const GET_ONE: &str = "download a complete 2B checkpoint such as \
                       ltxv-2b-0.9.8-distilled.safetensors from huggingface.co/Lightricks/LTX-Video";

/// Why a file cannot be used as an LTX-Video checkpoint.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: cannot read it as a safetensors file ({reason}); the file is damaged or incomplete (an interrupted download?): download it again")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path} has no LTX-Video configs in its metadata (the \"config\" entry that Lightricks' single-file checkpoints carry), so GenFX cannot tell which model it holds; converted, merged or re-saved files often lose it. Use an original file from huggingface.co/Lightricks/LTX-Video or a diffusers model folder")]
    NoMetadata { path: PathBuf },
    #[error("{path}: its metadata \"config\" cannot be read: {reason}")]
    BadMetadata { path: PathBuf, reason: String },
    #[error("{path} holds no VAE (no vae.* tensors{config}): it is a transformer-only file, as kept beside GGUF models or in ComfyUI's diffusion_models folder. GenFX needs the checkpoint that includes the VAE: {GET_ONE}")]
    NoVae { path: PathBuf, config: &'static str },
    #[error("{path} holds no LTX-Video transformer (no model.diffusion_model.* tensors{config}); {GET_ONE}")]
    NoTransformer { path: PathBuf, config: &'static str },
    #[error("{path}: unsupported {component}: {reason}")]
    Unsupported {
        path: PathBuf,
        component: &'static str,
        reason: String,
    },
    #[error("{path}: the {component} weights do not match the config in the file's metadata: {detail}. The file mixes two models (e.g. 13B weights with a 2B config); download it again or use the matching file")]
    Mismatch {
        path: PathBuf,
        component: &'static str,
        detail: String,
    },
}

/// A checked single-file checkpoint: its configs in our terms and how it is
/// meant to be sampled.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub path: PathBuf,
    pub transformer: TransformerConfig,
    pub vae: VaeConfig,
    pub scheduler: SchedulerConfig,
    /// Distilled when the metadata lists `allowed_inference_steps`.
    pub variant: Variant,
    /// The timesteps (as fractions of 1) a distilled checkpoint was
    /// trained for, as its metadata lists them.
    pub allowed_inference_steps: Option<Vec<f64>>,
}

/// Whether `path` names a file that [`Checkpoint::open`] would try.
pub fn is_checkpoint_path(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
}

fn object<'a>(
    configs: &'a serde_json::Map<String, Value>,
    key: &str,
) -> Option<&'a serde_json::Map<String, Value>> {
    configs.get(key).and_then(Value::as_object)
}

impl Checkpoint {
    /// Reads and checks the header of `path`.
    pub fn open(path: &Path) -> Result<Self, CheckpointError> {
        let path_buf = path.to_path_buf();
        let file = SafetensorsFile::open(path).map_err(|e| CheckpointError::Unreadable {
            path: path_buf.clone(),
            reason: match e {
                WeightError::Corrupt { reason, .. } => reason,
                other => other.to_string(),
            },
        })?;
        let has = |prefix: &str| file.names().any(|n| n.starts_with(prefix));
        let (has_transformer, has_vae) = (has(names::TRANSFORMER_PREFIX), has(names::VAE_PREFIX));
        let Some(text) = file.metadata().get(CONFIG_KEY) else {
            // Say what is missing that matters most to the user.
            return Err(if has_transformer && !has_vae {
                CheckpointError::NoVae {
                    path: path_buf,
                    config: ", and no configs in its metadata",
                }
            } else if !has_transformer {
                CheckpointError::NoTransformer {
                    path: path_buf,
                    config: ", and no configs in its metadata",
                }
            } else {
                CheckpointError::NoMetadata { path: path_buf }
            });
        };
        let bad = |reason: String| CheckpointError::BadMetadata {
            path: path_buf.clone(),
            reason,
        };
        let configs: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let configs = configs
            .as_object()
            .ok_or_else(|| bad("it is not a JSON object".into()))?;
        let unsupported = |component: &'static str, reason: String| CheckpointError::Unsupported {
            path: path_buf.clone(),
            component,
            reason,
        };
        if !has_transformer {
            return Err(CheckpointError::NoTransformer {
                path: path_buf,
                config: "",
            });
        }
        if !has_vae || object(configs, "vae").is_none() {
            return Err(CheckpointError::NoVae {
                path: path_buf,
                config: if has_vae { " config" } else { "" },
            });
        }
        let transformer = object(configs, "transformer")
            .ok_or_else(|| bad("it has no \"transformer\" entry".into()))
            .and_then(|o| configs::transformer(o).map_err(|r| unsupported("transformer", r)))?;
        transformer
            .validate(path)
            .map_err(|e| unsupported("transformer", e.to_string()))?;
        let vae = object(configs, "vae")
            .ok_or_else(|| bad("it has no \"vae\" entry".into()))
            .and_then(|o| configs::vae(o).map_err(|r| unsupported("VAE", r)))?;
        vae.validate()
            .map_err(|e| unsupported("VAE", e.to_string()))?;
        let scheduler = match object(configs, "scheduler") {
            Some(o) => configs::scheduler(o).map_err(|r| unsupported("scheduler", r))?,
            // LTX-Video's own default when a file says nothing.
            None => SchedulerConfig::default(),
        };
        let allowed_inference_steps = match configs.get("allowed_inference_steps") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|v| {
                        v.as_f64().ok_or_else(|| {
                            bad(format!("allowed_inference_steps holds {v}, not a number"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(other) => {
                return Err(bad(format!(
                    "allowed_inference_steps is {other}, not a list"
                )))
            }
        };
        let checkpoint = Self {
            path: path_buf,
            variant: if allowed_inference_steps.is_some() {
                Variant::Distilled
            } else {
                Variant::Dev
            },
            allowed_inference_steps,
            transformer,
            vae,
            scheduler,
        };
        checkpoint.check_shapes(&file)?;
        Ok(checkpoint)
    }

    /// The shapes that say which model the weights are, against the
    /// configs: width and input of the transformer, its depth, and the VAE's
    /// latent channels. Every other shape is checked as the model is built.
    fn check_shapes(&self, file: &SafetensorsFile) -> Result<(), CheckpointError> {
        let t = &self.transformer;
        let mismatch = |component, detail| CheckpointError::Mismatch {
            path: self.path.clone(),
            component,
            detail,
        };
        let describe = format!(
            "the config says {} blocks {} wide",
            t.num_layers,
            t.inner_dim()
        );
        let proj = "model.diffusion_model.patchify_proj.weight";
        let want = [t.inner_dim(), t.in_channels];
        match file.shape(proj) {
            Some(s) if s == want => {}
            Some(s) => {
                return Err(mismatch(
                    "transformer",
                    format!("{proj} is {s:?}, {describe} ({want:?})"),
                ))
            }
            None => return Err(mismatch("transformer", format!("{proj} is missing"))),
        }
        let blocks = file
            .names()
            .filter_map(|n| n.strip_prefix("model.diffusion_model.transformer_blocks."))
            .filter_map(|rest| rest.split('.').next()?.parse::<usize>().ok())
            .max()
            .map_or(0, |m| m + 1);
        if blocks != t.num_layers {
            return Err(mismatch(
                "transformer",
                format!("the file has {blocks} transformer blocks, {describe}"),
            ));
        }
        let stats = "vae.per_channel_statistics.std-of-means";
        let c = self.vae.latent_channels;
        match file.shape(stats) {
            Some([n]) if *n == c => Ok(()),
            Some(s) => Err(mismatch(
                "VAE",
                format!("{stats} is {s:?}, the config says {c} latent channels"),
            )),
            None => Err(mismatch(
                "VAE",
                format!("{stats} (the latent statistics) is missing"),
            )),
        }
    }

    /// The transformer's tensors under our names.
    pub fn transformer_weights(&self) -> Result<WeightFiles, WeightError> {
        WeightFiles::open_renamed(&self.path, names::transformer)
    }

    /// The VAE's tensors under our names.
    pub fn vae_weights(&self) -> Result<WeightFiles, WeightError> {
        WeightFiles::open_renamed(&self.path, names::vae)
    }

    /// Builds the transformer on `device` in `dtype`; every tensor of the
    /// file's transformer must be used.
    pub fn load_transformer(
        &self,
        dtype: DType,
        device: &Device,
    ) -> Result<LtxVideoTransformer3DModel, WeightError> {
        let files = Arc::new(self.transformer_weights()?);
        let model = LtxVideoTransformer3DModel::new(
            self.transformer.clone(),
            &VarBuilder::new(files.clone(), dtype, device),
        )?;
        files.check_all_used()?;
        Ok(model)
    }

    /// Builds the VAE on `device` in `dtype`; every tensor of the file's VAE
    /// (but the statistics diffusers drops too) must be used.
    pub fn load_vae(
        &self,
        device: &Device,
        dtype: DType,
    ) -> Result<AutoencoderKLLTXVideo, VaeError> {
        let files = self.vae_weights()?;
        let vae = AutoencoderKLLTXVideo::from_source_on(self.vae.clone(), &files, device, dtype)?;
        files.check_all_used()?;
        Ok(vae)
    }
}

/// The seam where the text encoder is found for a model: a folder holding
/// `text_encoder/` (config.json and safetensors weights) and
/// `tokenizer/spiece.model`. For a diffusers model folder that is the folder
/// itself; for a single-file checkpoint, the folder the file is in (the
/// checkpoints do not contain T5).
pub fn text_encoder_root(model: &Path) -> PathBuf {
    if model.is_file() {
        model
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    } else {
        model.to_path_buf()
    }
}

/// What to tell a user whose single-file checkpoint has no text encoder
/// beside it: what to get and where to put it.
pub fn missing_text_encoder_help(checkpoint: &Path) -> String {
    let dir = text_encoder_root(checkpoint);
    format!(
        "LTX-Video checkpoints do not contain the T5 text encoder. Put it beside the checkpoint: \
         the text_encoder/ folder (config.json and model-*.safetensors with its index) of \
         huggingface.co/PixArt-alpha/PixArt-XL-2-1024-MS as {}, and its tokenizer/ folder \
         (spiece.model) as {}",
        dir.join("text_encoder").display(),
        dir.join("tokenizer").display()
    )
}
