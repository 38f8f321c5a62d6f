//! Typed configuration from `EASEL_*` environment variables (and `DATABASE_URL`).
//!
//! Every setting has a safe default for local use. A bad value stops start-up with an error that names
//! the variable; secret values are never echoed back.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where the process runs. Development enables conveniences (reading `.env`) that production refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Test,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, coloured when writing to a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// A value that must never reach a log line or an error message.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub environment: Environment,
    pub bind: SocketAddr,
    /// Where `easel worker` answers `/healthz` and `/metrics`; `None`: it listens nowhere.
    pub worker_bind: Option<SocketAddr>,
    /// When set, `/metrics` answers only a request with `Authorization: Bearer <it>`.
    pub metrics_token: Option<Secret>,
    pub database_url: Secret,
    pub data_dir: PathBuf,
    /// The built single-page app (`frontend/dist`), served at `/` for every path the API does not own.
    pub web_dir: PathBuf,
    pub public_url: String,
    pub log_format: LogFormat,
    pub log_filter: String,
    /// The job runner's pool; as many again are split among the HTTP workers' own pools.
    pub db_pool_size: usize,
    pub max_body_bytes: usize,
    pub shutdown_timeout: Duration,
    pub workers: usize,
    pub auth: AuthConfig,
    pub rate_limits: RateLimits,
    pub credits: CreditsConfig,
    pub generation: GenerationConfig,
    pub providers: ProvidersConfig,
    pub billing: BillingConfig,
    pub mail: MailConfig,
}

/// Outgoing email: links that reset a password or confirm an email.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// `smtps://user:pass@host:465`, `smtp://user:pass@host:587?tls=required`, or plain
    /// `smtp://host:25` to a relay on this machine.
    pub smtp_url: Option<Secret>,
    /// Without SMTP, outside production: each message is written here as an `.eml` file, to open by
    /// hand. `None` (production without SMTP): nothing is sent, and what needs mail answers 503.
    pub folder: Option<PathBuf>,
    /// The sender, as `Name <address>` or a bare address.
    pub from: String,
}

/// Credit packages and Stripe.
#[derive(Debug, Clone)]
pub struct BillingConfig {
    pub packages_path: PathBuf,
    /// Without it, checkout answers 503 `payments_not_configured` (unless development payments are on).
    pub stripe_secret_key: Option<Secret>,
    /// The endpoint's signing secret (`whsec_…`) for `POST /webhooks/stripe`.
    pub stripe_webhook_secret: Option<Secret>,
    pub stripe_api_base: String,
    /// Where Stripe sends the buyer after paying; `{PURCHASE_ID}` is replaced by the purchase's id.
    pub success_url: String,
    pub cancel_url: String,
    /// Development only: a checkout completes locally through the same purchase and grant code.
    pub dev_payments: bool,
}

/// The remote model providers, and how their outputs are fetched.
#[derive(Debug, Clone)]
pub struct ProvidersConfig {
    /// Replicate's API token; models with `provider = "replicate"` fail without it.
    pub replicate_api_token: Option<Secret>,
    pub replicate_api_base: String,
    /// Replicate's webhook signing secret (`whsec_…`); fetched once from Replicate when unset.
    pub replicate_webhook_secret: Option<Secret>,
    /// Ask Replicate for webhooks at `EASEL_PUBLIC_URL/webhooks/replicate` (polling covers lost ones).
    pub replicate_webhooks: bool,
    /// How long a running remote prediction may go without news before we ask for it.
    pub poll_interval: Duration,
    /// The secret path segment Cog servers upload outputs under (`--upload-url`); uploads are
    /// refused while it is unset, and Cog then sends outputs inline as data URIs.
    pub cog_upload_secret: Option<Secret>,
    pub download_max_bytes: usize,
    pub download_timeout: Duration,
    /// Hosts (and their subdomains) outputs may be downloaded from; empty allows any public host.
    pub download_allowed_hosts: Vec<String>,
    /// Tests only: downloads from loopback addresses (a local fake provider).
    pub download_allow_loopback: bool,
}

#[derive(Debug, Clone)]
pub struct GenerationConfig {
    pub models_path: PathBuf,
    pub moderation_path: PathBuf,
    /// Where images are stored (a local folder) when `s3` is not set.
    pub storage_dir: PathBuf,
    /// Sync each new local file (data and name) to disk before its row commits, so a power loss
    /// cannot keep the row and lose the file. Off trades that for speed on disposable data.
    pub storage_sync: bool,
    /// An S3-compatible bucket instead of the local folder.
    pub s3: Option<S3Config>,
    /// Generations one user may have queued or running at once.
    pub max_in_flight: i64,
    /// Jobs this process runs at once (`easel serve`); 0 leaves the work to `easel worker`.
    pub workers: usize,
    /// How long the `local` provider takes per request.
    pub local_render_time: Duration,
    /// A job not finished this long after submission fails and is refunded.
    pub deadline: Duration,
    /// A running job whose worker is silent this long goes back to the queue.
    pub heartbeat_timeout: Duration,
    pub watchdog_interval: Duration,
    /// How often a waiting request (an event stream, `Prefer: wait`) reads its generation again
    /// when no word of a change has come.
    pub change_poll: Duration,
    /// Attempts before a transient failure becomes final.
    pub max_attempts: i32,
    /// The largest file `POST /v1/uploads` takes.
    pub upload_max_bytes: usize,
    /// Where a generation's `webhook_url` may point and how its delivery is retried.
    pub webhooks: WebhookConfig,
}

