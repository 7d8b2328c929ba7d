//! A per-allocation limit: libFuzzer's own `-malloc_limit_mb` needs a
//! sanitizer's malloc hooks, which a stable (sanitizer-free) build lacks, and
//! a huge zeroed allocation that is never touched does not raise the RSS
//! libFuzzer watches. So any single allocation over
//! `GENFX_FUZZ_MALLOC_LIMIT_MB` aborts here, and libFuzzer keeps the input
//! as a crash.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Limited;

/// Bytes; 0 until read from the environment, `usize::MAX` for no limit.
static LIMIT: AtomicUsize = AtomicUsize::new(0);

fn limit() -> usize {
    match LIMIT.load(Ordering::Relaxed) {
        0 => {
            // Reading the environment allocates: store "no limit" first so
            // that those allocations pass.
            LIMIT.store(usize::MAX, Ordering::Relaxed);
            let mb = std::env::var("GENFX_FUZZ_MALLOC_LIMIT_MB")
                .ok()
                .and_then(|v| v.parse::<usize>().ok());
            let bytes = mb.map_or(usize::MAX, |mb| mb.saturating_mul(1 << 20));
            LIMIT.store(bytes, Ordering::Relaxed);
            bytes
        }
        n => n,
    }
}

fn check(size: usize) {
    if size > limit() {
        // Lift the limit so that the report below may allocate, then abort
        // (an allocator must not unwind): libFuzzer keeps the input.
        LIMIT.store(usize::MAX, Ordering::Relaxed);
        let _ = writeln!(
            std::io::stderr(),
            "==genfx-fuzz== allocation of {size} bytes exceeds GENFX_FUZZ_MALLOC_LIMIT_MB at\n{}",
            std::backtrace::Backtrace::force_capture()
        );
        std::process::abort();
    }
}

// SAFETY: every call forwards to the system allocator with the caller's
// layout and pointer unchanged; the size check before it only reads.
unsafe impl GlobalAlloc for Limited {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        // SAFETY: as for `dealloc`, and `new_size` is the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Limited = Limited;
