//! LTX-Video (0.9.5+ architecture), mirroring diffusers' module tree.

pub mod vae;
