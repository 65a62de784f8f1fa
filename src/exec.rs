//! The statements of a set-wise batch (`ledger::batch`, `holds::batch`), run
//! on either of the two connections a SQLite batch can have:
//!
//! - sqlx's `AnyConnection` (both engines): every statement is a round trip
//!   to the connection's own thread. Under load each hand-off waits for a
//!   busy core, so a batch of ten statements waits ten times (decision 0007).
//! - `SqliteWriter`, a SQLite connection of the writer's own, called in
//!   place: a whole batch (`BEGIN` to `COMMIT`) runs in one go on the calling
//!   thread, without a hand-off per statement.
//!
//! The batch code is written once, generic over `Exec`. Its statements keep
//! their one text (numbered `$n` parameters) on both.

use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

/// One bound parameter.
#[derive(Debug, Clone)]
pub enum Arg {
    Int(i64),
    Text(String),
}

impl From<i64> for Arg {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<String> for Arg {
    fn from(value: String) -> Self {
        Self::Text(value)
    }
}

impl From<&str> for Arg {
    fn from(value: &str) -> Self {
        Self::Text(value.to_string())
    }
}

/// A value a batch reads from a row, on either connection.
pub trait Column:
    for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + rusqlite::types::FromSql
{
}

impl<T> Column for T where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + rusqlite::types::FromSql
{
}

/// A column by position or by name.
pub trait Index: sqlx::ColumnIndex<AnyRow> + std::fmt::Display + Copy {
    fn position(&self, columns: &[String]) -> Option<usize>;
}

impl Index for usize {
    fn position(&self, columns: &[String]) -> Option<usize> {
        (*self < columns.len()).then_some(*self)
    }
}

impl Index for &str {
    fn position(&self, columns: &[String]) -> Option<usize> {
        columns.iter().position(|name| name == self)
    }
}

/// One row a statement returned.
pub trait ReadRow: Send {
    fn read<T: Column>(&self, index: impl Index) -> Result<T, sqlx::Error>;
}

impl ReadRow for AnyRow {
    fn read<T: Column>(&self, index: impl Index) -> Result<T, sqlx::Error> {
        sqlx::Row::try_get(self, index)
    }
}

/// Where a batch's statements run.
pub trait Exec: Send {
    type Row: ReadRow;
    fn fetch_all<'a>(
        &'a mut self,
        sql: &'a str,
        args: Vec<Arg>,
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'a;
    fn execute<'a>(
        &'a mut self,
        sql: &'a str,
        args: Vec<Arg>,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a;
    fn postgres(&self) -> bool;
    /// sqlx's connection, for the rarer steps written only for it (a spend
    /// that draws from several grants, an alert). `None` on `SqliteWriter`:
    /// a batch that needs one of those steps runs again on sqlx's connection.
    fn any(&mut self) -> Option<&mut AnyConnection>;
}

impl Exec for AnyConnection {
    type Row = AnyRow;

    async fn fetch_all(&mut self, sql: &str, args: Vec<Arg>) -> Result<Vec<AnyRow>, sqlx::Error> {
        bound(sql, args).fetch_all(&mut *self).await
    }

    async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64, sqlx::Error> {
        Ok(bound(sql, args).execute(&mut *self).await?.rows_affected())
    }

    fn postgres(&self) -> bool {
        self.backend_name().eq_ignore_ascii_case("postgresql")
    }

    fn any(&mut self) -> Option<&mut AnyConnection> {
        Some(self)
    }
}

fn bound(sql: &str, args: Vec<Arg>) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
    args.into_iter().fold(sqlx::query(sql), |query, arg| match arg {
        Arg::Int(value) => query.bind(value),
        Arg::Text(value) => query.bind(value),
    })
}

/// The writer's own SQLite connection, with the pragmas of every
/// other (`db::SQLITE_PRAGMAS`) and the writer's cache size. Its calls run
/// in place and block: the writer calls it from
/// `tokio::task::block_in_place`.
pub struct SqliteWriter {
    conn: rusqlite::Connection,
}

/// A row read off `SqliteWriter`.
pub struct OwnedRow {
    columns: Arc<[String]>,
    values: Vec<rusqlite::types::Value>,
}

impl ReadRow for OwnedRow {
    fn read<T: Column>(&self, index: impl Index) -> Result<T, sqlx::Error> {
        let position =
            index.position(&self.columns).ok_or_else(|| sqlx::Error::ColumnNotFound(index.to_string()))?;
        let value = rusqlite::types::ValueRef::from(&self.values[position]);
        T::column_result(value)
            .map_err(|error| sqlx::Error::ColumnDecode { index: index.to_string(), source: Box::new(error) })
    }
}

/// The signal of a step `SqliteWriter` does not take (`Exec::any`): the
/// batch runs again on sqlx's connection. Carried as sqlx's error for a
/// driver's own failure, and told apart by its type (`is_needs_sqlx`).
#[derive(Debug)]
pub(crate) struct NeedsSqlx;

impl std::fmt::Display for NeedsSqlx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("this batch needs sqlx's connection")
    }
}

impl std::error::Error for NeedsSqlx {}

pub(crate) fn needs_sqlx() -> sqlx::Error {
    sqlx::Error::AnyDriverError(Box::new(NeedsSqlx))
}

pub(crate) fn is_needs_sqlx(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::AnyDriverError(inner) if inner.is::<NeedsSqlx>())
}

