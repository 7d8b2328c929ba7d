//! Files written whole or not at all: the bytes go to a temporary file named
//! so that only GenFX's own leftovers are ever swept, are flushed, and the
//! file is renamed over its final name. A process killed mid-write leaves a
//! temporary file and never a torn file under the final name.
//!
//! Temporary names are `.genfx-<final name>.<host>.<pid>.<n>.tmp`. The
//! `.genfx-` prefix marks them as ours, so a shared folder never loses files
//! GenFX did not write; the host and process id let the next run remove a
//! killed writer's leftovers at once (its process is gone) instead of
//! waiting for them to age.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

const PREFIX: &str = ".genfx-";
const SUFFIX: &str = ".tmp";

/// A leftover whose writer cannot be checked (another machine on a shared
/// folder, or a platform without `/proc`) is removed once it is this old: no
/// GenFX write takes an hour.
pub const STALE_AFTER: Duration = Duration::from_secs(3600);

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// This machine's name, reduced to characters that are safe in a file name
/// and contain no dots (the fields of a temporary name are dot-separated).
pub fn host_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let raw = fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("COMPUTERNAME").ok())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_default();
        let clean: String = raw
            .trim()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(32)
            .collect();
        if clean.is_empty() {
            "host".into()
        } else {
            clean
        }
    })
}

