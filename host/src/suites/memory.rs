//! `OfxMemorySuiteV1`: blocks the host owns until the plugin frees them.

use super::{guard, write_out};
use crate::abi::*;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::os::raw::c_void;

pub static SUITE: OfxMemorySuiteV1 = OfxMemorySuiteV1 {
    memoryAlloc: Some(alloc),
    memoryFree: Some(free),
};

/// Live blocks by address, 16-byte aligned.
static BLOCKS: Mutex<BTreeMap<usize, Box<[u128]>>> = Mutex::new(BTreeMap::new());

unsafe extern "C" fn alloc(_handle: *mut c_void, bytes: usize, out: *mut *mut c_void) -> OfxStatus {
    guard(|| {
        if out.is_null() {
            return stat::ERR_BAD_HANDLE;
        }
        let words = bytes.div_ceil(16).max(1);
        let mut block = Vec::new();
        if block.try_reserve_exact(words).is_err() {
            return stat::ERR_MEMORY;
        }
        block.resize(words, 0u128);
        let mut block = block.into_boxed_slice();
        let ptr = block.as_mut_ptr() as *mut c_void;
        BLOCKS.lock().insert(ptr as usize, block);
        // SAFETY: non-null place for a pointer.
        unsafe { write_out(out, ptr) }
    })
}

unsafe extern "C" fn free(ptr: *mut c_void) -> OfxStatus {
    guard(|| match BLOCKS.lock().remove(&(ptr as usize)) {
        Some(_) => stat::OK,
        None => stat::ERR_BAD_HANDLE,
    })
}
