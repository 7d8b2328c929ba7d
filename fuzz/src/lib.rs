//! Coverage-guided fuzz targets for every parser of untrusted bytes in GenFX.
//!
//! Each target hands the input to the project's own parser, through the
//! same public entry point the engine or the `genfx` command uses; parsers
//! that read a path get the input written to a scratch file first. The
//! libFuzzer binary (`src/main.rs`, built by `cargo xtask fuzz`) runs them
//! with coverage; `tests/regressions.rs` runs the seeds and every input
//! fuzzing has found through them in the normal test suite.

pub mod scratch;
pub mod targets;
