//! The use cases behind the credits and user-sync endpoints. Server functions,
//! axum routes and the CLI all call these, so every door into the ledger goes
//! through the same authorization, validation and transactions.

mod admin;
mod checkout;
mod holds;
mod view;
mod webhooks;

pub use admin::{parse_batch, AdjustLine, AdjustResult};
pub use holds::HoldSettings;

pub use webhooks::WebhookOutcome;

use crate::auth::clerk::ClerkVerifier;
use crate::auth::{session_token, Admins, AuthError, Principal, SessionEnd};
use crate::db::{rfc3339, Db};
use crate::dto::{CreditsView, EntryView, HistoryPage, SyncResponse, UserView};
use crate::idempotency::{self, Claim, IdempotencyKey};
use crate::ledger::check::{self, CheckReport};
use crate::ledger::store::{self, Account, Entry, EntryMeta, Guard, LedgerError};
use crate::ledger::{Delta, Figures};
use crate::payments::creem_api::CreemApi;
use crate::plans::Settings;
use crate::requests::{parse_page, Action, ChangeRequest};
use serde_json::{Map, Value};
use sqlx::AnyConnection;
use std::sync::Arc;

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct CreditsService {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    settings: Settings,
    verifier: Option<ClerkVerifier>,
    admins: Admins,
    creem: CreemOptions,
    clerk_webhook_key: Option<Vec<u8>>,
    holds: HoldSettings,
    stats_time_zone: chrono_tz::Tz,
    /// Spends, holds and captures share commits (`group_commit`).
    commits: crate::group_commit::GroupCommit,
    /// The answers of committed changes, many users per read (`view::ViewReader`).
    views: view::ViewReader,
    /// Worker keys this instance verified: digest → key id. Only hold writes
    /// use it, and they confirm the key inside their own transaction.
    key_ids: crate::memo::Memo<[u8; 32], String>,
    /// Hold id → owner, for holds this instance created or read lately (an
    /// owner never changes). A capture usually follows its hold within
    /// seconds; at most 2 × 1,024 entries (about 300 KB) are kept, so the
    /// memory is full within a minute under load and then stays flat (a
    /// bound of 2 × 4,096 still grew through the soak's first minutes).
    hold_owners: crate::memo::Memo<String, String>,
}

/// Everything the service is configured with, besides the database.
pub struct ServiceOptions {
    pub settings: Settings,
    pub verifier: Option<ClerkVerifier>,
    pub admins: Admins,
    pub creem: CreemOptions,
    /// The decoded key of `CLERK_WEBHOOK_SECRET`.
    pub clerk_webhook_key: Option<Vec<u8>>,
    pub holds: HoldSettings,
    /// The operator's time zone, for daily statistics.
    pub stats_time_zone: chrono_tz::Tz,
}

/// Creem: the webhook secret, the API client and where buyers return to.
pub struct CreemOptions {
    pub webhook_secret: Option<String>,
    pub api: CreemApi,
    pub success_url: String,
}

/// Errors in the contract's vocabulary; the HTTP layer maps each to a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("insufficient credits: {required} required, {remaining} remaining")]
    Insufficient { required: i64, remaining: i64 },
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyConflict,
    /// The hold was already captured, released or expired.
    #[error("{0}")]
    HoldResolved(String),
    /// A service we depend on (Creem) failed; nothing was changed.
    #[error("{0}")]
    Upstream(String),
    /// We cannot take the request now (Clerk's keys unreachable, sign-in
    /// busy); 503 with `Retry-After`, nothing was changed.
    #[error("{0}")]
    Unavailable(String),
    /// Details go to the log, never to the client.
    #[error("internal error")]
    Internal(String),
}

impl From<sqlx::Error> for ServiceError {
    fn from(error: sqlx::Error) -> Self {
        // PostgreSQL chose this transaction as a deadlock's or a serialization
        // conflict's victim: nothing of it was written, and running it again
        // is safe (`group_commit` does, a few times).
        let code = error.as_database_error().and_then(|error| error.code());
        if matches!(code.as_deref(), Some("40P01" | "40001")) {
            return Self::Internal(format!("{}{error}", crate::group_commit::RETRYABLE));
        }
        Self::Internal(error.to_string())
    }
}

impl From<LedgerError> for ServiceError {
    fn from(error: LedgerError) -> Self {
        match error {
            LedgerError::NoAccount => Self::NotFound("no account for this user".into()),
            LedgerError::Closed => Self::Forbidden("the account is closed".into()),
            LedgerError::Insufficient { required, remaining } => Self::Insufficient { required, remaining },
            LedgerError::GrantsDue => Self::Internal("a due grant was not caught up".into()),
            LedgerError::Database(error) => error.into(),
        }
    }
}

