//! A headless OpenFX host: loads a bundle, describes its plugins, and renders.
