//! The `credits` server: configuration, the router and the CLI.
//!
//! `main.rs` is thin; everything here is a library so that tests can start the
//! real server on port 0 against a fresh database.

pub mod cli;
pub mod config;
pub mod memory;
pub mod rate_limit;
pub mod routes;

use axum::Router;
use config::Config;
use credits::db::Db;
use credits::service::{CreditsService, CreemOptions, ServiceOptions};
use credits_app::{shell, App};
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio::net::TcpListener;

/// Connections per process; SQLite writes serialize anyway, PostgreSQL scales out by instances.
pub const POOL_CONNECTIONS: u32 = 16;

/// Opens the database named by the configuration and brings its schema up to date.
pub async fn open_database(config: &Config) -> Result<Db, credits::db::DbError> {
    let db = Db::connect(config.database_url.expose(), POOL_CONNECTIONS).await?;
    db.migrate().await?;
    Ok(db)
}

/// The service every handler shares.
pub fn build_service(config: &Config, db: Db) -> Result<CreditsService, config::ConfigError> {
    credits::ledger::alerts::configure(config.alerts);
    let options = ServiceOptions {
        settings: config.settings.clone(),
        verifier: config.clerk.verifier()?,
        admins: config.admins.clone(),
        creem: CreemOptions {
            webhook_secret: config.creem.webhook_secret.as_ref().map(|secret| secret.expose().to_string()),
            api: config::creem_api(&config.creem)?,
            success_url: config.creem.success_url.clone(),
        },
        clerk_webhook_key: config
            .clerk_webhook_key
            .as_ref()
            .map(|secret| credits::webhooks::clerk::secret_key(secret.expose()))
            .transpose()
            .map_err(config::ConfigError)?,
        holds: config.holds,
        stats_time_zone: config.time_zone,
    };
    Ok(CreditsService::new(db, options))
}

/// The app's page routes, generated once per process.
///
/// Generating them runs the app with resource loading suppressed through a
/// process-wide flag (leptos_server's `SuppressResourceLoad`): a page whose
/// resource first polled while another router was being built would wait
/// forever (leptos-rs/leptos#4773). Building it once, before any router
/// serves, keeps that window closed for every later router in the process
/// (the test suite builds many).
fn page_routes() -> Vec<leptos_axum::AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// Where cookie requests may come from (contract §8).
fn site_origins(config: &Config) -> std::sync::Arc<routes::cross_site::SiteOrigins> {
    let parties = config.clerk.authorized_parties.iter().flatten();
    std::sync::Arc::new(routes::cross_site::SiteOrigins {
        public: config.public_origin.clone(),
        parties: parties.filter_map(|party| credits::security::origin::Origin::parse(party)).collect(),
    })
}

fn network(config: &Config) -> std::sync::Arc<routes::client::Network> {
    std::sync::Arc::new(routes::client::Network {
        proxies: config.trusted_proxies.clone(),
        public_https: config.public_origin.as_ref().is_some_and(|origin| origin.is_https()),
    })
}

