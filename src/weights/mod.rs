//! Weights from safetensors files (single or sharded with an index JSON),
//! memory-mapped and converted to the dtype the model asks for (or kept in
//! the dtype they are stored in where the device widens them per operation,
//! as the CPU does with 16-bit weights), and model configs from
//! `config.json`.
//!
//! Model code loads through a [`VarBuilder`]: `vb.pp("transformer_blocks")
//! .pp(0).pp("attn1").get(&[d, d], "to_q.weight")` reads
//! `transformer_blocks.0.attn1.to_q.weight`, so modules mirror the reference
//! tree and names map one to one. After building a model,
//! [`WeightFiles::check_all_used`] reports tensors nobody asked for.

mod config;
mod error;
pub mod fp8;
mod safetensors_file;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

pub use config::{parse_config, read_config};
pub use error::WeightError;
pub use safetensors_file::SafetensorsFile;

use crate::backend::Device;
use crate::tensor::{DType, Tensor};

/// The weight files of one model component and which tensor is where.
/// What every synthetic weight holds: 1 is valid for any parameter (a
/// scale or a standard deviation must not be 0), and means nothing.
pub const SYNTHETIC_VALUE: f32 = 1.0;

pub struct WeightFiles {
    /// The folder, index or file the weights were opened from (for errors).
    location: PathBuf,
    files: Vec<SafetensorsFile>,
    which: HashMap<String, usize>,
    /// Our name -> the name stored in the file, for files written under
    /// other names ([`WeightFiles::open_renamed`]); absent names are stored
    /// as they are.
    stored: HashMap<String, String>,
    used: Mutex<BTreeSet<String>>,
    /// No files: every tensor asked for exists, with the shape asked for,
    /// and holds zeros ([`WeightFiles::synthetic`]).
    synthetic: bool,
}

#[derive(serde::Deserialize)]
struct ShardIndex {
    weight_map: HashMap<String, String>,
}

impl WeightFiles {
    /// One safetensors file.
    pub fn open_file(path: &Path) -> Result<Self, WeightError> {
        let file = SafetensorsFile::open(path)?;
        let which = file.names().map(|n| (n.to_string(), 0)).collect();
        Ok(Self {
            location: path.to_path_buf(),
            files: vec![file],
            which,
            stored: HashMap::new(),
            used: Mutex::new(BTreeSet::new()),
            synthetic: false,
        })
    }

    /// The tensors of one file that `rename` gives a name of ours, under
    /// that name; the others are not part of these weights. For single-file
    /// checkpoints, which keep several models under their original names.
    /// Two stored names that map to one of ours are an error.
    pub fn open_renamed(
        path: &Path,
        rename: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, WeightError> {
        let file = SafetensorsFile::open(path)?;
        let mut which = HashMap::new();
        let mut stored = HashMap::new();
        for name in file.names() {
            let Some(ours) = rename(name) else { continue };
            if let Some(other) = stored.insert(ours.clone(), name.to_string()) {
                return Err(WeightError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!("tensors {other} and {name} both stand for {ours}"),
                });
            }
            which.insert(ours, 0);
        }
        Ok(Self {
            location: path.to_path_buf(),
            files: vec![file],
            which,
            stored,
            used: Mutex::new(BTreeSet::new()),
            synthetic: false,
        })
    }

    /// The name `name` (ours) has in its file.
    fn stored_name<'a>(&'a self, name: &'a str) -> &'a str {
        self.stored.get(name).map_or(name, String::as_str)
    }

    /// Sharded weights described by an index JSON
    /// (`{"weight_map": {"tensor": "shard file"}}`, shards beside it).
    pub fn open_index(index: &Path) -> Result<Self, WeightError> {
        let text = std::fs::read_to_string(index).map_err(|source| WeightError::Io {
            path: index.to_path_buf(),
            source,
        })?;
        let parsed: ShardIndex =
            serde_json::from_str(&text).map_err(|e| WeightError::BadIndex {
                path: index.to_path_buf(),
                reason: e.to_string(),
            })?;
        let dir = index.parent().unwrap_or(Path::new("."));
        let mut shard_names: Vec<&String> = parsed.weight_map.values().collect();
        shard_names.sort();
        shard_names.dedup();
        let mut files = Vec::with_capacity(shard_names.len());
        let mut file_of = HashMap::new();
        for shard in shard_names {
            let path = dir.join(shard);
            if Path::new(shard).components().count() != 1 {
                return Err(WeightError::BadIndex {
                    path: index.to_path_buf(),
                    reason: format!("shard name {shard:?} is not a plain file name"),
                });
            }
            if !path.is_file() {
                return Err(WeightError::MissingShard {
                    index: index.to_path_buf(),
                    shard: path,
                });
            }
            file_of.insert(shard.clone(), files.len());
            files.push(SafetensorsFile::open(&path)?);
        }
        let mut which = HashMap::new();
        for (name, shard) in &parsed.weight_map {
            let i = file_of[shard];
            if !files[i].contains(name) {
                return Err(WeightError::MissingTensor {
                    name: name.clone(),
                    location: format!(
                        "{} (the index {} places it there)",
                        files[i].path().display(),
                        index.display()
                    ),
                });
            }
            which.insert(name.clone(), i);
        }
        Ok(Self {
            location: index.to_path_buf(),
            files,
            which,
            stored: HashMap::new(),
            used: Mutex::new(BTreeSet::new()),
            synthetic: false,
        })
    }

