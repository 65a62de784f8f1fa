//! The `credits` command line: serve, migrate, check, grant.

use crate::config::{parse_addr, Config, ConfigError};
use clap::{Parser, Subcommand};
use credits::service::CreditsService;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "credits", version, about = "A payments-grade credits ledger for SaaS apps")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the site and the API (the default).
    Serve {
        /// HOST:PORT to listen on (overrides CREDITS_ADDR).
        #[arg(long)]
        addr: Option<String>,
    },
    /// Bring the database schema up to date and exit.
    Migrate,
    /// Recompute every account from its ledger; exit 1 with a JSON report on any mismatch.
    Check,
    /// Worker API keys: create (prints the key once), list, revoke.
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// Make a local account (sign-up without Clerk) an admin.
    Promote {
        #[arg(long)]
        email: String,
    },
    /// Daily statistics (JSON) in the configured time zone.
    Stats {
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        from: String,
        /// Last day (inclusive), YYYY-MM-DD.
        #[arg(long)]
        to: String,
    },
    /// Grant credits to a user as an operator (an `adjust` entry by `cli`).
    Grant {
        #[arg(long)]
        user: String,
        #[arg(long)]
        amount: i64,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Create a key; it is printed once and stored only as a hash.
    Create {
        #[arg(long)]
        name: String,
    },
    /// List keys (never the secrets).
    List,
    /// Revoke a key by id.
    Revoke { id: String },
}

/// Runs one command; configuration errors exit 2, failed checks 1.
pub async fn run(cli: Cli) -> ExitCode {
    match execute(cli).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("credits: {message}");
            ExitCode::from(2)
        }
    }
}

async fn execute(cli: Cli) -> Result<ExitCode, String> {
    let mut config = Config::from_env().map_err(|e| e.to_string())?;
    let command = cli.command.unwrap_or(Command::Serve { addr: None });
    if let Command::Serve { addr: Some(addr) } = &command {
        config.addr = parse_addr(addr, "--addr").map_err(|e| e.to_string())?;
    }
    let db = crate::open_database(&config).await.map_err(|e| format!("DATABASE_URL: {e}"))?;
    let service = crate::build_service(&config, db).map_err(|e: ConfigError| e.to_string())?;
    match command {
        Command::Serve { .. } => serve(&config, service).await,
        Command::Migrate => {
            println!("migrations are up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => {
            let report = service.check().await.map_err(|e| e.to_string())?;
            print_pretty(&report)?;
            Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Apikey { command } => apikey(&service, command).await,
        Command::Promote { email } => {
            let promoted =
                credits::auth::local::promote(&service.db().pool, &email).await.map_err(|e| e.to_string())?;
            if !promoted {
                return Err(format!("no local account with email `{email}`"));
            }
            println!("{}", serde_json::json!({"promoted": email.trim().to_lowercase()}));
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats { from, to } => {
            print_pretty(&service.stats(&from, &to).await.map_err(|e| e.to_string())?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Grant { user, amount, reason } => grant(&service, &user, amount, &reason).await,
    }
}

/// Prints a report as indented JSON.
fn print_pretty(report: &impl serde::Serialize) -> Result<(), String> {
    println!("{}", serde_json::to_string_pretty(report).map_err(|e| e.to_string())?);
    Ok(())
}

/// `credits serve`: listens, starts the writers and the background work, and
/// serves until shut down.
async fn serve(config: &Config, service: CreditsService) -> Result<ExitCode, String> {
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| format!("CREDITS_ADDR: cannot listen on {}: {e}", config.addr))?;
    service.start_writers();
    tracing::info!(addr = %config.addr, "credits is serving");
    let interval = std::time::Duration::from_millis(config.sweep_interval_ms);
    crate::spawn_background(service.clone(), interval, config.outbox_endpoint().map_err(|e| e.to_string())?);
    crate::serve(listener, crate::router(config, service)).await.map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

/// `credits apikey create|list|revoke`.
async fn apikey(service: &CreditsService, command: ApikeyCommand) -> Result<ExitCode, String> {
    let pool = &service.db().pool;
    match command {
        ApikeyCommand::Create { name } => {
            let (id, key) = credits::auth::api_keys::create(pool, &name).await?;
            println!("{}", serde_json::json!({"id": id, "name": name.trim(), "key": key}));
            eprintln!("Store this key now: it is not shown again.");
        }
        ApikeyCommand::List => {
            print_pretty(&credits::auth::api_keys::list(pool).await.map_err(|e| e.to_string())?)?;
        }
        ApikeyCommand::Revoke { id } => {
            if !credits::auth::api_keys::revoke(pool, &id).await.map_err(|e| e.to_string())? {
                return Err(format!("no active API key `{id}`"));
            }
            println!("{}", serde_json::json!({"revoked": id}));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `credits grant`: the same bounds as the API's, then one grant.
async fn grant(service: &CreditsService, user: &str, amount: i64, reason: &str) -> Result<ExitCode, String> {
    let amount = credits::Credits::parse_positive(amount).map_err(|e| format!("--amount: {e}"))?;
    if user.is_empty() || user.len() > credits::requests::MAX_USER_ID_BYTES {
        return Err("--user must be 1 to 255 bytes".into());
    }
    if reason.trim().is_empty() || reason.chars().count() > credits::requests::MAX_REASON_CHARS {
        return Err("--reason must be 1 to 500 characters".into());
    }
    let figures = service.grant(user, amount, reason).await.map_err(|e| e.to_string())?;
    println!("{}", serde_json::json!({"userId": user, "credits": figures.as_dto(), "held": figures.held}));
    Ok(ExitCode::SUCCESS)
}
