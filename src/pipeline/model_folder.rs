//! Finding and checking an LTX-Video model: a folder in the diffusers layout
//! (`model_index.json`, `transformer/`, `vae/`, `text_encoder/`, `tokenizer/`,
//! `scheduler/`) or a single-file checkpoint (see [`super::single_file`]) with
//! the text encoder beside it. A request may also name a Hugging Face
//! repository (`Lightricks/LTX-Video-0.9.5`); its newest cached snapshot is used.
//!
//! Everything that is wrong is reported at once, so a user fixes a folder in
//! one go rather than one error per attempt.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::single_file::{self, Checkpoint, CheckpointError};
use crate::sampler::schedule::SchedulerConfig;

/// Why a folder cannot be used as an LTX-Video model.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ModelFolderError {
    #[error("no model given: set the Model parameter to an LTX-Video checkpoint (.safetensors), a folder of LTX-Video weights (diffusers layout) or a Hugging Face repository name")]
    Empty,
    #[error("model {0} does not exist")]
    NotFound(PathBuf),
    #[error("{0} is neither a model folder nor a .safetensors checkpoint")]
    NotAFolder(PathBuf),
    #[error("{0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("no Hugging Face cache snapshot of {repo} found (looked in {searched}); download it with `huggingface-cli download {repo}` or give the folder itself")]
    NoSnapshot { repo: String, searched: String },
    #[error("{folder} is not a usable LTX-Video model:\n{problems}")]
    Problems {
        folder: PathBuf,
        problems: ProblemList,
    },
}

/// One thing wrong with a model folder.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// A file the model needs is not there.
    Missing { what: String, path: PathBuf },
    /// Weights exist only as pickles, which GenFX never loads.
    PickleOnly { component: String, path: PathBuf },
    /// A config file that cannot be read or understood.
    BadConfig { path: PathBuf, reason: String },
    /// A component of another family or an older architecture.
    Unsupported { component: String, reason: String },
    /// What to do about the problems above.
    Help(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing { what, path } => write!(f, "missing {what}: {}", path.display()),
            Problem::PickleOnly { component, path } => write!(
                f,
                "{component} weights are only in pickle format ({}); GenFX loads safetensors only — download the .safetensors files",
                path.display()
            ),
            Problem::BadConfig { path, reason } => {
                write!(f, "cannot use {}: {reason}", path.display())
            }
            Problem::Unsupported { component, reason } => {
                write!(f, "unsupported {component}: {reason}")
            }
            Problem::Help(text) => f.write_str(text),
        }
    }
}

/// The problems of one folder, one per line when shown.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProblemList(pub Vec<Problem>);

impl fmt::Display for ProblemList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// How a checkpoint is meant to be sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Guidance-distilled: few explicit timesteps, no CFG.
    Distilled,
    /// The full model: many steps with classifier-free guidance.
    Dev,
}

/// The weight files of one component: one file or the shards an index names.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightFiles {
    pub files: Vec<PathBuf>,
}

/// A checked model: every file the pipeline opens exists and every config
/// says LTX-Video 0.9.5 or later. For a single-file checkpoint, `root` and
/// the transformer and VAE paths are the file, and [`ModelFolder::checkpoint`]
/// holds what its metadata says.
#[derive(Clone, Debug)]
pub struct ModelFolder {
    pub root: PathBuf,
    /// The single-file checkpoint the transformer and VAE come from, if the
    /// model is one.
    pub checkpoint: Option<Arc<Checkpoint>>,
    /// The folder holding `text_encoder/` and `tokenizer/`
    /// ([`locate_text_encoder`]).
    pub text_encoder_root: PathBuf,
    pub variant: Variant,
    pub transformer_config: PathBuf,
    pub transformer_weights: WeightFiles,
    pub vae_config: PathBuf,
    pub vae_weights: WeightFiles,
    pub text_encoder_config: PathBuf,
    pub text_encoder_weights: WeightFiles,
    pub tokenizer_model: PathBuf,
    pub scheduler: SchedulerConfig,
}

