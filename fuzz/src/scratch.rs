//! Scratch files for parsers that read a path.

use std::path::PathBuf;

thread_local! {
    /// This thread's scratch folder (tests run targets on several threads).
    static DIR: PathBuf = {
        let base = std::env::var_os("GENFX_FUZZ_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let thread = format!("{:?}", std::thread::current().id());
        let thread: String = thread.chars().filter(char::is_ascii_digit).collect();
        base.join(format!("genfx-fuzz-{}-{thread}", std::process::id()))
    };
}

/// This thread's scratch folder: under `GENFX_FUZZ_TMP` (which
/// `cargo xtask fuzz` sets and removes afterwards) or the system's temp
/// folder.
pub fn dir() -> PathBuf {
    DIR.with(PathBuf::clone)
}

/// Writes `bytes` to `name` in the scratch folder and returns its path.
pub fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = dir();
    // Made again here: `remove` may have run on this thread.
    std::fs::create_dir_all(&dir).expect("the scratch folder can be made");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("the scratch file can be written");
    path
}

/// Removes this thread's scratch folder.
pub fn remove() {
    let _ = std::fs::remove_dir_all(dir());
}
