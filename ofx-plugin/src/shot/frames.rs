//! A shot's frames on disk, written as the engine makes them and read back
//! one at a time, so a minute-long shot (1 441 frames of 768x512 are 6.8 GB
//! as f32) never has to be whole in memory and frame 0 can be served while
//! later windows are still being made.
//!
//! With a cache folder the frames go straight into the shot's cache entry
//! (the engine's entry format, [`genfx::pipeline::disk_cache`]): written
//! under a temporary name of ours and renamed into place when the last
//! frame and the checksum are written, so a killed process leaves a
//! temporary file (swept later) and never a torn entry. Without one they go
//! to an anonymous file that the system removes when the process ends.
//!
//! Every frame's CRC-32 is kept in memory (4 bytes a frame) and checked on
//! every read, so a frame damaged or half-written on disk is an error, never
//! a picture; the entry as a whole carries its SHA-256 as every entry does.
//! A finished entry opened again (a reopened project) is checked whole once,
//! frame by frame, without holding it in memory.

use genfx::engine::{EngineError, Frame, FrameSink};
use genfx::pipeline::disk_cache::{
    entry_head, read_entry_head, DiskShotCache, ShotKey as DiskKey, ENTRY_HEAD_LEN, ENTRY_SUM_LEN,
};
use genfx::pipeline::temp_files;
use parking_lot::{Condvar, Mutex};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The frames of one shot, in a file, with what has arrived so far.
pub struct ShotFrames {
    count: usize,
    width: u32,
    height: u32,
    file: Mutex<File>,
    state: Mutex<Arrived>,
    arrived: Condvar,
}

struct Arrived {
    /// CRC-32 of each frame written so far, in order.
    sums: Vec<u32>,
    /// `Some` once no more frames will come: `Ok` when all are there.
    ended: Option<Result<(), EngineError>>,
}

impl std::fmt::Debug for ShotFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ShotFrames({} of {} frames of {}x{})",
            self.available(),
            self.count,
            self.width,
            self.height
        )
    }
}

/// What waiting for a frame found.
pub enum Wait {
    Ready(Frame),
    /// Not there yet, and the shot is still being made.
    Pending,
    /// The shot ended without this frame.
    Ended(EngineError),
}

/// What opening a finished entry found.
pub enum Opened {
    Hit(Arc<ShotFrames>),
    Miss,
    /// An entry was there but damaged; it was removed.
    Discarded(String),
    /// A sound entry of another length or size (not this request's shot).
    Other,
}

fn frame_bytes(width: u32, height: u32) -> usize {
    width as usize * height as usize * 3 * 4
}

fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.rgb.len() * 4);
    for v in &frame.rgb {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn failed(what: &str, e: io::Error) -> EngineError {
    EngineError::Failed(format!("{what}: {e}"))
}

impl ShotFrames {
    fn new(file: File, count: usize, width: u32, height: u32, sums: Vec<u32>) -> Self {
        let ended = (sums.len() == count).then_some(Ok(()));
        Self {
            count,
            width,
            height,
            file: Mutex::new(file),
            state: Mutex::new(Arrived { sums, ended }),
            arrived: Condvar::new(),
        }
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Bytes one frame holds in memory.
    pub fn frame_bytes(&self) -> u64 {
        frame_bytes(self.width, self.height) as u64
    }

    /// Frames written so far.
    pub fn available(&self) -> usize {
        self.state.lock().sums.len()
    }

    /// Every frame is there.
    pub fn complete(&self) -> bool {
        self.available() == self.count
    }

    /// No more frames will come; waiters are woken. The first end stands.
    pub fn end(&self, result: Result<(), EngineError>) {
        let mut state = self.state.lock();
        if state.ended.is_none() {
            state.ended = Some(result);
        }
        self.arrived.notify_all();
    }

    /// Frame `index` if it has arrived (checked against its checksum).
    pub fn try_frame(&self, index: usize) -> Option<Result<Frame, EngineError>> {
        let sum = *self.state.lock().sums.get(index)?;
        Some(self.read(index, sum))
    }

    /// Frame `index`, waiting up to `slice` for it to arrive.
    pub fn wait_frame(&self, index: usize, slice: Duration) -> Wait {
        if index >= self.count {
            return Wait::Ended(EngineError::Failed(format!(
                "the shot has {} frames, not frame {index}",
                self.count
            )));
        }
        let mut state = self.state.lock();
        if state.sums.len() <= index && state.ended.is_none() {
            self.arrived.wait_for(&mut state, slice);
        }
        if let Some(sum) = state.sums.get(index).copied() {
            drop(state);
            return match self.read(index, sum) {
                Ok(frame) => Wait::Ready(frame),
                Err(e) => Wait::Ended(e),
            };
        }
        match &state.ended {
            None => Wait::Pending,
            Some(Err(e)) => Wait::Ended(e.clone()),
            Some(Ok(())) => Wait::Ended(EngineError::Failed(format!(
                "the shot ended before frame {index}"
            ))),
        }
    }

    fn read(&self, index: usize, sum: u32) -> Result<Frame, EngineError> {
        let len = frame_bytes(self.width, self.height);
        let mut bytes = vec![0u8; len];
        {
            let mut file = self.file.lock();
            file.seek(SeekFrom::Start((ENTRY_HEAD_LEN + index * len) as u64))
                .and_then(|_| file.read_exact(&mut bytes))
                .map_err(|e| failed(&format!("reading frame {index} of the shot"), e))?;
        }
        if crc32fast::hash(&bytes) != sum {
            return Err(EngineError::Failed(format!(
                "frame {index} of the shot is damaged on disk (checksum mismatch); \
                 generate the shot again"
            )));
        }
        let rgb = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(Frame {
            width: self.width,
            height: self.height,
            rgb,
        })
    }

    /// The finished entry of `key` in `cache`, checked whole (its checksum,
    /// its head) while each frame's checksum is noted, without holding the
    /// entry in memory. `expect` is the request's (frames, width, height).
    pub fn open_entry(cache: &DiskShotCache, key: &DiskKey, expect: (usize, u32, u32)) -> Opened {
        let path = cache.entry_path(key);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Opened::Miss,
            Err(e) => return Opened::Discarded(format!("cannot read {}: {e}", path.display())),
        };
        match check_entry(file, key) {
            Ok((file, count, width, height, sums)) => {
                // Its modification time is its last use (the folder's LRU).
                if let Ok(f) = fs::OpenOptions::new().write(true).open(&path) {
                    let _ = f.set_modified(SystemTime::now());
                }
                if (count, width, height) != expect {
                    return Opened::Other;
                }
                Opened::Hit(Arc::new(ShotFrames::new(file, count, width, height, sums)))
            }
            Err(why) => {
                let _ = fs::remove_file(&path);
                Opened::Discarded(format!("{}: {why}", path.display()))
            }
        }
    }
}

type Checked = (File, usize, u32, u32, Vec<u32>);

/// Reads an entry through once: its head, each frame's checksum, and the
/// entry's own checksum, which must match.
fn check_entry(mut file: File, key: &DiskKey) -> Result<Checked, String> {
    let total = file.metadata().map_err(|e| e.to_string())?.len();
    let mut head = [0u8; ENTRY_HEAD_LEN];
    file.read_exact(&mut head)
        .map_err(|_| format!("truncated ({total} bytes)"))?;
    let mut whole = Sha256::new();
    whole.update(head);
    let (n, w, h) = read_entry_head(&head, key)?;
    let len = frame_bytes(w, h);
    let expected = (n as u64)
        .checked_mul(len as u64)
        .and_then(|v| v.checked_add((ENTRY_HEAD_LEN + ENTRY_SUM_LEN) as u64));
    if expected != Some(total) || len == 0 {
        return Err(format!(
            "{total} bytes, not an entry of {n} frames of {w}x{h}"
        ));
    }
    let mut buf = vec![0u8; len];
    let mut sums = Vec::with_capacity(n as usize);
    for _ in 0..n {
        file.read_exact(&mut buf).map_err(|e| e.to_string())?;
        whole.update(&buf);
        sums.push(crc32fast::hash(&buf));
    }
    let mut sum = [0u8; ENTRY_SUM_LEN];
    file.read_exact(&mut sum).map_err(|e| e.to_string())?;
    if whole.finalize().as_slice() != sum {
        return Err("checksum mismatch".into());
    }
    Ok((file, n as usize, w, h, sums))
}

/// Where a [`FrameWriter`] puts its frames.
enum Dest {
    /// The cache entry `key`, written under `temp` until finished.
    Entry {
        cache: DiskShotCache,
        key: DiskKey,
        temp: PathBuf,
    },
    /// An anonymous file the system removes.
    Anonymous,
}

/// Receives a shot's frames from the engine ([`FrameSink`]) and writes them
/// to the shot's file, publishing each batch to readers once it is written.
pub struct FrameWriter {
    frames: Arc<ShotFrames>,
    whole: Mutex<Sha256>,
    dest: Dest,
    finished: bool,
}

impl FrameWriter {
    /// A writer into the cache entry `key` of `cache`.
    pub fn to_entry(
        cache: DiskShotCache,
        key: DiskKey,
        count: usize,
        width: u32,
        height: u32,
    ) -> io::Result<Self> {
        let temp = temp_files::temp_path(&cache.entry_path(&key));
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temp)?;
        let dest = Dest::Entry { cache, key, temp };
        Self::start(file, dest, &key, count, width, height)
    }

    /// A writer into an anonymous file in `dir` (the system's temporary
    /// folder when the cache is off), removed by the system when closed or
    /// when the process ends.
    pub fn anonymous(dir: &Path, count: usize, width: u32, height: u32) -> io::Result<Self> {
        let path = temp_files::temp_path(&dir.join("genfx-frames"));
        let mut options = fs::OpenOptions::new();
        options.read(true).write(true).create_new(true);
        #[cfg(windows)]
        {
            use std::os::windows::fs::OpenOptionsExt;
            // FILE_FLAG_DELETE_ON_CLOSE: gone when the last handle closes,
            // a killed process included.
            options.custom_flags(0x0400_0000);
        }
        let file = options.open(&path)?;
        // Unlinked at once: the open handle keeps it; a process killed
        // between the two leaves a name `temp_files::sweep` removes.
        #[cfg(not(windows))]
        let _ = fs::remove_file(&path);
        Self::start(
            file,
            Dest::Anonymous,
            &DiskKey([0; 32]),
            count,
            width,
            height,
        )
    }

    fn start(
        mut file: File,
        dest: Dest,
        key: &DiskKey,
        count: usize,
        width: u32,
        height: u32,
    ) -> io::Result<Self> {
        let n = u32::try_from(count).map_err(|_| io::Error::other("too many frames"))?;
        let head = entry_head(key, n, width, height);
        let written = file.write_all(&head);
        if let (Err(e), Dest::Entry { temp, .. }) = (&written, &dest) {
            let _ = fs::remove_file(temp);
            return Err(io::Error::new(e.kind(), e.to_string()));
        }
        let mut whole = Sha256::new();
        whole.update(head);
        Ok(Self {
            frames: Arc::new(ShotFrames::new(file, count, width, height, Vec::new())),
            whole: Mutex::new(whole),
            dest,
            finished: false,
        })
    }

    /// The frames as they arrive, for readers.
    pub fn frames(&self) -> Arc<ShotFrames> {
        self.frames.clone()
    }

    /// Ends the file once every frame is written: an entry gets its checksum
    /// and is renamed into place (then the folder is trimmed to its size
    /// limit). The frames stay readable whatever happens to the entry; a
    /// failure to keep it is returned as a note for the user.
    pub fn finish(mut self) -> Result<(Arc<ShotFrames>, Option<String>), EngineError> {
        let frames = self.frames.clone();
        if !frames.complete() {
            return Err(EngineError::Failed(format!(
                "the engine handed over {} of the shot's {} frames",
                frames.available(),
                frames.count
            )));
        }
        self.finished = true;
        let mut note = None;
        if let Dest::Entry { cache, key, temp } = &self.dest {
            let sum = std::mem::take(&mut *self.whole.lock()).finalize();
            let kept = {
                let mut file = frames.file.lock();
                file.seek(SeekFrom::End(0))
                    .and_then(|_| file.write_all(&sum))
                    .and_then(|_| file.sync_all())
            }
            .and_then(|_| temp_files::commit(temp, &cache.entry_path(key)));
            match kept {
                Ok(()) => cache.trim(key),
                Err(e) => {
                    let _ = fs::remove_file(temp);
                    note = Some(format!(
                        "the shot could not be kept in the cache folder {} ({e}), so reopening \
                         the project will generate it again; free some space or choose another \
                         Cache folder",
                        cache.dir().display()
                    ));
                }
            }
        }
        frames.end(Ok(()));
        Ok((frames, note))
    }
}

