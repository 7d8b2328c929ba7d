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
//!
//! The folder is bounded: after each store, the least recently used entries
//! (a hit refreshes an entry's modification time) are removed until the
//! folder's entries fit the size limit. A long shot's window entries, kept
//! in the same folder, count and are evicted with them (when each window
//! starts and when the shot ends), except windows locked by the process
//! making them and those the current long shot has used. Only files named
//! like our entries, their provenance records (see
//! [`crate::provenance::record`]) or our temporary files (see
//! [`super::temp_files`]) are ever removed, so a
//! cache folder shared with other files loses none of them. A key is 32
//! bytes shown as hex, so no key can name a path outside the folder.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::RwLock;
use sha2::{Digest, Sha256};

pub use super::model_identity::{current_identity, model_identity, IdentityError};
use super::temp_files;
use crate::provenance::record;

use crate::engine::{
    Clip, CollectFrames, EngineError, Frame, FrameSink, Job, JobObserver, Quality, Shot,
    ShotEngine, ShotRequest,
};

const MAGIC: &[u8; 8] = b"GFXSHOT1";
const SUFFIX: &str = "genfxshot";
/// Bumped whenever the engine's math changes what a request produces, so old
/// entries are not served for new results.
pub const ENGINE_REVISION: u32 = 2;
/// The folder's size limit unless the user sets one: about a hundred
/// full-size shots.
pub const DEFAULT_LIMIT_BYTES: u64 = 20 << 30;

/// The name of one cache entry: SHA-256 of what determines the shot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShotKey(pub [u8; 32]);

impl ShotKey {
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The key a hex name stands for; anything but 64 hex digits (a path, a
    /// `..`, a separator, a NUL) is not a key.
    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(out))
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
    shot_key_for_revision(ENGINE_REVISION, model_identity, request)
}

/// The key `request` had (or will have) under engine revision `revision`:
/// entries of other revisions live under other names and are never served.
pub fn shot_key_for_revision(
    revision: u32,
    model_identity: &str,
    request: &ShotRequest,
) -> ShotKey {
    let mut h = Sha256::new();
    h.update(MAGIC);
    h.update(revision.to_le_bytes());
    put_str(&mut h, model_identity);
    // Only a set text encoder adds to the key, so keys of requests without
    // one are unchanged. Its path, not its contents: another T5 gives other
    // embeddings, and hashing 10 GB per lookup is not an option.
    if let Some(te) = &request.text_encoder {
        put_str(&mut h, "text-encoder");
        put_str(&mut h, &te.to_string_lossy());
    }
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
    // Window overrides change a long shot's frames; automatic settings add
    // nothing, so keys of requests that set none are unchanged.
    if !request.windows.is_automatic() {
        let w = &request.windows;
        put_str(&mut h, "windows");
        for v in [w.length, w.overlap] {
            h.update(v.map_or([0u8; 5], |n| {
                let b = n.to_le_bytes();
                [1, b[0], b[1], b[2], b[3]]
            }));
        }
        h.update(w.drift.map_or([0u8; 5], |d| {
            let b = d.to_bits().to_le_bytes();
            [1, b[0], b[1], b[2], b[3]]
        }));
    }
    ShotKey(h.finalize().into())
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
    limit: Option<u64>,
}

