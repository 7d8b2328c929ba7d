//! The text-encoder service: prompts in, embeddings out, with the T5
//! weights resident only while they are needed and every embedding cached,
//! so an unchanged prompt never runs the 4.8 B-parameter encoder again.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::backend::Device;
use crate::tensor::{DType, Tensor};
use crate::tokenizer::T5Tokenizer;

use super::{T5EncoderModel, T5Error};

/// What happens to the encoder weights after a call to [`TextEncoder::encode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleasePolicy {
    /// Drop them at once: the default, since the transformer and VAE need
    /// the memory next.
    AfterUse,
    /// Keep them until [`TextEncoder::release`] (several prompts in a row).
    KeepLoaded,
}

/// One prompt's embedding, as the transformer's cross-attention takes it.
#[derive(Clone)]
pub struct PromptEmbedding {
    /// `[max_length, d_model]`, f32 on the CPU.
    pub hidden: Tensor,
    /// `[max_length]`, 1 for the prompt and `</s>`, 0 for padding.
    pub attention_mask: Vec<u32>,
    pub ids: Vec<u32>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    model_id: String,
    ids: Vec<u32>,
    mask: Vec<u32>,
}

/// Embeddings by model and tokens, least recently used evicted first.
pub struct EmbeddingCache {
    capacity: usize,
    entries: Mutex<VecDeque<(CacheKey, PromptEmbedding)>>,
}

impl EmbeddingCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(VecDeque::new()),
        }
    }

    fn get(&self, key: &CacheKey) -> Option<PromptEmbedding> {
        let mut entries = self.entries.lock();
        let at = entries.iter().position(|(k, _)| k == key)?;
        let entry = entries.remove(at)?;
        let value = entry.1.clone();
        entries.push_front(entry);
        Some(value)
    }

    fn insert(&self, key: CacheKey, value: PromptEmbedding) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock();
        entries.retain(|(k, _)| k != &key);
        entries.push_front((key, value));
        entries.truncate(self.capacity);
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&self) {
        self.entries.lock().clear();
    }
}

/// Tokenizer, lazily loaded T5 encoder and embedding cache of one model.
pub struct TextEncoder {
    /// Identifies the weights in cache keys (the canonical weights folder).
    model_id: String,
    weights_dir: PathBuf,
    device: Device,
    /// The weights' (and activations') dtype on `device`.
    dtype: DType,
    tokenizer: T5Tokenizer,
    policy: ReleasePolicy,
    model: Mutex<Option<T5EncoderModel>>,
    cache: EmbeddingCache,
    runs: AtomicUsize,
    loads: AtomicUsize,
}

/// Prompts kept when no capacity is given: a session's worth of edits.
pub const DEFAULT_CACHE_CAPACITY: usize = 32;

impl TextEncoder {
    /// The LTX folder layout: `tokenizer/spiece.model` and `text_encoder/`.
    pub fn from_model_folder(
        folder: &Path,
        device: &Device,
        max_length: usize,
        policy: ReleasePolicy,
    ) -> Result<Self, T5Error> {
        let tokenizer = T5Tokenizer::from_model_folder(folder, max_length)?;
        Ok(Self::new(
            tokenizer,
            &folder.join("text_encoder"),
            device,
            policy,
        ))
    }

    /// `weights_dir` is a T5 folder (transformers layout) or a single T5
    /// file. Nothing is read from it until the first prompt misses the
    /// cache.
    pub fn new(
        tokenizer: T5Tokenizer,
        weights_dir: &Path,
        device: &Device,
        policy: ReleasePolicy,
    ) -> Self {
        let canonical = weights_dir
            .canonicalize()
            .unwrap_or_else(|_| weights_dir.to_path_buf());
        Self {
            model_id: canonical.display().to_string(),
            weights_dir: weights_dir.to_path_buf(),
            device: device.clone(),
            dtype: DType::F32,
            tokenizer,
            policy,
            model: Mutex::new(None),
            cache: EmbeddingCache::new(DEFAULT_CACHE_CAPACITY),
            runs: AtomicUsize::new(0),
            loads: AtomicUsize::new(0),
        }
    }

    /// Holds the weights in `dtype` on the device (f32 unless set: the
    /// CPU reference computes only in f32; a GPU takes its 16-bit type, see
    /// [`super::placement`]).
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn with_cache_capacity(mut self, capacity: usize) -> Self {
        self.cache = EmbeddingCache::new(capacity);
        self
    }

    pub fn tokenizer(&self) -> &T5Tokenizer {
        &self.tokenizer
    }

    pub fn cache(&self) -> &EmbeddingCache {
        &self.cache
    }

    /// Times the encoder network has run (one run encodes a batch).
    pub fn encoder_runs(&self) -> usize {
        self.runs.load(Ordering::Relaxed)
    }

    /// Times the weights have been read from disk.
    pub fn weight_loads(&self) -> usize {
        self.loads.load(Ordering::Relaxed)
    }

    pub fn is_loaded(&self) -> bool {
        self.model.lock().is_some()
    }

