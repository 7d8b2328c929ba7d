//! The in-memory shot cache: one job per shot key, however many threads and
//! instances ask for its frames at once, and a bounded set of frames in
//! memory.
//!
//! A shot's frames live on disk ([`ShotFrames`]), written as the engine
//! makes them; the job publishes them in its slot as soon as it starts
//! writing, so a request for frame t returns as soon as frame t exists, not
//! when the whole shot is done. Frames read back are kept in one
//! least-recently-used set within the memory budget, so memory does not
//! grow with a shot's length.
//!
//! The first request for a key claims the slot and runs the job (a render
//! on a thread of its own, so it can return its frame while the job goes
//! on; the Generate button on its own thread already). Every other request
//! waits on the slot and reads the frames. A failed job answers its waiters
//! with its error; the failure is remembered briefly (so the frames of one
//! render do not each retry an expensive failure) and retried after that.
//! An aborted job is forgotten at once, and a waiter that was not itself
//! aborted takes over the job.
//!
//! A job a render started stops when the host aborts a render waiting for
//! it and no other render is waiting ([`ShotCache::frame`]); a job the
//! Generate button started stops only through its own observer.

use super::frames::{ShotFrames, Wait};
use genfx::engine::{EngineError, Frame};
use parking_lot::{Condvar, Mutex};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::key::ShotKey;

/// How long a failure answers requests for the same key without retrying.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(5);
/// How often a waiter checks its own abort flag.
const WAIT_SLICE: Duration = Duration::from_millis(50);
/// Finished shots whose slots (an open file and 4 bytes a frame) are kept
/// beyond those with frames in memory.
const FINISHED_SLOTS: usize = 16;

enum State {
    /// The job runs; its frames once it has started writing them.
    Running(Option<Arc<ShotFrames>>),
    Done(Arc<ShotFrames>),
    Failed(EngineError, Instant),
}

struct Slot {
    state: Mutex<State>,
    ready: Condvar,
    last_used: AtomicU64,
    /// Renders waiting for a frame of this slot now.
    watchers: AtomicUsize,
    /// The job was started by a render: it stops when its last waiting
    /// render is aborted.
    render_started: AtomicBool,
    /// Asks the running job to stop.
    stop: AtomicBool,
    /// Run once the job's result is in the slot.
    settled: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    /// Watchers registered through [`ShotCache::when_settled`], so that a
    /// watcher asking on every render registers once.
    settled_watchers: Mutex<HashSet<usize>>,
}

impl Slot {
    fn new(state: State, tick: u64) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(state),
            ready: Condvar::new(),
            last_used: AtomicU64::new(tick),
            watchers: AtomicUsize::new(0),
            render_started: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            settled: Mutex::new(Vec::new()),
            settled_watchers: Mutex::new(HashSet::new()),
        })
    }
}

/// What a running job holds of its slot: where it publishes its frames and
/// whether it was asked to stop.
pub struct JobHandle {
    slot: Arc<Slot>,
}

impl JobHandle {
    /// Makes the shot's frames readable while they are being written.
    pub fn publish(&self, frames: Arc<ShotFrames>) {
        let mut state = self.slot.state.lock();
        if let State::Running(held) = &mut *state {
            *held = Some(frames);
        }
        self.slot.ready.notify_all();
    }

    /// Runs `f` once the job's result is in the slot (a render's job
    /// updates its instance's status line then, after its render returned).
    pub fn when_settled(&self, f: impl FnOnce() + Send + 'static) {
        self.slot.settled.lock().push(Box::new(f));
    }

    /// Whether the job should stop (see the module's notes).
    pub fn stop_requested(&self) -> bool {
        self.slot.stop.load(Ordering::SeqCst)
    }
}

/// A shot job: makes (or finds) the shot's frames and returns them whole.
pub type Job = Box<dyn FnOnce(&JobHandle) -> Result<Arc<ShotFrames>, EngineError> + Send>;

