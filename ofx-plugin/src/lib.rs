//! GenFX as an OpenFX plugin: the three effects (`org.genfx.Generate`,
//! `org.genfx.Extend`, `org.genfx.Fill`), the host wrappers and the shot
//! cache.
//!
//! Layers, top to bottom: `entry` (exported C functions, panic barrier) ->
//! `actions` / `render` (what each action answers) -> `effects` (per-effect
//! contexts, clips and time layout), `params`, `settings`, `colour`,
//! `framing`, `pixels`, `shot` (pure Rust) -> `ofx` (the only `unsafe`: typed
//! wrappers over the C API) -> `ofx-sys` (bindings).
//!
//! Logging goes to a file; see [`logging`] for where.

mod actions;
pub mod colour;
pub mod effects;
mod entry;
pub mod framing;
pub mod geometry;
mod instance;
pub mod logging;
pub mod ofx;
pub mod params;
pub mod pixels;
mod render;
pub mod settings;
pub mod shot;

pub use entry::{OfxGetNumberOfPlugins, OfxGetPlugin, OfxSetHost};
pub use render::shot_key;
