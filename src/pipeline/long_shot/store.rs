//! Finished windows on disk, so a killed or aborted long shot resumes at
//! its first unfinished window and processes sharing the folder make each
//! window once.
//!
//! An entry (`<key>.genfxwin`) holds one window's latents (after drift
//! matching), its decoded frames and the shot's drift reference; it is
//! written under a temporary name of ours, flushed and renamed into place
//! ([`super::super::temp_files`]), and ends with a SHA-256 of everything
//! before it, checked on reading (a damaged entry is removed and made
//! again). The key hashes the shot's key, the window plan and the window's
//! index, so no entry is served to another shot or plan.
//!
//! While a process makes a window it holds `<key>.genfxwin.lock`, created
//! exclusively and holding its pid, host and start time; a thread touches
//! it every few seconds. Another process finding the lock waits for the
//! entry instead of making the window again. A lock whose process is gone
//! (same host) or that was not touched for [`stale_after`] is taken over.
//! Racing takeovers can at worst make a window twice: both writers write
//! the same bytes.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::super::temp_files;
use crate::engine::{EngineError, JobObserver};

const MAGIC: &[u8; 8] = b"GFXWIN01";
const SUFFIX: &str = "genfxwin";
/// Test hook: milliseconds to pause half way through writing an entry, so
/// a test can kill the writer mid-write.
pub const WRITE_DELAY_ENV: &str = "GENFX_WINDOW_WRITE_DELAY_MS";
/// Seconds after which an untouched lock is stale (default 60).
pub const STALE_ENV: &str = "GENFX_WINDOW_LOCK_STALE_S";

/// How long a lock may go untouched before it is taken over.
pub fn stale_after() -> Duration {
    let secs = std::env::var(STALE_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(60);
    Duration::from_secs(secs.max(1))
}

/// One finished window.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowEntry {
    /// `[C, f, h, w]`.
    pub latent_dims: [usize; 4],
    pub latents: Vec<f32>,
    pub frames: usize,
    pub width: usize,
    pub height: usize,
    /// `[3, frames, height, width]` in [0, 1].
    pub video: Vec<f32>,
    /// The drift reference's per-channel means then deviations.
    pub reference: Vec<f32>,
}

/// Writes through to a file and hashes what it wrote.
struct Hashing<W: Write> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Hashing<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hash.update(bytes);
        self.inner.write_all(bytes)
    }
    fn put_u32(&mut self, v: usize) -> io::Result<()> {
        let v = u32::try_from(v).map_err(|_| io::Error::other("window too large to store"))?;
        self.put(&v.to_le_bytes())
    }
    fn put_f32s(&mut self, values: &[f32]) -> io::Result<()> {
        self.put_u32(values.len())?;
        for chunk in values.chunks(1 << 14) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
            self.put(&bytes)?;
        }
        Ok(())
    }
}

/// A folder of finished windows.
pub struct WindowStore {
    dir: PathBuf,
}

/// What [`WindowStore::claim`] found.
pub enum Claim {
    /// The window is finished (made by this or another process).
    Done(WindowEntry),
    /// This process makes it, holding its lock until dropped.
    Make(Option<WindowLock>),
}

impl WindowStore {
    /// Opens (creating) `dir` and removes temporary files that killed GenFX
    /// processes left there.
    pub fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        temp_files::sweep(dir);
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    pub fn path(&self, key: &[u8; 32]) -> PathBuf {
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{hex}.{SUFFIX}"))
    }

    fn lock_path(&self, key: &[u8; 32]) -> PathBuf {
        let mut p = self.path(key).into_os_string();
        p.push(".lock");
        PathBuf::from(p)
    }

    /// The finished window, if there is a sound one; a damaged one is
    /// removed and reported as `Err`.
    pub fn get(&self, key: &[u8; 32]) -> Result<Option<WindowEntry>, String> {
        let path = self.path(key);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        decode(&bytes, key).map(Some).map_err(|why| {
            let _ = fs::remove_file(&path);
            format!("{}: {why}", path.display())
        })
    }

