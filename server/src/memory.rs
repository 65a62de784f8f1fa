//! Keeping the server's resident memory flat in a long run.
//!
//! On SQLite a pool connection drops its page cache whenever another
//! connection commits, every few milliseconds under load, so page-sized
//! blocks are freed and taken again on many connection threads. With a
//! malloc arena per thread those arenas fragment, and the process keeps
//! freed memory it cannot reuse. So SQLite's page caches come from one
//! buffer made at start, and malloc keeps few arenas, which the threads
//! share.

/// SQLite's page caches take their pages from one buffer of this many
/// pages, made once at start, instead of from malloc. The caches' sizes
/// (`credits::db`: 16 pool connections × 128 pages, and 500 for each of the
/// two writer connections, sqlx's and the group commit's own) fit in it; a
/// page beyond it comes from malloc, under SQLite's heap limit.
pub const SQLITE_PAGE_SLOTS: usize = 3_100;
/// The database's page size (SQLite's default; the schema keeps it).
const SQLITE_PAGE_SIZE: usize = 4_096;

/// At most this many malloc arenas (glibc's default is 8 per core), so that
/// memory one thread frees is reused by the others.
const MALLOC_ARENAS: i32 = 2;

/// Caps malloc's arenas (`MALLOC_ARENAS`). Call before any thread starts: a
/// thread that already has an arena keeps it.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's tuning; no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
    }
}

/// Gives SQLite its page buffer (`SQLITE_PAGE_SLOTS`, about 13 MB, resident
/// from the start: SQLite links its slots into a free list). Call before any
/// database is opened: SQLite takes it only before it initializes.
pub fn give_sqlite_a_page_buffer() {
    use libsqlite3_sys::{sqlite3_config, SQLITE_CONFIG_PAGECACHE, SQLITE_CONFIG_PCACHE_HDRSZ, SQLITE_OK};
    use std::os::raw::{c_int, c_void};
    let mut header: c_int = 0;
    // SAFETY: SQLITE_CONFIG_PCACHE_HDRSZ writes one int through the pointer.
    unsafe { sqlite3_config(SQLITE_CONFIG_PCACHE_HDRSZ, &mut header as *mut c_int) };
    // A slot holds a page and SQLite's header for it, 8-byte aligned.
    let slot = (SQLITE_PAGE_SIZE + header.max(0) as usize).next_multiple_of(8);
    let buffer: &'static mut [u64] = Box::leak(vec![0u64; slot / 8 * SQLITE_PAGE_SLOTS].into_boxed_slice());
    // SAFETY: the buffer lives as long as the process and only SQLite uses it.
    let rc = unsafe {
        sqlite3_config(
            SQLITE_CONFIG_PAGECACHE,
            buffer.as_mut_ptr() as *mut c_void,
            slot as c_int,
            SQLITE_PAGE_SLOTS as c_int,
        )
    };
    if rc != SQLITE_OK {
        tracing::warn!(rc, "SQLite did not take its page buffer; its caches use malloc");
    }
}

/// How often the background task hands malloc's free memory back to the
/// system (`return_free_memory`).
pub const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Hands the free pages malloc keeps in its arenas back to the system
/// (`malloc_trim`). A 30-minute soak showed malloc's free memory growing
/// from 0.5 to 2.3 MB (SQLite) and from 0.9 to 3.2 MB (PostgreSQL) while
/// the memory in use stayed flat: blocks freed between allocations that
/// malloc kept, so resident memory crept up. A few milliseconds at most,
/// every `TRIM_EVERY`.
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory malloc holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Records what the process's memory is made of as gauges for `/metrics`,
/// so that a long run's growth can be told apart from outside (the soak
/// prints them): malloc's heap in use, what it keeps free, and its large
/// blocks (`process_malloc_bytes{part}`); SQLite's own heap and the part of
/// its page caches that did not fit in the page buffer
/// (`sqlite_memory_bytes{part}`), and the buffer's slots in use.
pub fn record_gauges() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads malloc's counters.
        let info = unsafe { libc::mallinfo2() };
        metrics::gauge!("process_malloc_bytes", "part" => "in_use").set(info.uordblks as f64);
        metrics::gauge!("process_malloc_bytes", "part" => "free").set(info.fordblks as f64);
        metrics::gauge!("process_malloc_bytes", "part" => "mmapped").set(info.hblkhd as f64);
    }
    use libsqlite3_sys::{
        sqlite3_status64, SQLITE_STATUS_MEMORY_USED, SQLITE_STATUS_PAGECACHE_OVERFLOW,
        SQLITE_STATUS_PAGECACHE_USED,
    };
    let status = |op| {
        let (mut current, mut highest) = (0i64, 0i64);
        // SAFETY: sqlite3_status64 writes two integers through the pointers.
        unsafe { sqlite3_status64(op, &mut current, &mut highest, 0) };
        current as f64
    };
    metrics::gauge!("sqlite_memory_bytes", "part" => "heap").set(status(SQLITE_STATUS_MEMORY_USED));
    metrics::gauge!("sqlite_memory_bytes", "part" => "page_cache_overflow")
        .set(status(SQLITE_STATUS_PAGECACHE_OVERFLOW));
    metrics::gauge!("sqlite_page_buffer_slots_used").set(status(SQLITE_STATUS_PAGECACHE_USED));
}
