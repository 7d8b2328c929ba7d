//! A caching allocator for activations.
//!
//! A denoising loop asks for the same few hundred buffer sizes every step;
//! `cuMemAlloc`/`cuMemFree` synchronise the device and cost tens of
//! microseconds each. Freed blocks therefore go to a free list per size class
//! and are handed out again. One allocator serves one job and its one stream,
//! so a block freed while kernels that use it are still queued is only reused
//! by work queued after them on the same stream: no events are needed.
//!
//! The bookkeeping is generic over [`RawMemory`] so that it is tested without
//! a GPU; [`super::device`] supplies the driver-backed implementation.
//!
//! `GENFX_CUDA_NO_CACHING=1` turns the cache off (as PyTorch's
//! `PYTORCH_NO_CUDA_MEMORY_CACHING` does): every block is exactly the size
//! asked for and goes back to the driver when dropped, so that a memory
//! checker — compute-sanitizer on a card, the emulated device in our tests —
//! sees each buffer's true end. A size class would hide an allocation that is
//! a few bytes short.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::error::CudaError;

/// Smallest block handed out; also the alignment of every block.
pub const MIN_BLOCK: usize = 512;
/// Below this, classes are powers of two; above, each doubling is split into
/// [`STEPS_PER_DOUBLING`] classes so that at most 1/8 of a block is wasted.
const POW2_LIMIT: usize = 1 << 20;
const STEPS_PER_DOUBLING: usize = 8;

/// The size class serving a request of `bytes`: the bytes actually reserved.
pub fn size_class(bytes: usize) -> usize {
    let bytes = bytes.max(1);
    if bytes <= MIN_BLOCK {
        return MIN_BLOCK;
    }
    if bytes <= POW2_LIMIT {
        return bytes.next_power_of_two();
    }
    // floor power of two at or below `bytes`, split into equal steps
    let floor = 1usize << (usize::BITS - 1 - bytes.leading_zeros());
    let step = floor / STEPS_PER_DOUBLING;
    bytes.div_ceil(step) * step
}

/// Device memory as the driver hands it out.
pub trait RawMemory: Send + Sync {
    /// A fresh block of exactly `bytes`, or `Ok(None)` when the device is out
    /// of memory (other failures are errors).
    fn alloc(&self, bytes: usize) -> Result<Option<u64>, CudaError>;
    /// Returns a block obtained from [`RawMemory::alloc`].
    fn free(&self, ptr: u64);
    /// `(free, total)` bytes on the device.
    fn mem_info(&self) -> (usize, usize);
}

/// Counters for tuning and for tests; all bytes are class (reserved) sizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocStats {
    /// Blocks obtained from the driver.
    pub driver_allocs: u64,
    /// Blocks returned to the driver.
    pub driver_frees: u64,
    /// Requests served from a free list.
    pub cache_hits: u64,
    /// Blocks handed out and not yet returned.
    pub live_blocks: u64,
    pub bytes_in_use: usize,
    pub bytes_cached: usize,
    pub peak_bytes_in_use: usize,
}

struct State {
    free: BTreeMap<usize, Vec<u64>>,
    stats: AllocStats,
}

/// Turns the cache off; see the module documentation.
pub const NO_CACHING_ENV: &str = "GENFX_CUDA_NO_CACHING";

/// Size-class free lists over a [`RawMemory`].
pub struct CachingAllocator<M: RawMemory> {
    memory: M,
    state: Mutex<State>,
    /// Exact sizes, nothing kept ([`NO_CACHING_ENV`]).
    exact: bool,
}

/// A block from a [`CachingAllocator`]; goes back to its free list on drop.
pub struct Block<M: RawMemory> {
    ptr: u64,
    class: usize,
    home: Arc<CachingAllocator<M>>,
}

impl<M: RawMemory> Block<M> {
    pub fn ptr(&self) -> u64 {
        self.ptr
    }
    /// Bytes reserved (at least what was asked for).
    pub fn capacity(&self) -> usize {
        self.class
    }
}

impl<M: RawMemory> Drop for Block<M> {
    fn drop(&mut self) {
        self.home.give_back(self.ptr, self.class);
    }
}

impl<M: RawMemory> std::fmt::Debug for Block<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Block({:#x}, {} bytes)", self.ptr, self.class)
    }
}

impl<M: RawMemory> CachingAllocator<M> {
    pub fn new(memory: M) -> Arc<Self> {
        let exact = std::env::var(NO_CACHING_ENV).is_ok_and(|v| v == "1");
        Self::with_caching(memory, !exact)
    }

