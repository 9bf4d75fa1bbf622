//! The two things outside the kernels that need `unsafe`, kept here so every other crate can
//! forbid it: a read-only file mapping, and an allocator that counts allocations (for tests
//! that hold code to allocating nothing).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Maps `file` read-only. The checkpoint reader maps weight files only to read their headers.
pub fn map_readonly(file: &std::fs::File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: a read-only mapping; the files are model weights nobody is expected to modify
    // while they are opened (a change would show as different bytes, not as memory unsafety
    // in safe code reading a `&[u8]` that stays mapped for the map's lifetime).
    unsafe { memmap2::Mmap::map(file) }
}

/// The system allocator, counting allocations and reallocations. Install it with
/// `#[global_allocator] static A: CountingAllocator = CountingAllocator::new();`.
pub struct CountingAllocator(AtomicUsize);

impl CountingAllocator {
    pub const fn new() -> Self {
        Self(AtomicUsize::new(0))
    }

    /// Allocations and reallocations so far, on every thread.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Default for CountingAllocator {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every call is passed on to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.0.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `dealloc`, and the caller's contract for `realloc` is the system's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
