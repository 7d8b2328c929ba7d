//! The GenFX log file. Hosts swallow stderr, so everything worth knowing goes
//! through the `log` facade into a file, and panics are recorded by a hook.
//!
//! Where the log is written:
//! - `$GENFX_LOG` when set (a file path);
//! - otherwise the per-user default:
//!   Linux `$XDG_STATE_HOME/genfx/genfx.log` (else `~/.local/state/genfx/genfx.log`),
//!   macOS `~/Library/Logs/GenFX/genfx.log`,
//!   Windows `%LOCALAPPDATA%\GenFX\genfx.log`;
//! - if none of those can be opened, `<temp dir>/genfx.log`.
//!
//! `$GENFX_LOG_LEVEL` (error, warn, info, debug, trace) sets the detail;
//! the default is info.

use log::{LevelFilter, Log, Metadata, Record};
use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Once;
use std::time::{SystemTime, UNIX_EPOCH};

struct FileLogger {
    file: Mutex<Option<File>>,
}

impl Log for FileLogger {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }

    fn log(&self, record: &Record) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let line = format!(
            "{}.{:03} {:5} [{:?}] {}: {}\n",
            now.as_secs(),
            now.subsec_millis(),
            record.level(),
            std::thread::current().id(),
            record.target(),
            record.args()
        );
        if let Some(file) = self.file.lock().as_mut() {
            let _ = file.write_all(line.as_bytes());
        }
    }

    fn flush(&self) {
        if let Some(file) = self.file.lock().as_mut() {
            let _ = file.flush();
        }
    }
}

/// The per-user default log path (see the module documentation).
pub fn default_path() -> Option<PathBuf> {
    #[cfg(target_os = "windows")]
    return std::env::var_os("LOCALAPPDATA")
        .map(|d| PathBuf::from(d).join("GenFX").join("genfx.log"));
    #[cfg(target_os = "macos")]
    return std::env::var_os("HOME").map(|h| PathBuf::from(h).join("Library/Logs/GenFX/genfx.log"));
    #[cfg(not(any(target_os = "windows", target_os = "macos")))]
    return std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("state")))
        .map(|d| d.join("genfx").join("genfx.log"));
}

/// The path the log goes to, following `$GENFX_LOG`.
pub fn log_path() -> Option<PathBuf> {
    std::env::var_os("GENFX_LOG")
        .map(PathBuf::from)
        .or_else(default_path)
}

fn open(path: &PathBuf) -> Option<File> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    OpenOptions::new().create(true).append(true).open(path).ok()
}

/// Installs the file logger and the panic hook, once per process. Never
/// fails: without a writable file, logging is silently off.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let file = log_path()
            .and_then(|p| open(&p))
            .or_else(|| open(&std::env::temp_dir().join("genfx.log")));
        let level = match std::env::var("GENFX_LOG_LEVEL")
            .unwrap_or_default()
            .to_ascii_lowercase()
            .as_str()
        {
            "error" => LevelFilter::Error,
            "warn" => LevelFilter::Warn,
            "debug" => LevelFilter::Debug,
            "trace" => LevelFilter::Trace,
            _ => LevelFilter::Info,
        };
        let logger = Box::leak(Box::new(FileLogger {
            file: Mutex::new(file),
        }));
        // The host process may already have a `log` logger (another Rust
        // plug-in); then ours stays unused and theirs gets our records.
        if log::set_logger(logger).is_ok() {
            log::set_max_level(level);
        }
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let backtrace = std::backtrace::Backtrace::force_capture();
            log::error!("panic: {info}\n{backtrace}");
            log::logger().flush();
            // Keep whatever the host or test harness printed before.
            previous(info);
        }));
        log::info!(
            "GenFX {} loaded; log at {:?}",
            env!("CARGO_PKG_VERSION"),
            log_path()
        );
    });
}
