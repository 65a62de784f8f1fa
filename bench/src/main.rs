//! `credits-bench`: the benchmark suite (`perf`) and the reliability suite
//! (`races`, `replays`, `crashes`, `soak`). Both drive the release server
//! binary as a child process, exactly as deployed. `scripts/bench.sh` and
//! `scripts/reliability.sh` build everything and call this.

mod ceiling;
mod keys;
mod load;
mod perf;
mod reliability;
mod server;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

pub const CREEM_SECRET: &str = "creem_bench_secret_0123456789";
/// `whsec_` + base64 of "clerk-test-signing-key-32-bytes!".
pub const CLERK_SECRET: &str = "whsec_Y2xlcmstdGVzdC1zaWduaW5nLWtleS0zMi1ieXRlcyE=";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Parser)]
#[command(name = "credits-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    #[arg(long, value_enum)]
    pub backend: Backend,
    /// The release server binary (built by `cargo leptos build --release`).
    #[arg(long, default_value = "target/release/credits")]
    pub binary: PathBuf,
    #[arg(long, default_value = "target/site")]
    pub site_root: PathBuf,
    /// Where databases, logs and results go.
    #[arg(long, default_value = "target/bench")]
    pub work_dir: PathBuf,
    /// The PostgreSQL server (a database per run is created in it).
    #[arg(
        long,
        env = "CREDITS_TEST_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub postgres_url: String,
}

/// How long, over how many users and with how many connections a load runs.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Load {
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    #[arg(long, default_value_t = 64)]
    pub conns: usize,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Throughput, latency, memory and start-up against the database's own ceiling.
    Perf {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[command(flatten)]
        load: Load,
    },
    /// The spend loops alone, for profiling between full runs: the in-process
    /// ledger API, or with `--http` the release server (spread, hot, hold+capture, then GET /api/credits at a fixed 2,000/s).
    Spend {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: Load,
        #[arg(long)]
        http: bool,
    },
    /// Bursts of spends and holds against a balance that affords a tenth of them.
    Races {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        #[arg(long, default_value_t = 1)]
        instances: usize,
        #[arg(long, default_value_t = 1000)]
        burst: usize,
    },
    /// One Creem event and one Clerk user.created delivered many times at once.
    Replays {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 3)]
        instances: usize,
        #[arg(long, default_value_t = 100)]
        copies: usize,
    },
    /// kill -9 during a mixed load; every acknowledged request must be there.
    Crashes {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 10)]
        kills: usize,
        #[arg(long, default_value_t = 16)]
        workers: usize,
    },
    /// Mixed load for a long time; memory and open files must stay flat.
    Soak {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        #[arg(long, default_value_t = 8)]
        workers: usize,
    },
}

fn main() {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let code = runtime.block_on(async {
        match cli.command {
            Command::Perf { common, rounds, load } => perf::run(&common, rounds, &load).await,
            Command::Spend { common, load, http } => perf::spend(&common, &load, http).await,
            Command::Races { common, rounds, instances, burst } => {
                reliability::races(&common, rounds, instances, burst).await
            }
            Command::Replays { common, instances, copies } => {
                reliability::replays(&common, instances, copies).await
            }
            Command::Crashes { common, kills, workers } => {
                reliability::crashes(&common, kills, workers).await
            }
            Command::Soak { common, minutes, workers } => reliability::soak(&common, minutes, workers).await,
        }
    });
    std::process::exit(code);
}

impl Common {
    /// A fresh database for this run: a SQLite file, or a new PostgreSQL database.
    pub async fn fresh_database(&self, name: &str) -> String {
        std::fs::create_dir_all(&self.work_dir).unwrap();
        match self.backend {
            Backend::Sqlite => {
                let path = self.work_dir.join(format!("{name}.db"));
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                format!(
                    "sqlite://{}",
                    std::fs::canonicalize(&self.work_dir).unwrap().join(format!("{name}.db")).display()
                )
            }
            Backend::Postgres => {
                let db = format!("credits_bench_{name}");
                let drop = format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)");
                let create = format!("CREATE DATABASE {db}");
                for sql in [drop, create] {
                    let status = std::process::Command::new("psql")
                        .args(["-q", "-v", "ON_ERROR_STOP=1", &self.postgres_url, "-c", &sql])
                        .status()
                        .expect("psql");
                    assert!(status.success(), "PostgreSQL is required at {}", self.postgres_url);
                }
                format!("{}/{db}", self.postgres_url.rsplit_once('/').unwrap().0)
            }
        }
    }

    pub fn launch(&self, database_url: &str, keys: &keys::Keys, config: &str) -> server::Launch {
        let log_dir = self.work_dir.join("logs");
        std::fs::create_dir_all(&log_dir).unwrap();
        let config_file = self.work_dir.join("config.toml");
        std::fs::write(&config_file, config).unwrap();
        server::Launch {
            binary: self.binary.clone(),
            site_root: self.site_root.clone(),
            database_url: database_url.to_string(),
            jwt_public_pem: keys.public_pem.clone(),
            config_file,
            log_dir,
            extra_env: Vec::new(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}
