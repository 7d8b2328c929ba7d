//! On-disk cache of kernels compiled by NVRTC at run time.
//!
//! Compiling all kernels takes seconds; a plugin reloaded by the host for
//! every project would pay that each time. A compiled image is valid for one
//! source text, one GPU architecture, one NVRTC version and one set of
//! options, so the file name carries a hash of exactly those. Files are
//! written under a temporary name and renamed, so a crash or a second
//! process racing on the same kernel never leaves a torn file behind.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Overrides the cache folder.
pub const CACHE_DIR_ENV: &str = "GENFX_KERNEL_CACHE";

/// Everything a compiled image depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheKey<'a> {
    /// The kernel module's name, for a readable file name.
    pub module: &'a str,
    pub source: &'a str,
    /// e.g. `sm_90`.
    pub arch: &'a str,
    /// `(major, minor)` from `nvrtcVersion`.
    pub nvrtc_version: (i32, i32),
    pub options: &'a [String],
}

impl CacheKey<'_> {
    /// 128-bit FNV-1a over every field, with separators so that moving bytes
    /// between fields changes the hash.
    pub fn digest(&self) -> u128 {
        let mut h = Fnv128::new();
        h.field(self.module.as_bytes());
        h.field(self.source.as_bytes());
        h.field(self.arch.as_bytes());
        h.field(&self.nvrtc_version.0.to_le_bytes());
        h.field(&self.nvrtc_version.1.to_le_bytes());
        for option in self.options {
            h.field(option.as_bytes());
        }
        h.0
    }

    /// The file name for this key, readable and unique per digest.
    pub fn file_name(&self, extension: &str) -> String {
        let module: String = self
            .module
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!(
            "{module}-{}-nvrtc{}.{}-{:032x}.{extension}",
            self.arch,
            self.nvrtc_version.0,
            self.nvrtc_version.1,
            self.digest()
        )
    }
}

struct Fnv128(u128);

impl Fnv128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;

    fn new() -> Self {
        Self(Self::OFFSET)
    }

    fn byte(&mut self, b: u8) {
        self.0 ^= b as u128;
        self.0 = self.0.wrapping_mul(Self::PRIME);
    }

    fn field(&mut self, bytes: &[u8]) {
        for &b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            self.byte(b);
        }
    }
}

/// The default cache folder: `$GENFX_KERNEL_CACHE`, else the platform's user
/// cache folder, else the temporary folder.
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_DIR_ENV) {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("LOCALAPPDATA").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    match base {
        Some(base) => base.join("genfx").join("kernels"),
        None => std::env::temp_dir().join("genfx-kernels"),
    }
}

/// Compiled images stored in one folder.
#[derive(Clone, Debug)]
pub struct KernelCache {
    dir: PathBuf,
}

impl KernelCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, key: &CacheKey<'_>, extension: &str) -> PathBuf {
        self.dir.join(key.file_name(extension))
    }

    /// The stored image, if a complete one exists.
    pub fn load(&self, key: &CacheKey<'_>, extension: &str) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.path(key, extension)).ok()?;
        (!bytes.is_empty()).then_some(bytes)
    }

    /// Stores `image` atomically. A failure to cache is not a failure to run:
    /// callers log it and go on.
    pub fn store(&self, key: &CacheKey<'_>, extension: &str, image: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let target = self.path(key, extension);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let tmp = self.dir.join(format!(
            ".{}.{}.{nanos}.tmp",
            key.file_name(extension),
            std::process::id()
        ));
        let written = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(image)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &target)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(source: &'a str, arch: &'a str, options: &'a [String]) -> CacheKey<'a> {
        CacheKey {
            module: "attention",
            source,
            arch,
            nvrtc_version: (13, 0),
            options,
        }
    }

    #[test]
    fn every_input_changes_the_key() {
        let opts = vec!["-std=c++17".to_string()];
        let base = key("src", "sm_90", &opts);
        let d = base.digest();
        assert_eq!(d, key("src", "sm_90", &opts).digest(), "deterministic");
        assert_ne!(d, key("src2", "sm_90", &opts).digest());
        assert_ne!(d, key("src", "sm_80", &opts).digest());
        assert_ne!(d, key("src", "sm_90", &[]).digest());
        let mut v = base.clone();
        v.nvrtc_version = (13, 1);
        assert_ne!(d, v.digest());
        let mut m = base.clone();
        m.module = "norms";
        assert_ne!(d, m.digest());
        // moving bytes between fields is a different key
        let split_a = vec!["ab".to_string(), "c".to_string()];
        let split_b = vec!["a".to_string(), "bc".to_string()];
        assert_ne!(
            key("s", "sm_90", &split_a).digest(),
            key("s", "sm_90", &split_b).digest()
        );
    }

    #[test]
    fn file_names_are_readable_and_safe() {
        let opts = vec![];
        let mut k = key("src", "sm_89", &opts);
        k.module = "a/b c";
        let name = k.file_name("cubin");
        assert!(name.starts_with("a_b_c-sm_89-nvrtc13.0-"), "{name}");
        assert!(name.ends_with(".cubin"));
        assert_eq!(
            name.len(),
            "a_b_c-sm_89-nvrtc13.0-".len() + 32 + ".cubin".len()
        );
    }

    #[test]
    fn store_then_load_round_trips_and_leaves_no_temporaries() {
        let dir = std::env::temp_dir().join(format!("genfx-kcache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = KernelCache::new(&dir);
        let opts = vec!["-arch".to_string()];
        let k = key("kernel source", "sm_80", &opts);
        assert_eq!(cache.load(&k, "ptx"), None);
        cache.store(&k, "ptx", b"PTX image").unwrap();
        assert_eq!(cache.load(&k, "ptx").as_deref(), Some(&b"PTX image"[..]));
        // another arch is a miss
        assert_eq!(
            cache.load(&key("kernel source", "sm_90", &opts), "ptx"),
            None
        );
        // overwriting is atomic and leaves one file
        cache.store(&k, "ptx", b"PTX image 2").unwrap();
        assert_eq!(cache.load(&k, "ptx").as_deref(), Some(&b"PTX image 2"[..]));
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![k.file_name("ptx")]);
        // an empty (torn) file counts as a miss
        std::fs::write(cache.path(&k, "ptx"), b"").unwrap();
        assert_eq!(cache.load(&k, "ptx"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
