//! The latent upsampler's configuration, from either place it is kept:
//! a diffusers `latent_upsampler/config.json` (`LTXLatentUpsamplerModel`)
//! or the JSON that LTX-Video stores under the metadata key `config` of its
//! single-file `ltxv-spatial-upscaler-*.safetensors` (`LatentUpsampler`).

use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use crate::weights::WeightError;

/// Channel groups of every GroupNorm in the model (fixed in the reference).
pub const GROUPS: usize = 32;

/// `LTXLatentUpsamplerModel`'s constructor arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpsamplerConfig {
    /// Latent channels in and out (the VAE's).
    pub in_channels: usize,
    pub mid_channels: usize,
    /// Residual blocks before and again after the upsampling step.
    pub num_blocks_per_stage: usize,
    /// 3: 3-D convolutions over (frames, height, width); 2: each frame alone.
    pub dims: usize,
    /// Doubles height and width.
    pub spatial_upsample: bool,
    /// Doubles the latent frames (less the first, kept causal).
    pub temporal_upsample: bool,
}

/// Fields as either source spells them; missing ones take the source's
/// own defaults (they differ: LTX-Video's `from_config` defaults to a
/// 2-D model with 4 input channels).
#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "_class_name")]
    class_name: Option<String>,
    in_channels: Option<usize>,
    mid_channels: Option<usize>,
    num_blocks_per_stage: Option<usize>,
    dims: Option<usize>,
    spatial_upsample: Option<bool>,
    temporal_upsample: Option<bool>,
}

/// Class names the two sources write.
const CLASSES: [&str; 2] = ["LTXLatentUpsamplerModel", "LatentUpsampler"];

