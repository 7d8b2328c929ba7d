//! Content Credentials (C2PA manifests) on the files `genfx generate` and
//! `genfx render` write, through the `c2pa` crate (the Content Authenticity
//! Initiative's SDK): [`keys`] finds or makes the signing key, [`sign`]
//! makes the manifest, [`verify`] reads one back for `genfx detect`.

pub mod keys;
pub mod sign;
pub mod verify;

use std::path::Path;

pub use sign::{ManifestSigner, ModelInfo};

/// The model named by a request's model setting: its folder or file name,
/// and its fingerprint when it can be taken.
pub fn model_info(model: &Path) -> ModelInfo {
    let name = model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| model.display().to_string());
    let identity = genfx::pipeline::model_folder::resolve(model)
        .ok()
        .and_then(|folder| genfx::pipeline::disk_cache::current_identity(&folder).ok());
    ModelInfo { name, identity }
}

/// The signer for one run's files, telling stderr when this run made the
/// installation's key.
pub fn signer_for(model: &Path) -> Result<ManifestSigner, String> {
    let credentials = keys::load()?;
    if let keys::Source::Local { file, made: true } = &credentials.source {
        eprintln!(
            "genfx: made this installation's Content Credentials key {} (self-signed: its manifests show a file is unchanged since this installation wrote it, not who you are; see the README's Provenance section to use your own)",
            file.display()
        );
    }
    ManifestSigner::new(credentials, model_info(model))
}
