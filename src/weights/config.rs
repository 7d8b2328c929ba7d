//! Reading a component's `config.json`.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::WeightError;

/// Parses `path` as `T`. Unknown or missing fields are errors when `T` says
/// so (`#[serde(deny_unknown_fields)]`, no defaults); the error names the
/// file, line and field.
pub fn read_config<T: DeserializeOwned>(path: &Path) -> Result<T, WeightError> {
    let text = std::fs::read_to_string(path).map_err(|source| WeightError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_config(&text, path)
}

/// Parses the text of `path` as `T` (see [`read_config`]); `path` only names
/// the file in errors.
pub fn parse_config<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, WeightError> {
    serde_json::from_str(text).map_err(|e| WeightError::Config {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}