impl FrameSink for FrameWriter {
    fn frames_ready(&self, first: usize, batch: &[Frame]) -> Result<(), EngineError> {
        self.write(first, batch, &|| {})
    }
}

impl FrameWriter {
    /// Writes `batch` (frames `first..`) and then publishes it to readers;
    /// `before_last` runs just before the last frames are published (a job
    /// ends its progress bar there, so whoever is served the last frame
    /// finds the bar ended).
    pub fn write(
        &self,
        first: usize,
        batch: &[Frame],
        before_last: &dyn Fn(),
    ) -> Result<(), EngineError> {
        // One batch at a time, in order: the entry's checksum runs through
        // the frames in time order.
        let mut whole = self.whole.lock();
        let frames = &self.frames;
        let have = frames.available();
        if first != have || first + batch.len() > frames.count {
            return Err(EngineError::Failed(format!(
                "frames {first}..{} arrived; expected frame {have} of {}",
                first + batch.len(),
                frames.count
            )));
        }
        let len = frame_bytes(frames.width, frames.height);
        let mut sums: Vec<u32> = Vec::with_capacity(batch.len());
        for (i, frame) in batch.iter().enumerate() {
            if (frame.width, frame.height) != (frames.width, frames.height)
                || frame.rgb.len() * 4 != len
            {
                return Err(EngineError::Failed(format!(
                    "frame {} is {}x{}, the shot is {}x{}",
                    first + i,
                    frame.width,
                    frame.height,
                    frames.width,
                    frames.height
                )));
            }
            let bytes = encode(frame);
            {
                let mut file = frames.file.lock();
                file.seek(SeekFrom::Start((ENTRY_HEAD_LEN + (first + i) * len) as u64))
                    .and_then(|_| file.write_all(&bytes))
                    .map_err(|e| failed("writing the shot's frames to disk", e))?;
            }
            whole.update(&bytes);
            sums.push(crc32fast::hash(&bytes));
        }
        if first + batch.len() == frames.count {
            before_last();
        }
        let mut state = frames.state.lock();
        state.sums.extend(sums);
        frames.arrived.notify_all();
        Ok(())
    }
}