    /// Weights with no files behind them: a model built from these gets
    /// every tensor it asks for, of the shape it asks for, filled with
    /// [`SYNTHETIC_VALUE`] on its device without passing through the host. For plans and dry runs
    /// of full-size models (`cargo xtask bench gpu-plan`) on machines that
    /// neither have nor could hold the real files; never for output.
    pub fn synthetic(label: &str) -> Self {
        Self {
            location: PathBuf::from(label),
            files: Vec::new(),
            which: HashMap::new(),
            stored: HashMap::new(),
            used: Mutex::new(BTreeSet::new()),
            synthetic: true,
        }
    }

    /// The weights of a component folder: the `*.safetensors.index.json` if
    /// there is one, otherwise its only `*.safetensors` file.
    pub fn open_dir(dir: &Path) -> Result<Self, WeightError> {
        let entries = std::fs::read_dir(dir).map_err(|source| WeightError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut indexes = Vec::new();
        let mut singles = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".safetensors.index.json") {
                indexes.push(entry.path());
            } else if name.ends_with(".safetensors") {
                singles.push(entry.path());
            }
        }
        indexes.sort();
        singles.sort();
        match (indexes.as_slice(), singles.as_slice()) {
            ([index], _) => Self::open_index(index),
            ([], [single]) => Self::open_file(single),
            _ => Err(WeightError::NoWeights {
                dir: dir.to_path_buf(),
                looked_for: format!(
                    "one *.safetensors.index.json or exactly one *.safetensors file; found {} and {}",
                    indexes.len(),
                    singles.len()
                ),
            }),
        }
    }

    /// Whether these are [`WeightFiles::synthetic`] weights.
    pub fn is_synthetic(&self) -> bool {
        self.synthetic
    }

    pub fn location(&self) -> &Path {
        &self.location
    }

    pub fn contains(&self, name: &str) -> bool {
        self.synthetic || self.which.contains_key(name)
    }

    /// Every tensor name, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.which.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Stored shape of `name`, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.which
            .get(name)
            .and_then(|&i| self.files[i].shape(self.stored_name(name)))
    }

    /// Loads `name`, checking its shape, converted to `dtype` on `device`.
    pub fn load(
        &self,
        name: &str,
        dims: &[usize],
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor, WeightError> {
        if self.synthetic {
            self.used.lock().insert(name.to_string());
            return Tensor::zeros(dims, dtype, device)
                .and_then(|t| t.affine(1.0, SYNTHETIC_VALUE))
                .map_err(|source| WeightError::Tensor {
                    name: name.to_string(),
                    source,
                });
        }
        let &i = self
            .which
            .get(name)
            .ok_or_else(|| WeightError::MissingTensor {
                name: name.to_string(),
                location: self.location.display().to_string(),
            })?;
        let file = &self.files[i];
        let stored_name = self.stored_name(name);
        let stored = file.shape(stored_name).unwrap_or(&[]);
        if stored != dims {
            return Err(WeightError::WrongShape {
                path: file.path().to_path_buf(),
                name: stored_name.to_string(),
                expected: dims.to_vec(),
                got: stored.to_vec(),
            });
        }
        // The device may keep the weight in its stored dtype (the CPU keeps
        // 16-bit weights as they are, read in place from the map).
        let dtype = file
            .stored_dtype(stored_name)
            .map_or(dtype, |stored| device.backend().weight_dtype(stored, dtype));
        let data = file.read(stored_name, dtype)?;
        let tensor =
            Tensor::from_host(data, dims, device).map_err(|source| WeightError::Tensor {
                name: name.to_string(),
                source,
            })?;
        self.used.lock().insert(name.to_string());
        Ok(tensor)
    }

    /// Names present in the files that no `load` asked for, sorted.
    pub fn unused(&self) -> Vec<String> {
        let used = self.used.lock();
        let mut names: Vec<String> = self
            .which
            .keys()
            .filter(|n| !used.contains(*n))
            .cloned()
            .collect();
        names.sort_unstable();
        names
    }

    /// An error listing unexpected tensors, if any: after a model is built,
    /// leftovers mean the files belong to another variant or architecture.
    pub fn check_all_used(&self) -> Result<(), WeightError> {
        let unused = self.unused();
        if unused.is_empty() {
            return Ok(());
        }
        Err(WeightError::UnexpectedTensors {
            location: self.location.display().to_string(),
            count: unused.len(),
            examples: unused.into_iter().take(5).collect(),
        })
    }
}

/// Loads tensors by their reference names under a prefix; cheap to clone.
#[derive(Clone)]
pub struct VarBuilder {
    files: Arc<WeightFiles>,
    prefix: String,
    dtype: DType,
    device: Device,
}

impl VarBuilder {
    pub fn new(files: Arc<WeightFiles>, dtype: DType, device: &Device) -> Self {
        Self {
            files,
            prefix: String::new(),
            dtype,
            device: device.clone(),
        }
    }

    /// A builder for the child module `name` ("push prefix").
    pub fn pp(&self, name: impl std::fmt::Display) -> Self {
        let prefix = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        };
        Self {
            prefix,
            ..self.clone()
        }
    }

    fn full_name(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// The tensor `prefix.name`, which must have shape `dims`.
    pub fn get(&self, dims: &[usize], name: &str) -> Result<Tensor, WeightError> {
        self.files
            .load(&self.full_name(name), dims, self.dtype, &self.device)
    }

    /// Like [`get`](Self::get) but `None` when the tensor is absent (for
    /// optional parameters such as biases).
    pub fn get_opt(&self, dims: &[usize], name: &str) -> Result<Option<Tensor>, WeightError> {
        if self.contains(name) {
            self.get(dims, name).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.files.contains(&self.full_name(name))
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn files(&self) -> &Arc<WeightFiles> {
        &self.files
    }
}

#[cfg(test)]
mod tests;
