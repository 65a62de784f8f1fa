//! Where one worker's transactions run: on PostgreSQL a connection of the
//! worker's own, kept for good (`db::Kept`), so no batch pays a pool
//! checkout and its ping; on SQLite the writer pool's one connection, taken
//! per transaction, and the writer's own rusqlite connection for set-wise
//! batches (`exec::SqliteWriter`). One found lost at `BEGIN`
//! (`db::connection_lost`: SQLite's thread for it is gone, PostgreSQL
//! restarted or a proxy closed it while idle) is closed, and the next transaction gets a new one; nothing was written, so
//! the operation runs again there.

use crate::db::Kept;
use crate::exec::SqliteWriter;
use sqlx::{AnyPool, Connection};

pub(super) struct Conn {
    pool: AnyPool,
    pub(super) sqlite: bool,
    held: Option<Kept>,
    /// The kept connection failed at `BEGIN`: replace it before the next one.
    pub(super) lost: bool,
    in_place: InPlace,
}

/// The writer's own SQLite connection, opened as its worker starts (or,
/// after a failure, by the next batch).
enum InPlace {
    NotOpened,
    Open(SqliteWriter),
    /// None for this database (PostgreSQL, an in-memory SQLite database).
    Unavailable,
}

/// PostgreSQL: a batch's `BEGIN`, which also tells the planner, for this
/// transaction only, to join the batch's rows to the tables by key lookups.
/// The planner takes a batch's JSON parameter for 100 rows whatever it
/// holds, so on small tables it would choose a sequential scan and a hash
/// join, and under load each such scan walks every dead row version since
/// the last vacuum. Every join of a batch statement is on a key, so a lookup
/// per row is right for any batch and any table size. One simple-query
/// message: no round trip of its own.
const PG_BATCH_BEGIN: &str = "BEGIN; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off";

impl Conn {
    pub(super) fn new(pool: AnyPool, sqlite: bool) -> Self {
        let in_place = if sqlite { InPlace::NotOpened } else { InPlace::Unavailable };
        Self { pool, sqlite, held: None, lost: false, in_place }
    }

    /// The in-place connection, opened now if it is not yet.
    pub(super) fn in_place(&mut self) -> Option<&mut SqliteWriter> {
        if matches!(self.in_place, InPlace::NotOpened) {
            self.in_place = match crate::db::open_sqlite_writer(&self.pool) {
                Ok(Some(conn)) => InPlace::Open(conn),
                Ok(None) => InPlace::Unavailable,
                Err(error) => {
                    // Tried again by the next batch; this one runs on sqlx's.
                    tracing::warn!(%error, "could not open the SQLite writer connection");
                    return None;
                }
            };
        }
        match &mut self.in_place {
            InPlace::Open(conn) => Some(conn),
            _ => None,
        }
    }

    /// Closes the in-place connection (it could not even roll back); the
    /// next batch opens another.
    pub(super) fn drop_in_place(&mut self) {
        self.in_place = InPlace::NotOpened;
    }

    /// Begins a transaction on the kept connection. SQLite: it takes the
    /// write lock as it begins (`BEGIN IMMEDIATE`), or it could fail
    /// upgrading a stale read snapshot. PostgreSQL locks rows as they are
    /// written; a batch's transaction (`batch`) also plans for key lookups.
    pub(super) async fn begin(
        &mut self,
        batch: bool,
    ) -> Result<sqlx::Transaction<'_, sqlx::Any>, sqlx::Error> {
        if std::mem::take(&mut self.lost) {
            if let Some(conn) = self.held.take() {
                conn.discard();
            }
        }
        // PostgreSQL keeps its connection (decision 0008). SQLite's writer
        // pool holds its one connection, so taking it per transaction costs
        // the same as keeping it (measured, decision 0008): it is taken.
        let keep = !self.sqlite && crate::tuning::get().kept_connections;
        if !keep {
            // The previous one goes back first: SQLite's writer pool has one.
            self.held = None;
            self.held = Some(Kept::open(&self.pool, false).await?);
        } else if self.held.is_none() {
            self.held = Some(Kept::open(&self.pool, true).await?);
        }
        let conn = self.held.as_mut().expect("a kept connection").conn();
        let statement = match (self.sqlite, batch) {
            (true, _) => "BEGIN IMMEDIATE",
            (false, true) if crate::tuning::get().planner_settings => PG_BATCH_BEGIN,
            (false, _) => "BEGIN",
        };
        let begun = conn.begin_with(statement).await;
        if let Err(error) = &begun {
            self.lost = crate::db::connection_lost(error);
        }
        begun
    }
}

#[cfg(test)]
mod tests {
    use super::Conn;

    #[tokio::test]
    async fn a_lost_sqlite_writer_connection_is_closed_and_replaced() {
        let path = std::env::temp_dir().join(format!("credits-writer-{}.db", std::process::id()));
        let db = crate::db::Db::connect(&format!("sqlite://{}", path.display()), 2).await.unwrap();
        let mut conn = Conn::new(db.writer.clone(), true);
        // A TEMP table exists only on the connection that made it.
        let mut tx = conn.begin(false).await.unwrap();
        sqlx::query("CREATE TEMP TABLE marker (x INTEGER)").execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = conn.begin(false).await.unwrap();
        assert!(
            sqlx::query("SELECT x FROM temp.marker").fetch_all(&mut *tx).await.is_ok(),
            "the connection is kept"
        );
        tx.commit().await.unwrap();
        conn.lost = true;
        let mut tx = conn.begin(false).await.unwrap();
        assert!(
            sqlx::query("SELECT x FROM temp.marker").fetch_all(&mut *tx).await.is_err(),
            "a new connection"
        );
        tx.commit().await.unwrap();
        drop(conn);
        db.pool.close().await;
        db.writer.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
