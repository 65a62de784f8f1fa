//! The server's memory bounds on SQLite (`credits_server::memory`,
//! `credits::db`). Its own test binary: SQLite takes the page buffer only
//! before it first initializes, which is once per process.

use credits::db::Db;
use credits::exec::{Exec, ReadRow};
use libsqlite3_sys::{sqlite3_status64, SQLITE_STATUS_PAGECACHE_OVERFLOW, SQLITE_STATUS_PAGECACHE_USED};

fn status(op: i32) -> i64 {
    let (mut current, mut highest) = (0i64, 0i64);
    // SAFETY: two out-pointers to live integers.
    unsafe { sqlite3_status64(op, &mut current, &mut highest, 0) };
    current
}

#[tokio::test]
async fn sqlite_caches_are_bounded_and_take_their_pages_from_the_buffer() {
    credits_server::memory::give_sqlite_a_page_buffer();
    let path = std::env::temp_dir().join(format!("credits-memory-{}.db", std::process::id()));
    let db = Db::connect(&format!("sqlite://{}", path.display()), 4).await.unwrap();
    db.migrate().await.unwrap();
    // Every pool connection is opened at start and kept (`Db::connect`), so
    // memory and open files do not step up under load later.
    let opened = std::time::Instant::now();
    while db.pool.size() < 4 && opened.elapsed() < std::time::Duration::from_secs(10) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(db.pool.size(), 4, "the pool's connections, all open");
    let one = |sql: &'static str, pool: &sqlx::AnyPool| {
        let pool = pool.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.unwrap() }
    };
    assert_eq!(one("PRAGMA cache_size", &db.pool).await, -512, "a pool connection's cache: 512 KiB");
    assert_eq!(one("PRAGMA cache_size", &db.writer).await, -2000, "the writer's cache: 2,000 KiB");
    // The group commit's own writer connection (`credits::exec::SqliteWriter`).
    let mut in_place = credits::db::open_sqlite_writer(&db.pool).unwrap().expect("a file database");
    let rows = credits::exec::finish_now(in_place.fetch_all("PRAGMA cache_size", vec![])).unwrap();
    assert_eq!(rows[0].read::<i64>(0).unwrap(), -2000, "the in-place writer's cache: 2,000 KiB");
    // Every cache full fits in the buffer: the server's pool connections at
    // 512 KiB and the two writers at 2,000 KiB, in pages of 4 KiB.
    let pages = (credits_server::POOL_CONNECTIONS as usize * 512 + 2 * 2_000) / 4;
    assert!(credits_server::memory::SQLITE_PAGE_SLOTS >= pages, "{pages} pages of cache");
    assert_eq!(one("PRAGMA soft_heap_limit", &db.pool).await, 8 << 20, "SQLite's heap: 8 MiB");
    assert!(one("SELECT count(*) FROM sqlite_master", &db.pool).await > 0);
    assert!(status(SQLITE_STATUS_PAGECACHE_USED) > 0, "cached pages sit in the buffer");
    assert_eq!(status(SQLITE_STATUS_PAGECACHE_OVERFLOW), 0, "no cached page came from malloc");
    drop(in_place);
    db.pool.close().await;
    db.writer.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
