//! GenFX as an OpenFX plugin: the three effects (`org.genfx.Generate`,
//! `org.genfx.Extend`, `org.genfx.Fill`), the host wrappers and the shot
//! cache.
//!
//! Layers: `ofx` is the only module with `unsafe` — the exported C functions
//! and panic barrier (`ofx::exports`) and typed wrappers over the host's
//! suites. It hands a typed `Action` to `actions` / `render` (what each action
//! answers), which use `effects` (per-effect contexts, clips and time layout),
//! `params`, `settings`, `colour`, `framing`, `pixels` and `shot` (pure Rust).
//!
//! Logging goes to a file; see [`logging`] for where.

mod actions;
pub mod colour;
mod early_checks;
pub mod effects;
pub mod framing;
pub mod geometry;
mod instance;
pub mod logging;
pub mod ofx;
mod paint;
pub mod params;
pub mod pixels;
mod problem;
mod render;
pub mod settings;
pub mod shot;

pub use ofx::exports::{OfxGetNumberOfPlugins, OfxGetPlugin, OfxSetHost};
pub use shot::shot_key;

/// The allocator of the plugin's own Rust code; the host's malloc is
/// untouched (why this one: the workspace Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
