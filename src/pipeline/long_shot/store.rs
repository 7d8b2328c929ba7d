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
//! While a process makes a window it holds an advisory lock (`flock` on
//! Unix, `LockFileEx` on Windows, through the `fs4` crate) on
//! `<key>.genfxwin.lock`, which names its pid and host for the notice of
//! processes that find it held; they wait for the entry instead of making
//! the window again. The kernel releases a lock when its process ends,
//! however it ends, so a killed process's lock is free at once: there is no
//! staleness to guess, and taking a lock is one atomic step, so two
//! processes can never both make a window (network file systems lock
//! through their lock manager; where locking is not supported at all the
//! window is made without a lock, as the log says).
//!
//! On Unix the holder removes the lock file before it lets go; a process
//! that locked the file just as it was removed finds the name gone or
//! naming a new file, and tries again, so only a lock on the file the name
//! names counts. Elsewhere lock files stay (removing an open file is not
//! reliable there).

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use fs4::{FileExt, TryLockError};

use sha2::{Digest, Sha256};

use super::super::temp_files;
use crate::engine::{EngineError, JobObserver};

const MAGIC: &[u8; 8] = b"GFXWIN01";
/// Window entries are `<64 hex>.genfxwin` (the shot cache counts them
/// against its size limit).
pub const SUFFIX: &str = "genfxwin";
/// Test hook, not a setting: milliseconds to pause half way through
/// writing every window entry, so the long-shot CLI test can kill the
/// writer while the entry is half written (a kill at a random moment would
/// rarely land in a write that takes a millisecond). Read once per process;
/// it only waits, so what is written, and every frame, are unchanged.
pub const WRITE_DELAY_ENV: &str = "GENFX_WINDOW_WRITE_DELAY_MS";