impl From<AuthError> for ServiceError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::KeysUnavailable => Self::Unavailable(error.to_string()),
            _ => Self::Unauthenticated(error.to_string()),
        }
    }
}

/// The caller a worker key `id` stands for.
fn api_key_principal(id: String) -> Principal {
    Principal {
        user_id: format!("apikey:{id}"),
        email: None,
        name: None,
        is_admin: false,
        api_key: Some(id),
        email_verified: false,
    }
}

pub(crate) fn revoked_key() -> AuthError {
    AuthError::Invalid("unknown or revoked API key".into())
}

/// The token `authenticate_local` reads: the session cookie, else `Authorization: Bearer`.
fn local_session_token(headers: &http::HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    crate::auth::cookie(headers, crate::auth::local::SESSION_COOKIE).or(bearer)
}

/// A response that may be the stored answer to an earlier request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayable<T> {
    pub value: T,
    pub replayed: bool,
}

/// Group-commit workers (batches open at once) per instance on PostgreSQL,
/// each batching the changes of its own share of the accounts. Measured with
/// `credits-bench spend --http` (BENCHMARKS.md, notes): 2 such workers beat 4
/// workers on one shared queue in every phase (hot account ×1.6–1.8, spread
/// and hold+capture +10–15 %), and 3 or 4 own-share workers made batches too
/// small to pay for their statements.
const POSTGRES_WRITERS: usize = 2;

