//! Connecting to the database `DATABASE_URL` names, and running its migrations.
//!
//! One code path serves both engines through sqlx's `Any` driver. The SQL is
//! written in the dialect both share (numbered `$n` parameters, `RETURNING`,
//! `ON CONFLICT`); timestamps are integer milliseconds since the epoch.

use sqlx::any::{install_default_drivers, AnyPoolOptions};
use sqlx::migrate::MigrateDatabase;
use sqlx::{Any, AnyPool, Connection, Executor};
use std::time::Duration;

/// Which engine a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Reads the engine from a `DATABASE_URL`; anything else is a configuration error.
    pub fn from_url(url: &str) -> Result<Self, String> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err("DATABASE_URL must start with sqlite:// or postgres://".into())
        }
    }
}

/// A connection pool plus the engine behind it.
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    /// Where batched balance changes are written (`writer`). SQLite:
    /// one connection of its own, kept open, so its page cache stays valid
    /// from one batch to the next (a connection drops its cache whenever
    /// another one committed), and taken by the writer's worker for
    /// each transaction; PostgreSQL: the shared pool.
    pub writer: AnyPool,
    pub backend: Backend,
    url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0}")]
    Config(String),
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Every SQLite connection: WAL for concurrent readers, FULL sync so that an
/// acknowledged spend survives a crash, and a busy wait instead of failing
/// when another connection holds the write lock. The WAL is checkpointed
/// into the database file every 10,000 pages (about 40 MB) instead of
/// SQLite's 1,000: a page that many batches change (an account, an index
/// page) is then copied once per checkpoint rather than ten times (decision
/// 0016). Durability is unchanged: a commit is in the synced WAL either way.
/// Temporary files stay in memory (`temp_store`): a batch's multi-row
/// statements keep a statement journal (to undo one statement alone), which
/// otherwise spills to a temporary file past 64 KB. Such a journal lives for
/// one statement.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 10000; \
     PRAGMA temp_store = MEMORY;";

/// SQLite's page cache per connection, in KiB (`PRAGMA cache_size`), so that
/// SQLite's memory has a bound whatever the database's size: 512 KiB per
/// pool connection (the server opens 16) and SQLite's default 2,000 KiB for
/// the writer, whose cache stays valid from one batch to the next. A pool
/// connection (reads, and the writes that are not batched) drops its cache
/// whenever another connection committed, under load every few
/// milliseconds, so a bigger one would hold pages nothing reads again. (The
/// server gives these caches a page buffer of their own:
/// `credits_server::memory`.)
const SQLITE_POOL_CACHE_KIB: u32 = 512;
const SQLITE_WRITER_CACHE_KIB: u32 = 2_000;

/// SQLite's heap (statements, schema, and cache pages malloc'd), in bytes:
/// past it, a connection's cache reuses its own pages instead of taking
/// more (`PRAGMA soft_heap_limit`, one setting for the whole process).
const SQLITE_HEAP_LIMIT: u64 = 8 << 20;

/// How long a PostgreSQL connection may sit idle in the pool before it is
/// pinged on checkout.
pub const PG_PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// A connection a worker keeps for good (the writer's workers, the
/// view reader's workers), so that no batch pays a pool checkout and the
/// ping sqlx sends when a connection goes back to the pool. `Own`: opened by
/// the worker on its own thread's runtime (the writer's PostgreSQL
/// writers), so that the socket is driven by that runtime and a reply wakes
/// the worker at once, not behind the request handlers' tasks.
pub(crate) enum Kept {
    Pooled(sqlx::pool::PoolConnection<Any>),
    Own(sqlx::AnyConnection),
}

impl Kept {
    /// A connection from `pool`, or (`own`) a new one with its options.
    pub(crate) async fn open(pool: &AnyPool, own: bool) -> Result<Self, sqlx::Error> {
        use sqlx::Connection;
        Ok(if own {
            Self::Own(sqlx::AnyConnection::connect_with(&pool.connect_options()).await?)
        } else {
            Self::Pooled(pool.acquire().await?)
        })
    }

    pub(crate) fn conn(&mut self) -> &mut sqlx::AnyConnection {
        match self {
            Self::Pooled(conn) => conn,
            Self::Own(conn) => conn,
        }
    }

    /// Closes a connection found lost, rather than handing it back to the pool.
    pub(crate) fn discard(self) {
        if let Self::Pooled(mut conn) = self {
            conn.close_on_drop();
        }
    }
}

/// Runs `work` on a thread of its own with a single-threaded runtime: a
/// worker that mostly waits for the database (`Kept::Own`). Its future ends
/// when its queue closes, and the thread with it.
pub(crate) fn spawn_on_own_thread<F>(name: &str, work: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for a database worker")
                .block_on(work)
        })
        .expect("a thread for a database worker");
}

