//! Where the T5 text encoder and its tokenizer are, given the model's
//! location (a diffusers folder or a single-file checkpoint) and the user's
//! Text encoder setting (empty, a T5 folder, a single T5 file, or a folder
//! holding a `text_encoder/`).
//!
//! Without a setting, the places people keep T5 are searched in order:
//! 1. `text_encoder/` in the model folder, or beside a checkpoint file
//!    (diffusers layout, `tokenizer/` beside it or a `tokenizer.json` in it);
//! 2. a `t5xxl*.safetensors` file in the checkpoint's own folder;
//! 3. ComfyUI's `models/text_encoders/` (and its older name `models/clip/`)
//!    beside the `models/checkpoints/` (or `diffusion_models/`, `unet/`)
//!    folder the checkpoint is in;
//! 4. the Hugging Face cache: `PixArt-alpha/PixArt-XL-2-1024-MS`'s
//!    `text_encoder/` (what LTX-Video's own inference script loads), then
//!    `google/t5-v1_1-xxl`.
//!
//! The tokenizer is `spiece.model` or `tokenizer.json`, looked for beside
//! the weights first, then in ComfyUI's own copy
//! (`comfy/text_encoders/t5_tokenizer/`), then in the same cache snapshots.

use std::path::{Path, PathBuf};

use super::model_folder::{find_snapshot, hub_cache_dirs};

/// The repository LTX-Video's inference script takes T5 from.
pub const PIXART_REPO: &str = "PixArt-alpha/PixArt-XL-2-1024-MS";
/// T5 v1.1 XXL itself.
pub const T5_REPO: &str = "google/t5-v1_1-xxl";

/// Where the text encoder's weights and tokenizer are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextEncoderLocation {
    /// A T5 folder (`config.json` and safetensors, transformers layout) or a
    /// single T5 safetensors file.
    pub weights: PathBuf,
    /// `spiece.model` or `tokenizer.json`.
    pub tokenizer: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextEncoderLocationError {
    #[error("the Text encoder setting {0} does not exist")]
    SettingNotFound(PathBuf),
    #[error(
        "the Text encoder setting {setting} is a folder without T5 weights (looked for \
         config.json with safetensors in it, or a text_encoder/ or t5xxl*.safetensors inside)"
    )]
    SettingNotT5 { setting: PathBuf },
    #[error(
        "no T5 text encoder found for {model}. Looked in:\n{looked}\nGet T5 v1.1 XXL either as \
         one file, t5xxl_fp16.safetensors (or t5xxl_fp8_e4m3fn.safetensors) from \
         https://huggingface.co/comfyanonymous/flux_text_encoders, put in {beside} (with a T5 \
         tokenizer.json or tokenizer/spiece.model beside it), or as the text_encoder/ and \
         tokenizer/ folders of https://huggingface.co/PixArt-alpha/PixArt-XL-2-1024-MS (`huggingface-cli download \
         PixArt-alpha/PixArt-XL-2-1024-MS --include 'text_encoder/*' 'tokenizer/*' --local-dir {beside_q}`); or set \
         the Text encoder parameter (genfx --text-encoder) to where yours is"
    )]
    NoTextEncoder {
        model: PathBuf,
        looked: String,
        beside: PathBuf,
        beside_q: String,
    },
    #[error(
        "found the T5 text encoder {weights} but no tokenizer for it. Looked for:\n{looked}\n\
         Get T5's SentencePiece model, tokenizer/spiece.model of \
         https://huggingface.co/PixArt-alpha/PixArt-XL-2-1024-MS (`huggingface-cli download \
         PixArt-alpha/PixArt-XL-2-1024-MS tokenizer/spiece.model --local-dir {dir_q}`), so that it is {want}; or put a T5 \
         tokenizer.json (ComfyUI ships one as comfy/text_encoders/t5_tokenizer/tokenizer.json) \
         at {json}"
    )]
    NoTokenizer {
        weights: PathBuf,
        looked: String,
        dir_q: String,
        want: PathBuf,
        json: PathBuf,
    },
}

