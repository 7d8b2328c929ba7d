//! `genfx generate` given a folder that is not a model: refused at once with
//! a message naming what is wrong, without walking the folder (issue 15:
//! `--model /` fingerprinted the whole filesystem before it was refused).

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn the_filesystem_root_as_model_is_refused_at_once() {
    let out = std::env::temp_dir().join(format!("genfx-root-model-{}", std::process::id()));
    let cache = out.with_extension("cache");
    let t = Instant::now();
    let result = Command::new(env!("CARGO_BIN_EXE_genfx"))
        .args(["generate", "--model", "/", "--prompt", "x", "--out"])
        .arg(&out)
        .env("GENFX_CACHE_DIR", &cache)
        .env("GENFX_DEVICE", "cpu")
        .output()
        .expect("run genfx generate");
    let took = t.elapsed();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("model_index.json"), "{stderr}");
    assert!(
        took < Duration::from_secs(10),
        "took {took:?}: the folder was walked"
    );
    // No frame was written and the cache holds no entry.
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none());
    let entries = std::fs::read_dir(&cache).map(|l| l.count()).unwrap_or(0);
    assert_eq!(entries, 0);
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&cache);
}
