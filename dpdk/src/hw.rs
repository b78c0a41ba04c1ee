//! Machine primitives the engine uses on its fast path and for its big tables, without EAL.

use std::mem::MaybeUninit;

/// Starts loading the cache line holding `x` into all cache levels, without waiting for it.
/// The worker issues these for a whole burst before touching any of it, so the misses of
/// different packets overlap instead of queueing one after the other.
#[inline(always)]
pub fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it never faults, has no architectural effect and is
    // available on every x86_64 CPU (SSE). The pointer comes from a live reference.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            (x as *const T).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// Size of a huge page on x86_64 Linux.
const HUGE_PAGE: usize = 2 << 20;

/// Asks the kernel to back the whole 2 MiB pages inside `region` with transparent huge pages
/// (`madvise(MADV_HUGEPAGE)`), before anything is written there: a table of millions of
/// connections on 4 KiB pages costs a TLB miss on top of every cache miss. Returns whether
/// the kernel took the advice; the memory works the same either way. Call it on a `Vec`'s
/// spare capacity right after `Vec::with_capacity`.
pub fn advise_huge_pages<T>(region: &mut [MaybeUninit<T>]) -> bool {
    let start = region.as_mut_ptr() as usize;
    let end = start + std::mem::size_of_val(region);
    let (first, last) = (
        start.next_multiple_of(HUGE_PAGE),
        end / HUGE_PAGE * HUGE_PAGE,
    );
    if last <= first {
        return false;
    }
    // SAFETY: [first, last) lies inside `region`, which this exclusive borrow lets us alone
    // touch, and is page aligned. MADV_HUGEPAGE changes only how the kernel backs the pages,
    // never their contents or mapping, so no Rust-visible memory changes.
    let rc = unsafe {
        libc::madvise(
            first as *mut libc::c_void,
            last - first,
            libc::MADV_HUGEPAGE,
        )
    };
    rc == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_keeps_the_memory_usable() {
        let mut v: Vec<u64> = Vec::with_capacity(3 * HUGE_PAGE / 8);
        // On a kernel without THP the advice fails; either way the vector must work.
        let _ = advise_huge_pages(v.spare_capacity_mut());
        v.resize(v.capacity(), 7);
        prefetch(&v[v.len() / 2]);
        assert!(v.iter().all(|&x| x == 7));
        let mut tiny: Vec<u8> = Vec::with_capacity(16);
        assert!(!advise_huge_pages(tiny.spare_capacity_mut()));
    }
}
