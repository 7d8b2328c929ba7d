//! Finished shots on disk, so reopening a project or rendering on another
//! farm node does not generate again.
//!
//! The plugin keeps them in the engine's disk cache
//! ([`genfx::pipeline::disk_cache`]), under the same keys `genfx generate`
//! uses: an entry is written whole under a temporary name and renamed, carries
//! a checksum verified on every read (a damaged entry is removed and the shot
//! generated again, never served), names its key (so an entry of another
//! model or engine revision is never served), and the folder is bounded by
//! the effect's Cache size with least-recently-used eviction. The
//! key names the model by a fingerprint of its weight files, so replacing
//! weights in the same folder makes new shots.

use genfx::engine::{Shot, ShotRequest};
use genfx::pipeline::disk_cache::{self, current_identity, DiskShotCache, Lookup, ShotKey};
use genfx::pipeline::model_folder;
use genfx::provenance::record;
use std::io;
use std::path::{Path, PathBuf};

/// The per-user default folder.
pub fn default_dir() -> Option<PathBuf> {
    // One rule for every front end, so the plugin and `genfx generate` agree.
    disk_cache::default_folder()
}

/// The identity of the request's model, for keys: `Ok(None)` when there is
/// no model to name (the job will report that), `Err` when there is one but
/// it cannot be fingerprinted.
pub fn model_identity(model: &Path) -> Result<Option<String>, String> {
    let Ok(folder) = model_folder::resolve(model) else {
        return Ok(None);
    };
    current_identity(&folder)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The disk key of `request`: `Ok(None)` when the model cannot be named, so
/// the shot is not cached; `Err` says why to the user.
pub fn key_of(request: &ShotRequest) -> Result<Option<ShotKey>, String> {
    Ok(model_identity(&request.model)?.map(|id| disk_cache::shot_key(&id, request)))
}

/// What reading an entry found.
pub enum Loaded {
    Hit(Shot),
    Miss,
    /// An entry was there but damaged or foreign; it was removed.
    Discarded(String),
}

pub fn load(dir: &Path, key: &ShotKey) -> Loaded {
    if !dir.is_dir() {
        return Loaded::Miss;
    }
    match DiskShotCache::open(dir) {
        Ok(cache) => match cache.get(key) {
            Lookup::Hit(shot) => Loaded::Hit(shot),
            Lookup::Miss => Loaded::Miss,
            Lookup::Corrupt(why) => Loaded::Discarded(why),
        },
        Err(e) => {
            log::warn!("cannot open the shot cache {}: {e}", dir.display());
            Loaded::Miss
        }
    }
}

/// Stores `shot`, keeping the folder's entries within `limit` bytes (the
/// effect's Cache size; `None`: no limit).
pub fn store(dir: &Path, key: &ShotKey, shot: &Shot, limit: Option<u64>) -> io::Result<()> {
    DiskShotCache::open(dir)?.with_limit(limit).put(key, shot)
}

/// [`store`], then the shot's provenance record beside the entry (see
/// [`genfx::provenance::record`]). A record that cannot be written is
/// logged, not an error: the shot itself is kept.
pub fn store_with_record(
    dir: &Path,
    key: &ShotKey,
    shot: &Shot,
    limit: Option<u64>,
    request: &ShotRequest,
) -> io::Result<()> {
    store(dir, key, shot, limit)?;
    let entry = DiskShotCache::open(dir)?.entry_path(key);
    write_record(&entry, key, request);
    Ok(())
}

/// The provenance record of `request`'s shot beside its finished entry
/// `entry` (of key `key`). A record that cannot be written is logged, not
/// an error: the shot itself is kept.
pub fn write_record(entry: &Path, key: &ShotKey, request: &ShotRequest) {
    let written = match model_identity(&request.model) {
        Ok(Some(identity)) => record::write(entry, &identity, request).map(|_| ()),
        Ok(None) => Err(io::Error::other("the model cannot be found")),
        Err(e) => Err(io::Error::other(e)),
    };
    if let Err(e) = written {
        log::warn!("shot {}: no provenance record: {e}", key.hex());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use genfx::engine::Frame;
    use std::fs;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("genfx-disk-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn shot() -> Shot {
        Shot {
            frames: (0..3)
                .map(|i| Frame::new(2, 1, vec![i as f32, 0.5, -1.0, 2.0, 0.0, 1e-7]).unwrap())
                .collect(),
        }
    }

    #[test]
    fn store_then_load_round_trips_and_damage_is_discarded_not_served() {
        let dir = temp_dir("rt");
        let key = ShotKey([7; 32]);
        store(&dir, &key, &shot(), None).unwrap();
        assert!(matches!(load(&dir, &key), Loaded::Hit(s) if s.frames == shot().frames));
        assert!(matches!(load(&dir, &ShotKey([8; 32])), Loaded::Miss));
        // One flipped bit in the pixels: the checksum catches it, the entry
        // goes, and the next read is a miss (the shot is made again).
        let path = DiskShotCache::open(&dir).unwrap().entry_path(&key);
        let mut bytes = fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x04;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(load(&dir, &key), Loaded::Discarded(w) if w.contains("checksum")));
        assert!(matches!(load(&dir, &key), Loaded::Miss));
        // No temporary files are left behind.
        store(&dir, &key, &shot(), None).unwrap();
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unwritable_folder_is_an_error_not_a_panic() {
        let dir = temp_dir("file");
        fs::write(&dir, b"a file where the folder should be").unwrap();
        assert!(store(&dir, &ShotKey([1; 32]), &Shot { frames: vec![] }, None).is_err());
        assert!(matches!(load(&dir, &ShotKey([1; 32])), Loaded::Miss));
        let _ = fs::remove_file(&dir);
    }

    #[test]
    fn the_key_follows_the_weights_not_the_index_file() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .join("tests/fixtures/pipeline/model");
        let dir = temp_dir("weights");
        copy(&fixture, &dir);
        let request = ShotRequest {
            model: dir.clone(),
            prompt: "a boat".into(),
            negative_prompt: String::new(),
            seed: 1,
            text_encoder: None,
            quality: genfx::engine::Quality::Draft,
            guidance: 3.0,
            width: 32,
            height: 32,
            num_frames: 9,
            frame_rate: 24.0,
            strength: 1.0,
            job: genfx::engine::Job::Generate { reference: None },
            windows: Default::default(),
        };
        let first = key_of(&request).unwrap().expect("a model to name");
        assert_eq!(key_of(&request).unwrap(), Some(first));
        // New weights, model_index.json untouched.
        let w = dir.join("transformer/diffusion_pytorch_model.safetensors");
        let mut bytes = fs::read(&w).unwrap();
        let at = bytes.len() - 1;
        bytes[at] ^= 1;
        fs::write(&w, &bytes).unwrap();
        assert_ne!(key_of(&request).unwrap(), Some(first));
        // No model at all: nothing to name, the job reports it.
        let missing = ShotRequest {
            model: dir.join("nowhere"),
            ..request
        };
        assert_eq!(key_of(&missing), Ok(None));
        let _ = fs::remove_dir_all(&dir);
    }

    fn copy(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for e in fs::read_dir(from).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                copy(&p, &to.join(e.file_name()));
            } else {
                fs::copy(&p, to.join(e.file_name())).unwrap();
            }
        }
    }
}