/// Frames read back, least recently used first out.
#[derive(Default)]
struct Lru {
    frames: HashMap<(ShotKey, usize), (Arc<Frame>, u64)>,
    order: BTreeMap<u64, (ShotKey, usize)>,
    bytes: u64,
}

fn frame_bytes(f: &Frame) -> u64 {
    f.rgb.len() as u64 * 4
}

impl Lru {
    fn get(&mut self, at: (ShotKey, usize), tick: u64) -> Option<Arc<Frame>> {
        let (frame, used) = self.frames.get_mut(&at)?;
        self.order.remove(used);
        *used = tick;
        self.order.insert(tick, at);
        Some(frame.clone())
    }

    fn put(&mut self, at: (ShotKey, usize), frame: Arc<Frame>, tick: u64, budget: u64) {
        self.bytes += frame_bytes(&frame);
        if let Some((old, used)) = self.frames.insert(at, (frame, tick)) {
            self.bytes -= frame_bytes(&old);
            self.order.remove(&used);
        }
        self.order.insert(tick, at);
        // Never the frame just read: a frame larger than the whole budget
        // is still served.
        while self.bytes > budget && self.order.len() > 1 {
            let Some((_, victim)) = self.order.pop_first() else {
                break;
            };
            if let Some((f, _)) = self.frames.remove(&victim) {
                self.bytes -= frame_bytes(&f);
            }
        }
    }

    fn keys(&self) -> std::collections::HashSet<ShotKey> {
        self.frames.keys().map(|(k, _)| *k).collect()
    }
}

pub struct ShotCache {
    slots: Mutex<HashMap<ShotKey, Arc<Slot>>>,
    lru: Mutex<Lru>,
    budget_bytes: u64,
    clock: AtomicU64,
}

/// What [`ShotCache::peek`] found.
pub enum Peek {
    Absent,
    Running,
    Done(Arc<ShotFrames>),
    Failed(EngineError),
}

enum Role {
    Ready(Arc<ShotFrames>),
    Runner(Arc<Slot>),
    Waiter(Arc<Slot>),
}

/// Counts a render waiting on a slot while it lives.
struct Watch<'a>(&'a Slot);

impl<'a> Watch<'a> {
    fn new(slot: &'a Slot) -> Self {
        slot.watchers.fetch_add(1, Ordering::SeqCst);
        Self(slot)
    }

