//! `T5Stack` (encoder side) and `T5EncoderModel`: token embedding, the
//! blocks sharing one relative position bias, and the final norm.

use std::path::Path;
use std::sync::Arc;

use crate::backend::Device;
use crate::tensor::{DType, Tensor};
use crate::weights::{VarBuilder, WeightFiles};

use super::layers::{T5Block, T5LayerNorm};
use super::single_file::{infer_config, t5_layout};
use super::{T5Config, T5Error};

/// The encoder stack under `encoder.` in the weights.
pub struct T5Stack {
    block: Vec<T5Block>,
    final_layer_norm: T5LayerNorm,
}

impl T5Stack {
    pub fn load(vb: &VarBuilder, config: &T5Config) -> Result<Self, T5Error> {
        let blocks = vb.pp("block");
        let block = (0..config.num_layers)
            .map(|i| T5Block::load(&blocks.pp(i), config, i == 0))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            block,
            final_layer_norm: T5LayerNorm::load(&vb.pp("final_layer_norm"), config)?,
        })
    }

    /// `embeds` `[batch, len, d_model]`, `mask` `[batch * len]` (0 = padding).
    pub fn forward(&self, embeds: &Tensor, mask: &[u32]) -> Result<Tensor, T5Error> {
        let (batch, len) = (embeds.dims()[0], embeds.dims()[1]);
        let Some(table) = self
            .block
            .first()
            .and_then(|b| b.attention.self_attention.relative_attention_bias.as_ref())
        else {
            return Err(T5Error::BadInput("the encoder has no blocks".into()));
        };
        let bias = table.with_padding_mask(mask, batch, len);
        let bias = Tensor::from_vec(bias, &[batch, table.heads(), len, len], embeds.device())?;
        let mut x = embeds.clone();
        for block in &self.block {
            x = block.forward(&x, &bias)?;
        }
        self.final_layer_norm.forward(&x)
    }
}

/// transformers' `T5EncoderModel`.
pub struct T5EncoderModel {
    config: T5Config,
    shared: Tensor,
    encoder: T5Stack,
}

/// Where transformers may store the (tied) token embedding.
const EMBEDDING_NAMES: [&str; 2] = ["shared.weight", "encoder.embed_tokens.weight"];

/// Tensors the encoder does not use (a decoder, say) are an error, so a
/// wrong file is caught here, not as garbage embeddings; the second copy of
/// the tied embedding is the exception.
fn check_all_used(files: &WeightFiles, location: &Path) -> Result<(), T5Error> {
    let unexpected: Vec<String> = files
        .unused()
        .into_iter()
        .filter(|n| !EMBEDDING_NAMES.contains(&n.as_str()))
        .collect();
    if unexpected.is_empty() {
        return Ok(());
    }
    Err(T5Error::UnexpectedTensors {
        location: location.to_path_buf(),
        count: unexpected.len(),
        examples: unexpected.into_iter().take(5).collect(),
    })
}

impl T5EncoderModel {
    pub fn load(vb: &VarBuilder, config: T5Config) -> Result<Self, T5Error> {
        config
            .validate()
            .map_err(|reason| T5Error::BadInput(format!("invalid T5 config: {reason}")))?;
        let dims = [config.vocab_size, config.d_model];
        // The embedding is tied: one copy is enough, whichever is stored.
        let name = EMBEDDING_NAMES
            .into_iter()
            .find(|n| vb.contains(n))
            .unwrap_or(EMBEDDING_NAMES[0]);
        let shared = vb.get(&dims, name)?;
        let encoder = T5Stack::load(&vb.pp("encoder"), &config)?;
        Ok(Self {
            config,
            shared,
            encoder,
        })
    }

    /// Loads a transformers model folder (`config.json` and safetensors,
    /// single or sharded), memory-mapped, to compute in f32 on `device`
    /// (the CPU keeps 16-bit weights as stored and widens them per op).
    /// Tensors the encoder does not use (a decoder, say) are an error, so a
    /// wrong folder is caught here, not as garbage embeddings.
    pub fn from_folder(dir: &Path, device: &Device) -> Result<Self, T5Error> {
        Self::from_folder_as(dir, DType::F32, device)
    }

