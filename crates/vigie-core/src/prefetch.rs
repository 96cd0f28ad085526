//! Cache prefetch hints, used by [`crate::SiteProcessor::apply_all`] to ask for the memory of
//! the events ahead while it applies the current one.
//!
//! A prefetch is a hint: it never reads the memory into the program, cannot fault and does
//! not change any result, only when the memory arrives. The one `unsafe` block of the core is
//! here: the instruction has no precondition, but its intrinsic is declared `unsafe` because it
//! needs the `sse` target feature, which every x86_64 processor has.

/// Asks for the cache line holding `address` (any address: it is not dereferenced).
#[inline(always)]
pub(crate) fn line<T>(address: *const T) {
    #[cfg(target_arch = "x86_64")]
    #[allow(
        unsafe_code,
        reason = "a prefetch has no precondition; see the module's comment"
    )]
    // SAFETY: `prefetcht0` does not access memory architecturally and cannot fault, whatever
    // the address; `sse` is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// Asks for every cache line of `value`.
#[inline(always)]
pub(crate) fn value<T>(value: &T) {
    let start = (value as *const T).cast::<u8>();
    let mut offset = 0;
    while offset < std::mem::size_of::<T>() {
        line(start.wrapping_add(offset));
        offset += 64;
    }
}