    /// The render was aborted: a render-started job nobody else waits for
    /// stops.
    fn aborted(self) -> EngineError {
        let left = self.0.watchers.fetch_sub(1, Ordering::SeqCst) - 1;
        if left == 0 && self.0.render_started.load(Ordering::SeqCst) {
            self.0.stop.store(true, Ordering::SeqCst);
        }
        std::mem::forget(self);
        EngineError::Aborted
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ShotCache {
    pub fn new(budget_bytes: u64) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            lru: Mutex::new(Lru::default()),
            budget_bytes,
            clock: AtomicU64::new(0),
        }
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// Frame `index` of the shot `key`, starting the shot's job on a thread
    /// of its own (`job()` makes it) if no one has or is, and returning as
    /// soon as the frame exists. `aborted` is the render's abort, polled
    /// while waiting.
    pub fn frame(
        &'static self,
        key: ShotKey,
        index: usize,
        job: impl FnOnce() -> Job,
        aborted: &dyn Fn() -> bool,
    ) -> Result<Arc<Frame>, EngineError> {
        let mut job = Some(job);
        loop {
            let slot = match self.claim(key)? {
                Role::Ready(frames) => return self.read(key, &frames, index),
                Role::Waiter(slot) => slot,
                Role::Runner(slot) => {
                    let run = job
                        .take()
                        .ok_or(EngineError::Failed("shot job ran twice".into()))?(
                    );
                    slot.render_started.store(true, Ordering::SeqCst);
                    let runner = slot.clone();
                    let spawned = std::thread::Builder::new()
                        .name(format!("genfx-shot-{key}"))
                        .spawn(move || {
                            let _ = self.run(key, runner, run);
                        });
                    if let Err(e) = spawned {
                        let e = EngineError::Failed(format!("no thread for the shot's job ({e})"));
                        self.settle(key, &slot, Err(e.clone()));
                        return Err(e);
                    }
                    slot
                }
            };
            match self.wait(key, &slot, index, aborted)? {
                Some(frame) => return Ok(frame),
                // Someone else's abort: take the job over.
                None => continue,
            }
        }
    }

    /// Waits on `slot` for frame `index`; `None` when the job was aborted
    /// by someone else (the caller takes it over).
    fn wait(
        &self,
        key: ShotKey,
        slot: &Arc<Slot>,
        index: usize,
        aborted: &dyn Fn() -> bool,
    ) -> Result<Option<Arc<Frame>>, EngineError> {
        let watch = Watch::new(slot);
        loop {
            let mut state = slot.state.lock();
            let frames = match &*state {
                State::Done(frames) => {
                    let frames = frames.clone();
                    drop(state);
                    return self.read(key, &frames, index).map(Some);
                }
                State::Failed(EngineError::Aborted, _) => return Ok(None),
                State::Failed(e, _) => return Err(e.clone()),
                State::Running(None) => {
                    if aborted() {
                        drop(state);
                        return Err(watch.aborted());
                    }
                    slot.ready.wait_for(&mut state, WAIT_SLICE);
                    continue;
                }
                State::Running(Some(frames)) => frames.clone(),
            };
            drop(state);
            if let Some(frame) = self.lru.lock().get((key, index), self.tick()) {
                return Ok(Some(frame));
            }
            match frames.wait_frame(index, WAIT_SLICE) {
                Wait::Ready(frame) => return Ok(Some(self.keep(key, index, frame))),
                Wait::Pending => {}
                Wait::Ended(_) => {
                    // The job's own result (in the slot) is the answer;
                    // wait for it to land there.
                    let mut state = slot.state.lock();
                    if matches!(&*state, State::Running(Some(f)) if Arc::ptr_eq(f, &frames)) {
                        slot.ready.wait_for(&mut state, WAIT_SLICE);
                    }
                }
            }
            if aborted() {
                return Err(watch.aborted());
            }
        }
    }

    /// The whole shot for `key`, running `job` on this thread if no one has
    /// (or is); for the Generate button's thread. `aborted` is polled while
    /// waiting for another thread's job.
    pub fn get_or_run(
        &self,
        key: ShotKey,
        job: Job,
        aborted: &dyn Fn() -> bool,
    ) -> Result<Arc<ShotFrames>, EngineError> {
        let mut job = Some(job);
        loop {
            match self.claim(key)? {
                Role::Ready(frames) => return Ok(frames),
                Role::Runner(slot) => {
                    let run = job
                        .take()
                        .ok_or(EngineError::Failed("shot job ran twice".into()))?;
                    return self.run(key, slot, run);
                }
                Role::Waiter(slot) => {
                    let mut state = slot.state.lock();
                    while matches!(*state, State::Running(_)) {
                        if aborted() {
                            return Err(EngineError::Aborted);
                        }
                        slot.ready.wait_for(&mut state, WAIT_SLICE);
                    }
                    match &*state {
                        State::Done(frames) => return Ok(frames.clone()),
                        // Someone else's abort: take the job over.
                        State::Failed(EngineError::Aborted, _) => continue,
                        State::Failed(e, _) => return Err(e.clone()),
                        State::Running(_) => unreachable!("loop exits only when not running"),
                    }
                }
            }
        }
    }

    fn claim(&self, key: ShotKey) -> Result<Role, EngineError> {
        let mut slots = self.slots.lock();
        if let Some(slot) = slots.get(&key).cloned() {
            let state = slot.state.lock();
            slot.last_used.store(self.tick(), Ordering::Relaxed);
            return match &*state {
                State::Done(frames) => Ok(Role::Ready(frames.clone())),
                State::Running(_) => {
                    drop(state);
                    Ok(Role::Waiter(slot))
                }
                State::Failed(e, at)
                    if !matches!(e, EngineError::Aborted) && at.elapsed() < FAILURE_MEMORY =>
                {
                    Err(e.clone())
                }
                State::Failed(..) => {
                    drop(state);
                    // A fresh slot: the stop flag and waiters of the old job
                    // are not this one's.
                    let fresh = Slot::new(State::Running(None), self.tick());
                    slots.insert(key, fresh.clone());
                    Ok(Role::Runner(fresh))
                }
            };
        }
        let slot = Slot::new(State::Running(None), self.tick());
        slots.insert(key, slot.clone());
        Ok(Role::Runner(slot))
    }

    fn run(&self, key: ShotKey, slot: Arc<Slot>, job: Job) -> Result<Arc<ShotFrames>, EngineError> {
        let handle = JobHandle { slot: slot.clone() };
        // A panicking job must still wake its waiters.
        let result = catch_unwind(AssertUnwindSafe(|| job(&handle))).unwrap_or_else(|_| {
            Err(EngineError::Failed(
                "the shot job panicked (see the GenFX log)".into(),
            ))
        });
        self.settle(key, &slot, result.clone());
        result
    }

    /// Puts a job's result in its slot and wakes everyone waiting.
    fn settle(&self, key: ShotKey, slot: &Arc<Slot>, result: Result<Arc<ShotFrames>, EngineError>) {
        {
            let mut state = slot.state.lock();
            let published = match &*state {
                State::Running(Some(f)) => Some(f.clone()),
                _ => None,
            };
            *state = match &result {
                Ok(frames) => State::Done(frames.clone()),
                Err(e) => State::Failed(e.clone(), Instant::now()),
            };
            slot.ready.notify_all();
            drop(state);
            if let (Some(f), Err(e)) = (published, &result) {
                f.end(Err(e.clone()));
            }
        }
        if matches!(result, Err(EngineError::Aborted)) {
            let mut slots = self.slots.lock();
            if slots.get(&key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
                slots.remove(&key);
            }
        }
        if result.is_ok() {
            self.evict_slots(key);
        }
        let settled = std::mem::take(&mut *slot.settled.lock());
        for f in settled {
            f();
        }
    }

    /// Reads frame `index` of a finished shot, through the frames in memory.
    fn read(
        &self,
        key: ShotKey,
        frames: &ShotFrames,
        index: usize,
    ) -> Result<Arc<Frame>, EngineError> {
        if let Some(frame) = self.lru.lock().get((key, index), self.tick()) {
            return Ok(frame);
        }
        match frames.try_frame(index) {
            Some(frame) => Ok(self.keep(key, index, frame?)),
            None => Err(EngineError::Failed(format!(
                "the shot has {} frames, not frame {index}",
                frames.count()
            ))),
        }
    }

    fn keep(&self, key: ShotKey, index: usize, frame: Frame) -> Arc<Frame> {
        let frame = Arc::new(frame);
        self.lru
            .lock()
            .put((key, index), frame.clone(), self.tick(), self.budget_bytes);
        frame
    }

    /// Frame `index` of `key` if it has been made (the shot may still be
    /// running), without starting or waiting for anything: renders that
    /// must not start a job.
    pub fn ready_frame(
        &self,
        key: ShotKey,
        index: usize,
    ) -> Option<Result<Arc<Frame>, EngineError>> {
        let slot = self.slots.lock().get(&key).cloned()?;
        let frames = match &*slot.state.lock() {
            State::Done(f) | State::Running(Some(f)) => f.clone(),
            _ => return None,
        };
        slot.last_used.store(self.tick(), Ordering::Relaxed);
        if let Some(frame) = self.lru.lock().get((key, index), self.tick()) {
            return Some(Ok(frame));
        }
        let frame = frames.try_frame(index)?;
        Some(frame.map(|f| self.keep(key, index, f)))
    }

    /// Drops least recently used finished slots beyond [`FINISHED_SLOTS`]
    /// that have no frame in memory, never `keep`.
    fn evict_slots(&self, keep: ShotKey) {
        let in_memory = self.lru.lock().keys();
        let mut slots = self.slots.lock();
        let mut idle: Vec<(u64, ShotKey)> = slots
            .iter()
            .filter(|(k, s)| {
                **k != keep && !in_memory.contains(k) && matches!(*s.state.lock(), State::Done(_))
            })
            .map(|(k, s)| (s.last_used.load(Ordering::Relaxed), *k))
            .collect();
        idle.sort();
        let over = idle.len().saturating_sub(FINISHED_SLOTS);
        for (_, k) in idle.into_iter().take(over) {
            slots.remove(&k);
        }
    }

    /// Runs `f` once the job now running for `key` has its result in place
    /// (a render that showed a running shot's frames without starting the
    /// job updates its own status line then). `watcher` names who asks: one
    /// watcher registers once per job however often it asks. False, and `f`
    /// is dropped, when no job is running for `key`.
    pub fn when_settled(
        &self,
        key: ShotKey,
        watcher: usize,
        f: impl FnOnce() + Send + 'static,
    ) -> bool {
        let Some(slot) = self.slots.lock().get(&key).cloned() else {
            return false;
        };
        // The state lock orders this against the job settling: settling
        // sets the result under it before taking the callbacks.
        let state = slot.state.lock();
        if !matches!(*state, State::Running(_)) {
            return false;
        }
        if slot.settled_watchers.lock().insert(watcher) {
            slot.settled.lock().push(Box::new(f));
        }
        true
    }

    /// What the cache holds for `key`, without starting or waiting for
    /// anything (renders that must not start a job, the status line).
    pub fn peek(&self, key: ShotKey) -> Peek {
        let slot = self.slots.lock().get(&key).cloned();
        let Some(slot) = slot else {
            return Peek::Absent;
        };
        let state = slot.state.lock();
        match &*state {
            State::Done(frames) => {
                slot.last_used.store(self.tick(), Ordering::Relaxed);
                Peek::Done(frames.clone())
            }
            State::Running(_) => Peek::Running,
            State::Failed(e, _) => Peek::Failed(e.clone()),
        }
    }

    /// Keeps a shot read from the disk cache, unless the key already has a
    /// slot (a job running for it, or its result).
    pub fn insert(&self, key: ShotKey, frames: Arc<ShotFrames>) {
        {
            let mut slots = self.slots.lock();
            if slots.contains_key(&key) {
                return;
            }
            slots.insert(key, Slot::new(State::Done(frames), self.tick()));
        }
        self.evict_slots(key);
    }

    /// Forgets a failure remembered for `key`, so the next request runs the
    /// job again at once (an explicit retry).
    pub fn forget_failure(&self, key: ShotKey) {
        let mut slots = self.slots.lock();
        let failed = slots
            .get(&key)
            .is_some_and(|s| matches!(*s.state.lock(), State::Failed(..)));
        if failed {
            slots.remove(&key);
        }
    }

    /// Forgets every finished or failed shot and every frame in memory
    /// (running jobs carry on).
    pub fn purge(&self) {
        self.slots
            .lock()
            .retain(|_, s| matches!(*s.state.lock(), State::Running(_)));
        *self.lru.lock() = Lru::default();
    }

    /// Bytes of frames held in memory.
    pub fn frame_bytes(&self) -> u64 {
        self.lru.lock().bytes
    }

    pub fn len(&self) -> usize {
        self.slots.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The process-wide cache shared by every instance and render clone.
pub fn global() -> &'static ShotCache {
    static CACHE: OnceLock<ShotCache> = OnceLock::new();
    CACHE.get_or_init(|| {
        let mb = std::env::var("GENFX_CACHE_MEMORY_MB")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(4096);
        ShotCache::new(mb * 1024 * 1024)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shot::frames::FrameWriter;
    use std::sync::Barrier;

    fn frame(v: f32) -> Frame {
        Frame::new(2, 2, vec![v; 12]).unwrap()
    }

    /// A cache that lives as long as the test process (render jobs run on
    /// threads of their own).
    fn cache(budget: u64) -> &'static ShotCache {
        Box::leak(Box::new(ShotCache::new(budget)))
    }

    fn key(n: u8) -> ShotKey {
        ShotKey([n; 16])
    }

    /// A job that streams `windows` windows of `per` frames (frame i has
    /// value `base + i`), `delay` apart, stopping when asked.
    fn streaming(windows: usize, per: usize, delay: Duration, base: f32) -> Job {
        Box::new(move |handle: &JobHandle| {
            let writer = FrameWriter::anonymous(&std::env::temp_dir(), windows * per, 2, 2)
                .map_err(|e| EngineError::Failed(e.to_string()))?;
            handle.publish(writer.frames());
            for w in 0..windows {
                std::thread::sleep(delay);
                if handle.stop_requested() {
                    return Err(EngineError::Aborted);
                }
                let batch: Vec<Frame> = (0..per)
                    .map(|i| frame(base + (w * per + i) as f32))
                    .collect();
                genfx::engine::FrameSink::frames_ready(&writer, w * per, &batch)?;
            }
            writer.finish().map(|(frames, _)| frames)
        })
    }

    fn whole(v: f32) -> Job {
        streaming(1, 1, Duration::ZERO, v)
    }

    #[test]
    fn many_threads_one_job() {
        let cache = cache(u64::MAX);
        let runs = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(Barrier::new(16));
        let handles: Vec<_> = (0..16)
            .map(|t| {
                let (runs, barrier) = (runs.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let job = || {
                        runs.fetch_add(1, Ordering::SeqCst);
                        streaming(4, 2, Duration::from_millis(30), 0.0)
                    };
                    cache.frame(key(1), t % 8, job, &|| false).unwrap()
                })
            })
            .collect();
        for (t, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().unwrap().rgb[0], (t % 8) as f32);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Later requests read the finished shot.
        let again = cache
            .get_or_run(key(1), Box::new(|_| panic!("must not run")), &|| false)
            .unwrap();
        assert_eq!(again.count(), 8);
    }

    #[test]
    fn frame_zero_is_served_while_later_windows_are_made() {
        let cache = cache(u64::MAX);
        let t = Instant::now();
        let delay = Duration::from_millis(150);
        let job = || streaming(6, 3, delay, 0.0);
        let first = cache.frame(key(30), 0, job, &|| false).unwrap();
        let took = t.elapsed();
        assert_eq!(first.rgb[0], 0.0);
        assert!(took < delay * 3, "frame 0 took {took:?}");
        assert!(matches!(cache.peek(key(30)), Peek::Running));
        // A render that may not start a job serves what has been made and
        // nothing else.
        assert!(cache.ready_frame(key(30), 17).is_none());
        // Every frame once the job goes on, in any order.
        for i in (0..18).rev() {
            let f = cache
                .frame(key(30), i, || panic!("a second job"), &|| false)
                .unwrap();
            assert_eq!(f.rgb[0], i as f32);
        }
        assert!(matches!(cache.ready_frame(key(30), 17), Some(Ok(_))));
    }

    #[test]
    fn frames_in_memory_stay_within_the_budget_whatever_the_length() {
        // 48 bytes a frame; room for 10.
        let cache = cache(480);
        let n = 300;
        for i in 0..n {
            let f = cache
                .frame(
                    key(31),
                    i,
                    || streaming(10, 30, Duration::ZERO, 0.0),
                    &|| false,
                )
                .unwrap();
            assert_eq!(f.rgb[0], i as f32);
            assert!(cache.frame_bytes() <= 480, "{} bytes", cache.frame_bytes());
        }
        // Frames that left memory come back from disk.
        let f = cache
            .frame(key(31), 3, || panic!("rerun"), &|| false)
            .unwrap();
        assert_eq!(f.rgb[0], 3.0);
    }

    #[test]
    fn the_last_waiting_render_aborted_stops_its_job_and_the_next_render_starts_again() {
        let cache = cache(u64::MAX);
        let stopped = Arc::new(AtomicBool::new(false));
        let s2 = stopped.clone();
        let job = move || -> Job {
            let inner = streaming(50, 1, Duration::from_millis(20), 0.0);
            Box::new(move |h: &JobHandle| {
                let r = inner(h);
                s2.store(matches!(r, Err(EngineError::Aborted)), Ordering::SeqCst);
                r
            })
        };
        let t = Instant::now();
        let err = cache
            .frame(key(32), 40, job, &|| {
                t.elapsed() > Duration::from_millis(100)
            })
            .unwrap_err();
        assert_eq!(err, EngineError::Aborted);
        let ended = Instant::now();
        while !stopped.load(Ordering::SeqCst) {
            assert!(ended.elapsed() < Duration::from_secs(2), "the job ran on");
            std::thread::sleep(Duration::from_millis(5));
        }
        // An aborted job is not remembered: the next render runs it again.
        let f = cache
            .frame(key(32), 2, || streaming(3, 1, Duration::ZERO, 7.0), &|| {
                false
            })
            .unwrap();
        assert_eq!(f.rgb[0], 9.0);
    }

    #[test]
    fn a_render_aborted_while_another_waits_leaves_the_job_running() {
        let cache = cache(u64::MAX);
        let waiting = Arc::new(AtomicBool::new(false));
        let w2 = waiting.clone();
        let patient = std::thread::spawn(move || {
            let job = || streaming(5, 1, Duration::from_millis(60), 0.0);
            let r = cache.frame(key(33), 4, job, &|| {
                w2.store(true, Ordering::SeqCst);
                false
            });
            r.map(|f| f.rgb[0])
        });
        while !waiting.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let t = Instant::now();
        let err = cache
            .frame(key(33), 4, || panic!("a second job"), &|| true)
            .unwrap_err();
        assert_eq!(err, EngineError::Aborted);
        assert!(t.elapsed() < Duration::from_millis(200));
        assert_eq!(patient.join().unwrap(), Ok(4.0));
    }

    #[test]
    fn failures_are_remembered_briefly_and_other_keys_run() {
        let cache = cache(u64::MAX);
        let err = cache.get_or_run(
            key(2),
            Box::new(|_| Err(EngineError::NoModel("none".into()))),
            &|| false,
        );
        assert_eq!(err.unwrap_err(), EngineError::NoModel("none".into()));
        // Within the memory window the failure answers without a rerun.
        let again = cache.frame(key(2), 0, || panic!("must not run yet"), &|| false);
        assert!(matches!(again, Err(EngineError::NoModel(_))));
        // Another key (a changed parameter) runs at once.
        assert!(cache.get_or_run(key(3), whole(1.0), &|| false).is_ok());
    }

    #[test]
    fn an_aborted_job_is_not_remembered_and_waiters_take_over() {
        let cache = cache(u64::MAX);
        let started = Arc::new(Barrier::new(2));
        let s2 = started.clone();
        let runner = std::thread::spawn(move || {
            cache.get_or_run(
                key(4),
                Box::new(move |_| {
                    s2.wait();
                    std::thread::sleep(Duration::from_millis(100));
                    Err(EngineError::Aborted)
                }),
                &|| false,
            )
        });
        started.wait();
        let waiter = cache.frame(key(4), 0, || whole(0.5), &|| false);
        assert!(matches!(runner.join().unwrap(), Err(EngineError::Aborted)));
        assert_eq!(waiter.unwrap().rgb[0], 0.5);
    }

    #[test]
    fn a_waiter_that_is_aborted_stops_waiting() {
        let cache = cache(u64::MAX);
        let started = Arc::new(Barrier::new(2));
        let s2 = started.clone();
        let runner = std::thread::spawn(move || {
            let job = streaming(1, 1, Duration::from_millis(300), 0.1);
            let job: Job = Box::new(move |h| {
                s2.wait();
                job(h)
            });
            cache.get_or_run(key(5), job, &|| false)
        });
        started.wait();
        let t = Instant::now();
        assert_eq!(
            cache.frame(key(5), 0, || whole(0.9), &|| true).unwrap_err(),
            EngineError::Aborted
        );
        assert!(t.elapsed() < Duration::from_millis(250));
        // The Generate button's job does not stop for a render's abort.
        assert!(runner.join().unwrap().is_ok());
    }

    #[test]
    fn a_render_job_says_when_it_is_settled_after_its_result_is_in_place() {
        let cache = cache(u64::MAX);
        let (tx, rx) = std::sync::mpsc::channel();
        let job = move || -> Job {
            let inner = streaming(2, 1, Duration::from_millis(30), 0.0);
            Box::new(move |h: &JobHandle| {
                h.when_settled(move || {
                    let done = matches!(cache.peek(key(34)), Peek::Done(_));
                    tx.send(done).unwrap();
                });
                inner(h)
            })
        };
        cache.frame(key(34), 0, job, &|| false).unwrap();
        assert!(rx.recv_timeout(Duration::from_secs(5)).unwrap());
    }

    #[test]
    fn a_watcher_of_a_running_shot_hears_once_when_it_settles() {
        let cache = Arc::new(cache(u64::MAX));
        let calls = Arc::new(AtomicUsize::new(0));
        assert!(!cache.when_settled(key(35), 1, || {}), "no job runs yet");
        let (started, go) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
        let runner = {
            let (cache, started, go) = (cache.clone(), started.clone(), go.clone());
            std::thread::spawn(move || {
                let job = move || -> Job {
                    Box::new(move |h: &JobHandle| {
                        started.wait();
                        go.wait();
                        streaming(2, 1, Duration::ZERO, 0.1)(h)
                    })
                };
                cache.frame(key(35), 0, job, &|| false).map(|_| ())
            })
        };
        started.wait();
        for _ in 0..3 {
            let (calls, cache2) = (calls.clone(), cache.clone());
            let registered = cache.when_settled(key(35), 7, move || {
                assert!(matches!(cache2.peek(key(35)), Peek::Done(_)));
                calls.fetch_add(1, Ordering::SeqCst);
            });
            assert!(registered);
        }
        go.wait();
        runner.join().unwrap().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while calls.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one call per watcher");
        assert!(
            !cache.when_settled(key(35), 8, || {}),
            "settled: nothing to wait for"
        );
    }

    #[test]
    fn a_panicking_job_fails_cleanly() {
        let cache = cache(u64::MAX);
        let r = cache.frame(key(6), 0, || Box::new(|_| panic!("boom")), &|| false);
        assert!(matches!(r, Err(EngineError::Failed(_))));
    }

    #[test]
    fn peek_reports_each_state_and_insert_never_replaces() {
        let other = cache(u64::MAX);
        let shot = |v| other.get_or_run(key(0), whole(v), &|| false).unwrap();
        let (a, b) = (shot(0.3), {
            other.purge();
            shot(0.9)
        });
        let cache = cache(u64::MAX);
        assert!(matches!(cache.peek(key(20)), Peek::Absent));
        cache.insert(key(20), a);
        match cache.peek(key(20)) {
            Peek::Done(s) => assert_eq!(s.try_frame(0).unwrap().unwrap().rgb[0], 0.3),
            _ => panic!("an inserted shot is done"),
        }
        cache.insert(key(20), b);
        let f = cache.frame(key(20), 0, || panic!("run"), &|| false);
        assert_eq!(f.unwrap().rgb[0], 0.3);
        let _ = cache.get_or_run(
            key(21),
            Box::new(|_| Err(EngineError::Failed("x".into()))),
            &|| false,
        );
        assert!(matches!(
            cache.peek(key(21)),
            Peek::Failed(EngineError::Failed(_))
        ));
        cache.purge();
        assert!(cache.is_empty());
        assert_eq!(cache.frame_bytes(), 0);
    }
}