impl UpsamplerConfig {
    /// Parses a diffusers `config.json`.
    pub fn from_config_json(path: &Path) -> Result<Self, WeightError> {
        let text = std::fs::read_to_string(path).map_err(|source| WeightError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // diffusers' constructor defaults.
        Self::parse(path, &text, [128, 512, 4, 3])
    }

    /// Reads the config from a single safetensors file's metadata; `None`
    /// when the metadata has no `config` entry.
    pub fn from_safetensors_metadata(path: &Path) -> Result<Option<Self>, WeightError> {
        let metadata = read_metadata(path)?;
        let Some(text) = metadata.as_ref().and_then(|m| m.get("config")) else {
            return Ok(None);
        };
        // LTX-Video's `LatentUpsampler.from_config` defaults.
        Self::parse(path, text, [4, 128, 4, 2]).map(Some)
    }

    /// The config a file's tensors imply, for an upsampler file without
    /// its metadata (a converted diffusers file under another name). Every
    /// field shows in a shape: channels and dims in `initial_conv.weight`
    /// (`[mid, in, 3, 3(, 3)]`), the blocks in `res_blocks.N`, the kind of
    /// upsampling in `upsampler.0.weight` (4× channels by a 2-D kernel:
    /// spatial; 8× 3-D: both; 2× 3-D: temporal).
    pub fn from_shapes(
        path: &Path,
        shape: impl Fn(&str) -> Option<Vec<usize>>,
    ) -> Result<Self, WeightError> {
        let missing = || WeightError::Config {
            path: path.to_path_buf(),
            reason: "neither a `config` entry in the safetensors metadata nor a latent \
                     upsampler's tensors (initial_conv.weight, upsampler.0.weight): this \
                     is not an LTX-Video latent upsampler (ltxv-spatial-upscaler-*.safetensors)"
                .into(),
        };
        let initial = shape("initial_conv.weight").ok_or_else(missing)?;
        let up = shape("upsampler.0.weight").ok_or_else(missing)?;
        let (mid, in_channels, dims) = match initial.as_slice() {
            [m, c, 3, 3, 3] => (*m, *c, 3),
            [m, c, 3, 3] => (*m, *c, 2),
            other => {
                return Err(WeightError::Config {
                    path: path.to_path_buf(),
                    reason: format!("initial_conv.weight has shape {other:?}, not a 3x3(x3) conv"),
                })
            }
        };
        let (spatial_upsample, temporal_upsample) = match up.as_slice() {
            [o, m, 3, 3] if *m == mid && *o == 4 * mid => (true, false),
            [o, m, 3, 3, 3] if *m == mid && *o == 8 * mid => (true, true),
            [o, m, 3, 3, 3] if *m == mid && *o == 2 * mid => (false, true),
            other => {
                return Err(WeightError::Config {
                    path: path.to_path_buf(),
                    reason: format!(
                        "upsampler.0.weight has shape {other:?}, which no upsampler of \
                         {mid} channels has"
                    ),
                })
            }
        };
        let num_blocks_per_stage = (0..)
            .take_while(|i| shape(&format!("res_blocks.{i}.conv1.weight")).is_some())
            .count();
        let config = Self {
            in_channels,
            mid_channels: mid,
            num_blocks_per_stage,
            dims,
            spatial_upsample,
            temporal_upsample,
        };
        config.check().map_err(|reason| WeightError::Config {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(config)
    }

    fn parse(path: &Path, text: &str, defaults: [usize; 4]) -> Result<Self, WeightError> {
        let bad = |reason: String| WeightError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let raw: Raw = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if let Some(class) = &raw.class_name {
            if !CLASSES.contains(&class.as_str()) {
                return Err(WeightError::WrongArchitecture {
                    path: path.to_path_buf(),
                    expected: "LTX-Video latent upsampler (LTXLatentUpsamplerModel)".into(),
                    found: class.clone(),
                });
            }
        }
        let config = Self {
            in_channels: raw.in_channels.unwrap_or(defaults[0]),
            mid_channels: raw.mid_channels.unwrap_or(defaults[1]),
            num_blocks_per_stage: raw.num_blocks_per_stage.unwrap_or(defaults[2]),
            dims: raw.dims.unwrap_or(defaults[3]),
            spatial_upsample: raw.spatial_upsample.unwrap_or(true),
            temporal_upsample: raw.temporal_upsample.unwrap_or(false),
        };
        config.check().map_err(bad)?;
        Ok(config)
    }

    /// What the reference would refuse to build or run.
    pub fn check(&self) -> Result<(), String> {
        if self.in_channels == 0 {
            return Err("in_channels is 0".into());
        }
        if self.mid_channels == 0 || self.mid_channels % GROUPS != 0 {
            return Err(format!(
                "mid_channels {} is not a positive multiple of the {GROUPS} GroupNorm groups",
                self.mid_channels
            ));
        }
        if self.dims != 2 && self.dims != 3 {
            return Err(format!("dims is {}, expected 2 or 3", self.dims));
        }
        if !self.spatial_upsample && !self.temporal_upsample {
            return Err("neither spatial_upsample nor temporal_upsample is set".into());
        }
        if self.dims == 2 && self.temporal_upsample {
            return Err("a 2-D (per-frame) model cannot upsample in time".into());
        }
        Ok(())
    }

    /// `(frames, height, width)` of the output for an input of `(f, h, w)`.
    pub fn output_size(&self, f: usize, h: usize, w: usize) -> (usize, usize, usize) {
        let s = if self.spatial_upsample { 2 } else { 1 };
        let f = if self.temporal_upsample { 2 * f - 1 } else { f };
        (f, h * s, w * s)
    }
}

/// The largest header a safetensors file may have (the format's own cap).
const MAX_HEADER: u64 = 100_000_000;

/// The `__metadata__` map of a safetensors file's header, if any.
pub fn read_metadata(
    path: &Path,
) -> Result<Option<std::collections::HashMap<String, String>>, WeightError> {
    let io = |source| WeightError::Io {
        path: path.to_path_buf(),
        source,
    };
    let corrupt = |reason: String| WeightError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| corrupt("shorter than a safetensors header".into()))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER {
        return Err(corrupt(format!("header of {n} bytes is too large")));
    }
    // Checked before the header is allocated: fuzzing found a 61-byte file
    // that had 64 MB allocated for its header.
    let file_len = file.metadata().map_err(io)?.len();
    if n > file_len.saturating_sub(8) {
        return Err(corrupt(format!(
            "truncated: the header says {n} bytes but the file holds {file_len} in all"
        )));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header)
        .map_err(|_| corrupt(format!("truncated inside its {n}-byte header")))?;
    #[derive(Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__")]
        metadata: Option<std::collections::HashMap<String, String>>,
    }
    let parsed: Header = serde_json::from_slice(&header)
        .map_err(|e| corrupt(format!("header is not valid JSON: {e}")))?;
    Ok(parsed.metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<UpsamplerConfig, WeightError> {
        UpsamplerConfig::parse(Path::new("config.json"), text, [128, 512, 4, 3])
    }

    /// What fuzzing found: a 61-byte file whose header length says 64 MB.
    #[test]
    fn a_header_longer_than_its_file_is_refused_before_it_is_read() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/regressions/upsampler_file/crash-61f05332e2c3d31b2c30288c8a217647ff882a64");
        let err = UpsamplerConfig::from_safetensors_metadata(&path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("truncated: the header says 67108917 bytes"),
            "{err}"
        );
    }

    #[test]
    fn defaults_fill_missing_fields_and_bad_configs_are_named() {
        let c = parse(r#"{"_class_name": "LTXLatentUpsamplerModel", "in_channels": 8}"#).unwrap();
        assert_eq!((c.in_channels, c.mid_channels, c.dims), (8, 512, 3));
        assert_eq!(c.output_size(3, 4, 6), (3, 8, 12));
        let err = parse(r#"{"_class_name": "AutoencoderKLLTXVideo"}"#).unwrap_err();
        assert!(err.to_string().contains("AutoencoderKLLTXVideo"), "{err}");
        let err = parse(r#"{"mid_channels": 48}"#).unwrap_err();
        assert!(err.to_string().contains("multiple of the 32"), "{err}");
        let err = parse(r#"{"dims": 2, "temporal_upsample": true}"#).unwrap_err();
        assert!(err.to_string().contains("cannot upsample in time"), "{err}");
        let err = parse(r#"{"spatial_upsample": false}"#).unwrap_err();
        assert!(err.to_string().contains("neither"), "{err}");
    }
}
