//! LTX-Video (0.9.5+ architecture), diffusers layout: one file per
//! reference module.

pub mod latent_upsampler;
pub mod transformer;
pub mod vae;

pub use transformer::{
    LayerSkip, LtxVideoTransformer3DModel, SkipMode, TransformerConfig, TransformerInputs,
};
