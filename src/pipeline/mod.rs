//! Generation jobs (generate, extend, fill) built on the conditioned sampler,
//! the model folder they load, and the caches around them.

pub mod disk_cache;
pub mod model_folder;
pub mod registry;