/// Deliveries of `generation.completed` to the URL a submission named.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// How long one delivery may take.
    pub timeout: Duration,
    /// The wait before the second attempt; each later wait is four times the one before, up to
    /// six hours.
    pub retry: Duration,
    /// Attempts before a delivery is given up.
    pub max_attempts: i32,
    /// Host names (or their parent domains) webhooks may go to; empty allows any public host.
    pub allowed_hosts: Vec<String>,
    /// Only for local development and tests: permits loopback addresses (and plain http). Private,
    /// link-local and the other special ranges stay forbidden.
    pub allow_loopback: bool,
}

/// An S3-compatible bucket (AWS, MinIO, R2 …). Credentials not given here come from the usual
/// `AWS_*` variables or the instance's role.
#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: String,
    /// For S3-compatible services; requests are then path-style (`endpoint/bucket/key`).
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
    /// Plain http to the endpoint (a local MinIO); refused in production.
    pub allow_http: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct CreditsConfig {
    /// Free credits each UTC day; unspent ones expire at the next grant.
    pub daily_free: i64,
    /// Non-expiring credits a new account starts with.
    pub signup_bonus: i64,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// HS256 key for our own access tokens; when unset, a random key is generated and kept in
    /// `EASEL_DATA_DIR/jwt-secret` (development and test only).
    pub jwt_secret: Option<Secret>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub external: Option<ExternalIdentity>,
    /// Svix signing secret (`whsec_…`) of the identity provider's webhooks.
    pub webhook_secret: Option<Secret>,
    /// What the provider's `user.deleted` does here (`EASEL_IDENTITY_DELETED_USERS`).
    pub deleted_users: DeletedUsers,
    /// Support tools only for admins signed in with two steps (`EASEL_SUPPORT_TWO_FACTOR`).
    pub support_two_factor: bool,
}

/// What happens to an account its identity provider deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletedUsers {
    /// Deleted and erased, as when the person deletes it here (`POST /v1/me/deletion`).
    Erase,
    /// Only disabled: its images, collections and profile stay.
    Disable,
}

/// An external identity provider whose JWTs we accept (Clerk, Auth0, Keycloak …).
#[derive(Debug, Clone)]
pub struct ExternalIdentity {
    pub jwks_url: String,
    pub issuer: String,
    pub audience: String,
    /// Allowed `azp` values (Clerk puts the requesting origin there); empty means not checked.
    pub authorized_parties: Vec<String>,
}

/// Requests per minute. Per IP for anonymous calls and the auth endpoints, per user or key otherwise.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    pub auth_per_ip: u32,
    pub login_per_account: u32,
    pub api_per_principal: u32,
    pub anonymous_per_ip: u32,
}

/// The setting that could not be read, and why. Displays without the offending value when it is secret.
#[derive(Debug, thiserror::Error)]
#[error("invalid {variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:54320/easel";