impl CreditsService {
    pub fn new(db: Db, options: ServiceOptions) -> Self {
        let ServiceOptions { settings, verifier, admins, creem, clerk_webhook_key, holds, stats_time_zone } =
            options;
        // SQLite has one writer, so one batch at a time; PostgreSQL overlaps
        // two (`POSTGRES_WRITERS`), so one batch's flush overlaps the other's
        // statements.
        let sqlite = db.backend == crate::db::Backend::Sqlite;
        let commits = crate::group_commit::GroupCommit::new(
            db.writer.clone(),
            sqlite,
            if sqlite { 1 } else { POSTGRES_WRITERS },
            256,
        );
        let views = view::ViewReader::new(db.pool.clone(), 2);
        let inner = Inner {
            views,
            db,
            settings,
            verifier,
            admins,
            creem,
            clerk_webhook_key,
            holds,
            stats_time_zone,
            commits,
            key_ids: crate::memo::Memo::new(256),
            hold_owners: crate::memo::Memo::new(1_024),
        };
        Self { inner: Arc::new(inner) }
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Starts the group commit's writers now, with their connections, rather
    /// than with the first spend (`GroupCommit::start`). Call inside the
    /// runtime, once the server is about to serve.
    pub fn start_writers(&self) {
        self.inner.commits.start();
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Whether sign-in uses local accounts (no Clerk key configured).
    pub fn local_accounts(&self) -> bool {
        self.inner.verifier.is_none()
    }

    /// Verifies the caller: a worker API key (`crk_…`), a Clerk session token,
    /// or, without Clerk, a local session cookie. A cookie-authenticated local
    /// request that changes something must carry the session's CSRF token in
    /// `x-csrf-token` or come from this site's own origin.
    pub async fn authenticate(
        &self,
        method: &http::Method,
        headers: &http::HeaderMap,
    ) -> Result<Principal, ServiceError> {
        let bearer = session_token(headers);
        if let Some(token) = bearer.as_deref().filter(|t| t.starts_with(crate::auth::api_keys::PREFIX)) {
            let id =
                crate::auth::api_keys::verify(&self.inner.db.pool, token).await?.ok_or_else(revoked_key)?;
            if crate::auth::api_keys::well_formed(token) {
                self.inner.key_ids.insert(crate::auth::api_keys::digest(token), id.clone());
            }
            return Ok(api_key_principal(id));
        }
        let Some(verifier) = self.inner.verifier.as_ref() else {
            return self.authenticate_local(method, headers).await;
        };
        let token = bearer.ok_or(AuthError::Missing)?;
        let claims = verifier.verify(&token).await?;
        let is_admin = self.inner.admins.contains(&claims.sub);
        let email = claims.email.map(|email| email.to_lowercase());
        // Clerk signs the token, so it vouches for the `email` claim it carries.
        Ok(Principal::user(&claims.sub, email, claims.name, is_admin).with_verified_email())
    }

    /// `authenticate` for a live event stream: a signed-in user (an API key
    /// is refused) and what ends the stream with their session.
    pub async fn authenticate_stream(
        &self,
        headers: &http::HeaderMap,
    ) -> Result<(Principal, SessionEnd), ServiceError> {
        let caller = self.authenticate(&http::Method::GET, headers).await?;
        if caller.api_key.is_some() {
            return Err(ServiceError::Forbidden("events are for signed-in users".into()));
        }
        let end = match self.inner.verifier.as_ref() {
            // The token was verified just now, so this is a lookup of its claims.
            Some(verifier) => {
                let token = session_token(headers).ok_or(AuthError::Missing)?;
                SessionEnd::Expires { exp_seconds: verifier.verify(&token).await?.exp }
            }
            None => {
                let token = local_session_token(headers).ok_or(AuthError::Missing)?;
                SessionEnd::Local { token: token.to_string() }
            }
        };
        Ok((caller, end))
    }

    /// `authenticate` for hold creations and resolutions: a worker API key
    /// this instance has verified before is taken from memory, without a
    /// read. That is safe because every hold write confirms its key inside
    /// its own transaction (`HoldJob`, `holds::batch`): a revoked key changes
    /// nothing from the next request on, on every instance. `.1` is true
    /// when the key came from memory; a refusal is then passed through
    /// `confirm_api_key`, so that a revoked key is answered 401 as before,
    /// not 400 or 404.
    pub async fn authenticate_hold_write(
        &self,
        method: &http::Method,
        headers: &http::HeaderMap,
    ) -> Result<(Principal, bool), ServiceError> {
        let bearer = session_token(headers);
        if let Some(token) = bearer.as_deref().filter(|t| crate::auth::api_keys::well_formed(t)) {
            if let Some(id) = self.inner.key_ids.get(&crate::auth::api_keys::digest(token)) {
                return Ok((api_key_principal(id), true));
            }
        }
        Ok((self.authenticate(method, headers).await?, false))
    }

    /// For a request refused with `error` whose key came from memory: 401
    /// (and the key forgotten) if the key has been revoked, else `error`.
    pub async fn confirm_api_key(&self, caller: &Principal, error: ServiceError) -> ServiceError {
        let Some(id) = caller.api_key.as_deref() else { return error };
        let active = match self.inner.db.pool.acquire().await {
            Ok(mut conn) => crate::auth::api_keys::active(&mut conn, id).await,
            Err(failure) => Err(failure),
        };
        match active {
            Ok(true) => error,
            Ok(false) => {
                self.inner.key_ids.retain(|_, key_id| key_id != id);
                revoked_key().into()
            }
            Err(failure) => failure.into(),
        }
    }

    async fn authenticate_local(
        &self,
        method: &http::Method,
        headers: &http::HeaderMap,
    ) -> Result<Principal, ServiceError> {
        use crate::auth::local;
        let from_cookie = crate::auth::cookie(headers, local::SESSION_COOKIE);
        let bearer = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let token = from_cookie.or(bearer).ok_or(AuthError::Missing)?;
        let session = local::session(&self.inner.db.pool, token)
            .await?
            .ok_or_else(|| AuthError::Invalid("the session has ended; sign in again".into()))?;
        let unsafe_method =
            !matches!(*method, http::Method::GET | http::Method::HEAD | http::Method::OPTIONS);
        if from_cookie.is_some() && unsafe_method && !csrf_ok(headers, &session.csrf_token) {
            return Err(ServiceError::Forbidden("missing or wrong CSRF token (x-csrf-token)".into()));
        }
        let is_admin = session.is_admin || self.inner.admins.contains(&session.user_id);
        Ok(Principal::user(&session.user_id, Some(session.email), None, is_admin))
    }

    /// `GET /api/credits[?userId=]`: the caller's figures (creating the account on
    /// first use), or, for admins and API keys, an existing user's.
    pub async fn credits_view(
        &self,
        caller: &Principal,
        target: Option<&str>,
    ) -> Result<CreditsView, ServiceError> {
        match target.filter(|target| *target != caller.user_id) {
            Some(target) => {
                if !caller.acts_for_others() {
                    return Err(ServiceError::Forbidden(
                        "only admins and API keys may read other users".into(),
                    ));
                }
                let snapshot = self.inner.views.read(target).await?.ok_or(LedgerError::NoAccount)?;
                Ok(view::view(&snapshot, self.inner.settings.cost_per_video))
            }
            None => {
                if caller.api_key.is_some() {
                    return Err(ServiceError::Invalid("an API key must name the user: ?userId=".into()));
                }
                self.own_view(caller).await
            }
        }
    }

    /// The caller's own view: one statement when the account exists, its
    /// profile is current and no grant is due; otherwise the account is made
    /// current first (created with its initial grant, profile updated, due
    /// grants started or ended) and read again.
    async fn own_view(&self, caller: &Principal) -> Result<CreditsView, ServiceError> {
        let views = &self.inner.views;
        let snapshot = match views.read(&caller.user_id).await? {
            Some(snapshot) if !snapshot.grants_due && !profile_stale(&snapshot.account, caller) => snapshot,
            _ => {
                self.ensure_account(caller).await?;
                self.catch_up_grants(&caller.user_id).await?;
                views.read(&caller.user_id).await?.ok_or(LedgerError::NoAccount)?
            }
        };
        Ok(view::view(&snapshot, self.inner.settings.cost_per_video))
    }

    /// `POST /api/credits`: one add, deduct or set, in one transaction with its idempotency key.
    pub async fn change_credits(
        &self,
        caller: &Principal,
        body: &Map<String, Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Replayable<CreditsView>, ServiceError> {
        users_only(caller)?;
        let request = ChangeRequest::parse(body).map_err(ServiceError::Invalid)?;
        let key = parse_key(idempotency_key)?;
        let target = request.user_id.clone().unwrap_or_else(|| caller.user_id.clone());
        let needs_admin = request.action != Action::Deduct || target != caller.user_id;
        if needs_admin && !caller.is_admin {
            return Err(ServiceError::Forbidden(
                "only admins may add or set credits, or change another user's account".into(),
            ));
        }
        let own = target == caller.user_id;
        // A deduct finds out that the account is missing from its own debit,
        // which saves a read on every spend; everything else makes sure first.
        if own && request.action != Action::Deduct {
            self.ensure_account(caller).await?;
        }
        let actor =
            if caller.is_admin { format!("admin:{}", caller.user_id) } else { caller.user_id.clone() };
        let hash = idempotency::request_hash("POST /api/credits", &Value::Object(body.clone()).to_string());
        let job = ChangeJob {
            service: self.clone(),
            scope: caller.user_id.clone(),
            is_admin: caller.is_admin,
            target,
            request,
            key,
            hash,
            actor,
        };
        let changed = match self.inner.commits.run(job.clone()).await {
            Err(ServiceError::NotFound(_)) if own => {
                self.ensure_account(caller).await?;
                self.inner.commits.run(job).await?
            }
            other => other?,
        };
        let answer = match changed {
            Changed::Answered(answer) => answer,
            Changed::Committed(target) => {
                // The figures and lists as they are now that the change committed.
                let snapshot = self.inner.views.read(&target).await?.ok_or(LedgerError::NoAccount)?;
                Replayable {
                    value: view::view(&snapshot, self.inner.settings.cost_per_video),
                    replayed: false,
                }
            }
        };
        Ok(answer)
    }

    /// One change request inside a (possibly shared) transaction.
    async fn change_in(&self, conn: &mut AnyConnection, job: &ChangeJob) -> Result<Changed, ServiceError> {
        if let Some(value) = claim_key(conn, &job.scope, job.key.as_ref(), &job.hash).await? {
            return Ok(Changed::Answered(Replayable { value, replayed: true }));
        }
        let answer = self.change_claimed(conn, job).await;
        if let (Err(_), Some(key)) = (&answer, &job.key) {
            // A refused request leaves its key free (this transaction may be shared).
            idempotency::forget(conn, &job.scope, key).await?;
        }
        answer
    }

    async fn change_claimed(
        &self,
        conn: &mut AnyConnection,
        job: &ChangeJob,
    ) -> Result<Changed, ServiceError> {
        let (target, request, actor) = (&job.target, &job.request, &job.actor);
        let before = if job.is_admin {
            Some(store::lock(conn, target).await?.ok_or(LedgerError::NoAccount)?.figures)
        } else {
            None
        };
        apply_change(conn, target, request, request.reason.as_deref(), actor).await?;
        if before.is_none() && job.key.is_none() {
            // Nothing to store with the change: the answer is read after the
            // commit, outside the shared transaction, which keeps it short.
            return Ok(Changed::Committed(target.clone()));
        }
        let snapshot =
            view::snapshot(conn, target, crate::db::now_ms()).await?.ok_or(LedgerError::NoAccount)?;
        if let Some(before) = &before {
            let action = format!("credits.{}", request.action.as_str());
            let reason = request.reason.as_deref().unwrap_or("(no reason given)");
            let entry = crate::audit::Action {
                actor,
                action: &action,
                target_user: Some(target),
                reason,
                before: Some(before),
                after: Some(&snapshot.account.figures),
            };
            crate::audit::record(conn, &entry).await?;
        }
        let view = view::view(&snapshot, self.inner.settings.cost_per_video);
        store_response(conn, &job.scope, job.key.as_ref(), &view).await?;
        Ok(Changed::Answered(Replayable { value: view, replayed: false }))
    }

    /// `GET /api/credits/history`: one page, newest first.
    pub async fn history(
        &self,
        caller: &Principal,
        limit: Option<i64>,
        before: Option<i64>,
    ) -> Result<HistoryPage, ServiceError> {
        users_only(caller)?;
        let (limit, before) = parse_page(limit, before).map_err(ServiceError::Invalid)?;
        self.ensure_account(caller).await?;
        let mut conn = self.inner.db.pool.acquire().await?;
        let mut entries = store::entries_before(&mut conn, &caller.user_id, before, limit + 1).await?;
        let more = entries.len() as i64 > limit;
        entries.truncate(limit as usize);
        let next_before = if more { entries.last().map(|entry| entry.id) } else { None };
        Ok(HistoryPage { entries: entries.into_iter().map(entry_view).collect(), next_before })
    }

    /// `GET /api/user/sync`.
    pub async fn user(&self, caller: &Principal) -> Result<UserView, ServiceError> {
        users_only(caller)?;
        let (account, _) = self.ensure_account(caller).await?;
        Ok(user_view(&account))
    }

    /// `POST /api/user/sync`: creates or updates the caller (initial grant exactly once).
    pub async fn sync_user(&self, caller: &Principal) -> Result<SyncResponse, ServiceError> {
        users_only(caller)?;
        let (account, created) = self.ensure_account(caller).await?;
        Ok(SyncResponse { created, user: user_view(&account) })
    }

    /// `credits grant`: an operator's adjustment, creating the account if needed.
    pub async fn grant(
        &self,
        user_id: &str,
        amount: crate::Credits,
        reason: &str,
    ) -> Result<Figures, ServiceError> {
        let principal = Principal::user(user_id, None, None, false);
        self.ensure_account(&principal).await?;
        let mut tx = self.inner.db.pool.begin().await?;
        let meta = EntryMeta { reason: Some(reason), actor: "cli", ..Default::default() };
        let figures =
            store::apply(&mut tx, user_id, &Delta::adjust(amount.get()), Guard::None, &meta).await?;
        tx.commit().await?;
        Ok(figures.figures)
    }

    /// `credits check` and `/api/admin/check`.
    pub async fn check(&self) -> Result<CheckReport, ServiceError> {
        Ok(check::run(&self.inner.db.pool).await?)
    }
}

/// What a change job produced: its answer, or (with nothing to store under an
/// Idempotency-Key or in the audit log) only the commit, the answer to be read after it.
enum Changed {
    Answered(Replayable<CreditsView>),
    Committed(String),
}

/// A `POST /api/credits` change, run by the group committer.
#[derive(Clone)]
struct ChangeJob {
    service: CreditsService,
    scope: String,
    is_admin: bool,
    target: String,
    request: ChangeRequest,
    key: Option<IdempotencyKey>,
    hash: String,
    actor: String,
}

impl crate::group_commit::Job for ChangeJob {
    type Output = Changed;

    fn lock_order(&self) -> &str {
        &self.target
    }

    fn run<'c>(
        &'c self,
        conn: &'c mut AnyConnection,
    ) -> crate::group_commit::BoxFuture<'c, Result<Self::Output, ServiceError>> {
        Box::pin(self.service.change_in(conn, self))
    }

    fn plain_spend(&self) -> Option<crate::ledger::batch::PlainSpend<'_>> {
        let plain = self.request.action == Action::Deduct && self.key.is_none() && !self.is_admin;
        plain.then(|| crate::ledger::batch::PlainSpend {
            user_id: &self.target,
            amount: self.request.amount.get(),
            reason: self.request.reason.as_deref(),
            actor: &self.actor,
        })
    }

