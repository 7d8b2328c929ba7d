//! Where input clips get their frames: image folders, or pictures in memory.

use crate::files;
use crate::image::Picture;
use crate::HostError;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Frames of one input clip, addressed by frame number.
pub trait FrameSource: Send + Sync {
    /// First and last frame numbers, inclusive.
    fn range(&self) -> (i32, i32);
    /// Picture size, the same for every frame.
    fn size(&self) -> (u32, u32);
    /// The frame at `frame`, or `None` outside the range.
    fn frame(&self, frame: i32) -> Result<Option<Arc<Picture>>, HostError>;
}

/// Pictures held in memory, starting at frame `first`.
pub struct MemorySource {
    pub first: i32,
    pub frames: Vec<Arc<Picture>>,
}

impl MemorySource {
    pub fn new(first: i32, frames: Vec<Picture>) -> Self {
        Self {
            first,
            frames: frames.into_iter().map(Arc::new).collect(),
        }
    }
}

impl FrameSource for MemorySource {
    fn range(&self) -> (i32, i32) {
        (self.first, self.first + self.frames.len() as i32 - 1)
    }

    fn size(&self) -> (u32, u32) {
        self.frames
            .first()
            .map(|p| (p.width, p.height))
            .unwrap_or((0, 0))
    }

    fn frame(&self, frame: i32) -> Result<Option<Arc<Picture>>, HostError> {
        let index = frame.checked_sub(self.first);
        Ok(index
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.frames.get(i).cloned()))
    }
}

/// A folder of .png/.exr files: the Nth file in name order is frame
/// `first + N`. Frames are decoded on first use and kept.
pub struct FolderSource {
    files: Vec<PathBuf>,
    first: i32,
    size: (u32, u32),
    cache: Mutex<BTreeMap<i32, Arc<Picture>>>,
}

impl FolderSource {
    pub fn open(dir: &Path, first: i32) -> Result<Self, HostError> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| HostError::Image(format!("source folder {}: {e}", dir.display())))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| files::Format::of_path(p).is_some())
            .collect();
        files.sort();
        let Some(first_file) = files.first() else {
            return Err(HostError::Image(format!(
                "source folder {} holds no .png or .exr files",
                dir.display()
            )));
        };
        let picture = files::read(first_file)?;
        let size = (picture.width, picture.height);
        let mut cache = BTreeMap::new();
        cache.insert(first, Arc::new(picture));
        Ok(Self {
            files,
            first,
            size,
            cache: Mutex::new(cache),
        })
    }
}

impl FrameSource for FolderSource {
    fn range(&self) -> (i32, i32) {
        (self.first, self.first + self.files.len() as i32 - 1)
    }

    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn frame(&self, frame: i32) -> Result<Option<Arc<Picture>>, HostError> {
        if let Some(p) = self.cache.lock().get(&frame) {
            return Ok(Some(p.clone()));
        }
        let Some(path) = frame
            .checked_sub(self.first)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.files.get(i))
        else {
            return Ok(None);
        };
        let picture = files::read(path)?;
        if (picture.width, picture.height) != self.size {
            return Err(HostError::Image(format!(
                "{} is {}x{}, the clip is {}x{}",
                path.display(),
                picture.width,
                picture.height,
                self.size.0,
                self.size.1
            )));
        }
        let picture = Arc::new(picture);
        self.cache.lock().insert(frame, picture.clone());
        Ok(Some(picture))
    }
}