impl Config {
    /// Reads the process environment. In development (the default) a `.env` file in the working
    /// directory is loaded first; variables already set win over it.
    pub fn from_env() -> Result<Self, ConfigError> {
        let environment = parse_environment(std::env::var("EASEL_ENV").ok().as_deref())?;
        if environment == Environment::Development {
            // A missing .env is normal; a malformed one is worth stopping for.
            match dotenvy::dotenv() {
                Ok(_) => {}
                Err(e) if e.not_found() => {}
                Err(e) => {
                    return Err(ConfigError {
                        variable: ".env",
                        reason: e.to_string(),
                    });
                }
            }
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any source of variables; tests pass a map.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let environment = parse_environment(get("EASEL_ENV").as_deref())?;
        let bind = parse_with("EASEL_BIND", get("EASEL_BIND"), "127.0.0.1:8080", |v| {
            v.parse::<SocketAddr>()
                .map_err(|_| "expected host:port, for example 127.0.0.1:8080".to_owned())
        })?;
        let worker_bind = get("EASEL_WORKER_BIND")
            .map(|v| {
                parse_with("EASEL_WORKER_BIND", Some(v), "", |v| {
                    v.parse::<SocketAddr>()
                        .map_err(|_| "expected host:port, for example 127.0.0.1:9464".to_owned())
                })
            })
            .transpose()?;
        let metrics_token = get("EASEL_METRICS_TOKEN").map(Secret::new);
        if metrics_token
            .as_ref()
            .is_some_and(|t| t.expose().len() < 16)
        {
            return Err(ConfigError {
                variable: "EASEL_METRICS_TOKEN",
                reason: "expected at least 16 characters".to_owned(),
            });
        }
        let database_url = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            // The value may carry a password: say what is wrong without repeating it.
            return Err(ConfigError {
                variable: "DATABASE_URL",
                reason: "expected a postgres:// or postgresql:// URL".to_owned(),
            });
        }
        let data_dir = PathBuf::from(get("EASEL_DATA_DIR").unwrap_or_else(|| ".data".to_owned()));
        let web_dir =
            PathBuf::from(get("EASEL_WEB_DIR").unwrap_or_else(|| "frontend/dist".to_owned()));
        let public_url = parse_with(
            "EASEL_PUBLIC_URL",
            get("EASEL_PUBLIC_URL"),
            &format!("http://{bind}"),
            |v| {
                if v.starts_with("http://") || v.starts_with("https://") {
                    Ok(v.trim_end_matches('/').to_owned())
                } else {
                    Err("expected an http:// or https:// URL".to_owned())
                }
            },
        )?;
        let log_format =
            parse_with(
                "EASEL_LOG_FORMAT",
                get("EASEL_LOG_FORMAT"),
                "pretty",
                |v| match v {
                    "pretty" => Ok(LogFormat::Pretty),
                    "json" => Ok(LogFormat::Json),
                    _ => Err("expected pretty or json".to_owned()),
                },
            )?;
        let log_filter = get("EASEL_LOG").unwrap_or_else(|| "info".to_owned());
        let db_pool_size =
            parse_with("EASEL_DB_POOL_SIZE", get("EASEL_DB_POOL_SIZE"), "10", |v| {
                bounded(v, 1, 1000)
            })?;
        let max_body_bytes = parse_with(
            "EASEL_MAX_BODY_BYTES",
            get("EASEL_MAX_BODY_BYTES"),
            "1048576",
            |v| bounded(v, 1024, 1 << 30),
        )?;
        let shutdown_timeout = parse_with(
            "EASEL_SHUTDOWN_TIMEOUT_SECS",
            get("EASEL_SHUTDOWN_TIMEOUT_SECS"),
            "30",
            |v| bounded(v, 0, 3600).map(|s| Duration::from_secs(s as u64)),
        )?;
        let workers = parse_with("EASEL_WORKERS", get("EASEL_WORKERS"), "0", |v| {
            bounded(v, 0, 256)
        })?;
        let auth = auth_config(&get, environment)?;
        let per_minute = |name: &'static str, default: &str| {
            parse_with(name, get(name), default, |v| {
                bounded(v, 1, 1_000_000).map(|n| n as u32)
            })
        };
        let rate_limits = RateLimits {
            auth_per_ip: per_minute("EASEL_RATE_LIMIT_AUTH_PER_MINUTE", "20")?,
            login_per_account: per_minute("EASEL_RATE_LIMIT_LOGIN_PER_ACCOUNT_PER_MINUTE", "5")?,
            api_per_principal: per_minute("EASEL_RATE_LIMIT_API_PER_MINUTE", "600")?,
            anonymous_per_ip: per_minute("EASEL_RATE_LIMIT_ANONYMOUS_PER_MINUTE", "300")?,
        };
        let credit_amount = |name: &'static str, default: &str| {
            parse_with(name, get(name), default, |v| {
                bounded(v, 0, 1_000_000).map(|n| n as i64)
            })
        };
        let credits = CreditsConfig {
            daily_free: credit_amount("EASEL_DAILY_FREE_CREDITS", "10")?,
            signup_bonus: credit_amount("EASEL_SIGNUP_BONUS_CREDITS", "20")?,
        };
        let secs = |name: &'static str, default: &str, min: usize, max: usize| {
            parse_with(name, get(name), default, |v| {
                bounded(v, min, max).map(|s| Duration::from_secs(s as u64))
            })
        };
        let attempts = |name: &'static str, default: &str| {
            parse_with(name, get(name), default, |v| {
                bounded(v, 1, 20).map(|n| n as i32)
            })
        };
        let generation = GenerationConfig {
            models_path: PathBuf::from(
                get("EASEL_MODELS_PATH").unwrap_or_else(|| "config/models.toml".to_owned()),
            ),
            moderation_path: PathBuf::from(
                get("EASEL_MODERATION_PATH").unwrap_or_else(|| "config/moderation.toml".to_owned()),
            ),
            storage_dir: get("EASEL_STORAGE_DIR")
                .map_or_else(|| data_dir.join("images"), PathBuf::from),
            storage_sync: flag("EASEL_STORAGE_SYNC", get("EASEL_STORAGE_SYNC"), "true")?,
            s3: s3_config(&get, environment)?,
            max_in_flight: parse_with(
                "EASEL_MAX_IN_FLIGHT",
                get("EASEL_MAX_IN_FLIGHT"),
                "4",
                |v| bounded(v, 1, 100_000).map(|n| n as i64),
            )?,
            workers: parse_with("EASEL_JOB_WORKERS", get("EASEL_JOB_WORKERS"), "16", |v| {
                bounded(v, 0, 1000)
            })?,
            local_render_time: parse_with(
                "EASEL_LOCAL_RENDER_MS",
                get("EASEL_LOCAL_RENDER_MS"),
                "1500",
                |v| bounded(v, 0, 600_000).map(|ms| Duration::from_millis(ms as u64)),
            )?,
            deadline: secs("EASEL_GENERATION_DEADLINE_SECS", "600", 5, 86_400)?,
            heartbeat_timeout: secs("EASEL_JOB_HEARTBEAT_TIMEOUT_SECS", "30", 2, 3600)?,
            watchdog_interval: secs("EASEL_WATCHDOG_INTERVAL_SECS", "5", 1, 3600)?,
            change_poll: secs("EASEL_CHANGE_POLL_SECS", "30", 1, 3600)?,
            upload_max_bytes: parse_with(
                "EASEL_UPLOAD_MAX_BYTES",
                get("EASEL_UPLOAD_MAX_BYTES"),
                "10485760",
                |v| bounded(v, 1024, 1 << 30),
            )?,
            max_attempts: attempts("EASEL_JOB_MAX_ATTEMPTS", "3")?,
            webhooks: WebhookConfig {
                timeout: secs("EASEL_WEBHOOK_TIMEOUT_SECS", "10", 1, 60)?,
                retry: secs("EASEL_WEBHOOK_RETRY_SECS", "10", 1, 3600)?,
                max_attempts: attempts("EASEL_WEBHOOK_MAX_ATTEMPTS", "8")?,
                allowed_hosts: host_list(get("EASEL_WEBHOOK_ALLOWED_HOSTS").unwrap_or_default()),
                allow_loopback: flag(
                    "EASEL_WEBHOOK_ALLOW_LOOPBACK",
                    get("EASEL_WEBHOOK_ALLOW_LOOPBACK"),
                    "false",
                )?,
            },
        };
        if generation.webhooks.allow_loopback && environment == Environment::Production {
            return Err(ConfigError {
                variable: "EASEL_WEBHOOK_ALLOW_LOOPBACK",
                reason: "is for local development and tests and is refused in production"
                    .to_owned(),
            });
        }
        let providers = providers_config(&get, environment)?;
        let billing = billing_config(&get, environment, &public_url)?;
        let mail = mail_config(&get, environment, &data_dir)?;
        Ok(Self {
            environment,
            bind,
            worker_bind,
            metrics_token,
            database_url: Secret::new(database_url),
            data_dir,
            web_dir,
            public_url,
            log_format,
            log_filter,
            db_pool_size,
            max_body_bytes,
            shutdown_timeout,
            workers,
            auth,
            rate_limits,
            credits,
            generation,
            providers,
            billing,
            mail,
        })
    }
}

