//! glibc malloc's tuning (`credits_server::memory::limit_malloc_arenas`).
//! Its own test binary: the check reads process-wide counters, which other
//! tests' large allocations would move.

/// Bytes malloc has mapped on their own, one mapping per large block.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn mapped() -> usize {
    // SAFETY: mallinfo2 only reads malloc's counters.
    unsafe { libc::mallinfo2() }.hblkhd
}

/// A large block stays a mapping of its own even after a larger mapped
/// block was freed. By default glibc then raises its threshold to that
/// block's size, and later large blocks are cut from the arenas, where they
/// leave holes resident memory keeps (the SQLite soak's growth).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn large_blocks_stay_mapped_after_a_larger_one_is_freed() {
    credits_server::memory::limit_malloc_arenas();
    let big = vec![1u8; 4 << 20];
    assert!(mapped() >= 4 << 20, "a 4 MiB block is mapped");
    drop(std::hint::black_box(big));
    let size = 2 * credits_server::memory::MMAP_THRESHOLD as usize;
    let before = mapped();
    let block = std::hint::black_box(vec![1u8; size]);
    assert!(
        mapped() >= before + size,
        "a {size}-byte block after a freed 4 MiB one is mapped ({before} -> {})",
        mapped()
    );
    drop(block);
}