/// The connection itself is gone, not refused by the database: any failure
/// but the database's answer, or an answer that says the server is ending
/// this session (SQLSTATE class 08, or 57P01–57P03: terminated by an
/// administrator, a crash or a restart). PostgreSQL sends that answer on a
/// cut connection's next use, before the socket reads as closed.
pub fn connection_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(error) => error
            .code()
            .is_some_and(|code| code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03")),
        _ => true,
    }
}

impl Db {
    /// Opens the pool, creating a SQLite file that does not exist yet.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, DbError> {
        install_default_drivers();
        let backend = Backend::from_url(url).map_err(DbError::Config)?;
        if backend == Backend::Sqlite && !Any::database_exists(url).await.unwrap_or(false) {
            Any::create_database(url).await?;
        }
        let options = AnyPoolOptions::new().max_connections(max_connections);
        // SQLite: every pool connection is opened at start and kept, as the
        // writer is. A connection is a handle and a thread inside this
        // process (nothing to go stale), and one opened late under load, or
        // closed when idle and opened again, makes memory and open files step
        // up in the middle of a long run.
        let options = match backend {
            Backend::Sqlite => options.min_connections(max_connections).idle_timeout(None).max_lifetime(None),
            Backend::Postgres => options,
        };
        let pool = Self::open(url, backend, options, SQLITE_POOL_CACHE_KIB).await?;
        let writer = match backend {
            Backend::Sqlite => {
                let options = AnyPoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
                Self::open(url, backend, options, SQLITE_WRITER_CACHE_KIB).await?
            }
            Backend::Postgres => pool.clone(),
        };
        Ok(Self { pool, writer, backend, url: url.to_string() })
    }

    async fn open(
        url: &str,
        backend: Backend,
        options: AnyPoolOptions,
        sqlite_cache_kib: u32,
    ) -> Result<AnyPool, DbError> {
        let options = options.acquire_timeout(Duration::from_secs(10));
        let options = match backend {
            // An SQLite connection is a handle inside this process: it cannot
            // go stale the way a network connection can, so no ping (a round
            // trip to the connection's thread) before each use.
            Backend::Sqlite => options.test_before_acquire(false).after_connect(move |conn, _meta| {
                Box::pin(async move {
                    conn.execute(SQLITE_PRAGMAS).await?;
                    if crate::tuning::get().fixed_page_cache {
                        let sizes = format!(
                            "PRAGMA cache_size = -{sqlite_cache_kib}; PRAGMA soft_heap_limit = {SQLITE_HEAP_LIMIT};"
                        );
                        conn.execute(sizes.as_str()).await?;
                    }
                    Ok(())
                })
            }),
            // A PostgreSQL connection can die while idle (a server restart, a
            // proxy's idle timeout). sqlx pings a connection when it goes back
            // to the pool and, by default, again when it is taken out: one
            // more round trip, and PostgreSQL work, in front of every request
            // (bench/profiles/postgres-get-fixed-rate.txt). A connection
            // returned within the last `PG_PING_AFTER_IDLE` answered that
            // return ping, so only older ones are pinged on checkout; one that
            // fails is closed and another taken. (One that dies inside that
            // window fails its request, as one dying between a ping and the
            // query always could.)
            Backend::Postgres => options.test_before_acquire(false).before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PG_PING_AFTER_IDLE {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            }),
        };
        Ok(options.connect(url).await?)
    }

    /// Brings the schema up to date; safe to run on every start and concurrently.
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.pool).await?,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&self.pool).await?,
        }
        Ok(())
    }

    /// The `DATABASE_URL` this pool was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `/healthz`: the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// The writer's own connection (`exec::SqliteWriter`) to the SQLite
/// file `pool` opens, with every connection's pragmas and the writer's cache
/// size; `None` for an in-memory database, which another connection could
/// not share.
pub fn open_sqlite_writer(pool: &AnyPool) -> Result<Option<crate::exec::SqliteWriter>, sqlx::Error> {
    use sqlx::ConnectOptions;
    let url = pool.connect_options().database_url.clone();
    let options = sqlx::sqlite::SqliteConnectOptions::from_url(&url)?;
    let path = options.get_filename();
    if url.as_str().contains(":memory:")
        || path.as_os_str().is_empty()
        || path == std::path::Path::new(":memory:")
    {
        return Ok(None);
    }
    let pragmas = format!("{SQLITE_PRAGMAS} PRAGMA cache_size = -{SQLITE_WRITER_CACHE_KIB};");
    crate::exec::SqliteWriter::open(path, &pragmas).map(Some)
}

/// Milliseconds since the Unix epoch, the unit of every stored timestamp.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// RFC 3339 with milliseconds, as every API timestamp is shown.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