/// Whether `dir` looks like a transformers T5 folder: a `config.json` and
/// safetensors weights (one file or an index). Pickle-only folders count,
/// so the loader can say they are pickles rather than "not found".
fn is_t5_folder(dir: &Path) -> bool {
    if !dir.join("config.json").is_file() {
        return false;
    }
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let name = e.file_name().to_string_lossy().to_ascii_lowercase();
            name.ends_with(".safetensors")
                || name.ends_with(".safetensors.index.json")
                || name.ends_with(".bin")
        })
}

/// `t5xxl*.safetensors` files in `dir`, best first: 16-bit before fp8
/// (fp8 is widened anyway, so it only loses precision), ComfyUI's scaled
/// fp8 last (refused by the loader with a reason), then by name.
fn t5_files_in(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            name.starts_with("t5xxl") && name.ends_with(".safetensors") && p.is_file()
        })
        .collect();
    let rank = |p: &PathBuf| {
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_ascii_lowercase();
        let class = if name.contains("scaled") {
            2
        } else if name.contains("fp8") {
            1
        } else {
            0
        };
        (class, name)
    };
    found.sort_by_key(rank);
    found
}

/// The ComfyUI installation `path` lies in, if it is under a
/// `models/<checkpoints|diffusion_models|unet|text_encoders|clip>/` folder:
/// the `models/` folder.
fn comfy_models_dir(path: &Path) -> Option<PathBuf> {
    const KINDS: [&str; 5] = [
        "checkpoints",
        "diffusion_models",
        "unet",
        "text_encoders",
        "clip",
    ];
    path.ancestors().find_map(|a| {
        let kind = a.file_name()?.to_string_lossy().to_ascii_lowercase();
        let parent = a.parent()?;
        let is_models = parent.file_name()?.to_string_lossy() == "models";
        (KINDS.contains(&kind.as_str()) && is_models).then(|| parent.to_path_buf())
    })
}

/// The folder the model is in (a checkpoint file's folder, or the model
/// folder itself).
fn model_dir(model: &Path) -> PathBuf {
    if model.is_file() {
        model.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        model.to_path_buf()
    }
}

