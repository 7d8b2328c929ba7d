//! Maps the raw handles a plugin holds back to the host objects behind them.
//!
//! A plugin may hand back a null, stale or foreign pointer. Every suite entry
//! looks the handle up here first, so such a pointer gets
//! `kOfxStatErrBadHandle` instead of being dereferenced.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

pub struct Registry<T> {
    live: Mutex<BTreeMap<usize, Weak<T>>>,
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Registry<T> {
    pub const fn new() -> Self {
        Self {
            live: Mutex::new(BTreeMap::new()),
        }
    }

    /// Registers `object`; its handle is its address.
    pub fn add(&self, object: &Arc<T>) -> usize {
        let address = Arc::as_ptr(object) as usize;
        let mut live = self.live.lock();
        // Drop entries whose objects are gone so the map stays small.
        if live.len() > 64 && live.len().is_power_of_two() {
            live.retain(|_, weak| weak.strong_count() > 0);
        }
        live.insert(address, Arc::downgrade(object));
        address
    }

    /// Registers `object` under another address (e.g. its property set's).
    pub fn add_at(&self, address: usize, object: &Arc<T>) {
        self.live.lock().insert(address, Arc::downgrade(object));
    }

    /// The live object behind `handle`, if any.
    pub fn get(&self, handle: usize) -> Option<Arc<T>> {
        if handle == 0 {
            return None;
        }
        self.live.lock().get(&handle).and_then(Weak::upgrade)
    }

    pub fn remove(&self, handle: usize) {
        self.live.lock().remove(&handle);
    }
}
