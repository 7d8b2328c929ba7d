//! The in-memory shot cache: one job per shot key, however many threads and
//! instances ask for its frames at once.
//!
//! The first request for a key runs the job on its own thread; every other
//! request for that key waits on the slot's condition variable and reads the
//! result. A failed job answers its waiters with its error; the failure is
//! remembered briefly (so the frames of one render do not each retry an
//! expensive failure) and retried after that. An aborted job is forgotten at
//! once, and a waiter that was not itself aborted takes over the job.

use genfx::engine::{EngineError, Shot};
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::key::ShotKey;

/// How long a failure answers requests for the same key without retrying.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(5);
/// How often a waiter checks its own abort flag.
const WAIT_SLICE: Duration = Duration::from_millis(50);

enum State {
    Running,
    Done(Arc<Shot>),
    Failed(EngineError, Instant),
}

struct Slot {
    state: Mutex<State>,
    ready: Condvar,
    last_used: AtomicU64,
    bytes: AtomicU64,
}

pub struct ShotCache {
    slots: Mutex<HashMap<ShotKey, Arc<Slot>>>,
    budget_bytes: u64,
    clock: AtomicU64,
}

fn shot_bytes(shot: &Shot) -> u64 {
    shot.frames.iter().map(|f| f.rgb.len() as u64 * 4).sum()
}

/// What [`ShotCache::peek`] found.
pub enum Peek {
    Absent,
    Running,
    Done(Arc<Shot>),
    Failed(EngineError),
}

enum Role {
    Ready(Arc<Shot>),
    Runner(Arc<Slot>),
    Waiter(Arc<Slot>),
}

