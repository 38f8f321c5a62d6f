//! `generation.completed` for API clients. A submission may name a `webhook_url`; once the
//! generation ends (succeeded, failed or canceled) every process that runs jobs takes due
//! deliveries from `generation_webhooks` and POSTs the generation there, signed the Standard
//! Webhooks way with its owner's secret, retrying with backoff until the receiver answers 2xx or
//! the attempts run out. The URL is held to the download rules: https only, public addresses only,
//! resolved once and connected to only at the addresses checked.

use super::{GenerationId, service, store};
use crate::app::AppState;
use crate::config::WebhookConfig;
use crate::identity::UserId;
use crate::storage::download::{self, DownloadError, Policy};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Integer, Nullable, Text, Timestamptz, Uuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use std::sync::Arc;
use std::time::Duration;

/// The longest `webhook_url` taken.
pub const MAX_URL_LEN: usize = 2000;

/// What a delivery says it is (`type` in the body).
pub const EVENT: &str = "generation.completed";

/// How often each process looks for deliveries that are due.
const TICK: Duration = Duration::from_secs(1);

/// Deliveries one process makes at once.
const SLOTS: usize = 16;

/// How long a claimed delivery is held: a process that dies mid-delivery leaves it for another
/// after this. Longer than an attempt can take (see [`attempt`]), so no two processes send it at
/// once.
const LEASE_SECS: i32 = 150;

/// The longest wait between two attempts.
const MAX_WAIT: Duration = Duration::from_secs(6 * 3600);

fn policy(config: &WebhookConfig) -> Policy {
    Policy {
        max_bytes: 0,
        timeout: config.timeout,
        // Empty (the default): any public host, since callers name their own receivers.
        allowed_hosts: config.allowed_hosts.clone(),
        allow_loopback: config.allow_loopback,
    }
}

/// A submission's `webhook_url` as it is kept (parsed and written out again, escaped as it will be
/// sent), or why it is refused, in words for its field error. Addresses a name
/// resolves to are checked again at every delivery.
pub fn accept_url(config: &WebhookConfig, raw: &str) -> Result<String, String> {
    if raw.chars().count() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    let url =
        reqwest::Url::parse(raw).map_err(|e| format!("must be an absolute https URL ({e})"))?;
    let local_name = url
        .host_str()
        .is_some_and(|h| h == "localhost" || h.ends_with(".localhost"));
    if local_name && !config.allow_loopback {
        return Err("must not point at this machine (localhost)".to_owned());
    }
    match policy(config).check_url(&url) {
        Ok(()) if url.as_str().len() > MAX_URL_LEN => Err(format!(
            "must be at most {MAX_URL_LEN} characters once escaped"
        )),
        Ok(()) => Ok(url.into()),
        Err(DownloadError::Refused(why)) => Err(format!("must be a public https URL: {why}")),
        Err(other) => Err(other.to_string()),
    }
}

/// Records the webhook of a generation being submitted (in the submission's transaction).
pub async fn record(
    conn: &mut AsyncPgConnection,
    generation: GenerationId,
    user: UserId,
    url: &str,
) -> diesel::QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO generation_webhooks (generation_id, user_id, url) VALUES ($1, $2, $3)",
    )
    .bind::<Uuid, _>(generation.0)
    .bind::<Uuid, _>(user.0)
    .bind::<Text, _>(url)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Where a generation's webhook stands, as `GET /v1/generations/{id}/webhook` shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema, QueryableByName)]
pub struct WebhookStatus {
    /// Where `generation.completed` is sent.
    #[diesel(sql_type = Text)]
    pub url: String,
    /// Attempts made so far.
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    /// When the receiver answered 2xx; null until then.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub delivered_at: Option<DateTime<Utc>>,
    /// When the next attempt is due (after the generation ends); null once delivered or given up.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The receiver's HTTP status on the last attempt; null when it did not answer.
    #[diesel(sql_type = Nullable<Integer>)]
    pub last_status: Option<i32>,
    /// What went wrong on the last attempt; null after a delivery.
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
}

