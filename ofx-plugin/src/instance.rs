//! Per-instance state, kept behind the host's instance-data pointer.

use crate::effects::Context;
use parking_lot::Mutex;

pub struct Instance {
    pub context: Context,
    /// The last problem shown to the user, so a failing render of every frame
    /// does not pop up the same dialog again and again.
    pub shown: Mutex<Option<String>>,
}

impl Instance {
    pub fn new(context: Context) -> Self {
        Self {
            context,
            shown: Mutex::new(None),
        }
    }
}
