//! What the emulated device claims to be and which faults it injects.
//!
//! Read from `GENFX_EMU_*` variables when the driver first loads; tests change
//! it at run time with `genfx_emu_set(key, value)` using the same keys.

/// Keys and the variables they start from.
pub const KEYS: &[(&str, &str)] = &[
    ("devices", "GENFX_EMU_DEVICES"),
    ("cc", "GENFX_EMU_CC"),
    ("memory", "GENFX_EMU_MEMORY"),
    ("driver_version", "GENFX_EMU_DRIVER_VERSION"),
    ("dry_run", "GENFX_EMU_DRY_RUN"),
    ("cublaslt", "GENFX_EMU_CUBLASLT"),
    ("fail_alloc_at", "GENFX_EMU_FAIL_ALLOC_AT"),
    ("fail_launch_at", "GENFX_EMU_FAIL_LAUNCH_AT"),
    ("nan_gemm_at", "GENFX_EMU_NAN_GEMM_AT"),
];

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Devices `cuDeviceGetCount` reports (0 models a machine without a GPU
    /// whose driver is installed).
    pub devices: i32,
    /// Compute capability (major, minor); default an H100's 9.0.
    pub cc: (i32, i32),
    /// Device memory in bytes; allocations beyond it fail as out of memory.
    pub total_memory: u64,
    /// `cuDriverGetVersion`, e.g. 13000 for CUDA 13.0. Images built by a
    /// newer toolkit than the driver are refused as the real driver does.
    pub driver_version: i32,
    /// Check and count everything, execute nothing, back no memory.
    pub dry_run: bool,
    /// Whether cuBLASLt works; off, `cublasLtCreate` fails as on a machine
    /// whose cuBLASLt cannot be used (default on).
    pub cublaslt: bool,
    /// From the Nth allocation from now on, every allocation fails with
    /// `CUDA_ERROR_OUT_OF_MEMORY`, as on a card that has filled up (stored
    /// as the absolute allocation count it starts at).
    pub fail_alloc_at: Option<u64>,
    /// The Nth kernel launch from now fails when it runs
    /// (`CUDA_ERROR_LAUNCH_FAILED` at the next synchronisation).
    pub fail_launch_at: Option<u64>,
    /// The Nth GEMM from now writes a NaN into its first output element.
    pub nan_gemm_at: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            devices: 1,
            cc: (9, 0),
            total_memory: 80 << 30,
            driver_version: 13000,
            dry_run: false,
            cublaslt: true,
            fail_alloc_at: None,
            fail_launch_at: None,
            nan_gemm_at: None,
        }
    }
}

/// Where the fault counters stand when a fault is armed, so that "the Nth
/// from now" becomes an absolute count.
#[derive(Clone, Copy, Debug, Default)]
pub struct Now {
    pub allocs: u64,
    pub launches: u64,
    pub gemms: u64,
}

impl Config {
    /// Defaults overridden by the `GENFX_EMU_*` variables that are set; a
    /// malformed one is reported on stderr and ignored.
    pub fn from_env() -> Config {
        let mut c = Config::default();
        for (key, var) in KEYS {
            if let Ok(v) = std::env::var(var) {
                if let Err(e) = c.set(key, &v, Now::default()) {
                    eprintln!("genfx-cuda-emu: ignoring {var}={v:?}: {e}");
                }
            }
        }
        c
    }

    pub fn set(&mut self, key: &str, value: &str, now: Now) -> Result<(), String> {
        let value = value.trim();
        let count = |v: &str| -> Result<Option<u64>, String> {
            if v.is_empty() || v == "off" {
                return Ok(None);
            }
            match v.parse::<u64>() {
                Ok(0) | Err(_) => Err(format!("{v:?} is not a count from 1")),
                Ok(n) => Ok(Some(n)),
            }
        };
        match key {
            "devices" => {
                self.devices = value
                    .parse()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| format!("{value:?} is not a device count"))?
            }
            "cc" => {
                let (major, minor) = value
                    .split_once('.')
                    .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                    .ok_or_else(|| format!("{value:?} is not MAJOR.MINOR"))?;
                self.cc = (major, minor);
            }
            "memory" => {
                self.total_memory = value
                    .parse()
                    .map_err(|_| format!("{value:?} is not a byte count"))?
            }
            "driver_version" => {
                self.driver_version = value
                    .parse()
                    .map_err(|_| format!("{value:?} is not a version like 12040"))?
            }
            "dry_run" => self.dry_run = matches!(value, "1" | "true" | "yes"),
            "cublaslt" => self.cublaslt = !matches!(value, "0" | "false" | "no" | "off"),
            "fail_alloc_at" => self.fail_alloc_at = count(value)?.map(|n| now.allocs + n),
            "fail_launch_at" => self.fail_launch_at = count(value)?.map(|n| now.launches + n),
            "nan_gemm_at" => self.nan_gemm_at = count(value)?.map(|n| now.gemms + n),
            other => return Err(format!("unknown key {other:?}")),
        }
        Ok(())
    }

    /// Largest dynamic shared memory one block may opt in to on this
    /// architecture (bytes).
    pub fn max_shared_optin(&self) -> u32 {
        match self.cc {
            (9, _) => 227 * 1024,
            (8, 0) | (8, 7) => 163 * 1024,
            (8, _) => 99 * 1024,
            (7, 5) => 64 * 1024,
            (7, _) => 96 * 1024,
            _ => 48 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_faults_count_from_now() {
        let mut c = Config::default();
        let now = Now {
            allocs: 10,
            launches: 3,
            gemms: 0,
        };
        c.set("cc", "7.5", now).unwrap();
        c.set("fail_alloc_at", "2", now).unwrap();
        c.set("fail_launch_at", "1", now).unwrap();
        c.set("dry_run", "1", now).unwrap();
        assert_eq!(c.cc, (7, 5));
        assert_eq!(c.fail_alloc_at, Some(12));
        assert_eq!(c.fail_launch_at, Some(4));
        assert!(c.dry_run);
        c.set("fail_alloc_at", "off", now).unwrap();
        assert_eq!(c.fail_alloc_at, None);
        assert!(c.set("fail_alloc_at", "0", now).is_err());
        assert!(c.set("cc", "nine", now).is_err());
        assert!(c.set("colour", "red", now).is_err());
    }
}