/// The whole HTTP surface: server functions, pages, static files and plain routes.
pub fn router(config: &Config, service: CreditsService) -> Router {
    let options = LeptosOptions::builder()
        .output_name("credits")
        .site_root(config.site_root.as_str())
        .site_pkg_dir("pkg")
        .site_addr(config.addr)
        .build();
    let routes = page_routes();
    let context = {
        let service = service.clone();
        move || {
            provide_context(service.clone());
            routes::security_headers::provide_request_nonce();
        }
    };
    let page_options = options.clone();
    let limiter = std::sync::Arc::new(rate_limit::RateLimiter::new(config.rate_limits.clone()));
    Router::new()
        .merge(routes::health::router(service.clone()))
        .merge(routes::metrics::router(service.clone(), config.metrics_token.clone()))
        .merge(routes::openapi::router())
        .merge(routes::webhooks::router(service.clone()))
        .merge(routes::holds::router(service.clone()))
        .merge(routes::admin::router(service.clone()))
        .merge(routes::auth::router(service.clone(), limiter.clone()))
        .merge(routes::events::router(service.clone(), routes::events::ChangeFeed::start(service.clone())))
        .merge(routes::server_fns::router(context.clone()))
        // Static files, sent as precompressed `.br`/`.gz` copies when the build made them
        // (scripts/build.sh), so the WASM file is never compressed per request.
        .nest_service(
            "/pkg",
            tower_http::services::ServeDir::new(std::path::Path::new(&config.site_root).join("pkg"))
                .precompressed_br()
                .precompressed_gzip(),
        )
        .leptos_routes_with_context(&options, routes, context.clone(), move || shell(page_options.clone()))
        .route_layer(axum::middleware::from_fn(routes::metrics::track))
        .fallback(leptos_axum::file_and_error_handler_with_context(context, shell))
        .with_state(options)
        .layer(axum::middleware::from_fn_with_state((service, limiter), routes::limits::rate_limit))
        .layer(axum::middleware::from_fn_with_state(site_origins(config), routes::cross_site::guard))
        .layer(axum::middleware::from_fn_with_state(network(config), routes::client::identify))
        .layer(axum::middleware::from_fn(routes::limits::limit_body))
        .layer(axum::middleware::from_fn_with_state(
            routes::security_headers::SecurityHeaders::new(config),
            routes::security_headers::apply,
        ))
        // Pages and JSON: gzip at a fast level. (Brotli per response costs about
        // 9 MB of encoder state per response in flight and, at its default level
        // 11, milliseconds of CPU; static files are precompressed instead.) The
        // default predicate skips event streams, images and encoded responses.
        .layer(
            tower_http::compression::CompressionLayer::new()
                .no_br()
                .quality(tower_http::CompressionLevel::Fastest),
        )
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Work every instance does in the background: releasing expired holds,
/// starting and ending grants, expiring notices, and delivering the outbox.
/// Each step is exactly-once across instances, so every instance may run it.
pub fn spawn_background(
    service: CreditsService,
    sweep_interval: std::time::Duration,
    outbox: Option<credits::outbox::Endpoint>,
) -> tokio::task::JoinHandle<()> {
    if outbox.is_some() {
        credits::ledger::alerts::enable_activity_events();
    }
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(sweep_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let pool = service.db().pool.clone();
        let mut trimmed = std::time::Instant::now();
        loop {
            ticker.tick().await;
            if trimmed.elapsed() >= memory::TRIM_EVERY {
                if credits::tuning::get().malloc_trim {
                    memory::return_free_memory();
                }
                trimmed = std::time::Instant::now();
                // Ended sessions only take room; once per trim is often enough.
                if let Err(error) = credits::auth::local::sweep(&pool, 500).await {
                    tracing::warn!(%error, "session sweep failed; retrying");
                }
            }
            // Folds the histograms' raw samples into their buckets and summaries;
            // without it they pile up until someone scrapes /metrics (a leak).
            routes::metrics::handle().run_upkeep();
            if let Err(error) = service.expire_holds(500).await {
                tracing::warn!(%error, "hold expiry sweep failed; retrying");
            }
            if let Err(error) = service.sweep_grants(500).await {
                tracing::warn!(%error, "grant sweep failed; retrying");
            }
            if let Err(error) = credits::ledger::alerts::expiring_notices(&pool, 500).await {
                tracing::warn!(%error, "expiring notices failed; retrying");
            }
            if let Some(endpoint) = &outbox {
                if let Err(error) = credits::outbox::deliver_due(&pool, endpoint, 100).await {
                    tracing::warn!(%error, "outbox delivery failed; retrying");
                }
            }
        }
    })
}

/// Serves on `listener` until the process is told to stop.
pub async fn serve(listener: TcpListener, app: Router) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Without TCP_NODELAY a streamed page's second chunk waits for the
    // client's delayed ACK: 40 ms per page on a kept-alive connection.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::trace!(%error, "could not set TCP_NODELAY");
        }
    });
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