/// The webhook of `owner`'s generation `id`, if it has one.
pub async fn status_of(
    conn: &mut AsyncPgConnection,
    owner: UserId,
    id: GenerationId,
) -> diesel::QueryResult<Option<WebhookStatus>> {
    diesel::sql_query(
        "SELECT url, attempts, delivered_at, next_attempt_at, last_status, last_error \
         FROM generation_webhooks WHERE generation_id = $1 AND user_id = $2",
    )
    .bind::<Uuid, _>(id.0)
    .bind::<Uuid, _>(owner.0)
    .get_result(conn)
    .await
    .map(Some)
    .or_else(|e| match e {
        diesel::result::Error::NotFound => Ok(None),
        e => Err(e),
    })
}

/// A new signing secret: `whsec_` and base64 of 32 random bytes.
fn new_secret() -> String {
    format!("whsec_{}", STANDARD.encode(rand::random::<[u8; 32]>()))
}

#[derive(QueryableByName)]
struct SecretRow {
    #[diesel(sql_type = Text)]
    secret: String,
}

#[derive(QueryableByName)]
struct UserSecret {
    #[diesel(sql_type = Uuid)]
    user_id: UserId,
    #[diesel(sql_type = Text)]
    secret: String,
}

/// `user`'s signing secret, made on first need.
pub async fn secret_of(conn: &mut AsyncPgConnection, user: UserId) -> diesel::QueryResult<String> {
    secrets_of(conn, &[user])
        .await?
        .pop()
        .map(|(_, secret)| secret)
        .ok_or(diesel::result::Error::NotFound)
}

/// The signing secrets of `users`, made for those who have none yet: two statements however many
/// users. Of two first callers for one user, the one whose insert loses reads the winner's.
pub async fn secrets_of(
    conn: &mut AsyncPgConnection,
    users: &[UserId],
) -> diesel::QueryResult<Vec<(UserId, String)>> {
    use diesel::sql_types::Array;
    let mut ids: Vec<uuid::Uuid> = users.iter().map(|u| u.0).collect();
    ids.sort_unstable();
    ids.dedup();
    let fresh: Vec<String> = ids.iter().map(|_| new_secret()).collect();
    diesel::sql_query(
        "INSERT INTO webhook_secrets (user_id, secret) SELECT * FROM unnest($1::uuid[], $2::text[]) \
         ON CONFLICT (user_id) DO NOTHING",
    )
    .bind::<Array<Uuid>, _>(&ids)
    .bind::<Array<Text>, _>(&fresh)
    .execute(conn)
    .await?;
    let rows: Vec<UserSecret> =
        diesel::sql_query("SELECT user_id, secret FROM webhook_secrets WHERE user_id = ANY($1)")
            .bind::<Array<Uuid>, _>(&ids)
            .load(conn)
            .await?;
    Ok(rows.into_iter().map(|r| (r.user_id, r.secret)).collect())
}

/// Forgets a deleted account's webhooks: its deliveries not yet made (its receiver is no one's now)
/// and its signing secret.
pub async fn forget(conn: &mut AsyncPgConnection, user: UserId) -> diesel::QueryResult<()> {
    diesel::sql_query("DELETE FROM generation_webhooks WHERE user_id = $1")
        .bind::<diesel::sql_types::Uuid, _>(user)
        .execute(conn)
        .await?;
    diesel::sql_query("DELETE FROM webhook_secrets WHERE user_id = $1")
        .bind::<diesel::sql_types::Uuid, _>(user)
        .execute(conn)
        .await?;
    Ok(())
}

/// Replaces `user`'s signing secret; deliveries from now on are signed with the new one.
pub async fn rotate_secret(
    conn: &mut AsyncPgConnection,
    user: UserId,
) -> diesel::QueryResult<String> {
    diesel::sql_query(
        "INSERT INTO webhook_secrets (user_id, secret) VALUES ($1, $2) \
         ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, created_at = now() \
         RETURNING secret",
    )
    .bind::<Uuid, _>(user.0)
    .bind::<Text, _>(new_secret())
    .get_result::<SecretRow>(conn)
    .await
    .map(|row| row.secret)
}

