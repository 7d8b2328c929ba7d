//! Process-wide sharing of loaded models: every plugin instance, render
//! clone and render thread asking for the same folder gets the same weights,
//! loaded once.
//!
//! Entries are keyed by the canonical folder path and held weakly, except
//! for the most recently used one, which stays loaded between renders so
//! that scrubbing a timeline does not reload gigabytes each time.

use std::any::Any;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;

type Slot = Arc<Mutex<Option<Weak<dyn Any + Send + Sync>>>>;

struct Registry {
    slots: Mutex<HashMap<(PathBuf, &'static str, String), Slot>>,
    /// Keeps the last model used alive.
    recent: Mutex<Option<Arc<dyn Any + Send + Sync>>>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        slots: Mutex::new(HashMap::new()),
        recent: Mutex::new(None),
    })
}

/// The canonical form of `path` where it exists, so that two spellings of
/// one folder share an entry.
pub fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The shared `T` for `folder`, loading it with `load` if no one holds it.
/// Concurrent callers for the same folder wait for one load rather than
/// each loading; callers for other folders are not held up.
pub fn shared<T, E>(folder: &Path, load: impl FnOnce() -> Result<T, E>) -> Result<Arc<T>, E>
where
    T: Any + Send + Sync,
{
    shared_as(folder, "", load)
}

/// As [`shared`], with one entry per `variant` of the folder's contents
/// (e.g. the device the weights were loaded onto).
pub fn shared_as<T, E>(
    folder: &Path,
    variant: &str,
    load: impl FnOnce() -> Result<T, E>,
) -> Result<Arc<T>, E>
where
    T: Any + Send + Sync,
{
    let key = (
        canonical(folder),
        std::any::type_name::<T>(),
        variant.to_string(),
    );
    let slot: Slot = registry().slots.lock().entry(key).or_default().clone();
    let mut guard = slot.lock();
    if let Some(existing) = guard.as_ref().and_then(Weak::upgrade) {
        if let Ok(typed) = existing.clone().downcast::<T>() {
            *registry().recent.lock() = Some(existing);
            return Ok(typed);
        }
    }
    let loaded = Arc::new(load()?);
    let erased: Arc<dyn Any + Send + Sync> = loaded.clone();
    *guard = Some(Arc::downgrade(&erased));
    *registry().recent.lock() = Some(erased);
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Loaded(usize);

    #[test]
    fn one_load_per_folder_across_threads() {
        static LOADS: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!("genfx-registry-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    shared(&dir, || {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        Ok::<_, ()>(Loaded(LOADS.fetch_add(1, Ordering::SeqCst)))
                    })
                    .unwrap()
                })
            })
            .collect();
        let got: Vec<Arc<Loaded>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(LOADS.load(Ordering::SeqCst), 1);
        assert!(got.iter().all(|g| Arc::ptr_eq(g, &got[0]) && g.0 == 0));
        // Another spelling of the same folder shares the entry.
        let again = shared(&dir.join("."), || Ok::<_, ()>(Loaded(99))).unwrap();
        assert!(Arc::ptr_eq(&again, &got[0]));
        // A failed load is not cached.
        let other = dir.join("missing-other");
        assert!(shared::<Loaded, _>(&other, || Err("nope")).is_err());
        assert_eq!(shared(&other, || Ok::<_, ()>(Loaded(7))).unwrap().0, 7);
        std::fs::remove_dir_all(&dir).ok();
    }
}