fn mail_config(
    get: &impl Fn(&str) -> Option<String>,
    environment: Environment,
    data_dir: &std::path::Path,
) -> Result<MailConfig, ConfigError> {
    let smtp_url = get("EASEL_SMTP_URL").filter(|v| !v.trim().is_empty());
    if let Some(raw) = &smtp_url {
        // Never echo the value: it may hold the SMTP password.
        let refuse = |reason: &str| ConfigError {
            variable: "EASEL_SMTP_URL",
            reason: reason.to_owned(),
        };
        let url = reqwest::Url::parse(raw.trim())
            .map_err(|_| refuse("expected a URL such as smtps://user:pass@smtp.example.com:465"))?;
        let encrypted = url.scheme() == "smtps"
            || url
                .query_pairs()
                .any(|(k, v)| k == "tls" && v == "required");
        if url.scheme() != "smtp" && url.scheme() != "smtps" {
            return Err(refuse("expected an smtp:// or smtps:// URL"));
        }
        let local = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        if environment == Environment::Production && !encrypted && !local {
            return Err(refuse(
                "sends mail (and the SMTP password) unencrypted: use smtps:// or ?tls=required, \
                 or a relay on this machine",
            ));
        }
    }
    let from = get("EASEL_MAIL_FROM").unwrap_or_else(|| "Easel <no-reply@localhost>".to_owned());
    if from.trim().parse::<lettre::message::Mailbox>().is_err() {
        return Err(ConfigError {
            variable: "EASEL_MAIL_FROM",
            reason: format!("expected an address, or Name <address> (got {from:?})"),
        });
    }
    let folder = (smtp_url.is_none() && environment != Environment::Production)
        .then(|| data_dir.join("mail"));
    Ok(MailConfig {
        smtp_url: smtp_url.map(|v| Secret::new(v.trim().to_owned())),
        folder,
        from: from.trim().to_owned(),
    })
}