#[derive(Debug, QueryableByName)]
struct Due {
    #[diesel(sql_type = Uuid)]
    generation_id: GenerationId,
    #[diesel(sql_type = Uuid)]
    user_id: UserId,
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
}

/// Claims up to `limit` deliveries whose generation has ended and whose time has come, counting
/// the attempt and holding it for the lease.
async fn claim(conn: &mut AsyncPgConnection, limit: i64) -> diesel::QueryResult<Vec<Due>> {
    diesel::sql_query(
        "UPDATE generation_webhooks w \
         SET attempts = w.attempts + 1, next_attempt_at = now() + make_interval(secs => $2) \
         FROM (SELECT gw.generation_id FROM generation_webhooks gw \
               JOIN generations g ON g.id = gw.generation_id \
               WHERE gw.next_attempt_at <= now() \
                 AND g.status IN ('succeeded', 'failed', 'canceled') \
               ORDER BY gw.next_attempt_at LIMIT $1 \
               FOR UPDATE OF gw SKIP LOCKED) due \
         WHERE w.generation_id = due.generation_id \
         RETURNING w.generation_id, w.user_id, w.url, w.attempts",
    )
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .bind::<Integer, _>(LEASE_SECS)
    .load(conn)
    .await
}

/// What one attempt came to.
#[derive(Debug)]
struct Outcome {
    status: Option<i32>,
    error: Option<String>,
    /// Retrying cannot help (the URL is refused): give up now.
    permanent: bool,
}

/// Records how an attempt went; returns its outcome's name for `/metrics`.
async fn record_outcome(
    conn: &mut AsyncPgConnection,
    config: &WebhookConfig,
    due: &Due,
    outcome: &Outcome,
) -> diesel::QueryResult<&'static str> {
    let (next, name) = match &outcome.error {
        None => (None, "delivered"),
        Some(_) if outcome.permanent || due.attempts >= config.max_attempts => (None, "given_up"),
        Some(_) => (
            Some(Utc::now() + wait_after(config, due.attempts)),
            "retrying",
        ),
    };
    diesel::sql_query(
        "UPDATE generation_webhooks \
         SET next_attempt_at = $2, last_status = $3, last_error = $4, \
             delivered_at = CASE WHEN $4 IS NULL THEN now() END \
         WHERE generation_id = $1",
    )
    .bind::<Uuid, _>(due.generation_id.0)
    .bind::<Nullable<Timestamptz>, _>(next)
    .bind::<Nullable<Integer>, _>(outcome.status)
    .bind::<Nullable<Text>, _>(outcome.error.as_deref())
    .execute(conn)
    .await
    .map(|_| name)
}

/// The wait after failed attempt number `attempts`: the configured first wait, four times longer
/// each time, at most six hours.
fn wait_after(config: &WebhookConfig, attempts: i32) -> chrono::Duration {
    let factor = 4u32.saturating_pow(u32::try_from(attempts - 1).unwrap_or(0));
    let wait = config.retry.saturating_mul(factor).min(MAX_WAIT);
    chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(6))
}

/// Starts this process's deliverer (beside its job runner): up to [`SLOTS`] deliveries at once,
/// each in a task of its own, so a slow receiver holds up only its own.
pub fn spawn(state: Arc<AppState>) {
    tokio::spawn(async move {
        let slots = Arc::new(tokio::sync::Semaphore::new(SLOTS));
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // Every free slot filled means more may be waiting: go again at once.
            loop {
                let free = slots.available_permits();
                if free == 0 {
                    break;
                }
                match start_due(&state, &slots, free).await {
                    Ok(started) if started == free => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook deliveries could not start");
                        break;
                    }
                }
            }
        }
    });
}

