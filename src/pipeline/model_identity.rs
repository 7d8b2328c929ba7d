//! What a model *is*, for cache keys: a fingerprint of the files in its
//! folder that is the same on every machine holding the same files, changes
//! when any weight file is replaced, and costs milliseconds however large the
//! weights are.
//!
//! The fingerprint hashes every config and tokenizer file whole, and for each
//! `.safetensors` file its name, size, JSON header (tensor names, shapes,
//! dtypes, offsets) and 68 KiB sampled across it (16 blocks of 4 KiB evenly
//! spread plus the last 4 KiB). A fine-tune of the same shapes changes every
//! sampled block, and a truncated or swapped file changes size or header.
//! Paths and dates are left out so two farm nodes agree on a key.
//!
//! Computing it reads a few MB, so it is remembered per folder and reused
//! while a stat-only listing of the folder (name, size, modification and
//! change time, inode of every file) is unchanged. The change time and
//! inode cannot be set back by copying tools, so replacing a weight file
//! with one of the same size and date is still noticed.
//!
//! The walk is bounded and stays in the folder: a folder must look like a
//! model (`model_index.json` or a `.safetensors` file at its top) before
//! anything under it is read, so `--model /` is refused at once; links are
//! followed only when they lead to a file or folder inside the model folder
//! (or, for a Hugging Face snapshot, inside that repository's cache, where
//! snapshots link their files to `../../blobs`); a link loop or a link out
//! of the folder is left out of the fingerprint and logged, never fatal.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

/// Sampled blocks per weight file, and their size.
const SAMPLES: u64 = 16;
const SAMPLE_BYTES: usize = 4096;
/// More entries than any model folder holds: past this the folder is not a
/// model folder (a home or root folder given by mistake).
const MAX_ENTRIES: usize = 4096;
/// Deeper than any model layout nests.
const MAX_DEPTH: usize = 4;
/// Configs and tokenizers larger than this are not configs.
const MAX_CONFIG_BYTES: u64 = 64 << 20;

/// Why a folder has no identity.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IdentityError {
    #[error("{0} has no model_index.json and no .safetensors file at its top, so it is not a model folder; GenFX did not look inside it")]
    NotAModel(PathBuf),
    #[error("{folder} holds more than {limit} files and folders; it is not a model folder (give the folder with model_index.json)")]
    TooLarge { folder: PathBuf, limit: usize },
    #[error("cannot read {path}: {reason}")]
    Io { path: PathBuf, reason: String },
}

fn io_err(path: &Path, e: io::Error) -> IdentityError {
    IdentityError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// One file of the fingerprint, with the stat facts that tell whether it
/// changed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Listed {
    /// Path inside the folder, `/`-separated.
    rel: String,
    /// Where to read it (the link's target for links).
    path: PathBuf,
    len: u64,
    modified_ns: u128,
    changed: (i64, i64, u64),
}

#[cfg(unix)]
fn change_stamp(m: &fs::Metadata) -> (i64, i64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.ctime(), m.ctime_nsec(), m.ino())
}

#[cfg(not(unix))]
fn change_stamp(_: &fs::Metadata) -> (i64, i64, u64) {
    (0, 0, 0)
}

fn listed(rel: String, path: PathBuf, m: &fs::Metadata) -> Listed {
    let modified_ns = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Listed {
        rel,
        path,
        len: m.len(),
        modified_ns,
        changed: change_stamp(m),
    }
}

fn kind_of(name: &str) -> Option<Kind> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".safetensors") {
        Some(Kind::Weights)
    } else if [".json", ".model", ".txt"]
        .iter()
        .any(|e| lower.ends_with(e))
    {
        Some(Kind::Config)
    } else {
        None
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Config,
    Weights,
}

/// The listing of a model folder: the files the fingerprint covers, and
/// notes on what was left out.
struct Listing {
    files: Vec<Listed>,
    skipped: Vec<String>,
}

struct Walk {
    /// Where links may lead: the folder itself and, for a snapshot, its
    /// repository cache.
    allowed: Vec<PathBuf>,
    visited: HashSet<PathBuf>,
    entries: usize,
    root: PathBuf,
    listing: Listing,
}