fn billing_config(
    get: &impl Fn(&str) -> Option<String>,
    environment: Environment,
    public_url: &str,
) -> Result<BillingConfig, ConfigError> {
    let url = |name: &'static str, default: String| {
        parse_with(name, get(name), &default, |v| {
            if v.starts_with("https://") || v.starts_with("http://") {
                Ok(v.to_owned())
            } else {
                Err("expected an http:// or https:// URL".to_owned())
            }
        })
    };
    let stripe_webhook_secret = get("EASEL_STRIPE_WEBHOOK_SECRET").map(Secret::new);
    if stripe_webhook_secret
        .as_ref()
        .is_some_and(|s| !s.expose().starts_with("whsec_"))
    {
        return Err(ConfigError {
            variable: "EASEL_STRIPE_WEBHOOK_SECRET",
            reason: "expected the endpoint's signing secret, starting with whsec_".to_owned(),
        });
    }
    let dev_payments = flag("EASEL_DEV_PAYMENTS", get("EASEL_DEV_PAYMENTS"), "false")?;
    if dev_payments && environment != Environment::Development {
        return Err(ConfigError {
            variable: "EASEL_DEV_PAYMENTS",
            reason: "grants credits without payment and is allowed only with EASEL_ENV=development"
                .to_owned(),
        });
    }
    Ok(BillingConfig {
        packages_path: PathBuf::from(
            get("EASEL_PACKAGES_PATH").unwrap_or_else(|| "config/packages.toml".to_owned()),
        ),
        stripe_secret_key: get("EASEL_STRIPE_SECRET_KEY").map(Secret::new),
        stripe_webhook_secret,
        stripe_api_base: url("EASEL_STRIPE_API_BASE", "https://api.stripe.com".to_owned())?
            .trim_end_matches('/')
            .to_owned(),
        success_url: url(
            "EASEL_CHECKOUT_SUCCESS_URL",
            format!("{public_url}/pricing?checkout=success&purchase={{PURCHASE_ID}}"),
        )?,
        cancel_url: url(
            "EASEL_CHECKOUT_CANCEL_URL",
            format!("{public_url}/pricing?checkout=canceled"),
        )?,
        dev_payments,
    })
}

fn s3_config(
    get: &impl Fn(&str) -> Option<String>,
    environment: Environment,
) -> Result<Option<S3Config>, ConfigError> {
    let backend = parse_with(
        "EASEL_STORAGE_BACKEND",
        get("EASEL_STORAGE_BACKEND"),
        "local",
        |v| match v {
            "local" | "s3" => Ok(v.to_owned()),
            _ => Err("expected local or s3".to_owned()),
        },
    )?;
    if backend == "local" {
        return Ok(None);
    }
    let bucket = get("EASEL_S3_BUCKET").ok_or(ConfigError {
        variable: "EASEL_S3_BUCKET",
        reason: "is required when EASEL_STORAGE_BACKEND=s3".to_owned(),
    })?;
    let endpoint = get("EASEL_S3_ENDPOINT");
    if endpoint
        .as_ref()
        .is_some_and(|e| !(e.starts_with("https://") || e.starts_with("http://")))
    {
        return Err(ConfigError {
            variable: "EASEL_S3_ENDPOINT",
            reason: "expected an http:// or https:// URL".to_owned(),
        });
    }
    let allow_http = flag("EASEL_S3_ALLOW_HTTP", get("EASEL_S3_ALLOW_HTTP"), "false")?;
    if allow_http && environment == Environment::Production {
        return Err(ConfigError {
            variable: "EASEL_S3_ALLOW_HTTP",
            reason: "plain http to object storage is refused in production".to_owned(),
        });
    }
    Ok(Some(S3Config {
        bucket,
        endpoint,
        region: get("EASEL_S3_REGION").unwrap_or_else(|| "us-east-1".to_owned()),
        access_key_id: get("EASEL_S3_ACCESS_KEY_ID").map(Secret::new),
        secret_access_key: get("EASEL_S3_SECRET_ACCESS_KEY").map(Secret::new),
        allow_http,
    }))
}

