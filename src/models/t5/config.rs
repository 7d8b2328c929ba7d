//! `config.json` of a transformers `T5EncoderModel` (T5 v1.1 family).

use std::path::Path;

use super::T5Error;

fn default_max_distance() -> usize {
    128
}

fn default_eps() -> f32 {
    1e-6
}

/// The fields the encoder needs; the many others in the file are ignored.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct T5Config {
    pub vocab_size: usize,
    pub d_model: usize,
    pub d_kv: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub relative_attention_num_buckets: usize,
    #[serde(default = "default_max_distance")]
    pub relative_attention_max_distance: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f32,
    pub feed_forward_proj: String,
    #[serde(default)]
    pub dense_act_fn: Option<String>,
}

impl T5Config {
    /// Reads and checks `config.json`.
    pub fn from_file(path: &Path) -> Result<Self, T5Error> {
        let config: Self = crate::weights::read_config(path)?;
        config.checked(path)
    }

    /// Parses and checks the text of a `config.json` (`path` names it in
    /// errors).
    pub fn from_json(text: &str, path: &Path) -> Result<Self, T5Error> {
        let config: Self = crate::weights::parse_config(text, path)?;
        config.checked(path)
    }

    fn checked(self, path: &Path) -> Result<Self, T5Error> {
        self.validate().map_err(|reason| T5Error::Config {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(self)
    }

    /// Width of the attention's concatenated heads (may differ from d_model).
    pub fn inner_dim(&self) -> usize {
        self.num_heads * self.d_kv
    }

    /// Checks that this is an encoder this module implements.
    pub fn validate(&self) -> Result<(), String> {
        // T5 v1.1 (and the LTX text encoder) is "gated-gelu" with gelu_new;
        // the original T5's "relu" feed-forward is a different module.
        if self.feed_forward_proj != "gated-gelu" {
            return Err(format!(
                "feed_forward_proj {:?} is not supported (only T5 v1.1 \"gated-gelu\")",
                self.feed_forward_proj
            ));
        }
        if let Some(act) = &self.dense_act_fn {
            if act != "gelu_new" {
                return Err(format!("dense_act_fn {act:?} is not gelu_new"));
            }
        }
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("d_model", self.d_model),
            ("d_kv", self.d_kv),
            ("d_ff", self.d_ff),
            ("num_layers", self.num_layers),
            ("num_heads", self.num_heads),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be positive"));
        }
        // Bidirectional buckets split in halves, each half in exact and
        // logarithmic quarters: anything under 4 leaves an empty range.
        if self.relative_attention_num_buckets < 4 {
            return Err("relative_attention_num_buckets must be at least 4".into());
        }
        let max_exact = self.relative_attention_num_buckets / 4;
        if self.relative_attention_max_distance <= max_exact {
            return Err(format!(
                "relative_attention_max_distance {} must exceed {max_exact}",
                self.relative_attention_max_distance
            ));
        }
        if !(self.layer_norm_epsilon.is_finite() && self.layer_norm_epsilon >= 0.0) {
            return Err("layer_norm_epsilon must be a finite non-negative number".into());
        }
        Ok(())
    }
}