impl Walk {
    fn inside(&self, target: &Path) -> bool {
        self.allowed.iter().any(|a| target.starts_with(a))
    }

    fn dir(&mut self, dir: &Path, rel: &str, depth: usize) -> Result<(), IdentityError> {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .map_err(|e| io_err(dir, e))?
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            self.entries += 1;
            if self.entries > MAX_ENTRIES {
                return Err(IdentityError::TooLarge {
                    folder: self.root.clone(),
                    limit: MAX_ENTRIES,
                });
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let path = e.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let (target, meta) = if meta.file_type().is_symlink() {
                match fs::canonicalize(&path) {
                    Err(err) => {
                        self.listing
                            .skipped
                            .push(format!("{rel}: unusable link ({err})"));
                        continue;
                    }
                    Ok(t) if !self.inside(&t) => {
                        self.listing.skipped.push(format!(
                            "{rel}: link out of the model folder to {}",
                            t.display()
                        ));
                        continue;
                    }
                    Ok(t) => match fs::metadata(&t) {
                        Ok(m) => (t, m),
                        Err(_) => continue,
                    },
                }
            } else {
                (path, meta)
            };
            if meta.is_dir() {
                if depth >= MAX_DEPTH {
                    self.listing
                        .skipped
                        .push(format!("{rel}: nested deeper than {MAX_DEPTH} folders"));
                    continue;
                }
                let canonical = fs::canonicalize(&target).map_err(|e| io_err(&target, e))?;
                if !self.visited.insert(canonical) {
                    self.listing
                        .skipped
                        .push(format!("{rel}: link loop (folder already listed)"));
                    continue;
                }
                self.dir(&target, &rel, depth + 1)?;
            } else if meta.is_file() && kind_of(&name).is_some() {
                self.listing.files.push(listed(rel, target, &meta));
            }
        }
        Ok(())
    }
}

/// Lists the files the fingerprint of `folder` covers (stat only).
fn list(folder: &Path) -> Result<Listing, IdentityError> {
    let root = fs::canonicalize(folder).map_err(|e| io_err(folder, e))?;
    let meta = fs::metadata(&root).map_err(|e| io_err(folder, e))?;
    if meta.is_file() {
        // A single-file checkpoint given directly.
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if kind_of(&name) != Some(Kind::Weights) {
            return Err(IdentityError::NotAModel(folder.to_path_buf()));
        }
        // The checkpoint holds no T5: the text encoder and tokenizer folders
        // beside it (super::single_file) are part of the model it makes.
        let parent = root.parent().unwrap_or(Path::new("/")).to_path_buf();
        let mut walk = Walk {
            allowed: vec![parent.clone()],
            visited: HashSet::from([parent.clone()]),
            entries: 0,
            root: folder.to_path_buf(),
            listing: Listing {
                files: vec![listed(name, root.clone(), &meta)],
                skipped: vec![],
            },
        };
        for sub in ["text_encoder", "tokenizer"] {
            let dir = parent.join(sub);
            if dir.is_dir() && walk.visited.insert(dir.clone()) {
                walk.dir(&dir, sub, 1)?;
            }
        }
        return Ok(walk.listing);
    }
    let looks_like_model = root.join("model_index.json").is_file()
        || fs::read_dir(&root)
            .map_err(|e| io_err(folder, e))?
            .flatten()
            .take(MAX_ENTRIES)
            .any(|e| kind_of(&e.file_name().to_string_lossy()) == Some(Kind::Weights));
    if !looks_like_model {
        return Err(IdentityError::NotAModel(folder.to_path_buf()));
    }
    let mut allowed = vec![root.clone()];
    if root
        .parent()
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == "snapshots")
    {
        if let Some(repo) = root.parent().and_then(Path::parent) {
            allowed.push(repo.to_path_buf());
        }
    }
    let mut walk = Walk {
        allowed,
        visited: HashSet::from([root.clone()]),
        entries: 0,
        root: folder.to_path_buf(),
        listing: Listing {
            files: vec![],
            skipped: vec![],
        },
    };
    walk.dir(&root, "", 0)?;
    for s in &walk.listing.skipped {
        log::warn!("model fingerprint of {}: left out {s}", folder.display());
    }
    Ok(walk.listing)
}