fn providers_config(
    get: &impl Fn(&str) -> Option<String>,
    environment: Environment,
) -> Result<ProvidersConfig, ConfigError> {
    let flag = |name: &'static str, default: &str| flag(name, get(name), default);
    let replicate_api_base = parse_with(
        "EASEL_REPLICATE_API_BASE",
        get("EASEL_REPLICATE_API_BASE"),
        "https://api.replicate.com",
        |v| {
            if v.starts_with("https://") || v.starts_with("http://") {
                Ok(v.trim_end_matches('/').to_owned())
            } else {
                Err("expected an http:// or https:// URL".to_owned())
            }
        },
    )?;
    let replicate_webhook_secret = get("EASEL_REPLICATE_WEBHOOK_SECRET").map(Secret::new);
    if replicate_webhook_secret
        .as_ref()
        .is_some_and(|s| !s.expose().starts_with("whsec_"))
    {
        return Err(ConfigError {
            variable: "EASEL_REPLICATE_WEBHOOK_SECRET",
            reason: "expected a signing secret starting with whsec_".to_owned(),
        });
    }
    let cog_upload_secret = get("EASEL_COG_UPLOAD_SECRET").map(Secret::new);
    if cog_upload_secret.as_ref().is_some_and(|s| {
        s.expose().len() < 16
            || !s
                .expose()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) {
        return Err(ConfigError {
            variable: "EASEL_COG_UPLOAD_SECRET",
            reason: "expected at least 16 characters of A-Z, a-z, 0-9, '-' and '_'".to_owned(),
        });
    }
    let download_allow_loopback = flag("EASEL_DOWNLOAD_ALLOW_LOOPBACK", "false")?;
    if download_allow_loopback && environment == Environment::Production {
        return Err(ConfigError {
            variable: "EASEL_DOWNLOAD_ALLOW_LOOPBACK",
            reason: "is for tests against a local fake and is refused in production".to_owned(),
        });
    }
    Ok(ProvidersConfig {
        replicate_api_token: get("EASEL_REPLICATE_API_TOKEN").map(Secret::new),
        replicate_api_base,
        replicate_webhook_secret,
        replicate_webhooks: flag("EASEL_REPLICATE_WEBHOOKS", "true")?,
        poll_interval: parse_with(
            "EASEL_PROVIDER_POLL_SECS",
            get("EASEL_PROVIDER_POLL_SECS"),
            "10",
            |v| bounded(v, 1, 3600).map(|s| Duration::from_secs(s as u64)),
        )?,
        cog_upload_secret,
        download_max_bytes: parse_with(
            "EASEL_DOWNLOAD_MAX_BYTES",
            get("EASEL_DOWNLOAD_MAX_BYTES"),
            "52428800",
            |v| bounded(v, 1024, 1 << 30),
        )?,
        download_timeout: parse_with(
            "EASEL_DOWNLOAD_TIMEOUT_SECS",
            get("EASEL_DOWNLOAD_TIMEOUT_SECS"),
            "60",
            |v| bounded(v, 1, 3600).map(|s| Duration::from_secs(s as u64)),
        )?,
        download_allowed_hosts: host_list(
            get("EASEL_DOWNLOAD_ALLOWED_HOSTS").unwrap_or_else(|| "replicate.delivery".to_owned()),
        ),
        download_allow_loopback,
    })
}

/// A comma-separated list of host names, lower-cased; empty (or `*`) for any host.
fn host_list(value: String) -> Vec<String> {
    value
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty() && h != "*")
        .collect()
}