fn sqlite_error(error: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::Protocol(format!("sqlite writer: {error}"))
}

impl SqliteWriter {
    pub fn open(path: &Path, pragmas: &str) -> Result<Self, sqlx::Error> {
        let conn = rusqlite::Connection::open(path).map_err(sqlite_error)?;
        conn.execute_batch(pragmas).map_err(sqlite_error)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Self { conn })
    }

    /// Runs one statement without parameters or rows (`BEGIN IMMEDIATE`, `COMMIT`, `ROLLBACK`).
    pub fn run(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut statement| statement.raw_execute())
            .map_err(sqlite_error)?;
        Ok(())
    }

    /// Whether a transaction is open (one a failed batch left behind is rolled back).
    pub fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }

    fn statement<'c>(
        conn: &'c rusqlite::Connection,
        sql: &str,
        args: &[Arg],
    ) -> Result<rusqlite::CachedStatement<'c>, sqlx::Error> {
        let mut statement = conn.prepare_cached(sql).map_err(sqlite_error)?;
        for index in 1..=statement.parameter_count() {
            // `$n` names the n-th argument, however often it appears.
            let number = statement
                .parameter_name(index)
                .and_then(|name| name.strip_prefix('$'))
                .and_then(|number| number.parse::<usize>().ok())
                .filter(|number| (1..=args.len()).contains(number))
                .ok_or_else(|| {
                    sqlx::Error::Protocol(format!("parameter {index} of {sql} has no argument"))
                })?;
            let bound = match &args[number - 1] {
                Arg::Int(value) => statement.raw_bind_parameter(index, value),
                Arg::Text(value) => statement.raw_bind_parameter(index, value.as_str()),
            };
            bound.map_err(sqlite_error)?;
        }
        Ok(statement)
    }

    fn rows(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<OwnedRow>, sqlx::Error> {
        let mut statement = Self::statement(&self.conn, sql, args)?;
        let columns: Arc<[String]> = statement.column_names().into_iter().map(str::to_string).collect();
        let mut rows = statement.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(sqlite_error)? {
            let values =
                (0..columns.len()).map(|i| row.get(i)).collect::<Result<_, _>>().map_err(sqlite_error)?;
            out.push(OwnedRow { columns: columns.clone(), values });
        }
        Ok(out)
    }
}

impl Exec for SqliteWriter {
    type Row = OwnedRow;

    fn fetch_all<'a>(
        &'a mut self,
        sql: &'a str,
        args: Vec<Arg>,
    ) -> impl Future<Output = Result<Vec<OwnedRow>, sqlx::Error>> + Send + 'a {
        std::future::ready(self.rows(sql, &args))
    }

    fn execute<'a>(
        &'a mut self,
        sql: &'a str,
        args: Vec<Arg>,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a {
        let done = Self::statement(&self.conn, sql, &args)
            .and_then(|mut statement| statement.raw_execute().map_err(sqlite_error));
        std::future::ready(done.map(|changed| changed as u64))
    }

    fn postgres(&self) -> bool {
        false
    }

    fn any(&mut self) -> Option<&mut AnyConnection> {
        None
    }
}

/// Runs a future made only of `SqliteWriter` calls, which are ready at
/// once, to its end on this thread.
pub fn finish_now<T, E: From<sqlx::Error>>(future: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(result) => result,
        std::task::Poll::Pending => Err(sqlx::Error::Protocol("a SQLite writer batch waited".into()).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::{finish_now, Exec, ReadRow, SqliteWriter};

    #[test]
    fn the_sqlite_writer_binds_numbered_parameters_and_reads_columns_by_position_and_name() {
        let path = std::env::temp_dir().join(format!("credits-exec-{}.db", std::process::id()));
        let mut conn = SqliteWriter::open(&path, "PRAGMA journal_mode = WAL;").unwrap();
        conn.run("CREATE TABLE IF NOT EXISTS t (n INTEGER, s TEXT)").unwrap();
        conn.run("BEGIN IMMEDIATE").unwrap();
        assert!(conn.in_transaction());
        // `$1` twice: both are the first argument, as on sqlx's connection.
        let changed = finish_now(
            conn.execute("INSERT INTO t VALUES ($1, $2), ($1 + 1, NULL)", vec![7.into(), "x".into()]),
        )
        .unwrap();
        assert_eq!(changed, 2);
        let rows = finish_now(conn.fetch_all("SELECT n, s FROM t WHERE n >= $1 ORDER BY n", vec![7.into()]))
            .unwrap();
        let read: Vec<(i64, Option<String>)> =
            rows.iter().map(|row| (row.read(0).unwrap(), row.read("s").unwrap())).collect();
        assert_eq!(read, [(7, Some("x".to_string())), (8, None)]);
        assert!(rows[0].read::<i64>("missing").is_err());
        assert!(rows[1].read::<String>("s").is_err(), "NULL is not a string");
        // A parameter without an argument is an error, not a NULL.
        assert!(finish_now(conn.fetch_all("SELECT $2", vec![1.into()])).is_err());
        conn.run("ROLLBACK").unwrap();
        assert!(!conn.in_transaction());
        let rows = finish_now(conn.fetch_all("SELECT COUNT(*) FROM t", vec![])).unwrap();
        assert_eq!(rows[0].read::<i64>(0).unwrap(), 0, "rolled back");
        drop(conn);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