    /// An allocator that caches freed blocks, or (`caching` false) hands out
    /// exact sizes and returns every block to the driver when dropped.
    pub fn with_caching(memory: M, caching: bool) -> Arc<Self> {
        Arc::new(Self {
            memory,
            state: Mutex::new(State {
                free: BTreeMap::new(),
                stats: AllocStats::default(),
            }),
            exact: !caching,
        })
    }

    pub fn memory(&self) -> &M {
        &self.memory
    }

    pub fn stats(&self) -> AllocStats {
        self.state.lock().stats
    }

    /// A block of at least `bytes`. When the driver is out of memory, every
    /// cached block is released and the request tried once more; if it
    /// still fails the error names what was asked and what is free.
    pub fn alloc(self: &Arc<Self>, bytes: usize) -> Result<Block<M>, CudaError> {
        let class = if self.exact { bytes } else { size_class(bytes) };
        if let Some(ptr) = self.take_cached(class) {
            return Ok(self.hand_out(ptr, class));
        }
        let ptr = match self.memory.alloc(class)? {
            Some(ptr) => ptr,
            None => {
                self.release_cached();
                match self.memory.alloc(class)? {
                    Some(ptr) => ptr,
                    None => {
                        let (free, total) = self.memory.mem_info();
                        return Err(CudaError::OutOfMemory {
                            asked: bytes,
                            free,
                            total,
                        });
                    }
                }
            }
        };
        self.state.lock().stats.driver_allocs += 1;
        Ok(self.hand_out(ptr, class))
    }

    fn take_cached(&self, class: usize) -> Option<u64> {
        let mut state = self.state.lock();
        let ptr = state.free.get_mut(&class)?.pop()?;
        state.stats.cache_hits += 1;
        state.stats.bytes_cached -= class;
        Some(ptr)
    }

    fn hand_out(self: &Arc<Self>, ptr: u64, class: usize) -> Block<M> {
        let mut state = self.state.lock();
        let s = &mut state.stats;
        s.live_blocks += 1;
        s.bytes_in_use += class;
        s.peak_bytes_in_use = s.peak_bytes_in_use.max(s.bytes_in_use);
        Block {
            ptr,
            class,
            home: Arc::clone(self),
        }
    }

    fn give_back(&self, ptr: u64, class: usize) {
        let mut state = self.state.lock();
        let s = &mut state.stats;
        s.live_blocks -= 1;
        s.bytes_in_use -= class;
        if self.exact {
            s.driver_frees += 1;
            drop(state);
            self.memory.free(ptr);
            return;
        }
        s.bytes_cached += class;
        state.free.entry(class).or_default().push(ptr);
    }

    /// Returns every cached block to the driver.
    pub fn release_cached(&self) {
        let blocks: Vec<u64> = {
            let mut state = self.state.lock();
            let blocks = std::mem::take(&mut state.free)
                .into_values()
                .flatten()
                .collect::<Vec<_>>();
            state.stats.driver_frees += blocks.len() as u64;
            state.stats.bytes_cached = 0;
            blocks
        };
        for ptr in blocks {
            self.memory.free(ptr);
        }
    }
}