fn write_delay() -> Option<Duration> {
    static DELAY: OnceLock<Option<Duration>> = OnceLock::new();
    *DELAY.get_or_init(|| {
        let ms = std::env::var(WRITE_DELAY_ENV).ok()?.trim().parse().ok()?;
        log::warn!("{WRITE_DELAY_ENV}={ms}: every window entry pauses half written (a test hook)");
        Some(Duration::from_millis(ms))
    })
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
        let entry = decode(&bytes, key).map_err(|why| {
            let _ = fs::remove_file(&path);
            format!("{}: {why}", path.display())
        })?;
        // Its modification time is its last use, for the shot cache's
        // least-recently-used eviction.
        if let Ok(f) = fs::OpenOptions::new().write(true).open(&path) {
            let _ = f.set_modified(SystemTime::now());
        }
        Ok(Some(entry))
    }

    /// Stores `entry` under `key`, atomically.
    pub fn put(&self, key: &[u8; 32], entry: &WindowEntry) -> io::Result<()> {
        let delay = write_delay();
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
            if let Some(pause) = delay {
                w.inner.flush()?;
                eprintln!("genfx: test: window entry half written");
                std::thread::sleep(pause);
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

    /// Window `key`'s lock if no process holds it, whether or not the
    /// window is finished (`None`: a process holds it).
    pub fn try_lock(&self, key: &[u8; 32]) -> io::Result<Option<WindowLock>> {
        WindowLock::try_take(&self.lock_path(key))
    }

    /// The finished window `key`, or the right to make it. A window locked
    /// by a running process is waited for (`window` names it in the
    /// notice). Errors only when the observer aborts.
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
            match self.try_lock(key) {
                Ok(Some(lock)) => {
                    // Finished between our look and our lock?
                    if let Ok(Some(entry)) = self.get(key) {
                        return Ok(Claim::Done(entry));
                    }
                    return Ok(Claim::Make(Some(lock)));
                }
                Ok(None) => {
                    if !told {
                        observer.notice(&format!(
                            "window {} is being made by another process ({}); waiting for it",
                            window + 1,
                            holder(&lock_path)
                        ));
                        told = true;
                    }
                    if observer.should_abort() {
                        return Err(EngineError::Aborted);
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => {
                    log::warn!(
                        "cannot lock {}: {e}; making the window without a lock",
                        lock_path.display()
                    );
                    return Ok(Claim::Make(None));
                }
            }
        }
    }
}

/// Whether the window entry at `entry` is being made or written: its lock
/// is held by a process (the shot cache never evicts such a window).
pub fn is_locked(entry: &Path) -> bool {
    let mut lock = entry.as_os_str().to_owned();
    lock.push(".lock");
    let Ok(file) = File::open(PathBuf::from(lock)) else {
        return false;
    };
    // A shared lock is refused while anyone holds the exclusive one; ours
    // is let go at once (a maker trying in that instant waits one poll).
    match FileExt::try_lock_shared(&file) {
        Ok(()) => {
            let _ = FileExt::unlock(&file);
            false
        }
        Err(_) => true,
    }
}

/// Who holds the lock at `path`, as its file says.
fn holder(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(f) = File::open(path) {
        let _ = f.take(256).read_to_string(&mut text);
    }
    let mut fields = text.split_whitespace();
    match (fields.next(), fields.next()) {
        (Some(pid), Some(host)) => format!("pid {pid} on {host}"),
        _ => "a process that is starting".into(),
    }
}

/// Whether `file` is the file `path` names now (the same inode).
#[cfg(unix)]
fn names(path: &Path, file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Lock files are never removed off Unix, so the name always names it.
#[cfg(not(unix))]
fn names(_: &Path, _: &File) -> bool {
    true
}

/// A window's lock: an exclusive advisory lock on its lock file, let go
/// (and on Unix the file removed) on drop, and by the kernel if the
/// process dies.
pub struct WindowLock {
    path: PathBuf,
    file: File,
}

impl WindowLock {
    /// The lock at `path` if no process holds it (`None` if one does).
    fn try_take(path: &Path) -> io::Result<Option<Self>> {
        loop {
            let file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?;
            // fs4's, not std's `File::try_lock` (Rust 1.89, above our MSRV).
            match FileExt::try_lock(&file) {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => return Err(e),
            }
            // The holder before us removed the file after we opened it:
            // our lock is on a file no longer there. Try again.
            if !names(path, &file) {
                continue;
            }
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            // Who holds it, for the notice of those who wait; the lock
            // itself is the flock, whatever the text says.
            file.set_len(0)?;
            (&file).write_all(
                format!("{} {} {now}\n", std::process::id(), temp_files::host_name()).as_bytes(),
            )?;
            return Ok(Some(Self {
                path: path.to_path_buf(),
                file,
            }));
        }
    }
}

impl Drop for WindowLock {
    fn drop(&mut self) {
        // Removed while still held, so no one locks it between our unlock
        // and the removal; those who opened it already find it gone.
        if cfg!(unix) {
            let _ = fs::remove_file(&self.path);
        }
        let _ = FileExt::unlock(&self.file);
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
    fn a_claim_locks_and_a_lock_no_process_holds_is_free() {
        let d = dir("lock");
        let store = WindowStore::open(&d).unwrap();
        let key = [3u8; 32];
        let Claim::Make(Some(lock)) = store.claim(&key, 0, &Silent).unwrap() else {
            panic!("expected to make the window");
        };
        let text = fs::read_to_string(store.lock_path(&key)).unwrap();
        assert!(text.starts_with(&format!("{} ", std::process::id())));
        assert!(is_locked(&store.path(&key)));
        // Held: another claim waits (here it is told to stop at once).
        struct Stop(parking_lot::Mutex<Vec<String>>);
        impl JobObserver for Stop {
            fn progress(&self, _: crate::engine::Stage, _: u32, _: u32) {}
            fn should_abort(&self) -> bool {
                true
            }
            fn notice(&self, m: &str) {
                self.0.lock().push(m.into());
            }
        }
        let stop = Stop(Default::default());
        assert!(matches!(
            store.claim(&key, 0, &stop),
            Err(EngineError::Aborted)
        ));
        let said = stop.0.lock().join("\n");
        assert!(
            said.contains(&format!("pid {}", std::process::id())),
            "{said}"
        );
        drop(lock);
        assert!(!is_locked(&store.path(&key)));
        if cfg!(unix) {
            assert!(!store.lock_path(&key).exists());
        }
        // A lock file whose process was killed (its flock went with it),
        // naming a live process or not: free, whatever its age.
        fs::write(
            store.lock_path(&key),
            format!("{} somewhere 0\n", std::process::id()),
        )
        .unwrap();
        assert!(!is_locked(&store.path(&key)));
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

    /// Many claimants at once on a window whose lock file a killed process
    /// left: exactly one makes it, the others wait and read it. (flock
    /// locks belong to open files, so threads contend as processes do.)
    #[test]
    fn racing_claimants_over_a_left_lock_make_the_window_once() {
        for round in 0..5 {
            let d = dir(&format!("race{round}"));
            let store = WindowStore::open(&d).unwrap();
            let key = [5u8; 32];
            fs::write(store.lock_path(&key), "4000000 gone-host 0\n").unwrap();
            let barrier = std::sync::Barrier::new(8);
            let made = std::sync::atomic::AtomicUsize::new(0);
            std::thread::scope(|s| {
                for _ in 0..8 {
                    s.spawn(|| {
                        barrier.wait();
                        match store.claim(&key, 0, &Silent).unwrap() {
                            Claim::Make(lock) => {
                                assert!(lock.is_some());
                                made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                std::thread::sleep(Duration::from_millis(50));
                                store.put(&key, &entry()).unwrap();
                            }
                            Claim::Done(e) => assert_eq!(e, entry()),
                        }
                    });
                }
            });
            assert_eq!(made.into_inner(), 1, "round {round}");
            fs::remove_dir_all(&d).unwrap();
        }
    }
}