/// Claims up to `free` due deliveries and starts each in a task holding one of `slots`. Returns
/// how many it started.
async fn start_due(
    state: &Arc<AppState>,
    slots: &Arc<tokio::sync::Semaphore>,
    free: usize,
) -> anyhow::Result<usize> {
    let mut conn = state.pool.get().await?;
    let due = claim(&mut conn, free as i64).await?;
    if due.is_empty() {
        return Ok(0);
    }
    let ids: Vec<GenerationId> = due.iter().map(|d| d.generation_id).collect();
    let rows = store::find_many(&mut conn, &ids).await?;
    let views = service::present(rows, &state.catalog, &mut conn)
        .await
        .map_err(|e| anyhow::anyhow!("presenting generations: {e:?}"))?;
    let users: Vec<UserId> = due.iter().map(|d| d.user_id).collect();
    let secrets = secrets_of(&mut conn, &users).await?;
    let mut ready = Vec::with_capacity(due.len());
    for d in due {
        let secret = secrets
            .iter()
            .find(|(user, _)| *user == d.user_id)
            .map(|(_, secret)| secret.clone())
            .ok_or_else(|| anyhow::anyhow!("no webhook secret for {}", d.user_id.0))?;
        // The receiver is another program: its links must say which server they are on.
        let view = views
            .iter()
            .find(|v| v.id == d.generation_id)
            .cloned()
            .map(|v| v.linked_from(&state.config.public_url));
        ready.push((d, view, secret));
    }
    // No connection is held while receivers answer.
    drop(conn);
    let started = ready.len();
    for (due, view, secret) in ready {
        // Only this loop takes slots, and it counted them free.
        let slot = Arc::clone(slots).acquire_owned().await?;
        let state = Arc::clone(state);
        tokio::spawn(async move {
            let config = &state.config.generation.webhooks;
            let outcome = match &view {
                Some(view) => attempt(config, &due, view, &secret).await,
                None => Outcome {
                    status: None,
                    error: Some("the generation is gone".to_owned()),
                    permanent: true,
                },
            };
            if let Some(error) = &outcome.error {
                tracing::info!(generation = %due.generation_id.0, attempt = due.attempts,
                    url = %due.url, error = %error, "webhook not delivered");
            }
            // Unrecorded, the attempt is tried again when its lease ends.
            let recorded = match state.pool.get().await {
                Ok(mut conn) => record_outcome(&mut conn, config, &due, &outcome)
                    .await
                    .map_err(anyhow::Error::from),
                Err(e) => Err(anyhow::anyhow!("{e}")),
            };
            match recorded {
                Ok(name) => state.metrics.observe_webhook(name),
                Err(e) => tracing::warn!(error = %e, generation = %due.generation_id.0,
                    "a webhook attempt could not be recorded"),
            }
            drop(slot);
        });
    }
    Ok(started)
}

/// The body of a delivery.
#[derive(serde::Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    timestamp: DateTime<Utc>,
    data: &'a super::types::Generation,
}