    /// As [`from_folder`](Self::from_folder), with the weights (and so the
    /// activations) in `dtype`: a GPU's 16-bit type, read from the files in
    /// their stored 16-bit type where it matches, so 16-bit weights reach
    /// the device without being widened on the host.
    pub fn from_folder_as(dir: &Path, dtype: DType, device: &Device) -> Result<Self, T5Error> {
        let config = T5Config::from_file(&dir.join("config.json"))?;
        let files = Arc::new(WeightFiles::open_dir(dir)?);
        let vb = VarBuilder::new(files.clone(), dtype, device);
        let model = Self::load(&vb, config)?;
        check_all_used(&files, dir)?;
        Ok(model)
    }

    /// Loads a T5 encoder kept as one safetensors file without a config
    /// (ComfyUI's `t5xxl_fp16.safetensors`): the config comes from the
    /// tensor shapes ([`super::single_file`]); a file that is not T5 (a CLIP
    /// text encoder, say) is refused saying what it is.
    pub fn from_file_as(path: &Path, dtype: DType, device: &Device) -> Result<Self, T5Error> {
        let files = Arc::new(WeightFiles::open_file(path)?);
        let layout = t5_layout(&files, path)?;
        let outer = layout
            .stack
            .strip_suffix("encoder.")
            .unwrap_or(&layout.stack);
        if files.contains(&format!("{outer}scaled_fp8")) {
            return Err(T5Error::Config {
                path: path.to_path_buf(),
                reason: "this is ComfyUI's scaled fp8 T5 (a `scaled_fp8` marker and a \
                         `scale_weight` per layer), whose scales GenFX does not apply; use \
                         t5xxl_fp16.safetensors or the plain t5xxl_fp8_e4m3fn.safetensors"
                    .into(),
            });
        }
        let config = infer_config(&files, &layout, path)?;
        config
            .validate()
            .map_err(|reason| T5Error::BadInput(format!("invalid T5 config: {reason}")))?;
        let root = VarBuilder::new(files.clone(), dtype, device);
        let shared = root.get(&[config.vocab_size, config.d_model], &layout.embedding)?;
        let stack = match layout.stack.strip_suffix('.') {
            Some(p) => root.pp(p),
            None => root,
        };
        let encoder = T5Stack::load(&stack, &config)?;
        let unexpected: Vec<String> = files
            .unused()
            .into_iter()
            .filter(|n| !layout.spare_embeddings.contains(n))
            .collect();
        if !unexpected.is_empty() {
            return Err(T5Error::UnexpectedTensors {
                location: path.to_path_buf(),
                count: unexpected.len(),
                examples: unexpected.into_iter().take(5).collect(),
            });
        }
        Ok(Self {
            config,
            shared,
            encoder,
        })
    }

    /// A T5 folder (transformers layout) or a single T5 file, by what
    /// `path` is.
    pub fn open_as(path: &Path, dtype: DType, device: &Device) -> Result<Self, T5Error> {
        if path.is_file() {
            Self::from_file_as(path, dtype, device)
        } else {
            Self::from_folder_as(path, dtype, device)
        }
    }

    pub fn config(&self) -> &T5Config {
        &self.config
    }

    /// `last_hidden_state` `[batch, len, d_model]` for `input_ids` and
    /// `attention_mask`, both row-major `[batch, len]`.
    pub fn forward(
        &self,
        input_ids: &[u32],
        attention_mask: &[u32],
        batch: usize,
        len: usize,
    ) -> Result<Tensor, T5Error> {
        if batch == 0 || len == 0 {
            return Err(T5Error::BadInput(format!(
                "empty input ({batch} prompts of {len} tokens)"
            )));
        }
        let expected = batch * len;
        if input_ids.len() != expected || attention_mask.len() != expected {
            return Err(T5Error::BadInput(format!(
                "{} ids and {} mask values for {batch} prompts of {len} tokens",
                input_ids.len(),
                attention_mask.len()
            )));
        }
        let vocab = self.config.vocab_size;
        if let Some((position, &id)) = input_ids
            .iter()
            .enumerate()
            .find(|(_, &id)| id as usize >= vocab)
        {
            return Err(T5Error::TokenOutOfRange {
                id,
                position,
                vocab,
            });
        }
        let rows = input_ids
            .iter()
            .map(|&id| self.shared.narrow(0, id as usize, 1))
            .collect::<Result<Vec<_>, _>>()?;
        let rows: Vec<&Tensor> = rows.iter().collect();
        // The rows come in the table's dtype: 16-bit on the CPU, which keeps
        // weights as stored and computes in f32.
        let embeds = Tensor::cat(&rows, 0)?
            .reshape(&[batch, len, self.config.d_model])?
            .to_dtype(self.shared.activation_dtype())?;
        self.encoder.forward(&embeds, attention_mask)
    }
}
