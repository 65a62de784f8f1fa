//! The database's own rate for the same debit: a conditional UPDATE of the
//! balance and a ledger INSERT, one spend per transaction, with nothing of
//! ours in between. PostgreSQL through pgbench; SQLite through a bare loop
//! with the pragmas the server uses (WAL, synchronous=FULL).

use std::path::Path;
use std::time::{Duration, Instant};

pub struct Ceiling {
    pub spends: u64,
    pub secs: f64,
}

impl Ceiling {
    pub fn rate(&self) -> f64 {
        self.spends as f64 / self.secs
    }
}

/// The server's pragmas (`src/db.rs`), checkpoint interval included.
const SQLITE_PRAGMAS: &str =
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; \
     PRAGMA wal_autocheckpoint = 10000; PRAGMA temp_store = MEMORY;";

const SQLITE_SCHEMA: &str = "\
    CREATE TABLE IF NOT EXISTS ceiling_accounts (id INTEGER PRIMARY KEY, remaining INTEGER NOT NULL CHECK (remaining >= 0)); \
    CREATE TABLE IF NOT EXISTS ceiling_entries (id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL, \
      amount INTEGER NOT NULL, balance_after INTEGER NOT NULL, created_at INTEGER NOT NULL);";

/// `clients` threads, each with its own connection, debit accounts `1..=accounts`
/// (one spend per transaction) until the deadline.
pub fn sqlite(path: &Path, accounts: i64, clients: usize, duration: Duration) -> Ceiling {
    let _ = std::fs::remove_file(path);
    {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch(SQLITE_PRAGMAS).unwrap();
        conn.execute_batch(SQLITE_SCHEMA).unwrap();
        let tx = conn.unchecked_transaction().unwrap();
        for id in 1..=accounts {
            tx.execute("INSERT INTO ceiling_accounts (id, remaining) VALUES (?1, 1000000000)", [id]).unwrap();
        }
        tx.commit().unwrap();
    }
    let started = Instant::now();
    let deadline = started + duration;
    let threads: Vec<_> = (0..clients)
        .map(|client| {
            let path = path.to_path_buf();
            std::thread::spawn(move || {
                let conn = rusqlite::Connection::open(&path).unwrap();
                conn.execute_batch(SQLITE_PRAGMAS).unwrap();
                let mut done = 0u64;
                let mut next = client as i64;
                while Instant::now() < deadline {
                    let id = next % accounts + 1;
                    next += clients as i64;
                    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                    let balance: Option<i64> = conn
                        .query_row(
                            "UPDATE ceiling_accounts SET remaining = remaining - 1 \
                             WHERE id = ?1 AND remaining >= 1 RETURNING remaining",
                            [id],
                            |row| row.get(0),
                        )
                        .ok();
                    if let Some(balance) = balance {
                        conn.execute(
                            "INSERT INTO ceiling_entries (account_id, amount, balance_after, created_at) \
                             VALUES (?1, -1, ?2, 0)",
                            [id, balance],
                        )
                        .unwrap();
                    }
                    conn.execute_batch("COMMIT").unwrap();
                    done += 1;
                }
                done
            })
        })
        .collect();
    let spends = threads.into_iter().map(|thread| thread.join().unwrap()).sum();
    Ceiling { spends, secs: started.elapsed().as_secs_f64() }
}

const PGBENCH_SCRIPT: &str = "\\set uid random(1, :accounts)\n\
WITH debit AS (UPDATE ceiling_accounts SET remaining = remaining - 1 WHERE id = :uid AND remaining >= 1 RETURNING id, remaining) \
INSERT INTO ceiling_entries (account_id, amount, balance_after, created_at) SELECT id, -1, remaining, 0 FROM debit;\n";

/// Prepares the ceiling tables in `database_url` (a PostgreSQL database).
pub fn pg_prepare(database_url: &str, accounts: i64) {
    let sql = format!(
        "DROP TABLE IF EXISTS ceiling_entries; DROP TABLE IF EXISTS ceiling_accounts; \
         CREATE TABLE ceiling_accounts (id INTEGER PRIMARY KEY, remaining BIGINT NOT NULL CHECK (remaining >= 0)); \
         CREATE TABLE ceiling_entries (id BIGSERIAL PRIMARY KEY, account_id INTEGER NOT NULL, \
           amount BIGINT NOT NULL, balance_after BIGINT NOT NULL, created_at BIGINT NOT NULL); \
         INSERT INTO ceiling_accounts SELECT g, 1000000000 FROM generate_series(1, {accounts}) g;"
    );
    let status = std::process::Command::new("psql")
        .args(["-q", "-v", "ON_ERROR_STOP=1", database_url, "-c", &sql])
        .status()
        .expect("psql");
    assert!(status.success(), "preparing the pgbench tables failed");
}

/// pgbench with `clients` clients for `duration`; the rate is pgbench's tps
/// (one spend per transaction).
pub fn pgbench(
    database_url: &str,
    work_dir: &Path,
    accounts: i64,
    clients: usize,
    duration: Duration,
) -> Ceiling {
    let script = work_dir.join("debit.sql");
    std::fs::write(&script, PGBENCH_SCRIPT).unwrap();
    let output = std::process::Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-j", "2"])
        .args(["-c", &clients.to_string(), "-T", &duration.as_secs().to_string()])
        .args(["-D", &format!("accounts={accounts}")])
        .arg("-f")
        .arg(&script)
        .arg(database_url)
        .output()
        .expect("pgbench (Debian package postgresql-client)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "pgbench failed: {}{}", text, String::from_utf8_lossy(&output.stderr));
    let processed = text
        .lines()
        .find_map(|line| line.strip_prefix("number of transactions actually processed: "))
        .and_then(|rest| rest.split('/').next())
        .and_then(|n| n.trim().parse::<u64>().ok())
        .expect("pgbench transaction count");
    let tps = text
        .lines()
        .find(|line| line.starts_with("tps = "))
        .and_then(|line| line.split_whitespace().nth(2))
        .and_then(|n| n.parse::<f64>().ok())
        .expect("pgbench tps");
    Ceiling { spends: processed, secs: processed as f64 / tps }
}
