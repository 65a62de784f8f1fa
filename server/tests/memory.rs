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
async fn sqlite_caches_take_their_pages_from_the_buffer_never_from_malloc() {
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
    // Read through every connection, pool and writers alike, so each of
    // their caches takes pages.
    let mut readers = Vec::new();
    for _ in 0..4 {
        readers.push(db.pool.acquire().await.unwrap());
    }
    for reader in &mut readers {
        let tables: i64 =
            sqlx::query_scalar("SELECT count(*) FROM sqlite_master").fetch_one(&mut **reader).await.unwrap();
        assert!(tables > 0);
    }
    drop(readers);
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master").fetch_one(&db.writer).await.unwrap();
    assert!(tables > 0);
    // The group commit's own writer connection (`credits::exec::SqliteWriter`).
    let mut in_place = credits::db::open_sqlite_writer(&db.pool).unwrap().expect("a file database");
    let rows =
        credits::exec::finish_now(in_place.fetch_all("SELECT count(*) FROM sqlite_master", vec![])).unwrap();
    assert!(rows[0].read::<i64>(0).unwrap() > 0);
    assert!(status(SQLITE_STATUS_PAGECACHE_USED) > 0, "cached pages sit in the buffer");
    assert_eq!(status(SQLITE_STATUS_PAGECACHE_OVERFLOW), 0, "no cached page came from malloc");
    drop(in_place);
    db.pool.close().await;
    db.writer.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