/// The signature headers of a delivery: `webhook-id` (the generation's id, the same on every
/// attempt, so a receiver can apply it once), `webhook-timestamp` and `webhook-signature`.
pub fn signature_headers(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> anyhow::Result<[(&'static str, String); 3]> {
    let mac = crate::http::signature::sign(secret, id, timestamp, body)
        .map_err(|e| anyhow::anyhow!("signing a webhook: {e:?}"))?;
    Ok([
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", format!("v1,{}", STANDARD.encode(mac))),
    ])
}

/// One attempt, name lookup included, within twice the configured timeout (at most 120 s of the
/// lease's 150).
async fn attempt(
    config: &WebhookConfig,
    due: &Due,
    view: &super::types::Generation,
    secret: &str,
) -> Outcome {
    let limit = config.timeout.saturating_mul(2);
    tokio::time::timeout(limit, send(config, due, view, secret))
        .await
        .unwrap_or_else(|_| Outcome {
            status: None,
            error: Some(format!("no answer within {} s", limit.as_secs())),
            permanent: false,
        })
}

async fn send(
    config: &WebhookConfig,
    due: &Due,
    view: &super::types::Generation,
    secret: &str,
) -> Outcome {
    let failed = |error: String, permanent: bool| Outcome {
        status: None,
        error: Some(error),
        permanent,
    };
    let now = Utc::now();
    let body = match serde_json::to_vec(&Event {
        kind: EVENT,
        timestamp: now,
        data: view,
    }) {
        Ok(body) => body,
        Err(e) => return failed(e.to_string(), true),
    };
    let headers = match signature_headers(
        secret,
        &due.generation_id.0.to_string(),
        now.timestamp(),
        &body,
    ) {
        Ok(headers) => headers,
        Err(e) => return failed(e.to_string(), true),
    };
    let url = match reqwest::Url::parse(&due.url) {
        Ok(url) => url,
        Err(e) => return failed(e.to_string(), true),
    };
    let client = match download::pinned_client(&policy(config), &url, false).await {
        Ok(client) => client,
        Err(DownloadError::Refused(why)) => return failed(format!("refused: {why}"), true),
        Err(e) => return failed(e.to_string(), false),
    };
    let mut request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::USER_AGENT, "Easel-Webhooks/1");
    for (name, value) in headers {
        request = request.header(name, value);
    }
    match request.body(body).send().await {
        Ok(response) if response.status().is_success() => Outcome {
            status: Some(i32::from(response.status().as_u16())),
            error: None,
            permanent: false,
        },
        Ok(response) => Outcome {
            status: Some(i32::from(response.status().as_u16())),
            // A redirect is not followed: the receiver must answer at the URL it gave.
            error: Some(format!("the receiver answered {}", response.status())),
            permanent: false,
        },
        Err(e) => failed(download::describe(&e), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(allow_loopback: bool) -> WebhookConfig {
        WebhookConfig {
            timeout: Duration::from_secs(10),
            retry: Duration::from_secs(10),
            max_attempts: 8,
            allowed_hosts: Vec::new(),
            allow_loopback,
        }
    }

    #[test]
    fn urls_must_be_public_https() {
        let refusal = |config: &WebhookConfig, url: &str| accept_url(config, url).err();
        let strict = config(false);
        // Kept as written out again, escaped as it will be sent.
        assert_eq!(
            accept_url(&strict, "https://Hooks.Example.com/a b"),
            Ok("https://hooks.example.com/a%20b".to_owned())
        );
        assert_eq!(
            refusal(&strict, "https://hooks.example.com/easel?x=1"),
            None
        );
        for refused in [
            "not a url",
            "/relative",
            "http://hooks.example.com/",
            "ftp://hooks.example.com/",
            "https://10.0.0.8/",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/",
            "https://127.0.0.1:8080/",
            "https://localhost/",
            "https://api.localhost/",
        ] {
            assert!(refusal(&strict, refused).is_some(), "{refused} was taken");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(refusal(&strict, &long).is_some());
        // Loopback for local development: only loopback, over http or https.
        let local = config(true);
        assert_eq!(refusal(&local, "http://127.0.0.1:9000/hook"), None);
        assert_eq!(refusal(&local, "http://localhost:9000/hook"), None);
        assert!(refusal(&local, "http://10.0.0.8/").is_some());
        assert!(refusal(&local, "https://169.254.169.254/").is_some());
        // An operator may name the hosts (and their subdomains) webhooks may go to.
        let listed = WebhookConfig {
            allowed_hosts: vec!["hooks.example.com".to_owned()],
            ..config(false)
        };
        assert_eq!(refusal(&listed, "https://hooks.example.com/a"), None);
        assert_eq!(refusal(&listed, "https://eu.hooks.example.com/a"), None);
        assert!(refusal(&listed, "https://example.com/a").is_some());
        assert!(refusal(&listed, "https://evilhooks.example.com/a").is_some());
    }

    #[test]
    fn retries_wait_four_times_longer_each_time_up_to_six_hours() {
        let c = config(false);
        let waits: Vec<i64> = (1..=8).map(|n| wait_after(&c, n).num_seconds()).collect();
        assert_eq!(
            waits,
            [10, 40, 160, 640, 2560, 10240, 21600, 21600],
            "seconds after each failed attempt"
        );
    }
}