impl Drop for FrameWriter {
    /// A writer dropped unfinished (a failed or aborted job) leaves no
    /// temporary file, and readers still waiting are told.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if let Dest::Entry { temp, .. } = &self.dest {
            let _ = fs::remove_file(temp);
        }
        self.frames.end(Err(EngineError::Failed(format!(
            "the job ended after {} of the shot's {} frames",
            self.frames.available(),
            self.frames.count
        ))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("genfx-frames-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn frame(v: f32) -> Frame {
        Frame::new(3, 2, (0..18).map(|i| v + i as f32 * 0.01).collect()).unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_streamed_entry_is_the_engines_entry_and_reopens_frame_by_frame() {
        let dir = temp_dir("entry");
        let key = DiskKey([3; 32]);
        let writer =
            FrameWriter::to_entry(DiskShotCache::open(&dir).unwrap(), key, 5, 3, 2).unwrap();
        let frames = writer.frames();
        writer.frames_ready(0, &[frame(0.0), frame(1.0)]).unwrap();
        // Readable at once, before the shot is finished; not an entry yet.
        assert_eq!(frames.try_frame(1).unwrap().unwrap(), frame(1.0));
        assert!(frames.try_frame(2).is_none());
        let cache = DiskShotCache::open(&dir).unwrap();
        assert!(matches!(
            cache.get(&key),
            genfx::pipeline::disk_cache::Lookup::Miss
        ));
        // Out of order, or of another size: refused.
        assert!(writer.frames_ready(3, &[frame(3.0)]).is_err());
        let small = Frame::new(1, 1, vec![0.0; 3]).unwrap();
        assert!(writer.frames_ready(2, &[small]).is_err());
        writer
            .frames_ready(2, &[frame(2.0), frame(3.0), frame(4.0)])
            .unwrap();
        let (done, note) = writer.finish().unwrap();
        assert!(note.is_none());
        assert!(done.complete());
        // The same bytes the engine's cache writes and reads whole.
        match cache.get(&key) {
            genfx::pipeline::disk_cache::Lookup::Hit(shot) => {
                assert_eq!(
                    shot.frames,
                    (0..5).map(|i| frame(i as f32)).collect::<Vec<_>>()
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(names(&dir).len(), 1, "{:?}", names(&dir));
        // Reopened: checked whole, then read one frame at a time.
        match ShotFrames::open_entry(&cache, &key, (5, 3, 2)) {
            Opened::Hit(f) => assert_eq!(f.try_frame(4).unwrap().unwrap(), frame(4.0)),
            _ => panic!("no hit"),
        }
        assert!(matches!(
            ShotFrames::open_entry(&cache, &key, (6, 3, 2)),
            Opened::Other
        ));
        // One flipped bit anywhere: removed, never served.
        let path = cache.entry_path(&key);
        let mut bytes = fs::read(&path).unwrap();
        let at = ENTRY_HEAD_LEN + 40;
        bytes[at] ^= 0x10;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            ShotFrames::open_entry(&cache, &key, (5, 3, 2)),
            Opened::Discarded(w) if w.contains("checksum")
        ));
        assert!(matches!(
            ShotFrames::open_entry(&cache, &key, (5, 3, 2)),
            Opened::Miss
        ));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_job_killed_mid_stream_leaves_no_entry_and_a_torn_frame_is_never_served() {
        let dir = temp_dir("killed");
        let key = DiskKey([4; 32]);
        let writer =
            FrameWriter::to_entry(DiskShotCache::open(&dir).unwrap(), key, 4, 3, 2).unwrap();
        let frames = writer.frames();
        writer.frames_ready(0, &[frame(0.0), frame(1.0)]).unwrap();
        // The bytes of frame 1 change under the reader (a torn or damaged
        // write): an error, not a picture.
        let temp = fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
        {
            let mut f = fs::OpenOptions::new().write(true).open(&temp).unwrap();
            let len = frame_bytes(3, 2);
            f.seek(SeekFrom::Start((ENTRY_HEAD_LEN + len + 5) as u64))
                .unwrap();
            f.write_all(&[0xff]).unwrap();
        }
        assert_eq!(frames.try_frame(0).unwrap().unwrap(), frame(0.0));
        let torn = frames.try_frame(1).unwrap().unwrap_err();
        assert!(torn.to_string().contains("damaged"), "{torn}");
        // A process killed here never renamed its file: there is no entry,
        // only a temporary name the next sweep removes once it is stale.
        std::mem::forget(writer);
        let cache = DiskShotCache::open(&dir).unwrap();
        assert!(matches!(
            ShotFrames::open_entry(&cache, &key, (4, 3, 2)),
            Opened::Miss
        ));
        assert!(temp_files::owner_of(&names(&dir)[0]).is_some());
        // A job that fails mid-stream removes its temporary file and tells
        // readers waiting for later frames.
        let writer = FrameWriter::to_entry(
            DiskShotCache::open(&dir).unwrap(),
            DiskKey([5; 32]),
            4,
            3,
            2,
        )
        .unwrap();
        let frames = writer.frames();
        writer.frames_ready(0, &[frame(0.0)]).unwrap();
        drop(writer);
        assert!(matches!(
            frames.wait_frame(3, Duration::from_secs(5)),
            Wait::Ended(_)
        ));
        assert_eq!(names(&dir).len(), 1, "{:?}", names(&dir));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_anonymous_file_leaves_nothing_behind() {
        let dir = temp_dir("anon");
        let writer = FrameWriter::anonymous(&dir, 2, 3, 2).unwrap();
        let frames = writer.frames();
        #[cfg(not(windows))]
        assert!(names(&dir).is_empty(), "{:?}", names(&dir));
        writer.frames_ready(0, &[frame(0.5), frame(1.5)]).unwrap();
        let (done, note) = writer.finish().unwrap();
        assert!(note.is_none() && Arc::ptr_eq(&done, &frames));
        assert_eq!(frames.try_frame(1).unwrap().unwrap(), frame(1.5));
        drop((done, frames));
        assert!(names(&dir).is_empty(), "{:?}", names(&dir));
        let _ = fs::remove_dir_all(&dir);
    }
}