    /// Whether encoding `prompts` would read the weights: one of them is
    /// not cached and the weights are not loaded.
    pub fn would_load(&self, prompts: &[&str]) -> bool {
        !self.is_loaded()
            && prompts.iter().any(|prompt| {
                let tokens = self.tokenizer.encode(prompt);
                let key = CacheKey {
                    model_id: self.model_id.clone(),
                    ids: tokens.ids,
                    mask: tokens.attention_mask,
                };
                self.cache.get(&key).is_none()
            })
    }

    /// Bytes the weights take on the device once loaded in this encoder's
    /// dtype, from the files' headers (nothing is read); `None` when they
    /// cannot be opened.
    pub fn weight_bytes(&self) -> Option<usize> {
        let files = if self.weights_dir.is_file() {
            crate::weights::WeightFiles::open_file(&self.weights_dir).ok()?
        } else {
            crate::weights::WeightFiles::open_dir(&self.weights_dir).ok()?
        };
        let elements: usize = files
            .names()
            .iter()
            .filter_map(|name| files.shape(name))
            .map(|shape| shape.iter().product::<usize>())
            .sum();
        Some(elements * self.dtype.size_in_bytes())
    }

    /// Drops the encoder weights (cached embeddings stay) and hands their
    /// memory back to the device.
    pub fn release(&self) {
        let dropped = self.model.lock().take();
        if dropped.is_some() {
            drop(dropped);
            self.device.release_cached_memory();
        }
    }

    /// Embeddings of `prompts`, in order. Cached prompts cost a lookup; the
    /// others are encoded together in one batch.
    pub fn encode(&self, prompts: &[&str]) -> Result<Vec<PromptEmbedding>, T5Error> {
        let keys: Vec<CacheKey> = prompts
            .iter()
            .map(|prompt| {
                let tokens = self.tokenizer.encode(prompt);
                CacheKey {
                    model_id: self.model_id.clone(),
                    ids: tokens.ids,
                    mask: tokens.attention_mask,
                }
            })
            .collect();
        let mut found: Vec<Option<PromptEmbedding>> =
            keys.iter().map(|k| self.cache.get(k)).collect();
        let mut missing: Vec<&CacheKey> = Vec::new();
        for (key, hit) in keys.iter().zip(&found) {
            if hit.is_none() && !missing.contains(&key) {
                missing.push(key);
            }
        }
        if !missing.is_empty() {
            let fresh = self.run_encoder(&missing)?;
            for (key, embedding) in missing.iter().zip(fresh) {
                self.cache.insert((*key).clone(), embedding.clone());
                for (k, slot) in keys.iter().zip(found.iter_mut()) {
                    if k == *key {
                        *slot = Some(embedding.clone());
                    }
                }
            }
        }
        found
            .into_iter()
            .map(|e| e.ok_or_else(|| T5Error::BadInput("prompt left unencoded".into())))
            .collect()
    }

    fn run_encoder(&self, keys: &[&CacheKey]) -> Result<Vec<PromptEmbedding>, T5Error> {
        let mut slot = self.model.lock();
        if slot.is_none() {
            log::info!(
                "loading T5 text encoder from {}",
                self.weights_dir.display()
            );
            *slot = Some(T5EncoderModel::open_as(
                &self.weights_dir,
                self.dtype,
                &self.device,
            )?);
            self.loads.fetch_add(1, Ordering::Relaxed);
        }
        let result = match slot.as_ref() {
            Some(model) => self.forward(model, keys),
            None => Err(T5Error::BadInput("text encoder failed to load".into())),
        };
        self.runs.fetch_add(1, Ordering::Relaxed);
        if self.policy == ReleasePolicy::AfterUse {
            *slot = None;
            self.device.release_cached_memory();
        }
        result
    }

    fn forward(
        &self,
        model: &T5EncoderModel,
        keys: &[&CacheKey],
    ) -> Result<Vec<PromptEmbedding>, T5Error> {
        let len = keys.first().map_or(0, |k| k.ids.len());
        let ids: Vec<u32> = keys.iter().flat_map(|k| k.ids.iter().copied()).collect();
        let mask: Vec<u32> = keys.iter().flat_map(|k| k.mask.iter().copied()).collect();
        // Embeddings are kept on the host in f32 wherever the encoder ran:
        // the cache then holds no device memory once the weights are
        // released, and the transformer casts them to its own dtype.
        let hidden = model
            .forward(&ids, &mask, keys.len(), len)?
            .to_dtype(DType::F32)?
            .to_device(&Device::cpu())?;
        // A NaN or infinity (a GPU fault, a 16-bit overflow) must fail the
        // job here: cached, it would fail every later job with this prompt.
        if let Some(index) = hidden.to_vec_f32()?.iter().position(|v| !v.is_finite()) {
            return Err(T5Error::NonFinite {
                device: self.device.name(),
                dtype: self.dtype,
                index,
            });
        }
        let d = model.config().d_model;
        keys.iter()
            .enumerate()
            .map(|(i, key)| {
                Ok(PromptEmbedding {
                    hidden: hidden.narrow(0, i, 1)?.contiguous()?.reshape(&[len, d])?,
                    attention_mask: key.mask.clone(),
                    ids: key.ids.clone(),
                })
            })
            .collect()
    }
}
