//! Per-instance state, kept behind the host's instance-data pointer.

use crate::effects::Context;
use crate::ofx::Effect;
use parking_lot::{Mutex, RwLock};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub struct Instance {
    pub context: Context,
    /// The last problem shown to the user, so a failing render of every frame
    /// does not pop up the same dialog again and again.
    pub shown: Mutex<Option<String>>,
    /// The instance handle for calls made outside an action (a Generate
    /// job's progress, the status line); `None` once the host destroyed the
    /// instance. Such calls hold the read lock for their duration.
    link: RwLock<Option<Effect>>,
    /// Set first at DestroyInstance, before waiting for the write lock.
    gone: AtomicBool,
    /// The status text last written, so it is written only when it changes.
    pub status: Mutex<String>,
}

/// How long DestroyInstance waits for a call in flight from a job thread.
/// Bounded, so a host whose suite call waits on its UI thread (which is
/// in DestroyInstance) cannot hang; the instance is marked gone first, so
/// no new call starts either way.
const DESTROY_WAIT: Duration = Duration::from_secs(5);

impl Instance {
    pub fn new(context: Context, effect: Effect) -> Self {
        Self {
            context,
            shown: Mutex::new(None),
            link: RwLock::new(Some(effect)),
            gone: AtomicBool::new(false),
            status: Mutex::new(String::new()),
        }
    }

    /// Runs `f` with the instance handle if the instance is still alive.
    pub fn with_effect<R>(&self, f: impl FnOnce(&Effect) -> R) -> Option<R> {
        let link = self.link.read();
        if self.gone.load(Ordering::SeqCst) {
            return None;
        }
        link.as_ref().map(f)
    }

    pub fn alive(&self) -> bool {
        !self.gone.load(Ordering::SeqCst)
    }

    /// DestroyInstance: no call through `with_effect` starts after this.
    pub fn unlink(&self) {
        self.gone.store(true, Ordering::SeqCst);
        match self.link.try_write_for(DESTROY_WAIT) {
            Some(mut link) => *link = None,
            None => log::error!(
                "a job thread held the instance for {DESTROY_WAIT:?} during DestroyInstance"
            ),
        }
    }
}
