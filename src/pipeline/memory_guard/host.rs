//! How much memory this process may still use: `MemAvailable` from
//! `/proc/meminfo`, and the limits of the memory cgroups it runs in (v2's
//! `memory.max`, v1's `memory.limit_in_bytes`, at its own cgroup and every
//! ancestor, since any of them can OOM-kill it). Parsers take text, so
//! they are tested on samples; the probe takes its roots, so it is tested
//! on a folder laid out like `/proc` and `/sys/fs/cgroup`.

use std::path::{Path, PathBuf};

/// Bytes from `/proc/meminfo`: `MemAvailable` (the kernel's estimate of
/// what can be allocated without swapping, page cache it can drop
/// included), or on kernels before 3.14, which lack it, `MemFree` plus
/// `Buffers` and `Cached`.
pub fn parse_meminfo(text: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let mut words = rest.split_whitespace();
            let value: u64 = words.next()?.parse().ok()?;
            let scale = match words.next() {
                Some("kB") => 1024,
                None => 1,
                Some(_) => return None,
            };
            value.checked_mul(scale)
        })
    };
    field("MemAvailable").or_else(|| {
        let free = field("MemFree")?;
        Some(free + field("Buffers").unwrap_or(0) + field("Cached").unwrap_or(0))
    })
}

/// This process's memory cgroups, from `/proc/self/cgroup`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupPaths {
    /// The unified (v2) hierarchy's path (`0::/path`).
    pub v2: Option<String>,
    /// The v1 memory controller's path (`N:memory:/path`, or a line whose
    /// controllers include `memory`).
    pub v1_memory: Option<String>,
}

pub fn parse_self_cgroup(text: &str) -> CgroupPaths {
    let mut paths = CgroupPaths::default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            paths.v2 = Some(path.to_string());
        } else if controllers.split(',').any(|c| c == "memory") {
            paths.v1_memory = Some(path.to_string());
        }
    }
    paths
}

/// v1 writes "no limit" as a huge page-aligned number (2^63 rounded down
/// to a page); anything past this is no limit.
const V1_UNLIMITED: u64 = 1 << 60;

/// A limit file's value: `None` for `max` (v2) or v1's "no limit".
pub fn parse_limit(text: &str) -> Option<u64> {
    let text = text.trim();
    if text == "max" {
        return None;
    }
    text.parse::<u64>().ok().filter(|&v| v < V1_UNLIMITED)
}

/// A `memory.stat` entry (`key value` lines).
pub fn parse_stat(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// One cgroup level's room: its limit minus what it uses, plus the
/// inactive page cache it holds, which the kernel reclaims before it
/// OOM-kills anything in it.
fn room(limit: Option<u64>, usage: Option<u64>, inactive_file: Option<u64>) -> Option<u64> {
    let limit = limit?;
    let used = usage
        .unwrap_or(0)
        .saturating_sub(inactive_file.unwrap_or(0));
    Some(limit.saturating_sub(used))
}

/// What limits this process's memory, and the least room among them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostMemory {
    /// Bytes the kernel says can be allocated.
    pub mem_available: Option<u64>,
    /// The tightest cgroup: its room in bytes and its folder.
    pub cgroup: Option<(u64, PathBuf)>,
}

impl HostMemory {
    /// The bytes this process can still use: the least of the two.
    pub fn available(&self) -> Option<u64> {
        match (self.mem_available, &self.cgroup) {
            (Some(a), Some((c, _))) => Some(a.min(*c)),
            (a, c) => a.or(c.as_ref().map(|(c, _)| *c)),
        }
    }

    /// Whether a cgroup limit is what binds.
    pub fn cgroup_binds(&self) -> bool {
        match (self.mem_available, &self.cgroup) {
            (Some(a), Some((c, _))) => *c < a,
            (None, Some(_)) => true,
            _ => false,
        }
    }
}

