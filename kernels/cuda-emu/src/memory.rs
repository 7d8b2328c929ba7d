//! Device memory: host heap blocks tracked by address, or in a dry run bare
//! address ranges with nothing behind them.

use std::alloc::{alloc, dealloc, Layout};
use std::collections::BTreeMap;

/// cudaMalloc's alignment; kernels and cuBLAS may rely on it.
pub const ALIGN: usize = 256;

/// What fresh device memory holds: all bits set, a NaN in f32, bf16 and f16,
/// so that a kernel reading memory nobody wrote produces NaN instead of the
/// zeros a host allocator would hand out.
pub const POISON: u8 = 0xff;

/// Where dry-run addresses start: far from any heap address, so that a
/// stray dereference of one faults instead of reading host memory.
const VIRTUAL_BASE: u64 = 0x0000_7e00_0000_0000;

struct Block {
    bytes: u64,
    /// `None` in a dry run.
    layout: Option<Layout>,
}

#[derive(Default)]
pub struct Memory {
    blocks: BTreeMap<u64, Block>,
    next_virtual: u64,
    pub live_bytes: u64,
}

// SAFETY: the table only holds addresses and sizes of blocks it owns; every
// access to it goes through the emulator's mutex.
unsafe impl Send for Memory {}

impl Memory {
    /// A new block of `bytes`: host memory filled with [`POISON`], or a bare
    /// address range in a dry run. `None` when the host has no memory left.
    pub fn alloc(&mut self, bytes: u64, dry_run: bool) -> Option<u64> {
        let addr = if dry_run {
            let base = VIRTUAL_BASE + self.next_virtual;
            self.next_virtual += bytes.max(1).div_ceil(ALIGN as u64) * ALIGN as u64;
            self.blocks.insert(
                base,
                Block {
                    bytes,
                    layout: None,
                },
            );
            base
        } else {
            let layout =
                Layout::from_size_align(usize::try_from(bytes).ok()?.max(1), ALIGN).ok()?;
            // SAFETY: the layout has a non-zero size.
            let p = unsafe { alloc(layout) };
            if p.is_null() {
                return None;
            }
            // SAFETY: `p` points to `layout.size()` freshly allocated bytes.
            unsafe { std::ptr::write_bytes(p, POISON, layout.size()) };
            let base = p as u64;
            self.blocks.insert(
                base,
                Block {
                    bytes,
                    layout: Some(layout),
                },
            );
            base
        };
        self.live_bytes += bytes;
        Some(addr)
    }

    /// Frees the block that starts at `addr`; its size, or `None` when no
    /// block starts there.
    pub fn free(&mut self, addr: u64) -> Option<u64> {
        let block = self.blocks.remove(&addr)?;
        if let Some(layout) = block.layout {
            // SAFETY: `addr` came from `alloc` with this layout and is removed
            // from the table, so it is freed exactly once.
            unsafe { dealloc(addr as *mut u8, layout) };
        }
        self.live_bytes -= block.bytes;
        Some(block.bytes)
    }

    /// The live block holding `addr`: `(base, bytes)`. An address one past
    /// the end counts (an empty view may point there).
    pub fn resolve(&self, addr: u64) -> Option<(u64, u64)> {
        let (&base, block) = self.blocks.range(..=addr).next_back()?;
        (addr <= base + block.bytes).then_some((base, block.bytes))
    }

    /// Checks that `[addr, addr + len)` lies inside one live block.
    pub fn check(&self, what: &str, addr: u64, len: u64) -> Result<(), String> {
        if len == 0 {
            return Ok(());
        }
        match self.resolve(addr) {
            Some((base, bytes)) if addr + len <= base + bytes => Ok(()),
            Some((base, bytes)) => Err(format!(
                "{what}: {len} bytes at 0x{addr:x} run {} bytes past the end of the \
                 {bytes}-byte allocation at 0x{base:x}",
                addr + len - (base + bytes)
            )),
            None => Err(format!(
                "{what}: address 0x{addr:x} is not inside any live allocation"
            )),
        }
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        let starts: Vec<u64> = self.blocks.keys().copied().collect();
        for a in starts {
            self.free(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_poisoned_resolved_and_freed() {
        let mut m = Memory::default();
        let a = m.alloc(1000, false).unwrap();
        assert_eq!(a % ALIGN as u64, 0);
        // SAFETY: `a` is a live 1000-byte block.
        assert_eq!(unsafe { *(a as *const u8).add(999) }, POISON);
        assert_eq!(m.resolve(a + 10), Some((a, 1000)));
        assert_eq!(m.resolve(a + 1000), Some((a, 1000)), "one past the end");
        assert!(m.check("x", a + 900, 100).is_ok());
        let e = m.check("x", a + 900, 101).unwrap_err();
        assert!(e.contains("1 bytes past the end"), "{e}");
        assert_eq!(m.live_bytes, 1000);
        assert_eq!(m.free(a), Some(1000));
        assert_eq!(m.free(a), None);
        assert!(m.check("x", a, 4).unwrap_err().contains("not inside"));
    }

    #[test]
    fn dry_run_blocks_are_distinct_ranges() {
        let mut m = Memory::default();
        let a = m.alloc(10, true).unwrap();
        let b = m.alloc(1 << 40, true).unwrap();
        assert!(b >= a + 10);
        assert_eq!(m.resolve(b + (1 << 39)), Some((b, 1 << 40)));
        assert_eq!(m.live_bytes, 10 + (1 << 40));
    }
}
