//! The emulator's own entry points (not CUDA's): settings, fault injection,
//! counters. `genfx_kernels_emu::device` calls them through the loaded
//! library.

use std::ffi::{c_char, c_int, CStr};

use crate::config::Config;
use crate::state::{emu, reset_counters};

/// Changes one setting (keys of `config::KEYS`; fault counts start from
/// now). `reset` with any value restores the `GENFX_EMU_*` settings, clears
/// the faults, and zeroes the counters. 0 on success, -1 for an unknown key
/// or a bad value (written to stderr).
#[no_mangle]
pub unsafe extern "C" fn genfx_emu_set(key: *const c_char, value: *const c_char) -> c_int {
    if key.is_null() || value.is_null() {
        return -1;
    }
    // SAFETY: the caller's NUL-terminated strings.
    let (key, value) = unsafe {
        (
            CStr::from_ptr(key).to_string_lossy().into_owned(),
            CStr::from_ptr(value).to_string_lossy().into_owned(),
        )
    };
    let e = emu();
    if key == "reset" {
        *e.config.lock() = Config::from_env();
        reset_counters();
        e.last_error.lock().clear();
        return 0;
    }
    let now = e.counters.now();
    match e.config.lock().set(&key, &value, now) {
        Ok(()) => 0,
        Err(why) => {
            eprintln!("genfx-cuda-emu: genfx_emu_set({key:?}, {value:?}): {why}");
            -1
        }
    }
}

/// Writes the 12 counters (see `state::Counters`) to `out`.
#[no_mangle]
pub unsafe extern "C" fn genfx_emu_counters(out: *mut u64) -> c_int {
    if out.is_null() {
        return -1;
    }
    let values = emu().counters.snapshot();
    // SAFETY: the caller's buffer of 12 u64s.
    unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), out, values.len()) };
    values.len() as c_int
}

/// Zeroes the counters (the peak restarts from the memory in use).
#[no_mangle]
pub extern "C" fn genfx_emu_reset_counters() {
    reset_counters();
}

/// Launches of the kernel called `name` (any module) since the counters
/// were last zeroed; 0 for a null name.
#[no_mangle]
pub unsafe extern "C" fn genfx_emu_kernel_launches(name: *const c_char) -> u64 {
    if name.is_null() {
        return 0;
    }
    // SAFETY: the caller's NUL-terminated string.
    let name = unsafe { CStr::from_ptr(name) }.to_string_lossy();
    emu()
        .kernel_launches
        .lock()
        .get(name.as_ref())
        .copied()
        .unwrap_or(0)
}

/// Copies the last fault or refusal message (NUL-terminated, cut to fit)
/// into `out`; returns the length the whole message needs.
#[no_mangle]
pub unsafe extern "C" fn genfx_emu_last_error(out: *mut c_char, capacity: usize) -> usize {
    let message = emu().last_error.lock().clone();
    if !out.is_null() && capacity > 0 {
        let n = message.len().min(capacity - 1);
        // SAFETY: the caller gave `capacity` writable bytes; we write n + 1.
        unsafe {
            std::ptr::copy_nonoverlapping(message.as_ptr(), out.cast::<u8>(), n);
            *out.add(n) = 0;
        }
    }
    message.len() + 1
}
