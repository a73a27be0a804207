//! A global allocator that records the largest single allocation, for tests that check that a
//! size declared in a file header is not trusted for memory, or that a writer never copies a
//! whole array. Include with `#[path = "support/largest_alloc.rs"] mod largest_alloc;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Records the largest single allocation in [`LARGEST`].
pub struct Largest;

/// The largest allocation (bytes) since it was last reset with `LARGEST.store(0, ..)`.
pub static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// The largest allocation (bytes) that is not zero-filled (`alloc`, `realloc`): a zero-filled
/// one is served from untouched zero pages and costs memory only where it is written.
#[allow(dead_code)]
pub static LARGEST_UNZEROED: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        LARGEST_UNZEROED.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        LARGEST_UNZEROED.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Largest = Largest;
