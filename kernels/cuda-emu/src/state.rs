//! The one emulated device of the process: configuration, memory, queues,
//! loaded modules, counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use parking_lot::Mutex;

use crate::config::{Config, Now};
use crate::memory::Memory;
use crate::queue::Queues;

/// Figures the driver keeps; mirrored by `EmuCounters` in
/// `genfx_kernels_emu::device` (same order, all u64).
#[derive(Default)]
pub struct Counters {
    pub allocs: AtomicU64,
    pub frees: AtomicU64,
    pub live_bytes: AtomicU64,
    pub peak_bytes: AtomicU64,
    pub h2d_bytes: AtomicU64,
    pub d2h_bytes: AtomicU64,
    pub d2d_bytes: AtomicU64,
    pub launches: AtomicU64,
    pub gemms: AtomicU64,
    pub gemm_flops: AtomicU64,
    /// Host waits: stream, event and context synchronisations and
    /// synchronous copies.
    pub syncs: AtomicU64,
    /// Launches or GEMMs that faulted or were refused.
    pub faults: AtomicU64,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> [u64; 12] {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            l(&self.allocs),
            l(&self.frees),
            l(&self.live_bytes),
            l(&self.peak_bytes),
            l(&self.h2d_bytes),
            l(&self.d2h_bytes),
            l(&self.d2d_bytes),
            l(&self.launches),
            l(&self.gemms),
            l(&self.gemm_flops),
            l(&self.syncs),
            l(&self.faults),
        ]
    }

    /// Zeroes the flow counters; the peak restarts from what is live.
    pub fn reset(&self) {
        for c in [
            &self.allocs,
            &self.frees,
            &self.h2d_bytes,
            &self.d2h_bytes,
            &self.d2d_bytes,
            &self.launches,
            &self.gemms,
            &self.gemm_flops,
            &self.syncs,
            &self.faults,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        self.peak_bytes
            .store(self.live_bytes.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    pub fn now(&self) -> Now {
        Now {
            allocs: self.allocs.load(Ordering::Relaxed),
            launches: self.launches.load(Ordering::Relaxed),
            gemms: self.gemms.load(Ordering::Relaxed),
        }
    }
}

pub struct Emu {
    pub config: Mutex<Config>,
    pub memory: Mutex<Memory>,
    pub queues: Mutex<Queues>,
    /// Held while queued work runs, so that one stream's work is not
    /// interleaved with another's and a free never races a running kernel.
    pub exec: Mutex<()>,
    pub modules: Mutex<crate::driver::Modules>,
    pub counters: Counters,
    /// Launches by kernel name since the counters were last zeroed, so a
    /// test can tell which of two kernels for one op the backend chose.
    pub kernel_launches: Mutex<std::collections::HashMap<String, u64>>,
    /// The last fault or refusal, in words (the driver API only returns
    /// codes); also printed on stderr.
    pub last_error: Mutex<String>,
}

pub fn emu() -> &'static Emu {
    static EMU: OnceLock<Emu> = OnceLock::new();
    EMU.get_or_init(|| Emu {
        config: Mutex::new(Config::from_env()),
        memory: Mutex::new(Memory::default()),
        queues: Mutex::new(Queues::default()),
        exec: Mutex::new(()),
        modules: Mutex::new(Default::default()),
        counters: Counters::default(),
        kernel_launches: Mutex::new(Default::default()),
        last_error: Mutex::new(String::new()),
    })
}

/// Records a fault or refusal: counted, kept for `genfx_emu_last_error`,
/// printed for the test log.
pub fn report(message: String) {
    let e = emu();
    Counters::add(&e.counters.faults, 1);
    eprintln!("genfx-cuda-emu: {message}");
    *e.last_error.lock() = message;
}

/// Zeroes the counters and the launches by kernel name.
pub fn reset_counters() {
    let e = emu();
    e.counters.reset();
    e.kernel_launches.lock().clear();
}

pub fn config() -> Config {
    emu().config.lock().clone()
}
