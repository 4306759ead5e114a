//! A global allocator that keeps large freed blocks for reuse: buffer reuse across training
//! steps.
//!
//! Every training step allocates the same activation and gradient tensors again, many of them
//! tens of megabytes. The system allocator hands such blocks back to the kernel on free
//! (`munmap`) and maps fresh zero pages on the next allocation, so each step paid about a million
//! page faults and the TLB-shootdown interrupts of the unmaps: a third of a U-Net step's time on
//! this project's 2-core machine (docs/performance.md). This allocator keeps freed blocks of at
//! least [`MIN_CACHED`] bytes in a small table, up to a byte budget, and returns one of exactly
//! the same size and alignment when it is asked for again; everything else goes to the system
//! allocator. Hand-written because the general-purpose allocator crates keep returning huge
//! blocks to the kernel too, and what is needed here is a size-exact cache of a few hundred
//! entries.
//!
//! The `ds2f` binary installs it (main.rs); it lives here, beside its only user, so that the
//! library crate `ds2f` has no `unsafe` code. (The A/B against a kept allocator crate,
//! jemalloc or mimalloc with their decay settings, that issue #19 asks for is pending: it needs
//! a quiet machine.)
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Smallest block kept for reuse (smaller ones are cheap for the system allocator).
pub const MIN_CACHED: usize = 256 * 1024;
/// Number of cached blocks at most.
const SLOTS: usize = 256;
/// Default budget of cached (free) bytes: 1 GiB (the `ds2f` binary sets an eighth of the
/// machine's memory, see its `main`).
pub const DEFAULT_BUDGET: usize = 1 << 30;

#[derive(Clone, Copy)]
struct Slot {
    /// Size class (the size the block was allocated with).
    size: usize,
    align: usize,
    ptr: *mut u8,
    /// When it was cached (a counter), to evict the oldest first.
    age: u64,
}

struct Cache {
    slots: [Option<Slot>; SLOTS],
    cached_bytes: usize,
    clock: u64,
}

/// The size a large block is really allocated with: `size` rounded up to one of eight classes
/// per power of two (at most 12.5 % more), so that tensors of nearly equal sizes share blocks.
fn size_class(size: usize) -> usize {
    if size < MIN_CACHED {
        return size;
    }
    let step = (size.next_power_of_two() / 16).max(4096);
    size.div_ceil(step) * step
}

/// Allocates a new large block from the system with its [`class_layout`].
///
/// # Safety
/// `layout` has a non-zero size.
unsafe fn system_alloc(layout: Layout, zeroed: bool) -> *mut u8 {
    let class = class_layout(layout);
    // SAFETY: class has a non-zero size.
    let ptr = unsafe { System.alloc(class) };
    if zeroed && !ptr.is_null() {
        // Zero by writing rather than with calloc's lazily mapped zero pages: a kernel that
        // reads such a buffer before writing it (gemm does) maps the shared zero page, and the
        // write that follows costs a copy-on-write fault plus a TLB-shootdown interrupt to
        // every other core (seen in `perf`: 13 % of a DS2F step).
        // SAFETY: the block is at least layout.size() bytes and ours.
        unsafe { ptr.write_bytes(0, layout.size()) };
    }
    ptr
}

// SAFETY: the pointers are owned by the cache (freed blocks nobody else refers to).
unsafe impl Send for Cache {}

/// The caching allocator; see the module docs.
pub struct CachingAllocator {
    cache: Mutex<Cache>,
    budget: AtomicUsize,
}

impl CachingAllocator {
    /// An allocator caching up to [`DEFAULT_BUDGET`] free bytes.
    pub const fn new() -> Self {
        Self::with_budget(DEFAULT_BUDGET)
    }

    /// An allocator caching up to `budget` free bytes (0 disables the cache).
    pub const fn with_budget(budget: usize) -> Self {
        Self {
            cache: Mutex::new(Cache {
                slots: [None; SLOTS],
                cached_bytes: 0,
                clock: 0,
            }),
            budget: AtomicUsize::new(budget),
        }
    }