/// Candidate tokenizer files for T5 weights at `weights`, nearest first.
fn tokenizer_candidates(weights: &Path, model: Option<&Path>, caches: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let here = if weights.is_file() {
        weights.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        weights.to_path_buf()
    };
    dirs.push(here.clone());
    dirs.push(here.join("tokenizer"));
    dirs.push(here.join("t5_tokenizer"));
    if let (Some(parent), Some(name)) = (here.parent(), here.file_name()) {
        // A text_encoder/ folder's sibling tokenizer/ (diffusers layout).
        if name == "text_encoder" {
            dirs.push(parent.join("tokenizer"));
        }
    }
    if let Some(model) = model {
        let m = model_dir(model);
        dirs.push(m.join("tokenizer"));
        dirs.push(m.join("text_encoder"));
        dirs.push(m.clone());
    }
    // ComfyUI keeps its own T5 tokenizer in its source tree, beside models/.
    for anchor in std::iter::once(weights).chain(model) {
        if let Some(root) = comfy_models_dir(anchor).and_then(|m| m.parent().map(Path::to_path_buf))
        {
            dirs.push(
                root.join("comfy")
                    .join("text_encoders")
                    .join("t5_tokenizer"),
            );
        }
    }
    if let Ok(snap) = find_snapshot(PIXART_REPO, caches) {
        dirs.push(snap.join("tokenizer"));
    }
    if let Ok(snap) = find_snapshot(T5_REPO, caches) {
        dirs.push(snap);
    }
    let mut out = Vec::new();
    for dir in dirs {
        for name in ["spiece.model", "tokenizer.json"] {
            let p = dir.join(name);
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

fn bullet_list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| format!("  - {}", p.display()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The tokenizer for T5 weights at `weights`, or the error saying what to
/// get and where to put it.
fn with_tokenizer(
    weights: PathBuf,
    model: Option<&Path>,
    caches: &[PathBuf],
) -> Result<TextEncoderLocation, TextEncoderLocationError> {
    let candidates = tokenizer_candidates(&weights, model, caches);
    if let Some(tokenizer) = candidates.iter().find(|p| p.is_file()) {
        return Ok(TextEncoderLocation {
            weights,
            tokenizer: tokenizer.clone(),
        });
    }
    // Beside a single file, or beside a text_encoder/ folder as in the
    // diffusers layout.
    let dir = weights.parent().unwrap_or(Path::new(".")).to_path_buf();
    Err(TextEncoderLocationError::NoTokenizer {
        looked: bullet_list(&candidates),
        dir_q: quoted(&dir),
        want: dir.join("tokenizer").join("spiece.model"),
        json: if weights.is_file() {
            dir.join("tokenizer.json")
        } else {
            weights.join("tokenizer.json")
        },
        weights,
    })
}

fn quoted(p: &Path) -> String {
    format!("\"{}\"", p.display())
}

/// The T5 weights named by the user's setting: a file as it is; a folder
/// that is a T5 folder, holds a `text_encoder/`, or holds `t5xxl*` files.
fn weights_from_setting(setting: &Path) -> Result<PathBuf, TextEncoderLocationError> {
    if setting.is_file() {
        return Ok(setting.to_path_buf());
    }
    if !setting.exists() {
        return Err(TextEncoderLocationError::SettingNotFound(
            setting.to_path_buf(),
        ));
    }
    if is_t5_folder(setting) {
        return Ok(setting.to_path_buf());
    }
    if is_t5_folder(&setting.join("text_encoder")) {
        return Ok(setting.join("text_encoder"));
    }
    if let Some(file) = t5_files_in(setting).into_iter().next() {
        return Ok(file);
    }
    Err(TextEncoderLocationError::SettingNotT5 {
        setting: setting.to_path_buf(),
    })
}

/// Where the text encoder of `model` is. `setting` is the user's Text
/// encoder setting (None or empty: search the known places).
pub fn locate(
    model: &Path,
    setting: Option<&Path>,
) -> Result<TextEncoderLocation, TextEncoderLocationError> {
    locate_with(model, setting, &hub_cache_dirs())
}

/// [`locate`] with the Hugging Face caches given (tests use their own).
pub fn locate_with(
    model: &Path,
    setting: Option<&Path>,
    caches: &[PathBuf],
) -> Result<TextEncoderLocation, TextEncoderLocationError> {
    if let Some(setting) = setting.filter(|s| !s.as_os_str().is_empty()) {
        let weights = weights_from_setting(setting)?;
        return with_tokenizer(weights, Some(model), caches);
    }
    let dir = model_dir(model);
    let mut looked = Vec::new();
    let folder = dir.join("text_encoder");
    looked.push(folder.clone());
    if is_t5_folder(&folder) {
        return with_tokenizer(folder, Some(model), caches);
    }
    looked.push(dir.join("t5xxl*.safetensors"));
    if let Some(file) = t5_files_in(&dir).into_iter().next() {
        return with_tokenizer(file, Some(model), caches);
    }
    if let Some(models) = comfy_models_dir(model) {
        for kind in ["text_encoders", "clip"] {
            let d = models.join(kind);
            looked.push(d.join("t5xxl*.safetensors"));
            if let Some(file) = t5_files_in(&d).into_iter().next() {
                return with_tokenizer(file, Some(model), caches);
            }
        }
    }
    for (repo, sub) in [(PIXART_REPO, Some("text_encoder")), (T5_REPO, None)] {
        match find_snapshot(repo, caches) {
            Ok(snap) => {
                let folder = sub.map_or(snap.clone(), |s| snap.join(s));
                looked.push(folder.clone());
                if is_t5_folder(&folder) {
                    return with_tokenizer(folder, Some(model), caches);
                }
            }
            Err(_) => looked.push(PathBuf::from(format!(
                "the Hugging Face cache ({}) for {repo}",
                caches
                    .first()
                    .map_or("none found".to_string(), |c| c.display().to_string())
            ))),
        }
    }
    Err(TextEncoderLocationError::NoTextEncoder {
        model: model.to_path_buf(),
        looked: bullet_list(&looked),
        beside_q: quoted(&dir),
        beside: dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comfy_models_folder_is_found_from_a_checkpoint() {
        let ckpt = Path::new("/x/ComfyUI/models/checkpoints/ltxv.safetensors");
        assert_eq!(
            comfy_models_dir(ckpt),
            Some(PathBuf::from("/x/ComfyUI/models"))
        );
        assert_eq!(comfy_models_dir(Path::new("/x/y/ltxv.safetensors")), None);
    }
}