    /// Stores `entry` under `key`, atomically.
    pub fn put(&self, key: &[u8; 32], entry: &WindowEntry) -> io::Result<()> {
        let delay = std::env::var(WRITE_DELAY_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok());
        temp_files::write_atomically(&self.path(key), |file: &mut File| {
            let mut w = Hashing {
                inner: BufWriter::new(&mut *file),
                hash: Sha256::new(),
            };
            w.put(MAGIC)?;
            w.put(key)?;
            for d in entry.latent_dims {
                w.put_u32(d)?;
            }
            w.put_f32s(&entry.latents)?;
            if let Some(ms) = delay {
                w.inner.flush()?;
                log::info!("window entry half written; pausing {ms} ms");
                eprintln!("genfx: test: window entry half written");
                std::thread::sleep(Duration::from_millis(ms));
            }
            w.put_u32(entry.frames)?;
            w.put_u32(entry.width)?;
            w.put_u32(entry.height)?;
            w.put_f32s(&entry.video)?;
            w.put_f32s(&entry.reference)?;
            let sum: [u8; 32] = w.hash.finalize().into();
            w.inner.write_all(&sum)?;
            w.inner.flush()
        })
    }

    /// The finished window `key`, or the right to make it. A window locked
    /// by a live process is waited for (`window` names it in the notice);
    /// a stale lock is taken over. Errors only when the observer aborts.
    pub fn claim(
        &self,
        key: &[u8; 32],
        window: usize,
        observer: &dyn JobObserver,
    ) -> Result<Claim, EngineError> {
        let lock_path = self.lock_path(key);
        let mut told = false;
        loop {
            match self.get(key) {
                Ok(Some(entry)) => return Ok(Claim::Done(entry)),
                Ok(None) => {}
                Err(why) => observer.notice(&format!(
                    "discarded a damaged window of a long shot ({why}); making it again"
                )),
            }
            match WindowLock::create(&lock_path) {
                Ok(lock) => {
                    // Finished between our look and our lock?
                    if let Ok(Some(entry)) = self.get(key) {
                        return Ok(Claim::Done(entry));
                    }
                    return Ok(Claim::Make(Some(lock)));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    log::warn!(
                        "cannot lock {}: {e}; making the window without a lock",
                        lock_path.display()
                    );
                    return Ok(Claim::Make(None));
                }
            }
            match lock_state(&lock_path) {
                LockState::Gone => continue,
                LockState::Stale(holder) => {
                    log::info!("taking over window {window} from a stale lock ({holder})");
                    // Moved aside first, so only one taker removes it.
                    let aside = temp_files::temp_path(&lock_path);
                    if fs::rename(&lock_path, &aside).is_ok() {
                        let _ = fs::remove_file(&aside);
                    }
                    continue;
                }
                LockState::Live(holder) => {
                    if !told {
                        observer.notice(&format!(
                            "window {} is being made by another process ({holder}); waiting for it",
                            window + 1
                        ));
                        told = true;
                    }
                    if observer.should_abort() {
                        return Err(EngineError::Aborted);
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }
}

enum LockState {
    Gone,
    Stale(String),
    Live(String),
}

fn lock_state(path: &Path) -> LockState {
    let Ok(meta) = fs::metadata(path) else {
        return LockState::Gone;
    };
    let mut text = String::new();
    if let Ok(f) = File::open(path) {
        let _ = f.take(256).read_to_string(&mut text);
    }
    let mut fields = text.split_whitespace();
    let pid = fields.next().and_then(|p| p.parse::<u32>().ok());
    let host = fields.next().unwrap_or("").to_string();
    let holder = format!(
        "pid {} on {}",
        pid.map_or("?".into(), |p| p.to_string()),
        if host.is_empty() { "?" } else { &host }
    );
    let dead = pid.is_some_and(|pid| {
        host == temp_files::host_name()
            && pid != std::process::id()
            && temp_files::process_gone(pid) == Some(true)
    });
    let untouched = meta
        .modified()
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age > stale_after());
    // A lock being written has no text yet; only its age can make it stale.
    if dead || untouched {
        LockState::Stale(holder)
    } else {
        LockState::Live(holder)
    }
}

/// A window's lock, touched by a thread while held and removed on drop.
pub struct WindowLock {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

impl WindowLock {
    fn create(path: &Path) -> io::Result<Self> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        writeln!(
            f,
            "{} {} {now}",
            std::process::id(),
            temp_files::host_name()
        )?;
        f.sync_all()?;
        let stop = Arc::new(AtomicBool::new(false));
        let every = (stale_after() / 4).max(Duration::from_millis(250));
        let refresher = {
            let (stop, path) = (stop.clone(), path.to_path_buf());
            std::thread::spawn(move || {
                let tick = Duration::from_millis(100);
                let mut waited = Duration::ZERO;
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    waited += tick;
                    if waited >= every {
                        waited = Duration::ZERO;
                        if let Ok(f) = fs::OpenOptions::new().write(true).open(&path) {
                            let _ = f.set_modified(SystemTime::now());
                        }
                    }
                }
            })
        };
        Ok(Self {
            path: path.to_path_buf(),
            stop,
            refresher: Some(refresher),
        })
    }
}

impl Drop for WindowLock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        let _ = fs::remove_file(&self.path);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| "truncated".to_string())?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u32(&mut self) -> Result<usize, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    fn f32s(&mut self) -> Result<Vec<f32>, String> {
        let n = self.u32()?;
        let bytes = self.take(n.checked_mul(4).ok_or("impossible size")?)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}

fn decode(bytes: &[u8], key: &[u8; 32]) -> Result<WindowEntry, String> {
    if bytes.len() < 8 + 32 + 32 {
        return Err(format!("truncated ({} bytes)", bytes.len()));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return Err("checksum mismatch".into());
    }
    let mut r = Reader { bytes: body, at: 0 };
    if r.take(8)? != MAGIC {
        return Err("not a GenFX window".into());
    }
    if r.take(32)? != key {
        return Err("entry belongs to another window".into());
    }
    let mut latent_dims = [0usize; 4];
    for d in &mut latent_dims {
        *d = r.u32()?;
    }
    let latents = r.f32s()?;
    let (frames, width, height) = (r.u32()?, r.u32()?, r.u32()?);
    let video = r.f32s()?;
    let reference = r.f32s()?;
    if latents.len() != latent_dims.iter().product::<usize>()
        || video.len() != 3 * frames * width * height
        || r.at != body.len()
    {
        return Err("sizes do not match".into());
    }
    Ok(WindowEntry {
        latent_dims,
        latents,
        frames,
        width,
        height,
        video,
        reference,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Silent;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("genfx-winstore-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn entry() -> WindowEntry {
        WindowEntry {
            latent_dims: [2, 2, 1, 1],
            latents: vec![0.5, -1.0, 2.0, 3.0],
            frames: 1,
            width: 2,
            height: 1,
            video: vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
            reference: vec![0.0, 1.0, 1.0, 1.0],
        }
    }

    #[test]
    fn entries_round_trip_and_damage_is_caught() {
        let d = dir("roundtrip");
        let store = WindowStore::open(&d).unwrap();
        let key = [7u8; 32];
        assert_eq!(store.get(&key), Ok(None));
        store.put(&key, &entry()).unwrap();
        assert_eq!(store.get(&key), Ok(Some(entry())));
        // Another key never reads it.
        fs::copy(store.path(&key), store.path(&[8u8; 32])).unwrap();
        assert!(store.get(&[8u8; 32]).is_err());
        let mut bytes = fs::read(store.path(&key)).unwrap();
        bytes[50] ^= 1;
        fs::write(store.path(&key), &bytes).unwrap();
        assert!(store.get(&key).unwrap_err().contains("checksum"));
        assert!(!store.path(&key).exists());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_claim_locks_and_a_dead_holders_lock_is_taken_over() {
        let d = dir("lock");
        let store = WindowStore::open(&d).unwrap();
        let key = [3u8; 32];
        let Claim::Make(Some(lock)) = store.claim(&key, 0, &Silent).unwrap() else {
            panic!("expected to make the window");
        };
        let text = fs::read_to_string(store.lock_path(&key)).unwrap();
        assert!(text.starts_with(&format!("{} ", std::process::id())));
        drop(lock);
        assert!(!store.lock_path(&key).exists());
        // A lock of a process of this host that no longer runs.
        fs::write(
            store.lock_path(&key),
            format!("{} {} 0\n", u32::MAX - 1, temp_files::host_name()),
        )
        .unwrap();
        assert!(matches!(
            store.claim(&key, 0, &Silent).unwrap(),
            Claim::Make(Some(_))
        ));
        store.put(&key, &entry()).unwrap();
        assert!(matches!(
            store.claim(&key, 0, &Silent).unwrap(),
            Claim::Done(_)
        ));
        fs::remove_dir_all(&d).unwrap();
    }
}