fn auth_config(
    get: &impl Fn(&str) -> Option<String>,
    environment: Environment,
) -> Result<AuthConfig, ConfigError> {
    let jwt_secret = get("EASEL_JWT_SECRET").map(Secret::new);
    match &jwt_secret {
        Some(s) if s.expose().len() < 32 => {
            return Err(ConfigError {
                variable: "EASEL_JWT_SECRET",
                reason: "must be at least 32 characters".to_owned(),
            });
        }
        None if environment == Environment::Production => {
            return Err(ConfigError {
                variable: "EASEL_JWT_SECRET",
                reason: "must be set in production (a random key is generated only in development)"
                    .to_owned(),
            });
        }
        _ => {}
    }
    let access_token_ttl = parse_with(
        "EASEL_ACCESS_TOKEN_TTL_SECS",
        get("EASEL_ACCESS_TOKEN_TTL_SECS"),
        "900",
        |v| bounded(v, 10, 86_400).map(|s| Duration::from_secs(s as u64)),
    )?;
    let refresh_token_ttl = parse_with(
        "EASEL_REFRESH_TOKEN_TTL_DAYS",
        get("EASEL_REFRESH_TOKEN_TTL_DAYS"),
        "30",
        |v| bounded(v, 1, 365).map(|d| Duration::from_secs(d as u64 * 86_400)),
    )?;
    let external_vars = [
        "EASEL_AUTH_JWKS_URL",
        "EASEL_AUTH_ISSUER",
        "EASEL_AUTH_AUDIENCE",
    ];
    let external = match external_vars.map(get) {
        [None, None, None] => None,
        [Some(jwks_url), Some(issuer), Some(audience)] => {
            if !(jwks_url.starts_with("https://") || jwks_url.starts_with("http://")) {
                return Err(ConfigError {
                    variable: "EASEL_AUTH_JWKS_URL",
                    reason: "expected an https:// URL".to_owned(),
                });
            }
            let authorized_parties = get("EASEL_AUTH_AUTHORIZED_PARTIES")
                .map(|v| {
                    v.split(',')
                        .map(|p| p.trim().to_owned())
                        .filter(|p| !p.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            Some(ExternalIdentity {
                jwks_url,
                issuer,
                audience,
                authorized_parties,
            })
        }
        values => {
            let missing = external_vars
                .iter()
                .zip(values.iter())
                .find(|(_, v)| v.is_none())
                .map_or("EASEL_AUTH_JWKS_URL", |(name, _)| *name);
            return Err(ConfigError {
                variable: missing,
                reason: "EASEL_AUTH_JWKS_URL, EASEL_AUTH_ISSUER and EASEL_AUTH_AUDIENCE are set together"
                    .to_owned(),
            });
        }
    };
    let webhook_secret = get("EASEL_IDENTITY_WEBHOOK_SECRET").map(Secret::new);
    if webhook_secret
        .as_ref()
        .is_some_and(|s| !s.expose().starts_with("whsec_"))
    {
        return Err(ConfigError {
            variable: "EASEL_IDENTITY_WEBHOOK_SECRET",
            reason: "expected a Svix signing secret starting with whsec_".to_owned(),
        });
    }
    let deleted_users = parse_with(
        "EASEL_IDENTITY_DELETED_USERS",
        get("EASEL_IDENTITY_DELETED_USERS"),
        "erase",
        |v| match v {
            "erase" => Ok(DeletedUsers::Erase),
            "disable" => Ok(DeletedUsers::Disable),
            _ => Err("expected erase or disable".to_owned()),
        },
    )?;
    let support_two_factor = parse_with(
        "EASEL_SUPPORT_TWO_FACTOR",
        get("EASEL_SUPPORT_TWO_FACTOR"),
        if environment == Environment::Production {
            "required"
        } else {
            "optional"
        },
        |v| match v {
            "required" => Ok(true),
            "optional" => Ok(false),
            _ => Err("expected required or optional".to_owned()),
        },
    )?;
    Ok(AuthConfig {
        jwt_secret,
        access_token_ttl,
        refresh_token_ttl,
        external,
        webhook_secret,
        deleted_users,
        support_two_factor,
    })
}

fn parse_environment(value: Option<&str>) -> Result<Environment, ConfigError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None | Some("development") => Ok(Environment::Development),
        Some("test") => Ok(Environment::Test),
        Some("production") => Ok(Environment::Production),
        Some(_) => Err(ConfigError {
            variable: "EASEL_ENV",
            reason: "expected development, test or production".to_owned(),
        }),
    }
}

fn parse_with<T>(
    variable: &'static str,
    value: Option<String>,
    default: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    let raw = value.unwrap_or_else(|| default.to_owned());
    parse(raw.trim()).map_err(|reason| ConfigError {
        variable,
        reason: format!("{reason} (got {raw:?})"),
    })
}

/// `true`/`1` or `false`/`0`.
fn flag(variable: &'static str, value: Option<String>, default: &str) -> Result<bool, ConfigError> {
    parse_with(variable, value, default, |v| match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    })
}

