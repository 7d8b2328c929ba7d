//! `transformer/config.json` of a diffusers LTX-Video checkpoint.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::weights::{parse_config, read_config, WeightError};

pub const CLASS_NAME: &str = "LTXVideoTransformer3DModel";

/// Every field of `LTXVideoTransformer3DModel.__init__`. All are required:
/// a checkpoint written by diffusers has them all, and guessing a default
/// for a missing one would silently build another model.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct TransformerConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub patch_size: usize,
    pub patch_size_t: usize,
    pub num_attention_heads: usize,
    pub attention_head_dim: usize,
    pub cross_attention_dim: usize,
    pub num_layers: usize,
    pub activation_fn: String,
    pub qk_norm: String,
    pub norm_elementwise_affine: bool,
    pub norm_eps: f64,
    pub caption_channels: usize,
    pub attention_bias: bool,
    pub attention_out_bias: bool,
    /// diffusers bookkeeping (`_class_name`, `_diffusers_version`, ...);
    /// any other key is an unknown field.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl TransformerConfig {
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, WeightError> {
        let config: Self = read_config(path)?;
        config.validate(path)?;
        Ok(config)
    }

    /// Parses and validates the text of a `config.json` (`path` names it in
    /// errors).
    pub fn from_json(text: &str, path: &Path) -> Result<Self, WeightError> {
        let config: Self = parse_config(text, path)?;
        config.validate(path)?;
        Ok(config)
    }

    /// Rejects unknown fields, another architecture, and variants this
    /// implementation does not build.
    pub fn validate(&self, path: &Path) -> Result<(), WeightError> {
        let bad = |reason: String| WeightError::Config {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(class) = self.extra.get("_class_name") {
            let class = class.as_str().unwrap_or_default();
            if class != CLASS_NAME {
                return Err(WeightError::WrongArchitecture {
                    path: path.to_path_buf(),
                    expected: CLASS_NAME.into(),
                    found: class.into(),
                });
            }
        }
        if let Some(unknown) = self.extra.keys().find(|k| !k.starts_with('_')) {
            return Err(bad(format!("unknown field `{unknown}`")));
        }
        if self.patch_size != 1 || self.patch_size_t != 1 {
            return Err(bad(format!(
                "patch sizes {}x{} are not supported (LTX-Video uses 1x1)",
                self.patch_size_t, self.patch_size
            )));
        }
        if self.activation_fn != "gelu-approximate" {
            return Err(bad(format!(
                "activation_fn `{}` is not supported",
                self.activation_fn
            )));
        }
        if self.qk_norm != "rms_norm_across_heads" {
            return Err(bad(format!("qk_norm `{}` is not supported", self.qk_norm)));
        }
        if self.inner_dim() == 0 || self.attention_head_dim % 2 != 0 {
            return Err(bad("attention dims must be non-zero, head dim even".into()));
        }
        if self.cross_attention_dim != self.inner_dim() {
            return Err(bad(format!(
                "cross_attention_dim {} must equal heads x head dim {} (the caption projection feeds it)",
                self.cross_attention_dim,
                self.inner_dim()
            )));
        }
        Ok(())
    }
}