/// Turns the request's model field into a folder or checkpoint file: an
/// existing folder or `.safetensors` file as is, a folder's
/// `model_index.json` as its folder (what a host's file browser picks in a
/// diffusers folder), otherwise an `owner/name` looked up in the Hugging
/// Face cache.
pub fn resolve(spec: &Path) -> Result<PathBuf, ModelFolderError> {
    let text = spec.to_string_lossy();
    if text.trim().is_empty() {
        return Err(ModelFolderError::Empty);
    }
    if spec.exists() {
        if spec.is_dir() || single_file::is_checkpoint_path(spec) {
            return Ok(spec.to_path_buf());
        }
        if spec.file_name().is_some_and(|n| n == "model_index.json") {
            if let Some(folder) = spec.parent() {
                return Ok(folder.to_path_buf());
            }
        }
        return Err(ModelFolderError::NotAFolder(spec.to_path_buf()));
    }
    if let Some(repo) = as_repo_name(&text) {
        return find_snapshot(&repo, &hub_cache_dirs());
    }
    Err(ModelFolderError::NotFound(spec.to_path_buf()))
}

/// `owner/name` with nothing that makes it look like a path.
fn as_repo_name(text: &str) -> Option<String> {
    let text = text.trim();
    let (owner, name) = text.split_once('/')?;
    let ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    (ok(owner) && ok(name)).then(|| text.to_string())
}