fn bounded(value: &str, min: usize, max: usize) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from {min} to {max}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    /// Every setting this file reads is listed, with its default, in `.env.example` and the README.
    #[test]
    fn every_setting_is_documented() -> anyhow::Result<()> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let example = std::fs::read_to_string(root.join(".env.example"))?;
        let readme = std::fs::read_to_string(root.join("README.md"))?;
        let source = include_str!("config.rs");
        let mut names: Vec<&str> = source
            .split('"')
            .filter(|s| {
                s.len() > 6
                    && s.starts_with("EASEL_")
                    && s.bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        assert!(names.len() > 40, "found only {names:?}");
        for name in names {
            assert!(
                example
                    .lines()
                    .any(|line| line.starts_with(&format!("{name}="))),
                "{name} is not in .env.example"
            );
            assert!(
                readme.contains(&format!("`{name}`")),
                "{name} is not in the README"
            );
        }
        Ok(())
    }

    #[test]
    fn defaults_are_safe_for_local_use() -> Result<(), ConfigError> {
        let c = config(&[])?;
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.environment, Environment::Development);
        assert_eq!(c.data_dir, PathBuf::from(".data"));
        assert_eq!(c.database_url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
        assert_eq!(c.worker_bind, None);
        assert_eq!(c.log_format, LogFormat::Pretty);
        Ok(())
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let err = config(&[("EASEL_BIND", "nowhere")])
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.starts_with("invalid EASEL_BIND")),
            "{err:?}"
        );
        let err = config(&[("EASEL_METRICS_TOKEN", "short")])
            .err()
            .map(|e| e.variable);
        assert_eq!(err, Some("EASEL_METRICS_TOKEN"));
        let err = config(&[("EASEL_WORKER_BIND", "9464")])
            .err()
            .map(|e| e.variable);
        assert_eq!(err, Some("EASEL_WORKER_BIND"));
        let err = config(&[("EASEL_DB_POOL_SIZE", "0")])
            .err()
            .map(|e| e.variable);
        assert_eq!(err, Some("EASEL_DB_POOL_SIZE"));
        let err = config(&[("EASEL_LOG_FORMAT", "xml")])
            .err()
            .map(|e| e.variable);
        assert_eq!(err, Some("EASEL_LOG_FORMAT"));
        let err = config(&[("EASEL_ENV", "staging")])
            .err()
            .map(|e| e.variable);
        assert_eq!(err, Some("EASEL_ENV"));
        for flag in [
            "EASEL_DEV_PAYMENTS",
            "EASEL_S3_ALLOW_HTTP",
            "EASEL_REPLICATE_WEBHOOKS",
            "EASEL_DOWNLOAD_ALLOW_LOOPBACK",
            "EASEL_WEBHOOK_ALLOW_LOOPBACK",
        ] {
            let err = config(&[
                ("EASEL_STORAGE_BACKEND", "s3"),
                ("EASEL_S3_BUCKET", "b"),
                (flag, "maybe"),
            ])
            .err()
            .map(|e| e.variable);
            assert_eq!(err, Some(flag));
        }
        let err = config(&[("EASEL_STRIPE_WEBHOOK_SECRET", "not-a-whsec")])
            .err()
            .map(|e| e.variable);
        assert_eq!(err, Some("EASEL_STRIPE_WEBHOOK_SECRET"));
    }

    #[test]
    fn database_url_errors_do_not_repeat_the_secret() {
        let err = config(&[("DATABASE_URL", "mysql://root:hunter2@db/easel")])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("DATABASE_URL"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn external_identity_settings_come_together() {
        let err = config(&[(
            "EASEL_AUTH_JWKS_URL",
            "https://idp.example/.well-known/jwks.json",
        )])
        .err()
        .map(|e| e.variable);
        assert_eq!(err, Some("EASEL_AUTH_ISSUER"));
        let ok = config(&[
            ("EASEL_AUTH_JWKS_URL", "https://idp.example/jwks"),
            ("EASEL_AUTH_ISSUER", "https://idp.example"),
            ("EASEL_AUTH_AUDIENCE", "easel"),
        ]);
        assert!(ok.is_ok_and(|c| c.auth.external.is_some()));
    }

    #[test]
    fn production_requires_a_jwt_secret() {
        let err = config(&[("EASEL_ENV", "production")])
            .err()
            .map(|e| e.variable);
        assert_eq!(err, Some("EASEL_JWT_SECRET"));
        let err = config(&[("EASEL_JWT_SECRET", "short")])
            .err()
            .map(|e| e.variable);
        assert_eq!(err, Some("EASEL_JWT_SECRET"));
    }

    #[test]
    fn support_tools_ask_for_two_steps_in_production_unless_told_otherwise()
    -> Result<(), ConfigError> {
        let secret = (
            "EASEL_JWT_SECRET",
            "a-production-secret-of-enough-length-0123456789",
        );
        assert!(!config(&[])?.auth.support_two_factor);
        let production = config(&[("EASEL_ENV", "production"), secret])?;
        assert!(production.auth.support_two_factor);
        let relaxed = config(&[
            ("EASEL_ENV", "production"),
            secret,
            ("EASEL_SUPPORT_TWO_FACTOR", "optional"),
        ])?;
        assert!(!relaxed.auth.support_two_factor);
        let err = config(&[("EASEL_SUPPORT_TWO_FACTOR", "yes")])
            .err()
            .map(|e| e.variable);
        assert_eq!(err, Some("EASEL_SUPPORT_TWO_FACTOR"));
        Ok(())
    }

    #[test]
    fn webhooks_to_loopback_are_refused_in_production() {
        let production = [
            ("EASEL_ENV", "production"),
            (
                "EASEL_JWT_SECRET",
                "a-production-secret-of-enough-length-0123456789",
            ),
            ("EASEL_WEBHOOK_ALLOW_LOOPBACK", "true"),
        ];
        let err = config(&production).err().map(|e| e.variable);
        assert_eq!(err, Some("EASEL_WEBHOOK_ALLOW_LOOPBACK"));
        let allowed = config(&[("EASEL_WEBHOOK_ALLOW_LOOPBACK", "true")]);
        assert!(allowed.is_ok_and(|c| c.generation.webhooks.allow_loopback));
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() -> Result<(), ConfigError> {
        let c = config(&[("DATABASE_URL", "postgres://u:hunter2@db/easel")])?;
        assert!(!format!("{c:?}").contains("hunter2"));
        Ok(())
    }
}
