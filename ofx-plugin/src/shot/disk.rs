//! Finished shots on disk, so reopening a project or rendering on another
//! farm node does not generate again. Files are written whole to a temporary
//! name and renamed into place, so a killed process or two hosts writing the
//! same entry never leave a torn file under the final name.

use genfx::engine::{Frame, Shot};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::key::ShotKey;

const MAGIC: &[u8; 8] = b"GENFXSH1";

fn entry(dir: &Path, key: ShotKey) -> PathBuf {
    dir.join(format!("{key}.genfxshot"))
}

/// The per-user default folder.
pub fn default_dir() -> Option<PathBuf> {
    // One rule for every front end, so the plugin and `genfx generate` agree.
    genfx::pipeline::disk_cache::default_folder()
}

pub fn store(dir: &Path, key: ShotKey, shot: &Shot) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let (w, h) = shot
        .frames
        .first()
        .map(|f| (f.width, f.height))
        .unwrap_or((0, 0));
    let mut bytes =
        Vec::with_capacity(24 + shot.frames.iter().map(|f| f.rgb.len() * 4).sum::<usize>());
    bytes.extend_from_slice(MAGIC);
    for v in [shot.frames.len() as u32, w, h] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    for f in &shot.frames {
        if (f.width, f.height) != (w, h) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frames of a shot differ in size",
            ));
        }
        for v in &f.rgb {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    let final_path = entry(dir, key);
    let tmp = dir.join(
        format!(
            "{key}.{}.{:?}.tmp",
            std::process::id(),
            std::thread::current().id()
        )
        .replace(['(', ')'], ""),
    );
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, &final_path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The stored shot, or `None` if there is none or it is unreadable (an
/// unreadable entry is logged and left for `store` to replace).
pub fn load(dir: &Path, key: ShotKey) -> Option<Shot> {
    let path = entry(dir, key);
    let mut file = fs::File::open(&path).ok()?;
    let mut bytes = Vec::new();
    if let Err(e) = file.read_to_end(&mut bytes) {
        log::warn!("cannot read cached shot {}: {e}", path.display());
        return None;
    }
    match parse(&bytes) {
        Some(shot) => Some(shot),
        None => {
            log::warn!("ignoring malformed cached shot {}", path.display());
            None
        }
    }
}

fn parse(bytes: &[u8]) -> Option<Shot> {
    let header = bytes.get(..20)?;
    if &header[..8] != MAGIC {
        return None;
    }
    let word =
        |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let (count, w, h) = (word(8) as usize, word(12), word(16));
    let per_frame = (w as usize).checked_mul(h as usize)?.checked_mul(3)?;
    let body = &bytes[20..];
    if body.len() != count.checked_mul(per_frame)?.checked_mul(4)? {
        return None;
    }
    let values: Vec<f32> = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let frames = values
        .chunks(per_frame.max(1))
        .take(count)
        .map(|c| Frame::new(w, h, c.to_vec()).ok())
        .collect::<Option<Vec<_>>>()?;
    Some(Shot { frames })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("genfx-disk-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn store_then_load_round_trips_and_garbage_is_ignored() {
        let dir = temp_dir("rt");
        let shot = Shot {
            frames: (0..3)
                .map(|i| Frame::new(2, 1, vec![i as f32, 0.5, -1.0, 2.0, 0.0, 1e-7]).unwrap())
                .collect(),
        };
        let key = ShotKey([7; 16]);
        store(&dir, key, &shot).unwrap();
        let back = load(&dir, key).unwrap();
        assert_eq!(back.frames, shot.frames);
        assert!(load(&dir, ShotKey([8; 16])).is_none());
        // A truncated entry reads as absent, never as a short shot.
        let path = entry(&dir, key);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(load(&dir, key).is_none());
        fs::write(&path, b"not a shot").unwrap();
        assert!(load(&dir, key).is_none());
        // No temporary files are left behind.
        store(&dir, key, &shot).unwrap();
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
        assert!(store(&dir, ShotKey([1; 16]), &Shot { frames: vec![] }).is_err());
        let _ = fs::remove_file(&dir);
    }
}