    /// Changes the budget of cached free bytes (0 disables the cache; blocks already cached
    /// stay until reused).
    pub fn set_budget(&self, budget: usize) {
        self.budget.store(budget, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A panic cannot happen while the lock is held (no allocation, no indexing out of
        // range), but never let a poisoned lock turn into an allocation failure.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A cached block of this layout's size class and alignment, removed from the cache.
    fn take(&self, layout: Layout) -> Option<*mut u8> {
        let size = size_class(layout.size());
        let mut cache = self.lock();
        let found = cache
            .slots
            .iter()
            .position(|s| s.is_some_and(|s| s.size == size && s.align == layout.align()))?;
        let slot = cache.slots[found].take()?;
        cache.cached_bytes -= slot.size;
        Some(slot.ptr)
    }

    /// Keeps a freed block (of `layout`'s size class), evicting the oldest cached blocks to stay
    /// within the budget; false when the caller must free it.
    fn keep(&self, ptr: *mut u8, layout: Layout) -> bool {
        let size = size_class(layout.size());
        let budget = self.budget.load(Ordering::Relaxed);
        if size > budget {
            return false;
        }
        let mut evicted = [None; SLOTS];
        let kept = {
            let mut cache = self.lock();
            let mut n = 0;
            while cache.cached_bytes + size > budget || cache.slots.iter().all(Option::is_some) {
                let oldest = (0..SLOTS)
                    .filter(|&i| cache.slots[i].is_some())
                    .min_by_key(|&i| cache.slots[i].map_or(u64::MAX, |s| s.age));
                let Some(i) = oldest else { break };
                let slot = cache.slots[i].take();
                cache.cached_bytes -= slot.map_or(0, |s| s.size);
                evicted[n] = slot;
                n += 1;
            }
            match cache.slots.iter().position(Option::is_none) {
                Some(free) if cache.cached_bytes + size <= budget => {
                    cache.clock += 1;
                    let age = cache.clock;
                    cache.slots[free] = Some(Slot {
                        size,
                        align: layout.align(),
                        ptr,
                        age,
                    });
                    cache.cached_bytes += size;
                    true
                }
                _ => false,
            }
        };
        // Free the evicted blocks outside the lock.
        for slot in evicted.into_iter().flatten() {
            // SAFETY: each was allocated from System with this size class and alignment.
            unsafe {
                System.dealloc(
                    slot.ptr,
                    class_layout(Layout::from_size_align_unchecked(slot.size, slot.align)),
                )
            };
        }
        kept
    }

    /// Bytes held in the cache right now (free blocks kept for reuse).
    #[cfg(test)]
    pub fn cached_bytes(&self) -> usize {
        self.lock().cached_bytes
    }
}

/// The layout a large block is really allocated with: its size class.
fn class_layout(layout: Layout) -> Layout {
    // SAFETY: the class size is a multiple of 4096 ≥ the size, the alignment unchanged; no
    // overflow for sizes a process can allocate.
    unsafe { Layout::from_size_align_unchecked(size_class(layout.size()), layout.align()) }
}

impl Default for CachingAllocator {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: blocks come from `System` with the same layout they are later freed with; a cached
// block is handed out only for exactly the layout it was allocated with, and only once.
unsafe impl GlobalAlloc for CachingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() < MIN_CACHED {
            // SAFETY: forwarded contract.
            return unsafe { System.alloc(layout) };
        }
        if let Some(ptr) = self.take(layout) {
            return ptr;
        }
        // SAFETY: layout.size() ≥ MIN_CACHED.
        unsafe { system_alloc(layout, false) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() < MIN_CACHED {
            // SAFETY: forwarded contract.
            return unsafe { System.alloc_zeroed(layout) };
        }
        if let Some(ptr) = self.take(layout) {
            // SAFETY: the block is at least layout.size() bytes, owned by the caller now.
            unsafe { ptr.write_bytes(0, layout.size()) };
            return ptr;
        }
        // SAFETY: layout.size() ≥ MIN_CACHED.
        unsafe { system_alloc(layout, true) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() < MIN_CACHED {
            // SAFETY: forwarded contract.
            return unsafe { System.dealloc(ptr, layout) };
        }
        if !self.keep(ptr, layout) {
            // SAFETY: the block was allocated with its class layout.
            unsafe { System.dealloc(ptr, class_layout(layout)) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.size() < MIN_CACHED && new_size < MIN_CACHED {
            // SAFETY: forwarded contract.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        if layout.size() >= MIN_CACHED && size_class(new_size) == size_class(layout.size()) {
            return ptr;
        }
        // SAFETY: new_size is non-zero and valid for the alignment (GlobalAlloc contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: forwarded contract; copy the common prefix, then free the old block.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_exact_layouts_within_budget() {
        let a = CachingAllocator::with_budget(3 * MIN_CACHED);
        let big = Layout::from_size_align(MIN_CACHED, 64).unwrap();
        // The next size class up.
        let other = Layout::from_size_align(MIN_CACHED + MIN_CACHED / 16 + 1, 64).unwrap();
        unsafe {
            let p = a.alloc(big);
            p.write_bytes(7, big.size());
            a.dealloc(p, big);
            assert_eq!(a.cached_bytes(), MIN_CACHED);
            // A different size is not served from the cache.
            let q = a.alloc(other);
            assert_ne!(q, p);
            assert_eq!(a.cached_bytes(), MIN_CACHED);
            // The same layout gets the cached block back, zeroed when asked.
            let r = a.alloc_zeroed(big);
            assert_eq!(r, p);
            assert!(
                std::slice::from_raw_parts(r, big.size())
                    .iter()
                    .all(|&b| b == 0)
            );
            assert_eq!(a.cached_bytes(), 0);
            a.dealloc(q, other);
            a.dealloc(r, big);
            let both = MIN_CACHED + size_class(other.size());
            assert_eq!(a.cached_bytes(), both);
            // A size in the same class as `big` is served by the cached block.
            let near = Layout::from_size_align(MIN_CACHED - 100, 64).unwrap();
            assert_eq!(size_class(near.size()), size_class(MIN_CACHED - 100));
            // Over the budget: the oldest block (q's) is evicted to make room.
            let l2 = Layout::from_size_align(2 * MIN_CACHED - 4096, 64).unwrap();
            let s = a.alloc(l2);
            a.dealloc(s, l2);
            assert_eq!(a.cached_bytes(), MIN_CACHED + size_class(l2.size()));
            assert_eq!(a.take(l2), Some(s));
            // Larger than the whole budget: never kept.
            let huge = Layout::from_size_align(4 * MIN_CACHED, 64).unwrap();
            let h = a.alloc(huge);
            a.dealloc(h, huge);
            assert_eq!(a.cached_bytes(), MIN_CACHED);
        }
    }

    #[test]
    fn size_classes_waste_at_most_an_eighth() {
        for size in [
            MIN_CACHED,
            MIN_CACHED + 1,
            3 << 20,
            (64 << 20) + 12345,
            1 << 30,
        ] {
            let class = size_class(size);
            assert!(
                class >= size && class - size <= size / 8 + 4096,
                "{size} → {class}"
            );
            assert_eq!(class % 4096, 0);
            assert_eq!(size_class(class), class);
        }
        assert_eq!(size_class(1000), 1000);
    }

    #[test]
    fn small_blocks_bypass_the_cache() {
        let a = CachingAllocator::new();
        let small = Layout::from_size_align(1024, 8).unwrap();
        unsafe {
            let p = a.alloc(small);
            a.dealloc(p, small);
        }
        assert_eq!(a.cached_bytes(), 0);
    }

    #[test]
    fn realloc_keeps_the_prefix() {
        let a = CachingAllocator::new();
        let l = Layout::from_size_align(MIN_CACHED, 16).unwrap();
        unsafe {
            let p = a.alloc(l);
            for i in 0..l.size() {
                *p.add(i) = (i % 251) as u8;
            }
            let q = a.realloc(p, l, 2 * MIN_CACHED);
            assert!((0..l.size()).all(|i| *q.add(i) == (i % 251) as u8));
            a.dealloc(q, Layout::from_size_align(2 * MIN_CACHED, 16).unwrap());
        }
    }
}