impl<M: RawMemory> Drop for CachingAllocator<M> {
    fn drop(&mut self) {
        // Blocks hold an Arc to their allocator, so none is live here.
        self.release_cached();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    /// A pretend device with `capacity` bytes.
    struct FakeMemory {
        capacity: usize,
        used: AtomicUsize,
        next: AtomicU64,
        sizes: Mutex<BTreeMap<u64, usize>>,
    }

    impl FakeMemory {
        fn new(capacity: usize) -> Self {
            Self {
                capacity,
                used: AtomicUsize::new(0),
                next: AtomicU64::new(0x1000),
                sizes: Mutex::new(BTreeMap::new()),
            }
        }
    }

    impl RawMemory for FakeMemory {
        fn alloc(&self, bytes: usize) -> Result<Option<u64>, CudaError> {
            if self.used.load(Ordering::SeqCst) + bytes > self.capacity {
                return Ok(None);
            }
            self.used.fetch_add(bytes, Ordering::SeqCst);
            let ptr = self.next.fetch_add(bytes as u64, Ordering::SeqCst);
            self.sizes.lock().insert(ptr, bytes);
            Ok(Some(ptr))
        }
        fn free(&self, ptr: u64) {
            let bytes = self.sizes.lock().remove(&ptr).expect("double free");
            self.used.fetch_sub(bytes, Ordering::SeqCst);
        }
        fn mem_info(&self) -> (usize, usize) {
            (
                self.capacity - self.used.load(Ordering::SeqCst),
                self.capacity,
            )
        }
    }

    #[test]
    fn size_classes_cover_requests_with_bounded_waste() {
        assert_eq!(size_class(0), MIN_BLOCK);
        assert_eq!(size_class(1), MIN_BLOCK);
        assert_eq!(size_class(512), 512);
        assert_eq!(size_class(513), 1024);
        assert_eq!(size_class(1 << 20), 1 << 20);
        // above 1 MiB: steps of 1/8 of the power of two below
        assert_eq!(size_class((1 << 20) + 1), (1 << 20) + (1 << 17));
        assert_eq!(size_class(3 << 20), 3 << 20);
        let mut bytes = 1usize;
        while bytes < 1 << 34 {
            for probe in [bytes, bytes + 1, bytes * 3 / 2 + 7] {
                let c = size_class(probe);
                assert!(c >= probe, "{probe} -> {c}");
                assert_eq!(c % MIN_BLOCK, 0, "{probe} -> {c} unaligned");
                if probe > POW2_LIMIT {
                    assert!((c - probe) * 8 <= probe, "{probe} -> {c} wastes too much");
                }
                assert_eq!(size_class(c), c, "classes are fixed points");
            }
            bytes *= 2;
        }
    }

    #[test]
    fn freed_blocks_are_reused_by_class() {
        let a = CachingAllocator::with_caching(FakeMemory::new(1 << 30), true);
        let b1 = a.alloc(1000).unwrap();
        assert_eq!(b1.capacity(), 1024);
        let p1 = b1.ptr();
        drop(b1);
        let s = a.stats();
        assert_eq!(
            (s.live_blocks, s.bytes_in_use, s.bytes_cached),
            (0, 0, 1024)
        );
        // same class, different request size: same block back
        let b2 = a.alloc(700).unwrap();
        assert_eq!(b2.ptr(), p1);
        // a different class needs a new block
        let b3 = a.alloc(5000).unwrap();
        assert_ne!(b3.ptr(), p1);
        let s = a.stats();
        assert_eq!(s.driver_allocs, 2);
        assert_eq!(s.cache_hits, 1);
        assert_eq!(s.live_blocks, 2);
        assert_eq!(s.bytes_in_use, 1024 + 8192);
        assert_eq!(s.peak_bytes_in_use, 1024 + 8192);
        assert_eq!(s.bytes_cached, 0);
    }

    #[test]
    fn out_of_memory_first_releases_the_cache_then_reports_sizes() {
        let a = CachingAllocator::with_caching(FakeMemory::new(4 << 20), true);
        let cached = a.alloc(2 << 20).unwrap();
        drop(cached);
        assert_eq!(a.stats().bytes_cached, 2 << 20);
        // 3 MiB does not fit next to the cached 2 MiB, but fits once the
        // cache is returned to the driver
        let big = a.alloc(3 << 20).unwrap();
        let s = a.stats();
        assert_eq!(s.driver_frees, 1);
        assert_eq!(s.bytes_cached, 0);
        let err = a.alloc(2 << 20).unwrap_err();
        assert_eq!(
            err,
            CudaError::OutOfMemory {
                asked: 2 << 20,
                free: 1 << 20,
                total: 4 << 20
            }
        );
        drop(big);
    }

    #[test]
    fn dropping_the_allocator_returns_everything() {
        let memory = Arc::new(FakeMemory::new(1 << 30));
        struct Shared(Arc<FakeMemory>);
        impl RawMemory for Shared {
            fn alloc(&self, b: usize) -> Result<Option<u64>, CudaError> {
                self.0.alloc(b)
            }
            fn free(&self, p: u64) {
                self.0.free(p)
            }
            fn mem_info(&self) -> (usize, usize) {
                self.0.mem_info()
            }
        }
        let a = CachingAllocator::with_caching(Shared(memory.clone()), true);
        let blocks: Vec<_> = (1..20).map(|i| a.alloc(i * 1000).unwrap()).collect();
        assert!(memory.used.load(Ordering::SeqCst) > 0);
        drop(blocks);
        drop(a);
        assert_eq!(memory.used.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn without_caching_blocks_are_exact_and_go_straight_back() {
        let a = CachingAllocator::with_caching(FakeMemory::new(1 << 30), false);
        let b = a.alloc(1000).unwrap();
        assert_eq!(b.capacity(), 1000, "no size class");
        drop(b);
        let s = a.stats();
        assert_eq!((s.driver_allocs, s.driver_frees, s.bytes_cached), (1, 1, 0));
        assert_eq!(a.memory().used.load(Ordering::SeqCst), 0);
    }
}
