//! GenFX as an OpenFX plugin: the three effects, the host wrappers and the
//! shot cache.