impl DiskShotCache {
    /// Opens (creating) the cache folder and removes GenFX temporary files
    /// that killed processes left behind. No size limit until
    /// [`Self::with_limit`].
    pub fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let removed = temp_files::sweep(dir);
        if removed > 0 {
            log::info!(
                "removed {removed} temporary files of killed GenFX processes from {}",
                dir.display()
            );
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            writer: write_durably,
            limit: None,
        })
    }

    /// Keeps the folder's entries within `limit` bytes (`None`: unbounded),
    /// evicting the least recently used after each store.
    pub fn with_limit(mut self, limit: Option<u64>) -> Self {
        self.limit = limit;
        self
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

    pub fn get(&self, key: &ShotKey) -> Lookup {
        let path = self.entry_path(key);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Lookup::Miss,
            Err(e) => return Lookup::Corrupt(format!("cannot read {}: {e}", path.display())),
        };
        match decode(&bytes, key) {
            Ok(shot) => {
                touch(&path);
                Lookup::Hit(shot)
            }
            Err(reason) => {
                // Another process may have replaced it meanwhile; removing a
                // good entry only costs a regeneration.
                let _ = fs::remove_file(&path);
                let _ = fs::remove_file(record::path_for(&path));
                Lookup::Corrupt(format!("{}: {reason}", path.display()))
            }
        }
    }

    /// Stores `shot` under `key`, atomically, then evicts the least
    /// recently used entries beyond the size limit. A shot larger than the
    /// whole limit is not stored.
    pub fn put(&self, key: &ShotKey, shot: &Shot) -> io::Result<()> {
        let bytes = encode(key, shot)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        if let Some(limit) = self.limit {
            if bytes.len() as u64 > limit {
                return Err(io::Error::other(format!(
                    "the shot ({} MB) is larger than the cache size limit ({} MB)",
                    bytes.len() >> 20,
                    limit >> 20
                )));
            }
        }
        // Written under a temporary name of ours and renamed: a reader sees
        // the whole entry or none, and a killed writer's leftover is swept.
        let final_path = self.entry_path(key);
        let temp = temp_files::temp_path(&final_path);
        if let Err(e) = (self.writer)(&temp, &bytes) {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
        temp_files::commit(&temp, &final_path)?;
        if let Some(limit) = self.limit {
            self.evict(limit, Some(key), None);
        }
        Ok(())
    }

    /// Every entry in the folder: key, size, last use. Links and anything
    /// not named like an entry are not entries.
    pub fn entries(&self) -> Vec<(ShotKey, u64, SystemTime)> {
        let Ok(list) = fs::read_dir(&self.dir) else {
            return vec![];
        };
        list.flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let key = ShotKey::from_hex(name.to_str()?.strip_suffix(&format!(".{SUFFIX}"))?)?;
                let meta = fs::symlink_metadata(e.path()).ok()?;
                meta.is_file().then(|| {
                    (
                        key,
                        meta.len(),
                        meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    )
                })
            })
            .collect()
    }

    /// Every file the size limit counts: shot entries and a long shot's
    /// window entries ([`super::long_shot::store`]), with size and last
    /// use, and whether it is a window whose lock is held (being made or
    /// written). Links and files not named like entries are not counted.
    fn cached_files(&self) -> Vec<CachedFile> {
        let Ok(list) = fs::read_dir(&self.dir) else {
            return vec![];
        };
        let window_suffix = format!(".{}", super::long_shot::store::SUFFIX);
        list.flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let name = name.to_str()?;
                let (hex, window) = match name.strip_suffix(&format!(".{SUFFIX}")) {
                    Some(hex) => (hex, false),
                    None => (name.strip_suffix(&window_suffix)?, true),
                };
                ShotKey::from_hex(hex)?;
                let meta = fs::symlink_metadata(e.path()).ok()?;
                if !meta.is_file() {
                    return None;
                }
                let locked = window && super::long_shot::store::is_locked(&e.path());
                Some(CachedFile {
                    path: e.path(),
                    len: meta.len(),
                    used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    window,
                    locked,
                })
            })
            .collect()
    }

    /// Removes the least recently used shots and windows until they fit in
    /// `limit` bytes. Never removed: the shot `keep`, a window whose lock
    /// is held, and windows used at or after `since` (those of the long
    /// shot being made, which it may read back before it ends).
    fn evict(&self, limit: u64, keep: Option<&ShotKey>, since: Option<SystemTime>) {
        let mut files = self.cached_files();
        let mut total: u64 = files.iter().map(|f| f.len).sum();
        files.sort_by_key(|f| f.used);
        let kept = keep.map(|k| self.entry_path(k));
        for f in files {
            if total <= limit {
                break;
            }
            let in_use = f.window && (f.locked || since.is_some_and(|s| f.used >= s));
            if in_use || kept.as_ref() == Some(&f.path) {
                continue;
            }
            if fs::remove_file(&f.path).is_ok() {
                // A shot entry's provenance record goes with it.
                if !f.window {
                    let _ = fs::remove_file(record::path_for(&f.path));
                }
                log::info!("shot cache: evicted {} ({} bytes)", f.path.display(), f.len);
                total -= f.len;
            }
        }
    }

    /// Applies the size limit to the folder during and after a long shot
    /// begun at `since`, whose windows stay.
    pub fn evict_for_long_shot(&self, since: SystemTime) {
        if let Some(limit) = self.limit {
            self.evict(limit, None, Some(since));
        }
    }
}