impl ShotCache {
    pub fn new(budget_bytes: u64) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            budget_bytes,
            clock: AtomicU64::new(0),
        }
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// The shot for `key`, running `job` if no one has (or is). `aborted`
    /// is polled while waiting for another thread's job.
    pub fn get_or_run(
        &self,
        key: ShotKey,
        job: impl FnOnce() -> Result<Shot, EngineError>,
        aborted: &dyn Fn() -> bool,
    ) -> Result<Arc<Shot>, EngineError> {
        let mut job = Some(job);
        loop {
            match self.claim(key)? {
                Role::Ready(shot) => return Ok(shot),
                Role::Runner(slot) => {
                    let run = job
                        .take()
                        .ok_or(EngineError::Failed("shot job ran twice".into()))?;
                    return self.run(key, slot, run);
                }
                Role::Waiter(slot) => {
                    let mut state = slot.state.lock();
                    while matches!(*state, State::Running) {
                        if aborted() {
                            return Err(EngineError::Aborted);
                        }
                        slot.ready.wait_for(&mut state, WAIT_SLICE);
                    }
                    match &*state {
                        State::Done(shot) => return Ok(shot.clone()),
                        // Someone else's abort: take the job over.
                        State::Failed(EngineError::Aborted, _) => continue,
                        State::Failed(e, _) => return Err(e.clone()),
                        State::Running => unreachable!("loop exits only when not running"),
                    }
                }
            }
        }
    }

    fn claim(&self, key: ShotKey) -> Result<Role, EngineError> {
        let mut slots = self.slots.lock();
        if let Some(slot) = slots.get(&key) {
            let slot = slot.clone();
            let mut state = slot.state.lock();
            slot.last_used.store(self.tick(), Ordering::Relaxed);
            return match &*state {
                State::Done(shot) => Ok(Role::Ready(shot.clone())),
                State::Running => {
                    drop(state);
                    Ok(Role::Waiter(slot))
                }
                State::Failed(e, at)
                    if !matches!(e, EngineError::Aborted) && at.elapsed() < FAILURE_MEMORY =>
                {
                    Err(e.clone())
                }
                State::Failed(..) => {
                    *state = State::Running;
                    drop(state);
                    Ok(Role::Runner(slot))
                }
            };
        }
        let slot = Arc::new(Slot {
            state: Mutex::new(State::Running),
            ready: Condvar::new(),
            last_used: AtomicU64::new(self.tick()),
            bytes: AtomicU64::new(0),
        });
        slots.insert(key, slot.clone());
        Ok(Role::Runner(slot))
    }

    fn run(
        &self,
        key: ShotKey,
        slot: Arc<Slot>,
        job: impl FnOnce() -> Result<Shot, EngineError>,
    ) -> Result<Arc<Shot>, EngineError> {
        // A panicking job must still wake its waiters.
        let result = catch_unwind(AssertUnwindSafe(job))
            .unwrap_or_else(|_| {
                Err(EngineError::Failed(
                    "the shot job panicked (see the GenFX log)".into(),
                ))
            })
            .map(Arc::new);
        {
            let mut state = slot.state.lock();
            *state = match &result {
                Ok(shot) => {
                    slot.bytes.store(shot_bytes(shot), Ordering::Relaxed);
                    State::Done(shot.clone())
                }
                Err(e) => State::Failed(e.clone(), Instant::now()),
            };
            slot.ready.notify_all();
        }
        if matches!(result, Err(EngineError::Aborted)) {
            let mut slots = self.slots.lock();
            if slots.get(&key).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                slots.remove(&key);
            }
        }
        if result.is_ok() {
            self.evict(key);
        }
        result
    }

    /// Drops least recently used finished shots beyond the memory budget,
    /// never the one just made.
    fn evict(&self, keep: ShotKey) {
        let mut slots = self.slots.lock();
        loop {
            let total: u64 = slots
                .values()
                .map(|s| s.bytes.load(Ordering::Relaxed))
                .sum();
            if total <= self.budget_bytes {
                return;
            }
            let victim = slots
                .iter()
                .filter(|(k, s)| **k != keep && s.bytes.load(Ordering::Relaxed) > 0)
                .min_by_key(|(_, s)| s.last_used.load(Ordering::Relaxed))
                .map(|(k, _)| *k);
            match victim {
                Some(k) => {
                    slots.remove(&k);
                }
                None => return,
            }
        }
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
            State::Done(shot) => {
                slot.last_used.store(self.tick(), Ordering::Relaxed);
                Peek::Done(shot.clone())
            }
            State::Running => Peek::Running,
            State::Failed(e, _) => Peek::Failed(e.clone()),
        }
    }

    /// Keeps a shot read from the disk cache, unless the key already has a
    /// slot (a job running for it, or its result).
    pub fn insert(&self, key: ShotKey, shot: Arc<Shot>) {
        {
            let mut slots = self.slots.lock();
            if slots.contains_key(&key) {
                return;
            }
            slots.insert(
                key,
                Arc::new(Slot {
                    bytes: AtomicU64::new(shot_bytes(&shot)),
                    state: Mutex::new(State::Done(shot)),
                    ready: Condvar::new(),
                    last_used: AtomicU64::new(self.tick()),
                }),
            );
        }
        self.evict(key);
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

    /// Forgets every finished or failed shot (running jobs carry on).
    pub fn purge(&self) {
        self.slots
            .lock()
            .retain(|_, s| matches!(*s.state.lock(), State::Running));
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
    use genfx::engine::Frame;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Barrier;

    fn shot(v: f32) -> Shot {
        Shot {
            frames: vec![Frame::new(1, 1, vec![v, v, v]).unwrap()],
        }
    }

    fn key(n: u8) -> ShotKey {
        ShotKey([n; 16])
    }

    #[test]
    fn many_threads_one_job() {
        let cache = Arc::new(ShotCache::new(u64::MAX));
        let runs = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(Barrier::new(16));
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let (cache, runs, barrier) = (cache.clone(), runs.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    cache
                        .get_or_run(
                            key(1),
                            || {
                                runs.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(Duration::from_millis(100));
                                Ok(shot(0.25))
                            },
                            &|| false,
                        )
                        .unwrap()
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap().frames[0].rgb[0], 0.25);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Later requests read the cached result.
        let again = cache
            .get_or_run(key(1), || panic!("must not run"), &|| false)
            .unwrap();
        assert_eq!(again.frames[0].rgb[0], 0.25);
    }

    #[test]
    fn failures_are_remembered_briefly_and_other_keys_run() {
        let cache = ShotCache::new(u64::MAX);
        let err = cache.get_or_run(key(2), || Err(EngineError::NoModel("none".into())), &|| {
            false
        });
        assert_eq!(err.unwrap_err(), EngineError::NoModel("none".into()));
        // Within the memory window the failure answers without a rerun.
        let again = cache.get_or_run(key(2), || panic!("must not run yet"), &|| false);
        assert!(matches!(again, Err(EngineError::NoModel(_))));
        // Another key (a changed parameter) runs at once.
        assert!(cache
            .get_or_run(key(3), || Ok(shot(1.0)), &|| false)
            .is_ok());
    }

    #[test]
    fn an_aborted_job_is_not_remembered_and_waiters_take_over() {
        let cache = Arc::new(ShotCache::new(u64::MAX));
        let started = Arc::new(Barrier::new(2));
        let c2 = cache.clone();
        let s2 = started.clone();
        let runner = std::thread::spawn(move || {
            c2.get_or_run(
                key(4),
                || {
                    s2.wait();
                    std::thread::sleep(Duration::from_millis(100));
                    Err(EngineError::Aborted)
                },
                &|| false,
            )
        });
        started.wait();
        let waiter = cache.get_or_run(key(4), || Ok(shot(0.5)), &|| false);
        assert!(matches!(runner.join().unwrap(), Err(EngineError::Aborted)));
        assert_eq!(waiter.unwrap().frames[0].rgb[0], 0.5);
    }

    #[test]
    fn a_waiter_that_is_aborted_stops_waiting() {
        let cache = Arc::new(ShotCache::new(u64::MAX));
        let started = Arc::new(Barrier::new(2));
        let (c2, s2) = (cache.clone(), started.clone());
        let runner = std::thread::spawn(move || {
            c2.get_or_run(
                key(5),
                || {
                    s2.wait();
                    std::thread::sleep(Duration::from_millis(300));
                    Ok(shot(0.1))
                },
                &|| false,
            )
        });
        started.wait();
        let t = Instant::now();
        assert_eq!(
            cache
                .get_or_run(key(5), || Ok(shot(0.9)), &|| true)
                .unwrap_err(),
            EngineError::Aborted
        );
        assert!(t.elapsed() < Duration::from_millis(250));
        assert!(runner.join().unwrap().is_ok());
    }

    #[test]
    fn a_panicking_job_fails_cleanly() {
        let cache = ShotCache::new(u64::MAX);
        let r = cache.get_or_run(key(6), || panic!("boom"), &|| false);
        assert!(matches!(r, Err(EngineError::Failed(_))));
    }

    #[test]
    fn peek_reports_each_state_and_insert_never_replaces() {
        let cache = ShotCache::new(u64::MAX);
        assert!(matches!(cache.peek(key(20)), Peek::Absent));
        cache.insert(key(20), Arc::new(shot(0.3)));
        match cache.peek(key(20)) {
            Peek::Done(s) => assert_eq!(s.frames[0].rgb[0], 0.3),
            _ => panic!("an inserted shot is done"),
        }
        cache.insert(key(20), Arc::new(shot(0.9)));
        assert!(matches!(cache.peek(key(20)), Peek::Done(s) if s.frames[0].rgb[0] == 0.3));
        let _ = cache.get_or_run(key(21), || Err(EngineError::Failed("x".into())), &|| false);
        assert!(matches!(
            cache.peek(key(21)),
            Peek::Failed(EngineError::Failed(_))
        ));
    }

    #[test]
    fn memory_budget_evicts_least_recent() {
        let cache = ShotCache::new(24); // two one-pixel shots of 12 bytes
        for n in 10..13 {
            cache
                .get_or_run(key(n), || Ok(shot(n as f32)), &|| false)
                .unwrap();
        }
        assert_eq!(cache.len(), 2);
        assert!(
            cache
                .get_or_run(key(10), || Ok(shot(0.0)), &|| false)
                .unwrap()
                .frames[0]
                .rgb[0]
                == 0.0
        );
        cache.purge();
        assert!(cache.is_empty());
    }
}