/// Reads `proc_root/meminfo`, `proc_root/self/cgroup` and the cgroup files
/// under `cgroup_root` (`/proc` and `/sys/fs/cgroup` on a real system).
pub fn probe(proc_root: &Path, cgroup_root: &Path) -> HostMemory {
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    let mem_available = read(&proc_root.join("meminfo")).and_then(|t| parse_meminfo(&t));
    let paths = read(&proc_root.join("self/cgroup"))
        .map(|t| parse_self_cgroup(&t))
        .unwrap_or_default();
    let mut levels: Vec<(u64, PathBuf)> = Vec::new();
    if let Some(path) = &paths.v2 {
        for dir in ancestors(cgroup_root, path) {
            let stat = read(&dir.join("memory.stat"));
            let room = room(
                read(&dir.join("memory.max")).and_then(|t| parse_limit(&t)),
                read(&dir.join("memory.current")).and_then(|t| t.trim().parse().ok()),
                stat.and_then(|s| parse_stat(&s, "inactive_file")),
            );
            levels.extend(room.map(|r| (r, dir)));
        }
    }
    if let Some(path) = &paths.v1_memory {
        for dir in ancestors(&cgroup_root.join("memory"), path) {
            let stat = read(&dir.join("memory.stat"));
            let room = room(
                read(&dir.join("memory.limit_in_bytes")).and_then(|t| parse_limit(&t)),
                read(&dir.join("memory.usage_in_bytes")).and_then(|t| t.trim().parse().ok()),
                stat.and_then(|s| parse_stat(&s, "total_inactive_file")),
            );
            levels.extend(room.map(|r| (r, dir)));
        }
    }
    HostMemory {
        mem_available,
        cgroup: levels.into_iter().min_by_key(|(r, _)| *r),
    }
}

/// `root/path` and each folder above it up to `root`, deepest first.
/// Path components that could leave `root` (`..`) end the walk there.
fn ancestors(root: &Path, path: &str) -> Vec<PathBuf> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.contains(&"..") {
        return vec![root.to_path_buf()];
    }
    (0..=parts.len())
        .rev()
        .map(|n| parts[..n].iter().fold(root.to_path_buf(), |d, p| d.join(p)))
        .collect()
}

