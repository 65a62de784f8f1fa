//! The use cases behind the credits and user-sync endpoints. Server functions,
//! axum routes and the CLI all call these, so every door into the ledger goes
//! through the same authorization, validation and transactions.

mod admin;
mod checkout;
mod holds;
mod webhooks;

pub use admin::{parse_batch, AdjustLine, AdjustResult};
pub use holds::HoldSettings;

pub use webhooks::WebhookOutcome;

use crate::auth::clerk::ClerkVerifier;
use crate::auth::{session_token, Admins, AuthError, Principal, SessionEnd};
use crate::db::{rfc3339, Db};
use crate::dto::{CreditsView, HistoryPage, SyncResponse, UserView};
use crate::idempotency::{self, IdempotencyKey};
use crate::ids::{GrantId, HoldId, UserId};
use crate::ledger::check::{self, CheckReport};
use crate::ledger::store::{self, Account, LedgerError};
use crate::ledger::Figures;
use crate::payments::creem_api::CreemApi;
use crate::plans::Settings;
use crate::requests::{parse_page, Action, ChangeRequest};
use crate::view::{self, entry_view};
use crate::writer::{Changed, CreditChange, LedgerOp, Writer};
use serde_json::{Map, Value};
use std::sync::Arc;

pub use crate::error::ServiceError;
pub use crate::writer::Replayable;

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
    /// Every balance change goes through it (`writer`).
    writer: Writer,
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

/// The token `authenticate_local` reads: the session cookie, else `Authorization: Bearer`.
fn local_session_token(headers: &http::HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    crate::auth::cookie(headers, crate::auth::local::SESSION_COOKIE).or(bearer)
}

impl CreditsService {
    pub fn new(db: Db, options: ServiceOptions) -> Self {
        let ServiceOptions { settings, verifier, admins, creem, clerk_webhook_key, holds, stats_time_zone } =
            options;
        let writer = Writer::new(db.writer.clone(), db.backend == crate::db::Backend::Sqlite);
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
            writer,
            key_ids: crate::memo::Memo::new(256),
            hold_owners: crate::memo::Memo::new(1_024),
        };
        Self { inner: Arc::new(inner) }
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Starts the writer's workers now, with their connections, rather than
    /// with the first spend (`Writer::start`). Call inside the runtime, once
    /// the server is about to serve.
    pub fn start_writers(&self) {
        self.inner.writer.start();
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
            let id = crate::auth::api_keys::verify(&self.inner.db.pool, token)
                .await?
                .ok_or_else(crate::auth::api_keys::revoked)?;
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
                crate::auth::api_keys::revoked().into()
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
        let change = CreditChange {
            scope: caller.user_id.clone(),
            is_admin: caller.is_admin,
            target: user_id(&target)?,
            request,
            key,
            hash,
            actor,
            audit_prefix: "credits",
            cost_per_video: self.inner.settings.cost_per_video,
            received_at_ms: crate::db::now_ms(),
        };
        let changed = match self.inner.writer.submit(LedgerOp::credits(change.clone())).await {
            Err(ServiceError::NotFound(_)) if own => {
                self.ensure_account(caller).await?;
                self.inner.writer.submit(LedgerOp::credits(change)).await?
            }
            other => other?,
        };
        let answer = match changed.into_credits()? {
            Changed::Answered(answer) => answer,
            Changed::Committed(target) => {
                // The figures and lists as they are now that the change committed.
                let snapshot = self.inner.views.read(target.as_str()).await?.ok_or(LedgerError::NoAccount)?;
                Replayable {
                    value: view::view(&snapshot, self.inner.settings.cost_per_video),
                    replayed: false,
                }
            }
        };
        Ok(answer)
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
        let adjust = crate::writer::OperatorAdjust {
            user_id: crate::service::user_id(user_id)?,
            amount: amount.get(),
            reason: reason.to_string(),
        };
        self.inner.writer.submit(LedgerOp::Operator(adjust)).await?.into_figures()
    }