/// Where Hugging Face caches repositories, in the order its tools look.
pub fn hub_cache_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("HF_HUB_CACHE") {
        dirs.push(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("HUGGINGFACE_HUB_CACHE") {
        dirs.push(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("HF_HOME") {
        dirs.push(PathBuf::from(d).join("hub"));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        dirs.push(PathBuf::from(d).join("huggingface").join("hub"));
    }
    let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE"));
    if let Some(h) = home {
        dirs.push(
            PathBuf::from(h)
                .join(".cache")
                .join("huggingface")
                .join("hub"),
        );
    }
    dirs
}

/// The snapshot of `repo` in the first cache that has one: the revision
/// `refs/main` points at, else the most recently modified snapshot.
pub fn find_snapshot(repo: &str, caches: &[PathBuf]) -> Result<PathBuf, ModelFolderError> {
    let dir_name = format!("models--{}", repo.replace('/', "--"));
    for cache in caches {
        let repo_dir = cache.join(&dir_name);
        let snapshots = repo_dir.join("snapshots");
        if !snapshots.is_dir() {
            continue;
        }
        if let Ok(rev) = std::fs::read_to_string(repo_dir.join("refs").join("main")) {
            let candidate = snapshots.join(rev.trim());
            if !rev.trim().is_empty() && candidate.is_dir() {
                return Ok(candidate);
            }
        }
        let newest = std::fs::read_dir(&snapshots)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok());
        if let Some(entry) = newest {
            return Ok(entry.path());
        }
    }
    Err(ModelFolderError::NoSnapshot {
        repo: repo.to_string(),
        searched: caches
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

fn read_json(path: &Path, problems: &mut Vec<Problem>) -> Option<serde_json::Value> {
    if !path.is_file() {
        problems.push(Problem::Missing {
            what: "config".into(),
            path: path.to_path_buf(),
        });
        return None;
    }
    match std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).map_err(|e| e.to_string()))
    {
        Ok(v) if v.is_object() => Some(v),
        Ok(_) => {
            problems.push(Problem::BadConfig {
                path: path.to_path_buf(),
                reason: "not a JSON object".into(),
            });
            None
        }
        Err(reason) => {
            problems.push(Problem::BadConfig {
                path: path.to_path_buf(),
                reason,
            });
            None
        }
    }
}

fn class_name(v: &serde_json::Value) -> Option<&str> {
    v.get("_class_name").and_then(|c| c.as_str()).or_else(|| {
        v.get("architectures")
            .and_then(|a| a.as_array())
            .and_then(|a| a.first())
            .and_then(|c| c.as_str())
    })
}

/// The safetensors of a component: `<stem>.safetensors`, or the shards its
/// `<stem>.safetensors.index.json` lists.
fn weight_files(
    dir: &Path,
    stem: &str,
    component: &str,
    problems: &mut Vec<Problem>,
) -> WeightFiles {
    let single = dir.join(format!("{stem}.safetensors"));
    if single.is_file() {
        return WeightFiles {
            files: vec![single],
        };
    }
    let index = dir.join(format!("{stem}.safetensors.index.json"));
    if index.is_file() {
        let Some(v) = read_json(&index, problems) else {
            return WeightFiles { files: vec![] };
        };
        let mut files: Vec<PathBuf> = Vec::new();
        if let Some(map) = v.get("weight_map").and_then(|m| m.as_object()) {
            for shard in map.values().filter_map(|s| s.as_str()) {
                let path = dir.join(shard);
                if !files.contains(&path) {
                    files.push(path);
                }
            }
        }
        if files.is_empty() {
            problems.push(Problem::BadConfig {
                path: index,
                reason: "its weight_map names no files".into(),
            });
        }
        files.sort();
        for f in &files {
            if !f.is_file() {
                problems.push(Problem::Missing {
                    what: format!("{component} weight shard"),
                    path: f.clone(),
                });
            }
        }
        return WeightFiles { files };
    }
    let pickle = ["bin", "pt", "pth", "ckpt"]
        .iter()
        .map(|ext| dir.join(format!("{stem}.{ext}")))
        .find(|p| p.is_file());
    match pickle {
        Some(path) => problems.push(Problem::PickleOnly {
            component: component.into(),
            path,
        }),
        None => problems.push(Problem::Missing {
            what: format!("{component} weights"),
            path: single,
        }),
    }
    WeightFiles { files: vec![] }
}

fn expect_class(
    config: Option<&serde_json::Value>,
    component: &str,
    accepted: &[&str],
    problems: &mut Vec<Problem>,
) {
    let Some(config) = config else { return };
    match class_name(config) {
        Some(c) if accepted.contains(&c) => {}
        Some(c) => problems.push(Problem::Unsupported {
            component: component.into(),
            reason: format!("it is a {c}; GenFX runs {}", accepted.join(" or ")),
        }),
        None => problems.push(Problem::Unsupported {
            component: component.into(),
            reason: "its config names no class".into(),
        }),
    }
}

/// The VAE must be the 0.9.5+ design (LTXVideo095DownBlock3D encoder blocks):
/// the transformer of those releases was trained against its latents.
fn check_vae_version(config: Option<&serde_json::Value>, problems: &mut Vec<Problem>) {
    let Some(config) = config else { return };
    let blocks: Vec<&str> = config
        .get("down_block_types")
        .and_then(|b| b.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    if blocks.is_empty() || blocks.iter().any(|b| *b != "LTXVideo095DownBlock3D") {
        problems.push(Problem::Unsupported {
            component: "VAE".into(),
            reason: format!(
                "down blocks {blocks:?} are from LTX-Video before 0.9.5; GenFX needs a 0.9.5 or later release (0.9.5, 0.9.6, 0.9.7, 0.9.8)"
            ),
        });
    }
    if config
        .get("timestep_conditioning")
        .and_then(|t| t.as_bool())
        != Some(true)
    {
        // 0.9.5+ decoders all take the decode timestep; without it the
        // folder is a mixture of releases.
        problems.push(Problem::Unsupported {
            component: "VAE".into(),
            reason: "decoder without timestep conditioning (not a 0.9.5+ VAE)".into(),
        });
    }
}

fn check_transformer(config: Option<&serde_json::Value>, problems: &mut Vec<Problem>) {
    let Some(config) = config else { return };
    for key in ["patch_size", "patch_size_t"] {
        if let Some(p) = config.get(key).and_then(|v| v.as_u64()) {
            if p != 1 {
                problems.push(Problem::Unsupported {
                    component: "transformer".into(),
                    reason: format!("{key} {p} (LTX-Video 0.9.5+ uses 1)"),
                });
            }
        }
    }
}

impl ModelFolder {
    /// Resolves `spec` (folder or repository name) and checks the folder.
    pub fn open(spec: &Path) -> Result<Self, ModelFolderError> {
        Self::open_with(spec, None)
    }

    /// [`ModelFolder::open`] for a job whose Text encoder setting is
    /// `text_encoder`: T5 need not be in or beside the model then (the
    /// engine finds and checks it with
    /// [`super::text_encoder_location::locate`]).
    pub fn open_with(spec: &Path, text_encoder: Option<&Path>) -> Result<Self, ModelFolderError> {
        let root = resolve(spec)?;
        let setting = text_encoder.filter(|s| !s.as_os_str().is_empty());
        if root.is_file() {
            return Self::check_checkpoint(&root, setting);
        }
        Self::check(&root, spec, setting)
    }

    /// A single-file checkpoint: its header checked, the text encoder
    /// found beside it.
    fn check_checkpoint(path: &Path, setting: Option<&Path>) -> Result<Self, ModelFolderError> {
        let checkpoint = Checkpoint::open(path)?;
        let mut problems = Vec::new();
        let TextEncoderLocation {
            root: text_encoder_root,
            config: text_encoder_config,
            weights: text_encoder_weights,
            tokenizer: tokenizer_model,
        } = locate_text_encoder(path, setting, &mut problems);
        if !problems.is_empty() {
            problems.push(Problem::Help(single_file::missing_text_encoder_help(path)));
            return Err(ModelFolderError::Problems {
                folder: path.to_path_buf(),
                problems: ProblemList(problems),
            });
        }
        let one_file = WeightFiles {
            files: vec![path.to_path_buf()],
        };
        Ok(Self {
            root: path.to_path_buf(),
            variant: checkpoint.variant,
            scheduler: checkpoint.scheduler.clone(),
            transformer_config: path.to_path_buf(),
            transformer_weights: one_file.clone(),
            vae_config: path.to_path_buf(),
            vae_weights: one_file,
            text_encoder_root,
            text_encoder_config,
            text_encoder_weights,
            tokenizer_model,
            checkpoint: Some(Arc::new(checkpoint)),
        })
    }

    fn check(root: &Path, spec: &Path, setting: Option<&Path>) -> Result<Self, ModelFolderError> {
        let mut problems = Vec::new();
        let index = read_json(&root.join("model_index.json"), &mut problems);
        expect_class(
            index.as_ref(),
            "pipeline",
            &[
                "LTXConditionPipeline",
                "LTXPipeline",
                "LTXImageToVideoPipeline",
            ],
            &mut problems,
        );

        let transformer_dir = root.join("transformer");
        let transformer_config = transformer_dir.join("config.json");
        let t_cfg = read_json(&transformer_config, &mut problems);
        expect_class(
            t_cfg.as_ref(),
            "transformer",
            &["LTXVideoTransformer3DModel"],
            &mut problems,
        );
        check_transformer(t_cfg.as_ref(), &mut problems);
        let transformer_weights = weight_files(
            &transformer_dir,
            "diffusion_pytorch_model",
            "transformer",
            &mut problems,
        );

        let vae_dir = root.join("vae");
        let vae_config = vae_dir.join("config.json");
        let v_cfg = read_json(&vae_config, &mut problems);
        expect_class(
            v_cfg.as_ref(),
            "VAE",
            &["AutoencoderKLLTXVideo"],
            &mut problems,
        );
        check_vae_version(v_cfg.as_ref(), &mut problems);
        let vae_weights = weight_files(&vae_dir, "diffusion_pytorch_model", "VAE", &mut problems);

        let TextEncoderLocation {
            root: text_encoder_root,
            config: text_encoder_config,
            weights: text_encoder_weights,
            tokenizer: tokenizer_model,
        } = locate_text_encoder(root, setting, &mut problems);

        let sched_dir = root.join("scheduler");
        let sched_path = ["scheduler_config.json", "config.json"]
            .iter()
            .map(|n| sched_dir.join(n))
            .find(|p| p.is_file());
        let scheduler = match sched_path {
            None => {
                problems.push(Problem::Missing {
                    what: "scheduler config".into(),
                    path: sched_dir.join("scheduler_config.json"),
                });
                None
            }
            Some(p) => match SchedulerConfig::from_file(&p) {
                Ok(c) => Some(c),
                Err(e) => {
                    problems.push(Problem::BadConfig {
                        path: p,
                        reason: e.to_string(),
                    });
                    None
                }
            },
        };

        let variant = variant_of(root, spec, &mut problems);
        match scheduler {
            Some(scheduler) if problems.is_empty() => Ok(Self {
                root: root.to_path_buf(),
                checkpoint: None,
                text_encoder_root,
                variant,
                transformer_config,
                transformer_weights,
                vae_config,
                vae_weights,
                text_encoder_config,
                text_encoder_weights,
                tokenizer_model,
                scheduler,
            }),
            _ => Err(ModelFolderError::Problems {
                folder: root.to_path_buf(),
                problems: ProblemList(problems),
            }),
        }
    }
}

/// Where a model's T5 text encoder and tokenizer are.
#[derive(Clone, Debug)]
pub struct TextEncoderLocation {
    /// The folder holding `text_encoder/` and `tokenizer/`.
    pub root: PathBuf,
    /// The encoder's `config.json`.
    pub config: PathBuf,
    /// The encoder's weight files.
    pub weights: WeightFiles,
    /// The SentencePiece model of its tokenizer.
    pub tokenizer: PathBuf,
}

/// The one place that decides where the text encoder of the model at
/// `model` (a diffusers folder or a single-file checkpoint) is: the folder
/// itself, or the folder the checkpoint is in
/// ([`single_file::text_encoder_root`]). What is missing or wrong there is
/// added to `problems`.
///
/// When T5 is not there but elsewhere — the Text encoder setting `setting`,
/// a `t5xxl*.safetensors` beside a checkpoint, ComfyUI's folders, the
/// Hugging Face cache ([`super::text_encoder_location::locate`]) — nothing
/// is missing: the engine loads it from where `locate` finds it.
pub fn locate_text_encoder(
    model: &Path,
    setting: Option<&Path>,
    problems: &mut Vec<Problem>,
) -> TextEncoderLocation {
    let mut here = Vec::new();
    let found = local_text_encoder(model, &mut here);
    if here.is_empty() || setting.is_some() {
        return found;
    }
    // A problem with the local text_encoder/ or tokenizer/ matters unless
    // that part is found elsewhere.
    let Ok(located) = super::text_encoder_location::locate(model, None) else {
        problems.extend(here);
        return found;
    };
    let root = single_file::text_encoder_root(model);
    let (te_dir, tok_dir) = (root.join("text_encoder"), root.join("tokenizer"));
    problems.extend(here.into_iter().filter(|p| {
        let about_tokenizer = matches!(p,
            Problem::Missing { path, .. }
            | Problem::BadConfig { path, .. }
            | Problem::PickleOnly { path, .. } if path.starts_with(&tok_dir));
        if about_tokenizer {
            located.tokenizer.starts_with(&tok_dir)
        } else {
            located.weights.starts_with(&te_dir)
        }
    }));
    found
}

fn local_text_encoder(model: &Path, problems: &mut Vec<Problem>) -> TextEncoderLocation {
    let root = single_file::text_encoder_root(model);
    let te_dir = root.join("text_encoder");
    let config = te_dir.join("config.json");
    let te_cfg = read_json(&config, problems);
    expect_class(
        te_cfg.as_ref(),
        "text encoder",
        &["T5EncoderModel"],
        problems,
    );
    let weights = weight_files(&te_dir, "model", "text encoder", problems);
    let tokenizer = root.join("tokenizer").join("spiece.model");
    if !tokenizer.is_file() {
        problems.push(Problem::Missing {
            what: "T5 SentencePiece tokenizer".into(),
            path: tokenizer.clone(),
        });
    }
    TextEncoderLocation {
        root,
        config,
        weights,
        tokenizer,
    }
}

/// The file in a model folder that states how its checkpoint is sampled,
/// for folders whose name does not say: `{"variant": "distilled"}` or
/// `{"variant": "dev"}`.
pub const VARIANT_FILE: &str = "genfx.json";

/// Distilled checkpoints carry "distilled" in their repository and folder
/// names; their configs are otherwise identical to the dev models', so a
/// renamed folder says which it is in [`VARIANT_FILE`].
fn variant_of(root: &Path, spec: &Path, problems: &mut Vec<Problem>) -> Variant {
    let stated = root.join(VARIANT_FILE);
    if stated.is_file() {
        let parsed = std::fs::read_to_string(&stated)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                serde_json::from_str::<serde_json::Value>(&text).map_err(|e| e.to_string())
            });
        let reason = match parsed
            .as_ref()
            .map(|v| v.get("variant").and_then(|v| v.as_str()))
        {
            Ok(Some("distilled")) => return Variant::Distilled,
            Ok(Some("dev")) => return Variant::Dev,
            Ok(other) => format!(
                "\"variant\" must be \"distilled\" or \"dev\", found {}",
                other.map_or("nothing".to_string(), |v| format!("{v:?}"))
            ),
            Err(e) => e.clone(),
        };
        problems.push(Problem::BadConfig {
            path: stated,
            reason,
        });
        return Variant::Dev;
    }
    let names = [root.to_string_lossy(), spec.to_string_lossy()];
    if names
        .iter()
        .any(|n| n.to_ascii_lowercase().contains("distilled"))
    {
        Variant::Distilled
    } else {
        Variant::Dev
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_names_are_told_from_paths() {
        assert_eq!(
            as_repo_name("Lightricks/LTX-Video-0.9.7-distilled").as_deref(),
            Some("Lightricks/LTX-Video-0.9.7-distilled")
        );
        assert_eq!(as_repo_name("/abs/path"), None);
        assert_eq!(as_repo_name("a/b/c"), None);
        assert_eq!(as_repo_name("../x"), None);
        assert_eq!(as_repo_name("noslash"), None);
    }
}
