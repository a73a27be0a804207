//! CPU state housekeeping for the parallel numeric kernels.
//!
//! The dense linear algebra kernels (AVX code in `faer`'s matrix products and
//! eigendecompositions) can return with the upper halves of the 256-bit registers still in use.
//! On many x86-64 processors every later SSE instruction on that thread then pays a
//! transition / false-dependency penalty: measured here, the UMAP optimization (scalar `f32`
//! code calling `powf`) ran four times slower on worker threads that had done the kNN matrix
//! products before. The library clears the state (`vzeroupper`) after each such kernel, on the
//! thread that ran it; [`clear_upper_simd_state`] does it for every thread of the current
//! rayon pool, for callers that mix in kernels of their own.

/// Clears the upper halves of the AVX registers (`vzeroupper`) on the calling thread and on
/// every thread of the current rayon pool. Does nothing on processors without AVX and on
/// other architectures.
pub fn clear_upper_simd_state() {
    clear_upper_simd_state_here();
    if has_avx() {
        rayon::broadcast(|_| clear_upper_simd_state_here());
    }
}

/// Clears the upper halves of the AVX registers on the calling thread only (see
/// [`clear_upper_simd_state`]).
#[inline]
pub fn clear_upper_simd_state_here() {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx")]
        unsafe fn zero_upper() {
            std::arch::x86_64::_mm256_zeroupper();
        }
        if has_avx() {
            // SAFETY: the processor supports AVX (checked just above).
            unsafe { zero_upper() }
        }
    }
}

#[inline]
fn has_avx() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Asks the processor to bring `s[i]` into its caches (`prefetcht0`), when `i` is inside `s`.
/// It changes no value: loops whose next random reads are known ahead (the nodes waiting in
/// a queue, the rows of a sparse matrix) call it a few steps before the read, so that the
/// misses overlap instead of coming one at a time. Nothing on other architectures.
#[inline(always)]
pub(crate) fn prefetch<T>(s: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(x) = s.get(i) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: `_mm_prefetch` only hints the cache (SSE, part of x86-64); the address is
        // that of an element of `s`.
        unsafe { _mm_prefetch((x as *const T).cast::<i8>(), _MM_HINT_T0) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (s, i);
}

/// [`prefetch`] of every cache line of `s` (64 bytes each).
#[inline(always)]
pub(crate) fn prefetch_all<T>(s: &[T]) {
    let step = (64 / std::mem::size_of::<T>().max(1)).max(1);
    for i in (0..s.len()).step_by(step) {
        prefetch(s, i);
    }
    // the last line, when the slice does not start on a line
    prefetch(s, s.len().wrapping_sub(1));
}
