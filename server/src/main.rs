//! `credits`: see `credits --help`.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    credits_server::memory::limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts")
        .block_on(run())
}

async fn run() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let tuning = match credits::tuning::Tuning::from_env() {
        Ok(tuning) => tuning,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    if tuning.fixed_page_cache {
        credits_server::memory::give_sqlite_a_page_buffer();
    }
    credits_server::cli::run(credits_server::cli::Cli::parse()).await
}
