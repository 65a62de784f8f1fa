//! Grants that start and end: due grants are caught up under the account's
//! lock, a grant is voided or expires exactly once, and credits returned to an
//! ended grant leave the account. Each of these writes ledger entries
//! (`store::apply`), so this module sits above both `store` and `grants`.

use super::error::LedgerError;
use super::grants::{adding_delta, removing_delta, GrantEffect};
use super::rules::{Delta, EntryKind};
use super::store::{self, Applied, EntryMeta, Guard};
use crate::db::now_ms;
use sqlx::{AnyConnection, Row};

/// A spend or a hold, usually in one conditional UPDATE: enough credits, an
/// active account and no due grant. When a grant is due, the account is
/// locked, its grants are started and ended, and the debit is tried again.
pub async fn apply_covered(
    conn: &mut AnyConnection,
    user_id: &str,
    delta: &Delta,
    amount: i64,
    meta: &EntryMeta<'_>,
) -> Result<Applied, LedgerError> {
    match store::apply(conn, user_id, delta, Guard::CoveredLive(amount), meta).await {
        Err(LedgerError::GrantsDue) => {
            store::lock(conn, user_id).await?.ok_or(LedgerError::NoAccount)?;
            catch_up(conn, user_id, now_ms()).await?;
            store::apply(conn, user_id, delta, Guard::Covered(amount), meta).await
        }
        other => other,
    }
}

/// Starts due scheduled grants and expires due ones for one user. The caller
/// holds the user's account lock (`store::lock`) in the same transaction.
pub async fn catch_up(conn: &mut AnyConnection, user_id: &str, now: i64) -> Result<usize, LedgerError> {
    let mut changed = 0;
    let due = sqlx::query(
        "SELECT id, kind, amount FROM grants WHERE user_id = $1 AND status = 'scheduled' AND effective_at <= $2 \
         ORDER BY effective_at, id",
    )
    .bind(user_id)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    for row in due {
        let (id, kind, amount): (i64, String, i64) =
            (row.try_get("id")?, row.try_get("kind")?, row.try_get("amount")?);
        let meta = EntryMeta {
            reason: Some("grant starts"),
            actor: "system",
            grants: GrantEffect::Activate(id),
            ..Default::default()
        };
        store::apply(conn, user_id, &adding_delta(&kind, amount), Guard::None, &meta).await?;
        changed += 1;
    }
    let expiring = sqlx::query(
        "SELECT id FROM grants WHERE user_id = $1 AND status = 'active' AND expires_at IS NOT NULL AND expires_at <= $2 ORDER BY id",
    )
    .bind(user_id)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    for row in expiring {
        if end(conn, row.try_get("id")?, EntryKind::Expire, "grant expired", "system").await?.is_some() {
            changed += 1;
        }
    }
    Ok(changed)
}

/// Ends one grant (expiry or void) exactly once: its unspent rest leaves the
/// account with an `expire` or `void` entry; held credits stay held and are
/// removed when their hold lets go. Returns the credits removed.
pub async fn end(
    conn: &mut AnyConnection,
    grant_id: i64,
    kind: EntryKind,
    reason: &str,
    actor: &str,
) -> Result<Option<i64>, LedgerError> {
    let status = if kind == EntryKind::Void { "voided" } else { "expired" };
    let ended = sqlx::query(
        "UPDATE grants SET status = $1 WHERE id = $2 AND status IN ('active', 'scheduled') \
         RETURNING user_id, kind, remaining, source_entry_id",
    )
    .bind(status)
    .bind(grant_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = ended else { return Ok(None) };
    let (user_id, grant_kind, rest): (String, String, i64) =
        (row.try_get("user_id")?, row.try_get("kind")?, row.try_get("remaining")?);
    let counted = row.try_get::<Option<i64>, _>("source_entry_id")?.is_some();
    if !counted {
        // A scheduled grant never counted: it ends without touching the figures.
        sqlx::query("UPDATE grants SET remaining = 0, expired = expired + $1 WHERE id = $2")
            .bind(rest)
            .bind(grant_id)
            .execute(&mut *conn)
            .await?;
        return Ok(Some(0));
    }
    if rest > 0 {
        let meta = EntryMeta {
            reason: Some(reason),
            actor,
            grants: GrantEffect::Exact(vec![(grant_id, rest)]),
            ..Default::default()
        };
        store::apply(conn, &user_id, &removing_delta(kind, &grant_kind, rest), Guard::None, &meta).await?;
        if kind == EntryKind::Expire {
            metrics::counter!("grant_expiries_total").increment(1);
        }
    }
    Ok(Some(rest))
}

/// Removes credits that came back (a hold's release) to grants that have
/// since expired or been voided.
pub async fn settle_returns(conn: &mut AnyConnection, parts: &[(i64, i64)]) -> Result<(), LedgerError> {
    for (grant_id, amount) in parts {
        let row = sqlx::query("SELECT user_id, kind, status FROM grants WHERE id = $1")
            .bind(grant_id)
            .fetch_one(&mut *conn)
            .await?;
        let status: String = row.try_get("status")?;
        if status == "active" {
            continue;
        }
        let (user_id, grant_kind): (String, String) = (row.try_get("user_id")?, row.try_get("kind")?);
        let kind = if status == "voided" { EntryKind::Void } else { EntryKind::Expire };
        let meta = EntryMeta {
            reason: Some("returned to an ended grant"),
            actor: "system",
            grants: GrantEffect::Exact(vec![(*grant_id, *amount)]),
            ..Default::default()
        };
        store::apply(conn, &user_id, &removing_delta(kind, &grant_kind, *amount), Guard::None, &meta).await?;
    }
    Ok(())
}

/// Subscription roll-over: after a new period's grant (`newest_entry_id`),
/// unspent credits of earlier periods (grants with `reference`) above `cap`
/// expire, oldest first.
pub async fn cap_rollover(
    conn: &mut AnyConnection,
    user_id: &str,
    reference: &str,
    cap: i64,
    newest_entry_id: i64,
) -> Result<(), LedgerError> {
    let rows = sqlx::query(
        "SELECT id, kind, remaining FROM grants WHERE user_id = $1 AND reference = $2 AND status = 'active' \
         AND remaining > 0 AND source_entry_id <> $3 ORDER BY created_at, id",
    )
    .bind(user_id)
    .bind(reference)
    .bind(newest_entry_id)
    .fetch_all(&mut *conn)
    .await?;
    let carried: i64 = rows.iter().map(|row| row.try_get::<i64, _>("remaining").unwrap_or(0)).sum();
    let mut excess = carried - cap;
    for row in rows {
        if excess <= 0 {
            break;
        }
        let (id, kind, remaining): (i64, String, i64) =
            (row.try_get("id")?, row.try_get("kind")?, row.try_get("remaining")?);
        let take = excess.min(remaining);
        let meta = EntryMeta {
            reason: Some("subscription roll-over cap"),
            actor: "system",
            grants: GrantEffect::Exact(vec![(id, take)]),
            ..Default::default()
        };
        store::apply(conn, user_id, &removing_delta(EntryKind::Expire, &kind, take), Guard::None, &meta)
            .await?;
        excess -= take;
    }
    Ok(())
}
