//! The model components behind the pipeline's traits.

use std::path::Path;

use super::components::{VelocityInputs, VelocityModel};
use crate::backend::Device;
use crate::engine::EngineError;
use crate::models::ltx::{LtxVideoTransformer3DModel, TransformerInputs};
use crate::tensor::{DType, Tensor, TensorError};

fn failed(e: TensorError) -> EngineError {
    EngineError::Failed(format!("transformer: {e}"))
}

/// The LTX transformer as a [`VelocityModel`].
pub struct LtxTransformer {
    model: LtxVideoTransformer3DModel,
}

impl LtxTransformer {
    pub fn load(dir: &Path, device: &Device) -> Result<Self, EngineError> {
        let model = LtxVideoTransformer3DModel::load(dir, DType::F32, device)
            .map_err(|e| EngineError::NoModel(format!("transformer: {e}")))?;
        Ok(Self { model })
    }

    pub fn new(model: LtxVideoTransformer3DModel) -> Self {
        Self { model }
    }
}

impl VelocityModel for LtxTransformer {
    fn channels(&self) -> usize {
        self.model.config.in_channels
    }

    fn text_dim(&self) -> usize {
        self.model.config.caption_channels
    }

    fn velocity(&self, x: &VelocityInputs<'_>) -> Result<Vec<f32>, EngineError> {
        let device = self.model.device();
        let c = self.channels();
        let hidden = Tensor::from_slice(x.hidden_states, &[x.batch, x.tokens, c], device);
        let text = Tensor::from_slice(x.text, &[x.batch, x.text_tokens, self.text_dim()], device);
        let mask = Tensor::from_slice(x.text_mask, &[x.batch, x.text_tokens], device);
        let timestep = Tensor::from_slice(x.timestep, &[x.batch, x.tokens], device);
        let coords = Tensor::from_slice(x.coords, &[x.batch, 3, x.tokens], device);
        let (hidden, text, mask, timestep, coords) = (
            hidden.map_err(failed)?,
            text.map_err(failed)?,
            mask.map_err(failed)?,
            timestep.map_err(failed)?,
            coords.map_err(failed)?,
        );
        let out = self
            .model
            .forward(&TransformerInputs {
                hidden_states: &hidden,
                encoder_hidden_states: &text,
                encoder_attention_mask: Some(&mask),
                timestep: &timestep,
                video_coords: &coords,
            })
            .map_err(failed)?;
        out.to_vec_f32().map_err(failed)
    }
}
