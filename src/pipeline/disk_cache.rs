//! Finished shots on disk, so reopening a project or rendering on another
//! farm node does not generate a shot again.
//!
//! An entry is named by a hash of everything that determines the shot: the
//! model's identity, every request parameter and the input frames. Entries
//! are written to a temporary file, flushed, and renamed into place, so a
//! reader sees a whole entry or none; each carries a checksum that is
//! verified on reading, so an entry damaged any other way is discarded and
//! the shot generated again. Two processes writing the same entry write the
//! same bytes, and the last rename wins. A failed write (a full disk) loses
//! nothing: the shot is still returned and the user is told.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use sha2::{Digest, Sha256};

use crate::engine::{
    Clip, EngineError, Frame, Job, JobObserver, Quality, Shot, ShotEngine, ShotRequest,
};

const MAGIC: &[u8; 8] = b"GFXSHOT1";
const SUFFIX: &str = "genfxshot";
/// Bumped whenever the engine's math changes what a request produces, so old
/// entries are not served for new results.
const ENGINE_REVISION: u32 = 2;
/// Temporary files older than this are left over from killed processes.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// The name of one cache entry: SHA-256 of what determines the shot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShotKey(pub [u8; 32]);

impl ShotKey {
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn put_str(h: &mut Sha256, s: &str) {
    h.update((s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

fn put_clip(h: &mut Sha256, clip: &Clip) {
    h.update((clip.frames.len() as u64).to_le_bytes());
    for f in &clip.frames {
        h.update(f.width.to_le_bytes());
        h.update(f.height.to_le_bytes());
        h.update((f.rgb.len() as u64).to_le_bytes());
        for v in &f.rgb {
            h.update(v.to_bits().to_le_bytes());
        }
    }
}

/// The key of `request` for the model whose identity is `model_identity`.
/// Every field is length-prefixed or fixed-size, so different requests
/// cannot run together into the same bytes.
pub fn shot_key(model_identity: &str, request: &ShotRequest) -> ShotKey {
    let mut h = Sha256::new();
    h.update(MAGIC);
    h.update(ENGINE_REVISION.to_le_bytes());
    put_str(&mut h, model_identity);
    put_str(&mut h, &request.prompt);
    put_str(&mut h, &request.negative_prompt);
    h.update(request.seed.to_le_bytes());
    match request.quality {
        Quality::Draft => h.update([0u8]),
        Quality::Standard => h.update([1u8]),
        Quality::High => h.update([2u8]),
        Quality::Steps(n) => {
            h.update([3u8]);
            h.update(n.to_le_bytes());
        }
    }
    h.update(request.guidance.to_bits().to_le_bytes());
    h.update(request.width.to_le_bytes());
    h.update(request.height.to_le_bytes());
    h.update(request.num_frames.to_le_bytes());
    h.update(request.frame_rate.to_bits().to_le_bytes());
    h.update(request.strength.to_bits().to_le_bytes());
    match &request.job {
        Job::Generate { reference } => {
            h.update([0u8]);
            match reference {
                None => h.update([0u8]),
                Some(c) => {
                    h.update([1u8]);
                    put_clip(&mut h, c);
                }
            }
        }
        Job::ExtendForward { context } => {
            h.update([1u8]);
            put_clip(&mut h, context);
        }
        Job::ExtendBackward { context } => {
            h.update([2u8]);
            put_clip(&mut h, context);
        }
        Job::Fill { before, after } => {
            h.update([3u8]);
            put_clip(&mut h, before);
            put_clip(&mut h, after);
        }
    }
    ShotKey(h.finalize().into())
}

/// Bytes sampled from each weight file to tell fine-tunes of the same shape
/// apart without reading gigabytes.
const IDENTITY_SAMPLES: u64 = 16;
const IDENTITY_SAMPLE_BYTES: usize = 4096;

/// An identity of the model in `folder` that is the same on every machine
/// holding the same files: the configs, and for every weight file its name,
/// size, safetensors header and bytes sampled across it. (Paths and dates
/// differ between farm nodes and are left out.)
pub fn model_identity(model: &Path) -> io::Result<String> {
    let mut files = Vec::new();
    // A single-file checkpoint: the file and the text encoder beside it
    // (super::single_file::text_encoder_root), not the rest of its folder.
    let folder = if model.is_file() {
        let folder = model.parent().unwrap_or(Path::new("."));
        if let Some(name) = model.file_name() {
            files.push(PathBuf::from(name));
        }
        for sub in ["text_encoder", "tokenizer"] {
            if folder.join(sub).is_dir() {
                collect_files(folder, &folder.join(sub), &mut files)?;
            }
        }
        folder
    } else {
        collect_files(model, model, &mut files)?;
        model
    };
    files.sort();
    let mut h = Sha256::new();
    for rel in files {
        let path = folder.join(&rel);
        let name = rel.to_string_lossy().replace('\\', "/");
        let is_config = name.ends_with(".json") || name.ends_with(".model");
        let is_weights = name.ends_with(".safetensors");
        if !is_config && !is_weights {
            continue;
        }
        put_str(&mut h, &name);
        if is_config {
            let bytes = fs::read(&path)?;
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(&bytes);
            continue;
        }
        let mut file = File::open(&path)?;
        let len = file.metadata()?.len();
        h.update(len.to_le_bytes());
        let mut head = [0u8; 8];
        if read_at(&mut file, 0, &mut head)? == 8 {
            let header_len = u64::from_le_bytes(head)
                .min(len.saturating_sub(8))
                .min(1 << 26);
            let mut header = vec![0u8; header_len as usize];
            read_at(&mut file, 8, &mut header)?;
            h.update(&header);
        }
        let mut sample = vec![0u8; IDENTITY_SAMPLE_BYTES];
        for k in 0..IDENTITY_SAMPLES {
            let offset = len.saturating_mul(k) / IDENTITY_SAMPLES;
            let n = read_at(&mut file, offset, &mut sample)?;
            h.update(&sample[..n]);
        }
    }
    let digest: [u8; 32] = h.finalize().into();
    Ok(ShotKey(digest).hex())
}

fn read_at(file: &mut File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_path_buf());
        }
    }
    Ok(())
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    Hit(Shot),
    Miss,
    /// An entry was there but damaged; it has been removed.
    Corrupt(String),
}

/// Writes `bytes` to a new file at `path` and makes them durable.
pub type EntryWriter = fn(&Path, &[u8]) -> io::Result<()>;

fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// A folder of finished shots.
pub struct DiskShotCache {
    dir: PathBuf,
    writer: EntryWriter,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl DiskShotCache {
    /// Opens (creating) the cache folder and clears temporary files that
    /// killed processes left behind.
    pub fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let cache = Self {
            dir: dir.to_path_buf(),
            writer: write_durably,
        };
        cache.remove_stale_temps();
        Ok(cache)
    }