    async fn plain_spends_applied<C: crate::exec::Exec>(
        jobs: Vec<&Self>,
        conn: &mut C,
    ) -> Result<Vec<Changed>, ServiceError> {
        let mut users: Vec<&str> = jobs.iter().map(|job| job.target.as_str()).collect();
        users.sort_unstable();
        users.dedup();
        let snapshots = view::snapshots(conn, &users, crate::db::now_ms()).await?;
        jobs.iter()
            .map(|job| {
                let snapshot = snapshots.get(&job.target).ok_or(LedgerError::NoAccount)?;
                let value = view::view(snapshot, job.service.inner.settings.cost_per_video);
                Ok(Changed::Answered(Replayable { value, replayed: false }))
            })
            .collect()
    }

    fn plain_spend_committed(&self) -> Option<Changed> {
        Some(Changed::Committed(self.target.clone()))
    }
}

impl CreditsService {
    /// Reads the caller's account, creating it with the initial grant the first
    /// time; returns whether this call created it.
    pub(crate) async fn ensure_account(&self, caller: &Principal) -> Result<(Account, bool), ServiceError> {
        let pool = &self.inner.db.pool;
        let (email, name) = (caller.email_claim(), caller.name.as_deref());
        // Each step holds at most one connection, so a burst of first requests
        // cannot exhaust the pool waiting for second connections.
        let existing = store::load_with_email_verified(&mut *pool.acquire().await?, &caller.user_id).await?;
        match existing {
            Some((account, email_verified)) => {
                let verification_stale = caller.email.is_some() && email_verified != caller.email_verified;
                if !profile_stale(&account, caller) && !verification_stale {
                    return Ok((account, false));
                }
                store::update_profile(&mut *pool.acquire().await?, &caller.user_id, email, name).await?;
                if caller.email_verified {
                    // A newly verified email may be what payments were waiting for.
                    self.credit_pending_payments(&caller.user_id).await?;
                }
                let account = store::load(&mut *pool.acquire().await?, &caller.user_id)
                    .await?
                    .ok_or(LedgerError::NoAccount)?;
                Ok((account, false))
            }
            None => {
                let mut tx = pool.begin().await?;
                let initial = self.inner.settings.initial_credits;
                let created = store::create_if_missing(
                    &mut tx,
                    &caller.user_id,
                    email,
                    name,
                    initial,
                    self.initial_grant(),
                )
                .await?;
                let account = store::load(&mut tx, &caller.user_id).await?.ok_or(LedgerError::NoAccount)?;
                tx.commit().await?;
                if !created {
                    return Ok((account, false));
                }
                tracing::info!(user_id = %caller.user_id, initial, "account created");
                self.credit_pending_payments(&caller.user_id).await?;
                let account = store::load(&mut *pool.acquire().await?, &caller.user_id)
                    .await?
                    .ok_or(LedgerError::NoAccount)?;
                Ok((account, true))
            }
        }
    }

