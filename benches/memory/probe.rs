//! Watching a child process's memory: its `/proc/PID/status` sampled for
//! peak RSS and peak anonymous RSS (`RssAnon`: the heap and other private
//! memory, not the file-backed pages of a memory-mapped model, which the
//! kernel can drop and read again), and a memory cgroup to run it in.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A field of `/proc/PID/status` (`VmRSS`, `RssAnon`, `VmHWM`, ...) in bytes.
pub fn status_bytes(pid: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(&format!("{field}:")))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Peaks seen by [`Sampler`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Peaks {
    pub rss: u64,
    pub rss_anon: u64,
    pub samples: u64,
}

/// Samples a process every few milliseconds until stopped. RssAnon has no
/// high-water mark in the kernel, so its peak is the largest sample; with
/// the model's allocations lasting seconds, a 10 ms period sees them.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Peaks>,
}

impl Sampler {
    pub fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let pid = pid.to_string();
            let mut peaks = Peaks::default();
            while !flag.load(Ordering::Relaxed) {
                if let (Some(rss), Some(anon)) =
                    (status_bytes(&pid, "VmRSS"), status_bytes(&pid, "RssAnon"))
                {
                    peaks.rss = peaks.rss.max(rss);
                    peaks.rss_anon = peaks.rss_anon.max(anon);
                    peaks.samples += 1;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            peaks
        });
        Self { stop, thread }
    }

    pub fn finish(self) -> Peaks {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// A memory cgroup with a hard limit, removed when dropped. Version 2
/// (`memory.max`) where the unified hierarchy has the memory controller,
/// else version 1 (`memory.limit_in_bytes`).
pub struct MemoryCgroup {
    pub dir: PathBuf,
    v2: bool,
}

impl MemoryCgroup {
    pub fn create(name: &str, limit: u64) -> Result<Self, String> {
        let unified = Path::new("/sys/fs/cgroup");
        let v2 = std::fs::read_to_string(unified.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"));
        let (dir, limit_file) = if v2 {
            (unified.join(name), "memory.max")
        } else {
            (unified.join("memory").join(name), "memory.limit_in_bytes")
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot make the cgroup {}: {e}", dir.display()))?;
        let group = Self { dir, v2 };
        std::fs::write(group.dir.join(limit_file), limit.to_string())
            .map_err(|e| format!("cannot set {} in {}: {e}", limit_file, group.dir.display()))?;
        Ok(group)
    }

    /// Moves the calling process into `dir` (run by the child itself, before
    /// it allocates anything, so that all its memory is charged there).
    pub fn enter(dir: &Path) -> Result<(), String> {
        std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string())
            .map_err(|e| format!("cannot enter the cgroup {}: {e}", dir.display()))
    }

    /// The most memory charged to the group (anonymous and page cache).
    pub fn peak(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        std::fs::read_to_string(self.dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Processes the kernel's OOM killer ended in the group.
    pub fn oom_kills(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        let text = std::fs::read_to_string(self.dir.join(file)).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // empty once its processes have exited
        let _ = std::fs::remove_dir(&self.dir);
    }
}