/// A file the size limit counts.
struct CachedFile {
    path: PathBuf,
    len: u64,
    used: SystemTime,
    window: bool,
    locked: bool,
}

/// Marks an entry as just used (its modification time is its last use;
/// access times are often not kept).
fn touch(path: &Path) {
    if let Ok(f) = fs::OpenOptions::new().write(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
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

/// The shot an entry's bytes hold, or why they are not a whole entry for
/// `key` (public for the fuzz target of this format).
pub fn decode(bytes: &[u8], key: &ShotKey) -> Result<Shot, String> {
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
    // Sizes from the file are checked before any arithmetic: a damaged
    // header could overflow it (found by fuzzing).
    let frame_bytes = (w as usize)
        .checked_mul(h as usize)
        .and_then(|v| v.checked_mul(3 * 4))
        .ok_or_else(|| format!("impossible frame size {w}x{h}"))?;
    if n > 0 && frame_bytes == 0 {
        return Err(format!("{n} frames of {w}x{h} pixels"));
    }
    let expected = n
        .checked_mul(frame_bytes)
        .ok_or_else(|| format!("impossible size: {n} frames of {w}x{h}"))?;
    let data = &body[HEAD..];
    if data.len() != expected {
        return Err(format!("{} data bytes, expected {expected}", data.len()));
    }
    let frames = data
        .chunks_exact(frame_bytes.max(1))
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
static LIMIT: RwLock<Option<Option<u64>>> = RwLock::new(None);

/// Sets the process's cache size limit in bytes (`None`: unbounded);
/// otherwise [`default_limit`] applies.
pub fn set_cache_limit(limit: Option<u64>) {
    *LIMIT.write() = Some(limit);
}

/// Reads a size in gigabytes (decimal fractions allowed); `0`, `none` or
/// `unlimited` mean no limit.
pub fn parse_limit_gb(text: &str) -> Result<Option<u64>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("none") || t.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    match t.parse::<f64>() {
        Ok(gb) if gb.is_finite() && gb >= 0.0 => {
            Ok((gb > 0.0).then_some((gb * (1u64 << 30) as f64) as u64))
        }
        _ => Err(format!(
            "cache size '{text}': give gigabytes, e.g. 20 or 0.5 (0 or 'none' for no limit)"
        )),
    }
}

/// The size limit unless set: `GENFX_CACHE_MAX_GB` (see
/// [`parse_limit_gb`]), else [`DEFAULT_LIMIT_BYTES`]. A bad value is
/// logged and the default used.
pub fn default_limit() -> Option<u64> {
    match std::env::var("GENFX_CACHE_MAX_GB") {
        Ok(v) => parse_limit_gb(&v).unwrap_or_else(|e| {
            log::warn!("GENFX_CACHE_MAX_GB: {e}; using the default");
            Some(DEFAULT_LIMIT_BYTES)
        }),
        Err(_) => Some(DEFAULT_LIMIT_BYTES),
    }
}

/// The process's size limit: the one set, else [`default_limit`].
pub fn current_limit() -> Option<u64> {
    (*LIMIT.read()).unwrap_or_else(default_limit)
}

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
pub type IdentityFn = fn(&Path) -> Result<String, NoIdentity>;

/// Why a request's model has no identity.
pub enum NoIdentity {
    /// The model cannot be found at all; the engine will say why.
    NoModel,
    /// The model is there but cannot be fingerprinted; the shot is made
    /// without the cache and the user told why.
    Unusable(String),
}

fn identity_of_request_model(spec: &Path) -> Result<String, NoIdentity> {
    let folder = super::model_folder::resolve(spec).map_err(|_| NoIdentity::NoModel)?;
    current_identity(&folder).map_err(|e| NoIdentity::Unusable(e.to_string()))
}

/// A [`ShotEngine`] that serves finished shots from disk and stores new ones.
pub struct DiskCachedEngine {
    inner: Arc<dyn ShotEngine>,
    folder: Option<PathBuf>,
    use_process_setting: bool,
    identity: IdentityFn,
    writer: Option<EntryWriter>,
    limit: Option<Option<u64>>,
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
            limit: None,
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

    /// Bounds the folder to `limit` bytes (`None`: unbounded), whatever the
    /// process setting.
    pub fn with_limit(mut self, limit: Option<u64>) -> Self {
        self.limit = Some(limit);
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
}

impl ShotEngine for DiskCachedEngine {
    fn generate(
        &self,
        request: &ShotRequest,
        observer: &dyn JobObserver,
    ) -> Result<Shot, EngineError> {
        CollectFrames::shot_of(self, request, observer)
    }

    /// A shot of one pass is served whole from the folder or stored whole
    /// there; a long shot keeps its windows in `windows` (default: the same
    /// folder), which are its cache: a finished long shot is read back
    /// window by window, never held or stored whole.
    fn generate_into(
        &self,
        request: &ShotRequest,
        observer: &dyn JobObserver,
        sink: &dyn FrameSink,
        windows: Option<&Path>,
    ) -> Result<(), EngineError> {
        let Some(folder) = self.folder() else {
            return self.inner.generate_into(request, observer, sink, windows);
        };
        let windows = windows.unwrap_or(&folder);
        let limit = self.limit.unwrap_or_else(current_limit);
        let cache = match DiskShotCache::open(&folder) {
            Ok(c) => match self.writer {
                Some(w) => c.with_writer(w).with_limit(limit),
                None => c.with_limit(limit),
            },
            Err(e) => {
                observer.notice(&format!(
                    "shot cache folder {} is unusable ({e}); generating without it",
                    folder.display()
                ));
                return self.inner.generate_into(request, observer, sink, None);
            }
        };
        let identity = match (self.identity)(&request.model) {
            Ok(id) => id,
            // No model there: let the engine say what is wrong with it.
            Err(NoIdentity::NoModel) => {
                return self.inner.generate_into(request, observer, sink, None)
            }
            Err(NoIdentity::Unusable(why)) => {
                observer.notice(&format!("the shot cache is not used for this shot: {why}"));
                return self.inner.generate_into(request, observer, sink, None);
            }
        };
        let key = shot_key(&identity, request);
        match cache.get(&key) {
            Lookup::Hit(shot) if shot.frames.len() == request.num_frames as usize => {
                log::info!("shot {} served from {}", key.hex(), folder.display());
                return sink.frames_ready(0, &shot.frames);
            }
            Lookup::Hit(_) | Lookup::Miss => {}
            Lookup::Corrupt(reason) => {
                observer.notice(&format!(
                    "discarded a damaged cached shot ({reason}); generating it again"
                ));
            }
        }
        // Frames pass through to the caller as they come; a shot of one
        // pass (all its frames in one hand-over) is also kept to be stored
        // whole. A long shot hands them over window by window and keeps
        // none: its windows are its cache, and its memory stays flat.
        let keep = WholeShot {
            sink,
            expected: request.num_frames as usize,
            frames: parking_lot::Mutex::new(WholeState::Waiting),
        };
        // Windows made or reused from now on belong to this shot: the size
        // limit keeps them (a file system may round times down a second
        // or two, so a little earlier than now).
        let since = SystemTime::now() - Duration::from_secs(2);
        let evicting = Evicting {
            inner: observer,
            cache: (windows == folder.as_path()).then_some(&cache),
            since,
        };
        let made = self
            .inner
            .generate_into(request, &evicting, &keep, Some(windows));
        let state = keep.frames.into_inner();
        if !matches!(state, WholeState::Kept(_)) {
            if let Some(cache) = evicting.cache {
                cache.evict_for_long_shot(since);
            }
        }
        made?;
        let WholeState::Kept(frames) = state else {
            return Ok(());
        };
        let shot = Shot { frames };
        let stored = cache.put(&key, &shot);
        if stored.is_ok() {
            if let Err(e) = record::write(&cache.entry_path(&key), &identity, request) {
                log::warn!("shot {}: no provenance record: {e}", key.hex());
            }
        }
        if let Err(e) = stored {
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
        Ok(())
    }
}

/// Passes everything on to the caller's observer, and applies the cache's
/// size limit as each window of a long shot starts (after its predecessor
/// was stored).
struct Evicting<'a> {
    inner: &'a dyn JobObserver,
    /// The cache, when the windows are kept in its folder.
    cache: Option<&'a DiskShotCache>,
    since: SystemTime,
}

impl JobObserver for Evicting<'_> {
    fn progress(&self, stage: crate::engine::Stage, done: u32, total: u32) {
        self.inner.progress(stage, done, total);
    }
    fn should_abort(&self) -> bool {
        self.inner.should_abort()
    }
    fn notice(&self, message: &str) {
        self.inner.notice(message);
    }
    fn window(&self, index: u32, count: u32) {
        if let (Some(cache), true) = (self.cache, index > 0) {
            cache.evict_for_long_shot(self.since);
        }
        self.inner.window(index, count);
    }
}

/// What [`WholeShot`] holds.
enum WholeState {
    /// No frames yet.
    Waiting,
    /// The whole shot, handed over at once (a single pass).
    Kept(Vec<Frame>),
    /// Frames came in parts (a long shot's windows): none kept.
    Streamed,
}

/// Passes frames on, and keeps a copy when the whole shot arrives in one
/// hand-over, as a single pass delivers it.
struct WholeShot<'a> {
    sink: &'a dyn FrameSink,
    expected: usize,
    frames: parking_lot::Mutex<WholeState>,
}

impl FrameSink for WholeShot<'_> {
    fn frames_ready(&self, first: usize, frames: &[Frame]) -> Result<(), EngineError> {
        {
            let mut state = self.frames.lock();
            *state = match *state {
                WholeState::Waiting if first == 0 && frames.len() == self.expected => {
                    WholeState::Kept(frames.to_vec())
                }
                _ => WholeState::Streamed,
            };
        }
        self.sink.frames_ready(first, frames)
    }
}