    /// The terms of the sign-up grant (`initial_credits_valid_days`).
    pub(crate) fn initial_grant(&self) -> crate::ledger::grants::GrantEffect {
        let mut spec = crate::ledger::grants::GrantSpec::default_for(crate::ledger::EntryKind::Initial);
        spec.expires_at =
            self.inner.settings.initial_valid_days.map(|days| crate::db::now_ms() + days * 86_400_000);
        crate::ledger::grants::GrantEffect::Create(spec)
    }

    /// Credits payments that arrived before their user (by id, or by the
    /// account's verified email), in their own transaction after the
    /// account's creation committed. The webhook side checks again after its
    /// own commit, so one of the two always sees the other.
    async fn credit_pending_payments(&self, user_id: &str) -> Result<i64, ServiceError> {
        let pool = &self.inner.db.pool;
        if !crate::payments::has_pending(&mut *pool.acquire().await?, user_id).await? {
            return Ok(0);
        }
        let mut tx = pool.begin().await?;
        let cap = self.inner.settings.subscription_rollover_cap;
        let credited = crate::payments::credit_pending(&mut tx, user_id, cap).await?;
        tx.commit().await?;
        Ok(credited)
    }

    /// Starts and ends a user's due grants before their figures are shown, so
    /// figures never count an expired grant or miss a started one.
    /// Returns whether anything was due.
    pub(crate) async fn catch_up_grants(&self, user_id: &str) -> Result<bool, ServiceError> {
        let pool = &self.inner.db.pool;
        let now = crate::db::now_ms();
        if !crate::ledger::grants::has_due(&mut *pool.acquire().await?, user_id, now).await? {
            return Ok(false);
        }
        let mut tx = pool.begin().await?;
        store::lock(&mut tx, user_id).await?;
        crate::ledger::expiry::catch_up(&mut tx, user_id, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// `POST /api/admin/grants/{id}/void`: the grant's unspent rest leaves the
    /// account; what was spent stays spent. Audited.
    pub async fn void_grant(
        &self,
        caller: &Principal,
        grant_id: i64,
        reason: &str,
    ) -> Result<Value, ServiceError> {
        if !caller.is_admin {
            return Err(ServiceError::Forbidden("admins only".into()));
        }
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > crate::requests::MAX_REASON_CHARS {
            return Err(ServiceError::Invalid("`reason` is required (1 to 500 characters)".into()));
        }
        let pool = &self.inner.db.pool;
        let owner = sqlx::query("SELECT user_id FROM grants WHERE id = $1")
            .bind(grant_id)
            .fetch_optional(pool)
            .await?
            .map(|row| sqlx::Row::try_get::<String, _>(&row, "user_id"))
            .transpose()?
            .ok_or_else(|| ServiceError::NotFound("no such grant".into()))?;
        let actor = format!("admin:{}", caller.user_id);
        let mut tx = pool.begin().await?;
        let before = store::lock(&mut tx, &owner).await?.ok_or(LedgerError::NoAccount)?.figures;
        let removed = crate::ledger::expiry::end(&mut tx, grant_id, crate::ledger::EntryKind::Void, reason, &actor)
            .await?
            .ok_or_else(|| ServiceError::Invalid("the grant has already expired or been voided".into()))?;
        let after = store::load(&mut tx, &owner).await?.ok_or(LedgerError::NoAccount)?.figures;
        let action = crate::audit::Action {
            actor: &actor,
            action: "grant.void",
            target_user: Some(&owner),
            reason,
            before: Some(&before),
            after: Some(&after),
        };
        crate::audit::record(&mut tx, &action).await?;
        tx.commit().await?;
        Ok(
            serde_json::json!({"grantId": grant_id, "userId": owner, "removed": removed, "credits": after.as_dto()}),
        )
    }
}

/// A cookie-authenticated change must prove it comes from our own pages:
/// the CSRF token in a header (what the app's fetches send), or a stated
/// `Origin`/`Referer` (what plain HTML forms send). The router's
/// `cross_site::guard` has already refused every stated origin that is not
/// this site's, so a stated one here is ours.
fn csrf_ok(headers: &http::HeaderMap, expected: &str) -> bool {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if let Some(given) = header("x-csrf-token") {
        return crate::webhooks::constant_time_eq(given.as_bytes(), expected.as_bytes());
    }
    header("origin").or(header("referer")).is_some()
}

/// Whether the session brings an email or name the account does not have yet.
fn profile_stale(account: &Account, caller: &Principal) -> bool {
    let (email, name) = (caller.email.as_deref(), caller.name.as_deref());
    (email.is_some() && account.email.as_deref() != email)
        || (name.is_some() && account.name.as_deref() != name)
}

/// Refuses API keys on routes that belong to signed-in users.
fn users_only(caller: &Principal) -> Result<(), ServiceError> {
    match caller.api_key {
        Some(_) => Err(ServiceError::Forbidden(
            "API keys may only hold, capture and release credits and read a user's figures".into(),
        )),
        None => Ok(()),
    }
}

pub(crate) fn parse_key(raw: Option<&str>) -> Result<Option<IdempotencyKey>, ServiceError> {
    raw.map(IdempotencyKey::parse).transpose().map_err(ServiceError::Invalid)
}

/// Claims an Idempotency-Key in `tx`; `Some` is the stored first response.
pub(crate) async fn claim_key<T: serde::de::DeserializeOwned>(
    tx: &mut AnyConnection,
    scope: &str,
    key: Option<&IdempotencyKey>,
    hash: &str,
) -> Result<Option<T>, ServiceError> {
    let Some(key) = key else { return Ok(None) };
    match idempotency::claim(tx, scope, key, hash).await? {
        Claim::New => Ok(None),
        Claim::Conflict => Err(ServiceError::IdempotencyConflict),
        Claim::Replay { body, .. } => {
            serde_json::from_str(&body).map(Some).map_err(|e| ServiceError::Internal(e.to_string()))
        }
    }
}

/// Stores the response for a claimed key, in the effect's transaction.
pub(crate) async fn store_response<T: serde::Serialize>(
    tx: &mut AnyConnection,
    scope: &str,
    key: Option<&IdempotencyKey>,
    value: &T,
) -> Result<(), ServiceError> {
    let Some(key) = key else { return Ok(()) };
    let body = serde_json::to_string(value).map_err(|e| ServiceError::Internal(e.to_string()))?;
    idempotency::complete(tx, scope, key, 200, &body).await?;
    Ok(())
}

/// The ledger write for one change request. It locks the account and brings
/// its grants up to date first, so the change only ever sees live grants.
pub(crate) async fn apply_change(
    conn: &mut AnyConnection,
    target: &str,
    request: &ChangeRequest,
    reason: Option<&str>,
    actor: &str,
) -> Result<(), ServiceError> {
    let now = crate::db::now_ms();
    // A deduct's conditional debit is itself the lock, and it catches up due
    // grants itself (`apply_covered`). Add and set read the account, so they
    // lock it up front and bring its grants up to date.
    if request.action != Action::Deduct {
        store::lock(conn, target).await?.ok_or(LedgerError::NoAccount)?;
        crate::ledger::expiry::catch_up(conn, target, now).await?;
    }
    let amount = request.amount.get();
    let meta = EntryMeta { reason, actor, ..Default::default() };
    match request.action {
        Action::Deduct => {
            crate::ledger::expiry::apply_covered(conn, target, &Delta::spend(amount), amount, &meta).await?;
        }
        Action::Add => {
            let spec = grant_spec(&request.grant, now)?;
            if spec.effective_at.is_some_and(|at| at > now) {
                crate::ledger::grants::schedule(conn, target, "adjust", amount, &spec).await?;
            } else {
                let meta = EntryMeta { grants: crate::ledger::grants::GrantEffect::Create(spec), ..meta };
                store::apply(conn, target, &Delta::adjust(amount), Guard::None, &meta).await?;
            }
        }
        Action::Set => {
            let account = store::load(conn, target).await?.ok_or(LedgerError::NoAccount)?;
            if let Some(delta) = Delta::set_to(&account.figures, amount) {
                store::apply(conn, target, &delta, Guard::None, &meta).await?;
            }
        }
    }
    Ok(())
}

/// Turns an `add`'s grant terms into a `GrantSpec`, refusing impossible dates.
fn grant_spec(
    terms: &crate::requests::GrantTerms,
    now: i64,
) -> Result<crate::ledger::grants::GrantSpec, ServiceError> {
    const TEN_YEARS_MS: i64 = 10 * 366 * 86_400_000;
    let parse = |value: &Option<String>, field: &str| -> Result<Option<i64>, ServiceError> {
        value
            .as_deref()
            .map(|text| {
                chrono::DateTime::parse_from_rfc3339(text)
                    .map(|at| at.timestamp_millis())
                    .map_err(|_| ServiceError::Invalid(format!("`{field}` must be an RFC 3339 time")))
            })
            .transpose()
    };
    let effective_at = parse(&terms.effective_at, "effectiveAt")?;
    let expires_at = parse(&terms.expires_at, "expiresAt")?;
    let start = effective_at.unwrap_or(now).max(now);
    if effective_at.is_some_and(|at| at > now + TEN_YEARS_MS)
        || expires_at.is_some_and(|at| at > now + TEN_YEARS_MS)
    {
        return Err(ServiceError::Invalid("grant dates must be within ten years".into()));
    }
    if expires_at.is_some_and(|at| at <= start) {
        return Err(ServiceError::Invalid("`expiresAt` must be after now and after `effectiveAt`".into()));
    }
    let category = match terms.category.as_deref() {
        Some("free") => "free",
        Some("paid") => "paid",
        _ => "promotional",
    };
    Ok(crate::ledger::grants::GrantSpec {
        category,
        priority: terms.priority.unwrap_or(crate::ledger::grants::DEFAULT_PRIORITY),
        effective_at,
        expires_at,
        reference: None,
    })
}

pub(crate) fn entry_view(entry: Entry) -> EntryView {
    EntryView {
        id: entry.id,
        kind: entry.kind,
        amount: entry.amount,
        balance_after: entry.balance_after,
        reason: entry.reason,
        reference: entry.reference,
        created_at: rfc3339(entry.created_at_ms),
    }
}

pub(crate) fn user_view(account: &Account) -> UserView {
    UserView {
        user_id: account.user_id.clone(),
        email: account.email.clone(),
        name: account.name.clone(),
        created_at: rfc3339(account.created_at_ms),
        credits: account.figures.as_dto(),
    }
}