/// A new temporary name next to `final_path`.
pub fn temp_path(final_path: &Path) -> PathBuf {
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    final_path.with_file_name(format!(
        "{PREFIX}{name}.{}.{}.{}{SUFFIX}",
        host_name(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Who wrote a temporary file, read back from its name.
#[derive(Debug, PartialEq, Eq)]
pub struct TempOwner {
    pub host: String,
    pub pid: u32,
}

/// The writer of `name` if it is one of our temporary names.
pub fn owner_of(name: &str) -> Option<TempOwner> {
    let inner = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let mut fields = inner.rsplitn(4, '.');
    let counter = fields.next()?;
    let pid = fields.next()?;
    let host = fields.next()?;
    let final_name = fields.next()?;
    if final_name.is_empty() || counter.parse::<u64>().is_err() || host.is_empty() {
        return None;
    }
    Some(TempOwner {
        host: host.to_string(),
        pid: pid.parse().ok()?,
    })
}

/// Temporary names of GenFX before this scheme, which killed writers may
/// have left behind: the engine's `.<64 hex>.<pid>.<n>.tmp` and the plugin's
/// `<32 hex>.<pid>.ThreadId<n>.tmp`. Nothing else has these shapes; they are
/// removed once stale.
fn legacy_temp(name: &str) -> bool {
    let hex = |t: &str, n: usize| t.len() == n && t.bytes().all(|b| b.is_ascii_hexdigit());
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let Some(inner) = name.strip_suffix(SUFFIX) else {
        return false;
    };
    let fields: Vec<&str> = inner.split('.').collect();
    match fields.as_slice() {
        ["", key, pid, n] => hex(key, 64) && digits(pid) && digits(n),
        [key, pid, thread] => {
            hex(key, 32) && digits(pid) && thread.strip_prefix("ThreadId").is_some_and(digits)
        }
        _ => false,
    }
}

/// Whether process `pid` of this machine is gone; `None` where that cannot
/// be told (no `/proc`).
pub fn process_gone(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return None;
    }
    Some(!proc.join(pid.to_string()).exists())
}

/// Removes GenFX's leftover temporary files in `dir`: those of processes of
/// this machine that no longer run, and any older than [`STALE_AFTER`].
/// Nothing else is touched, and links are removed as links, never followed.
/// Returns how many were removed.
pub fn sweep(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let owner = owner_of(&name);
        if owner.is_none() && !legacy_temp(&name) {
            continue;
        }
        let Ok(meta) = fs::symlink_metadata(e.path()) else {
            continue;
        };
        if meta.is_dir() {
            continue;
        }
        let ours_and_dead = owner.is_some_and(|owner| {
            owner.host == host_name()
                && owner.pid != std::process::id()
                && process_gone(owner.pid) == Some(true)
        });
        let old = meta
            .modified()
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > STALE_AFTER);
        if (ours_and_dead || old) && fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Writes a new `final_path` through `write`: into a temporary file, flushed
/// to the disk, then renamed into place (replacing any file there). On any
/// failure the temporary file is removed and `final_path` is untouched.
pub fn write_atomically(
    final_path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let temp = temp_path(final_path);
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        write(&mut file)?;
        file.flush()?;
        file.sync_all()
    })();
    match result {
        Ok(()) => commit(&temp, final_path),
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Renames the finished temporary file `temp` over `final_path` and makes
/// the rename durable where the platform allows it; on failure `temp` is
/// removed.
pub fn commit(temp: &Path, final_path: &Path) -> io::Result<()> {
    if let Err(e) = fs::rename(temp, final_path) {
        let _ = fs::remove_file(temp);
        return Err(e);
    }
    if let Some(parent) = final_path.parent() {
        let dir = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("genfx-tmpf-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn names_round_trip_and_foreign_names_are_not_ours() {
        let p = temp_path(Path::new("/x/frame.0001.png"));
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".genfx-frame.0001.png."), "{name}");
        assert_eq!(
            owner_of(name),
            Some(TempOwner {
                host: host_name().into(),
                pid: std::process::id()
            })
        );
        for foreign in [
            ".foo.tmp",
            ".abc.123.0.tmp",
            "genfx-a.h.1.2.tmp",
            ".genfx-.h.1.2.tmp",
            ".genfx-a.h.x.2.tmp",
            ".genfx-a.h.1.2.tmp.part",
            ".genfx-a.tmp",
        ] {
            assert_eq!(owner_of(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn sweep_removes_only_our_dead_or_stale_leftovers() {
        let d = scratch("sweep");
        // A process id that cannot be running: above Linux's pid_max limit.
        let dead = d.join(format!(".genfx-a.bin.{}.99999999.0.tmp", host_name()));
        let live = d.join(format!(
            ".genfx-b.bin.{}.{}.0.tmp",
            host_name(),
            std::process::id()
        ));
        let remote = d.join(".genfx-c.bin.othermachine.1.0.tmp");
        // Earlier versions' names: the engine's and the plugin's.
        let legacy = [
            d.join(format!(".{}.4242.0.tmp", "ab".repeat(32))),
            d.join(format!("{}.4242.ThreadId7.tmp", "cd".repeat(16))),
        ];
        let foreign = [
            ".someone.tmp",
            "notes.tmp",
            ".x.123.0.tmp",
            "abc.1.ThreadId2.tmp",
        ];
        for p in [&dead, &live, &remote].into_iter().chain(&legacy) {
            fs::write(p, b"partial").unwrap();
        }
        for f in foreign {
            fs::write(d.join(f), b"not ours").unwrap();
        }
        let expect_dead_gone = process_gone(99_999_999) == Some(true);
        sweep(&d);
        assert_eq!(!dead.exists(), expect_dead_gone);
        assert!(live.exists() && remote.exists());
        assert!(legacy.iter().all(|p| p.exists()), "fresh leftovers stay");
        // Once old, an unverifiable leftover goes too; foreign files stay
        // however old they are.
        let old = SystemTime::now() - Duration::from_secs(7200);
        for p in [remote.clone()]
            .into_iter()
            .chain(legacy.iter().cloned())
            .chain(foreign.iter().map(|f| d.join(f)))
        {
            File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        sweep(&d);
        assert!(!remote.exists());
        assert!(
            legacy.iter().all(|p| !p.exists()),
            "stale old-style leftovers stay"
        );
        for f in foreign {
            assert!(d.join(f).exists(), "{f} is not ours and must stay");
        }
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_failed_write_leaves_nothing_and_keeps_the_old_file() {
        let d = scratch("fail");
        let target = d.join("out.bin");
        fs::write(&target, b"old").unwrap();
        let r = write_atomically(&target, |f| {
            f.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        });
        assert!(r.is_err());
        assert_eq!(fs::read(&target).unwrap(), b"old");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        write_atomically(&target, |f| f.write_all(b"new")).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        let _ = fs::remove_dir_all(&d);
    }
}