/// Bytes before an entry's first frame: magic, key, frame count, width,
/// height.
pub const ENTRY_HEAD_LEN: usize = 8 + 32 + 12;
/// Bytes of the checksum that ends an entry (SHA-256 of everything before).
pub const ENTRY_SUM_LEN: usize = 32;

/// The head of an entry of `frames` frames of `width`x`height`, for writers
/// that stream a long shot's frames into an entry as they are made (the
/// frames follow as little-endian f32 RGB, then the SHA-256 of all bytes
/// before it), so it never has to be whole in memory.
pub fn entry_head(key: &ShotKey, frames: u32, width: u32, height: u32) -> [u8; ENTRY_HEAD_LEN] {
    let mut head = [0u8; ENTRY_HEAD_LEN];
    head[..8].copy_from_slice(MAGIC);
    head[8..40].copy_from_slice(&key.0);
    head[40..44].copy_from_slice(&frames.to_le_bytes());
    head[44..48].copy_from_slice(&width.to_le_bytes());
    head[48..52].copy_from_slice(&height.to_le_bytes());
    head
}

/// The frame count, width and height an entry's head gives, if it is the
/// head of an entry of `key`.
pub fn read_entry_head(head: &[u8], key: &ShotKey) -> Result<(u32, u32, u32), String> {
    if head.len() < ENTRY_HEAD_LEN {
        return Err(format!("truncated ({} bytes)", head.len()));
    }
    if &head[..8] != MAGIC {
        return Err("not a GenFX shot".into());
    }
    if head[8..40] != key.0 {
        return Err("entry belongs to another shot".into());
    }
    let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    Ok((word(40), word(44), word(48)))
}

impl DiskShotCache {
    /// Removes least recently used shots and windows beyond the size
    /// limit, never `keep` nor a window whose lock is held: for writers
    /// that put an entry in place themselves.
    pub fn trim(&self, keep: &ShotKey) {
        if let Some(limit) = self.limit {
            self.evict(limit, Some(keep), None);
        }
    }

    /// The size limit this cache keeps to (`None`: unbounded).
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }
}
