//! Generation jobs (generate, extend, fill) built on the conditioned sampler,
//! the model folder they load, and the caches around them.

pub mod adapters;
pub mod components;
mod denoise;
pub mod disk_cache;
pub mod engine;
pub mod latents;
pub mod long_shot;
pub mod ltx;
pub mod memory_guard;
pub mod model_folder;
pub mod model_identity;
pub mod plan;
pub mod registry;
pub mod single_file;
pub mod temp_files;
pub mod text_encoder_location;
pub mod two_pass;
pub mod upsample;