    /// `credits check` and `/api/admin/check`.
    pub async fn check(&self) -> Result<CheckReport, ServiceError> {
        Ok(check::run(&self.inner.db.pool).await?)
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
                let initial = self.inner.settings.initial_credits;
                let open = crate::writer::OpenAccount {
                    user_id: crate::service::user_id(&caller.user_id)?,
                    email: caller.email.clone(),
                    email_verified: caller.email_verified,
                    name: caller.name.clone(),
                    initial_credits: initial,
                    initial_grant: self.initial_grant(),
                };
                let opened = self.inner.writer.submit(LedgerOp::Open(open)).await?.into_opened()?;
                if !opened.created {
                    return Ok((opened.account, false));
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
        let pending = crate::writer::PendingPurchases {
            user_id: crate::service::user_id(user_id)?,
            rollover_cap: self.inner.settings.subscription_rollover_cap,
        };
        self.inner.writer.submit(LedgerOp::PendingPurchases(pending)).await?.into_count()
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
        let due = crate::writer::ExpireDue::Grants { user_id: crate::service::user_id(user_id)? };
        self.inner.writer.submit(LedgerOp::Expire(due)).await?.into_count()?;
        Ok(true)
    }

    /// The sweep every instance runs: users with due grants are caught up,
    /// each in its own operation under its account lock, so any number of
    /// instances may sweep at once and each grant starts and ends exactly once.
    pub async fn sweep_grants(&self, limit: i64) -> Result<usize, ServiceError> {
        let now = crate::db::now_ms();
        let users = crate::ledger::grants::users_due(&self.inner.db.pool, now, limit).await?;
        let mut changed = 0;
        for user_id in users {
            let due = crate::writer::ExpireDue::Grants { user_id: stored(UserId::parse(&user_id))? };
            changed += self.inner.writer.submit(LedgerOp::Expire(due)).await?.into_count()? as usize;
        }
        Ok(changed)
    }

    /// Releases every open hold whose time is up (at most `limit`). Safe on
    /// any number of processes at once, and after downtime: each hold
    /// expires exactly once.
    pub async fn expire_holds(&self, limit: i64) -> Result<usize, ServiceError> {
        let due = crate::holds::due(&self.inner.db.pool, crate::db::now_ms(), limit).await?;
        let mut expired = 0;
        for (hold_id, owner) in due {
            let due = crate::writer::ExpireDue::Hold {
                hold_id: stored(HoldId::parse(&hold_id))?,
                owner: stored(UserId::parse(&owner))?,
            };
            expired += self.inner.writer.submit(LedgerOp::Expire(due)).await?.into_count()? as usize;
        }
        Ok(expired)
    }

    /// `POST /api/admin/grants/{id}/void`: the grant's unspent rest leaves the
    /// account; what was spent stays spent. Audited.
    pub async fn void_grant(
        &self,
        caller: &Principal,
        grant_id: i64,
        reason: &str,
    ) -> Result<crate::dto::VoidedGrant, ServiceError> {
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
        let void = crate::writer::VoidGrant {
            grant_id: stored(GrantId::try_from(grant_id))?,
            owner: stored(UserId::parse(&owner))?,
            reason: reason.to_string(),
            actor,
        };
        let voided = self.inner.writer.submit(LedgerOp::Void(void)).await?.into_voided()?;
        let (owner, removed, after) = (voided.owner, voided.removed, voided.after);
        Ok(crate::dto::VoidedGrant { grant_id, user_id: owner.into(), removed, credits: after.as_dto() })
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

/// A user id as a request or a session gives it.
pub(crate) fn user_id(text: &str) -> Result<UserId, ServiceError> {
    UserId::parse(text).map_err(ServiceError::Invalid)
}

/// An id read back from the database, which only ever stores well-formed ones.
fn stored<T>(parsed: Result<T, String>) -> Result<T, ServiceError> {
    parsed.map_err(|error| ServiceError::Internal(format!("a stored id is malformed: {error}")))
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

pub(crate) fn user_view(account: &Account) -> UserView {
    UserView {
        user_id: account.user_id.clone(),
        email: account.email.clone(),
        name: account.name.clone(),
        created_at: rfc3339(account.created_at_ms),
        credits: account.figures.as_dto(),
    }
}