/// This machine's figures.
pub fn probe_system() -> HostMemory {
    probe(Path::new("/proc"), Path::new("/sys/fs/cgroup"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       16303216 kB\nMemFree:         1021636 kB\n\
        MemAvailable:    8123456 kB\nBuffers:          204800 kB\nCached:          6000000 kB\n";

    #[test]
    fn meminfo_gives_mem_available_in_bytes() {
        assert_eq!(parse_meminfo(MEMINFO), Some(8_123_456 * 1024));
        // a kernel without MemAvailable: free + buffers + cached
        let old = "MemTotal: 100 kB\nMemFree: 10 kB\nBuffers: 2 kB\nCached: 30 kB\n";
        assert_eq!(parse_meminfo(old), Some(42 * 1024));
        assert_eq!(parse_meminfo("MemAvailableX: 5 kB\n"), None);
        assert_eq!(parse_meminfo("MemAvailable: lots kB\n"), None);
        assert_eq!(parse_meminfo("MemAvailable: 5 MB\n"), None);
        assert_eq!(parse_meminfo(""), None);
    }

    #[test]
    fn self_cgroup_finds_v2_and_v1_memory() {
        assert_eq!(
            parse_self_cgroup("0::/user.slice/user-1000.slice/session-2.scope\n"),
            CgroupPaths {
                v2: Some("/user.slice/user-1000.slice/session-2.scope".into()),
                v1_memory: None
            }
        );
        let v1 = "12:pids:/a\n4:cpu,cpuacct:/b\n9:memory:/docker/abc\n0::/\n";
        let paths = parse_self_cgroup(v1);
        assert_eq!(paths.v1_memory.as_deref(), Some("/docker/abc"));
        assert_eq!(paths.v2.as_deref(), Some("/"));
        assert_eq!(
            parse_self_cgroup("3:blkio,memory:/x\n")
                .v1_memory
                .as_deref(),
            Some("/x")
        );
        assert_eq!(parse_self_cgroup("garbage\n\n"), CgroupPaths::default());
    }

    #[test]
    fn limits_read_max_and_v1_unlimited_as_none() {
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit("8589934592\n"), Some(8 << 30));
        assert_eq!(parse_limit("-1"), None);
        assert_eq!(parse_limit(""), None);
        let stat = "anon 100\nfile 5000\nactive_file 1000\ninactive_file 4000\n";
        assert_eq!(parse_stat(stat, "inactive_file"), Some(4000));
        assert_eq!(parse_stat(stat, "file"), Some(5000));
        assert_eq!(parse_stat(stat, "shmem"), None);
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn the_tightest_cgroup_level_binds() {
        let dir = std::env::temp_dir().join(format!("genfx-memguard-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (proc_root, cg) = (dir.join("proc"), dir.join("cgroup"));
        write(&proc_root.join("meminfo"), MEMINFO);
        write(&proc_root.join("self/cgroup"), "0::/app.slice/genfx\n");
        // the process's own cgroup has no limit; its parent allows 6 GiB,
        // of which 3 GiB are used, 1 GiB of that inactive page cache
        write(&cg.join("app.slice/genfx/memory.max"), "max\n");
        write(&cg.join("app.slice/genfx/memory.current"), "1000\n");
        write(
            &cg.join("app.slice/memory.max"),
            &format!("{}\n", 6u64 << 30),
        );
        write(
            &cg.join("app.slice/memory.current"),
            &format!("{}\n", 3u64 << 30),
        );
        write(
            &cg.join("app.slice/memory.stat"),
            &format!("anon 1\ninactive_file {}\n", 1u64 << 30),
        );
        let m = probe(&proc_root, &cg);
        assert_eq!(m.mem_available, Some(8_123_456 * 1024));
        assert_eq!(m.cgroup, Some((4 << 30, cg.join("app.slice"))));
        assert_eq!(m.available(), Some(4 << 30));
        assert!(m.cgroup_binds());

        // cgroup v1: memory.limit_in_bytes at the process's own level
        write(&proc_root.join("self/cgroup"), "7:memory:/job\n");
        write(&cg.join("memory/job/memory.limit_in_bytes"), "2147483648\n");
        write(&cg.join("memory/job/memory.usage_in_bytes"), "1073741824\n");
        write(
            &cg.join("memory/job/memory.stat"),
            "total_inactive_file 0\n",
        );
        write(
            &cg.join("memory/memory.limit_in_bytes"),
            "9223372036854771712\n",
        );
        let m = probe(&proc_root, &cg);
        assert_eq!(m.cgroup, Some((1 << 30, cg.join("memory/job"))));
        assert_eq!(m.available(), Some(1 << 30));

        // no cgroup files at all: MemAvailable alone
        std::fs::remove_dir_all(&cg).unwrap();
        let m = probe(&proc_root, &cg);
        assert_eq!((m.cgroup.clone(), m.available()), (None, m.mem_available));
        assert!(!m.cgroup_binds());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_machine_reports_memory_available() {
        let m = probe_system();
        let available = m.available().expect("a Linux machine has /proc/meminfo");
        assert!(
            available > 0 && available <= m.mem_available.unwrap(),
            "{m:?}"
        );
    }

    #[test]
    fn cgroup_paths_cannot_climb_out_of_the_root() {
        let root = Path::new("/sys/fs/cgroup");
        assert_eq!(ancestors(root, "/../../etc"), vec![root.to_path_buf()]);
        assert_eq!(
            ancestors(root, "/a/b"),
            vec![root.join("a/b"), root.join("a"), root.to_path_buf()]
        );
        assert_eq!(ancestors(root, "/"), vec![root.to_path_buf()]);
    }
}