    /// The same cache with another writer; tests use it to fail writes the
    /// way a full disk does.
    pub fn with_writer(mut self, writer: EntryWriter) -> Self {
        self.writer = writer;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn entry_path(&self, key: &ShotKey) -> PathBuf {
        self.dir.join(format!("{}.{SUFFIX}", key.hex()))
    }

    fn remove_stale_temps(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !(name.starts_with('.') && name.ends_with(".tmp")) {
                continue;
            }
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > STALE_TEMP);
            if old {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    pub fn get(&self, key: &ShotKey) -> Lookup {
        let path = self.entry_path(key);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Lookup::Miss,
            Err(e) => return Lookup::Corrupt(format!("cannot read {}: {e}", path.display())),
        };
        match decode(&bytes, key) {
            Ok(shot) => Lookup::Hit(shot),
            Err(reason) => {
                // Another process may have replaced it meanwhile; removing a
                // good entry only costs a regeneration.
                let _ = fs::remove_file(&path);
                Lookup::Corrupt(format!("{}: {reason}", path.display()))
            }
        }
    }

    /// Stores `shot` under `key`, atomically.
    pub fn put(&self, key: &ShotKey, shot: &Shot) -> io::Result<()> {
        let bytes = encode(key, shot)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let temp = self.dir.join(format!(
            ".{}.{}.{}.tmp",
            key.hex(),
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        if let Err(e) = (self.writer)(&temp, &bytes) {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
        if let Err(e) = fs::rename(&temp, self.entry_path(key)) {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
        // Make the rename itself durable where the platform allows it.
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

fn encode(key: &ShotKey, shot: &Shot) -> Result<Vec<u8>, EngineError> {
    let (w, h) = match shot.frames.first() {
        Some(f) => (f.width, f.height),
        None => (0, 0),
    };
    let per_frame = w as usize * h as usize * 3;
    if shot
        .frames
        .iter()
        .any(|f| f.width != w || f.height != h || f.rgb.len() != per_frame)
    {
        return Err(EngineError::Failed(
            "shot frames differ in size; not cached".into(),
        ));
    }
    let mut out = Vec::with_capacity(8 + 32 + 12 + shot.frames.len() * per_frame * 4 + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&key.0);
    out.extend_from_slice(&(shot.frames.len() as u32).to_le_bytes());
    out.extend_from_slice(&w.to_le_bytes());
    out.extend_from_slice(&h.to_le_bytes());
    for f in &shot.frames {
        for v in &f.rgb {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    let digest: [u8; 32] = Sha256::digest(&out).into();
    out.extend_from_slice(&digest);
    Ok(out)
}

fn decode(bytes: &[u8], key: &ShotKey) -> Result<Shot, String> {
    const HEAD: usize = 8 + 32 + 12;
    if bytes.len() < HEAD + 32 {
        return Err(format!("truncated ({} bytes)", bytes.len()));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return Err("checksum mismatch".into());
    }
    if &body[..8] != MAGIC {
        return Err("not a GenFX shot".into());
    }
    if body[8..40] != key.0 {
        return Err("entry belongs to another shot".into());
    }
    let word = |i: usize| u32::from_le_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
    let (n, w, h) = (word(40) as usize, word(44), word(48));
    let per_frame = w as usize * h as usize * 3;
    let expected = n
        .checked_mul(per_frame)
        .and_then(|v| v.checked_mul(4))
        .ok_or("impossible size")?;
    let data = &body[HEAD..];
    if data.len() != expected {
        return Err(format!("{} data bytes, expected {expected}", data.len()));
    }
    let frames = data
        .chunks_exact(per_frame.max(1) * 4)
        .take(n)
        .map(|chunk| {
            let rgb = chunk
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            Frame {
                width: w,
                height: h,
                rgb,
            }
        })
        .collect();
    Ok(Shot { frames })
}

/// Where the cache lives unless the user says otherwise:
/// `GENFX_CACHE_DIR` (empty or `off` turns it off), else the platform's
/// per-user cache folder.
pub fn default_folder() -> Option<PathBuf> {
    if let Some(v) = std::env::var_os("GENFX_CACHE_DIR") {
        let s = v.to_string_lossy();
        if s.is_empty() || s.eq_ignore_ascii_case("off") {
            return None;
        }
        return Some(PathBuf::from(v));
    }
    let env = |k: &str| std::env::var_os(k).map(PathBuf::from);
    if cfg!(target_os = "windows") {
        env("LOCALAPPDATA").map(|d| d.join("GenFX").join("shots"))
    } else if cfg!(target_os = "macos") {
        env("HOME").map(|d| d.join("Library/Caches/GenFX/shots"))
    } else {
        env("XDG_CACHE_HOME")
            .or_else(|| env("HOME").map(|h| h.join(".cache")))
            .map(|d| d.join("genfx").join("shots"))
    }
}

/// The folder setting shared by every instance of the process.
#[derive(Clone, Debug, PartialEq)]
enum FolderSetting {
    Default,
    Off,
    At(PathBuf),
}

static FOLDER: RwLock<FolderSetting> = RwLock::new(FolderSetting::Default);

/// Sets the shot cache folder for this process (`None` turns the cache off);
/// hosts call it from their settings.
pub fn set_cache_folder(folder: Option<PathBuf>) {
    *FOLDER.write() = match folder {
        Some(p) => FolderSetting::At(p),
        None => FolderSetting::Off,
    };
}

fn current_folder() -> Option<PathBuf> {
    match &*FOLDER.read() {
        FolderSetting::Default => default_folder(),
        FolderSetting::Off => None,
        FolderSetting::At(p) => Some(p.clone()),
    }
}

/// ENOSPC on Unix; ERROR_HANDLE_DISK_FULL and ERROR_DISK_FULL on Windows.
fn is_disk_full(e: &io::Error) -> bool {
    let codes: &[i32] = if cfg!(windows) { &[39, 112] } else { &[28] };
    e.raw_os_error().is_some_and(|c| codes.contains(&c))
}

/// Computes a model's identity from its request field.
pub type IdentityFn = fn(&Path) -> Result<String, String>;

fn identity_of_request_model(spec: &Path) -> Result<String, String> {
    let folder = super::model_folder::resolve(spec).map_err(|e| e.to_string())?;
    model_identity(&folder).map_err(|e| e.to_string())
}

/// A [`ShotEngine`] that serves finished shots from disk and stores new ones.
pub struct DiskCachedEngine {
    inner: Arc<dyn ShotEngine>,
    folder: Option<PathBuf>,
    use_process_setting: bool,
    identity: IdentityFn,
    writer: Option<EntryWriter>,
    /// Model identities by folder and modification time, computed once.
    identities: Mutex<HashMap<(PathBuf, Option<SystemTime>), String>>,
}

impl DiskCachedEngine {
    /// Caches in the process-wide folder (see [`set_cache_folder`]).
    pub fn new(inner: Arc<dyn ShotEngine>) -> Self {
        Self {
            inner,
            folder: None,
            use_process_setting: true,
            identity: identity_of_request_model,
            writer: None,
            identities: Mutex::new(HashMap::new()),
        }
    }

    /// Caches in `folder`, whatever the process setting.
    pub fn in_folder(inner: Arc<dyn ShotEngine>, folder: PathBuf) -> Self {
        Self {
            folder: Some(folder),
            use_process_setting: false,
            ..Self::new(inner)
        }
    }

    /// Uses `identity` to name models (tests use models that are not folders).
    pub fn with_identity(mut self, identity: IdentityFn) -> Self {
        self.identity = identity;
        self
    }

    /// Writes entries with `writer` (tests fail it like a full disk).
    pub fn with_writer(mut self, writer: EntryWriter) -> Self {
        self.writer = Some(writer);
        self
    }

    fn folder(&self) -> Option<PathBuf> {
        if self.use_process_setting {
            current_folder()
        } else {
            self.folder.clone()
        }
    }

    fn identity_for(&self, model: &Path) -> Result<String, String> {
        let stamp = fs::metadata(model.join("model_index.json"))
            .and_then(|m| m.modified())
            .ok();
        let key = (model.to_path_buf(), stamp);
        if let Some(id) = self.identities.lock().get(&key) {
            return Ok(id.clone());
        }
        let id = (self.identity)(model)?;
        self.identities.lock().insert(key, id.clone());
        Ok(id)
    }
}

impl ShotEngine for DiskCachedEngine {
    fn generate(
        &self,
        request: &ShotRequest,
        observer: &dyn JobObserver,
    ) -> Result<Shot, EngineError> {
        let Some(folder) = self.folder() else {
            return self.inner.generate(request, observer);
        };
        let cache = match DiskShotCache::open(&folder) {
            Ok(c) => match self.writer {
                Some(w) => c.with_writer(w),
                None => c,
            },
            Err(e) => {
                observer.notice(&format!(
                    "shot cache folder {} is unusable ({e}); generating without it",
                    folder.display()
                ));
                return self.inner.generate(request, observer);
            }
        };
        let identity = match self.identity_for(&request.model) {
            Ok(id) => id,
            // No readable model: let the engine say what is wrong with it.
            Err(_) => return self.inner.generate(request, observer),
        };
        let key = shot_key(&identity, request);
        match cache.get(&key) {
            Lookup::Hit(shot) if shot.frames.len() == request.num_frames as usize => {
                log::info!("shot {} served from {}", key.hex(), folder.display());
                return Ok(shot);
            }
            Lookup::Hit(_) | Lookup::Miss => {}
            Lookup::Corrupt(reason) => {
                observer.notice(&format!(
                    "discarded a damaged cached shot ({reason}); generating it again"
                ));
            }
        }
        let shot = self.inner.generate(request, observer)?;
        if let Err(e) = cache.put(&key, &shot) {
            let why = if is_disk_full(&e) {
                "the disk is full".to_string()
            } else {
                e.to_string()
            };
            observer.notice(&format!(
                "could not save the shot to the cache folder {} ({why}); the shot is fine but will be generated again next time",
                folder.display()
            ));
        }
        Ok(shot)
    }
}