fn read_at(file: &mut File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    file.seek(SeekFrom::Start(offset))?;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn put(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

fn fingerprint(listing: &Listing) -> Result<String, IdentityError> {
    let mut h = Sha256::new();
    h.update(b"genfx-model-identity-2");
    for f in &listing.files {
        put(&mut h, f.rel.as_bytes());
        let err = |e| io_err(&f.path, e);
        let mut file = File::open(&f.path).map_err(err)?;
        let len = file.metadata().map_err(err)?.len();
        h.update(len.to_le_bytes());
        match kind_of(&f.rel) {
            Some(Kind::Config) => {
                if len > MAX_CONFIG_BYTES {
                    return Err(IdentityError::Io {
                        path: f.path.clone(),
                        reason: format!("{len} bytes is too large for a config"),
                    });
                }
                let mut bytes = Vec::with_capacity(len as usize);
                file.read_to_end(&mut bytes).map_err(err)?;
                put(&mut h, &bytes);
            }
            Some(Kind::Weights) => {
                let mut head = [0u8; 8];
                if read_at(&mut file, 0, &mut head).map_err(err)? == 8 {
                    let header_len = u64::from_le_bytes(head)
                        .min(len.saturating_sub(8))
                        .min(MAX_CONFIG_BYTES);
                    let mut header = vec![0u8; header_len as usize];
                    let n = read_at(&mut file, 8, &mut header).map_err(err)?;
                    put(&mut h, &header[..n]);
                }
                let mut sample = vec![0u8; SAMPLE_BYTES];
                let offsets = (0..SAMPLES)
                    .map(|k| len.saturating_mul(k) / SAMPLES)
                    .chain([len.saturating_sub(SAMPLE_BYTES as u64)]);
                for offset in offsets {
                    let n = read_at(&mut file, offset, &mut sample).map_err(err)?;
                    put(&mut h, &sample[..n]);
                }
            }
            None => {}
        }
    }
    let digest: [u8; 32] = h.finalize().into();
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// The identity of the model in `folder` (or of one checkpoint file),
/// computed afresh.
pub fn model_identity(folder: &Path) -> Result<String, IdentityError> {
    fingerprint(&list(folder)?)
}

type Stats = Vec<(String, u64, u128, (i64, i64, u64))>;

fn stats(listing: &Listing) -> Stats {
    listing
        .files
        .iter()
        .map(|f| (f.rel.clone(), f.len, f.modified_ns, f.changed))
        .collect()
}

/// Fingerprints by folder, with the stat listing they were made from.
static REMEMBERED: Mutex<Option<HashMap<PathBuf, (Stats, String)>>> = Mutex::new(None);

/// The identity of the model in `folder`, recomputed only when a file in it
/// changed since the last call (see the module notes). Cheap enough to call
/// for every frame a host renders.
pub fn current_identity(folder: &Path) -> Result<String, IdentityError> {
    let listing = list(folder)?;
    let now = stats(&listing);
    let key = folder.to_path_buf();
    if let Some((seen, id)) = REMEMBERED.lock().get_or_insert_with(HashMap::new).get(&key) {
        if *seen == now {
            return Ok(id.clone());
        }
    }
    let id = fingerprint(&listing)?;
    REMEMBERED
        .lock()
        .get_or_insert_with(HashMap::new)
        .insert(key, (now, id.clone()));
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("genfx-mid-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn model(d: &Path) {
        fs::create_dir_all(d.join("transformer")).unwrap();
        fs::write(d.join("model_index.json"), b"{}").unwrap();
        fs::write(d.join("transformer/config.json"), b"{\"a\":1}").unwrap();
        let mut w = 16u64.to_le_bytes().to_vec();
        w.extend_from_slice(b"{\"x\":1}         ");
        w.extend((0..100_000u32).map(|i| (i % 251) as u8));
        fs::write(d.join("transformer/diffusion_pytorch_model.safetensors"), w).unwrap();
    }

    #[test]
    fn a_folder_that_is_not_a_model_is_refused_before_any_walk() {
        let d = scratch("notmodel");
        fs::create_dir_all(d.join("deep/er")).unwrap();
        fs::write(d.join("deep/er/config.json"), b"{}").unwrap();
        assert!(matches!(
            model_identity(&d),
            Err(IdentityError::NotAModel(_))
        ));
        // The filesystem root is refused the same way, at once.
        let t = std::time::Instant::now();
        assert!(matches!(
            current_identity(Path::new("/")),
            Err(IdentityError::NotAModel(_))
        ));
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn replacing_a_weight_file_changes_the_identity_even_with_the_same_size_and_date() {
        let d = scratch("replace");
        model(&d);
        let first = current_identity(&d).unwrap();
        assert_eq!(current_identity(&d).unwrap(), first);
        let w = d.join("transformer/diffusion_pytorch_model.safetensors");
        let before = fs::metadata(&w).unwrap().modified().unwrap();
        let mut bytes = fs::read(&w).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        // Replaced by rename, as downloaders do; same size, date set back.
        let tmp = d.join("new.bin");
        fs::write(&tmp, &bytes).unwrap();
        File::options()
            .write(true)
            .open(&tmp)
            .unwrap()
            .set_modified(before)
            .unwrap();
        fs::rename(&tmp, &w).unwrap();
        assert_ne!(current_identity(&d).unwrap(), first);
        let _ = fs::remove_dir_all(&d);
    }

    #[cfg(unix)]
    #[test]
    fn link_loops_and_links_out_of_the_folder_are_left_out_not_fatal() {
        use std::os::unix::fs::symlink;
        let d = scratch("links");
        model(&d);
        let plain = model_identity(&d).unwrap();
        symlink(".", d.join("transformer/loop")).unwrap();
        symlink("self", d.join("self")).unwrap();
        symlink("/", d.join("root")).unwrap();
        symlink("/etc/hostname", d.join("outside.json")).unwrap();
        assert_eq!(model_identity(&d).unwrap(), plain);
        // A link inside the folder is followed like the file itself.
        symlink("transformer/config.json", d.join("alias.json")).unwrap();
        assert_ne!(model_identity(&d).unwrap(), plain);
        let _ = fs::remove_dir_all(&d);
    }

    #[cfg(unix)]
    #[test]
    fn a_hugging_face_snapshot_is_fingerprinted_through_its_blob_links() {
        use std::os::unix::fs::symlink;
        // models--o--n/snapshots/rev/... links to models--o--n/blobs/<hash>.
        let d = scratch("hf");
        let repo = d.join("models--o--n");
        let blobs = repo.join("blobs");
        let snap = repo.join("snapshots/rev");
        fs::create_dir_all(&blobs).unwrap();
        fs::create_dir_all(snap.join("transformer")).unwrap();
        model(&blobs.join("src"));
        fs::rename(blobs.join("src/model_index.json"), blobs.join("a")).unwrap();
        fs::rename(
            blobs.join("src/transformer/diffusion_pytorch_model.safetensors"),
            blobs.join("b"),
        )
        .unwrap();
        symlink("../../blobs/a", snap.join("model_index.json")).unwrap();
        symlink(
            "../../../blobs/b",
            snap.join("transformer/diffusion_pytorch_model.safetensors"),
        )
        .unwrap();
        let listing = list(&snap).unwrap();
        assert_eq!(listing.files.len(), 2, "{:?}", listing.skipped);
        let first = model_identity(&snap).unwrap();
        let mut w = fs::read(blobs.join("b")).unwrap();
        w[100] ^= 1;
        fs::write(blobs.join("b"), w).unwrap();
        assert_ne!(model_identity(&snap).unwrap(), first);
        let _ = fs::remove_dir_all(&d);
    }
}
