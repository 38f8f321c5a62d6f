//! The `easel` command line.

use clap::{Parser, Subcommand};
use easel::Config;
use std::path::PathBuf;
use std::process::ExitCode;

// A page of the gallery is dozens of short-lived strings and rows; glibc's allocator spent a tenth of
// the server's time on them (bench/gallery).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "easel",
    version,
    about = "Easel: a backend for text-to-image products"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run pending migrations, then serve the HTTP API on EASEL_BIND until Ctrl-C
    Serve,
    /// Run generation jobs only (no HTTP): any number of workers share the queue in PostgreSQL
    Worker,
    /// Apply pending database migrations to DATABASE_URL and exit
    Migrate,
    /// Print the OpenAPI document generated from the code, write it, or check the committed one
    /// Operator tasks: create users, change roles
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    Openapi {
        /// Fail (exit 1) if the file at --out differs from what the code generates
        #[arg(long)]
        check: bool,
        /// Where to write (or, with --check, what to compare); stdout when omitted
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an account with a password (from EASEL_NEW_USER_PASSWORD, else generated and printed once)
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long)]
        username: String,
        /// Give the account the admin role
        #[arg(long)]
        admin: bool,
    },
    /// Recompute every balance from the ledger, and every in-flight count (the cap's) from the
    /// generations; exit 1 naming each account that differs
    VerifyLedger,
    /// Check that every live image's original and thumbnail are in storage; exit 1 naming each
    /// file missing (after any repair)
    VerifyFiles {
        /// Make a missing thumbnail again from its original
        #[arg(long)]
        repair: bool,
    },
    /// Make every live image's thumbnail again from its original with this version's encoder (after
    /// an upgrade that changed it), and remove the thumbnails no image uses any more
    RemakeThumbnails,
    /// Compare Stripe's Checkout Sessions since a date with our purchases, and grant the credits of
    /// any paid session that is missing them (safe to run again)
    ReconcilePayments {
        /// YYYY-MM-DD (UTC)
        #[arg(long)]
        since: chrono::NaiveDate,
    },
    /// Set an account's password (from EASEL_NEW_USER_PASSWORD, else generated and printed once)
    /// and sign out all its sessions: for a person who lost theirs
    ResetPassword { username: String },
    /// Turn off an account's two-step sign-in (its authenticator key and recovery codes stop
    /// working): for a person who lost both. Its password still signs in.
    ResetTwoFactor { username: String },
    /// Change an account's role
    SetRole {
        username: String,
        #[arg(value_parser = ["user", "admin"])]
        role: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Openapi { check, out } => openapi(check, out),
        Command::Serve => {
            let config = load_config()?;
            easel::server::serve(config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin { command } => {
            let config = load_config()?;
            admin(&config, command).await
        }
        Command::Worker => {
            let config = load_config()?;
            easel::server::work(config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            let config = load_config()?;
            let applied = easel::db::migrate::run_pending(config.database_url.expose()).await?;
            println!("applied {} migration(s){}", applied.len(), list(&applied));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A password for an operator's command: EASEL_NEW_USER_PASSWORD, else a random one (and whether it
/// was made up, so it is shown once).
fn new_password() -> (String, bool) {
    match std::env::var("EASEL_NEW_USER_PASSWORD") {
        Ok(p) if !p.is_empty() => (p, false),
        _ => (
            easel::identity::api_keys::generate().key[4..28].to_owned(),
            true,
        ),
    }
}

async fn admin(config: &Config, command: AdminCommand) -> anyhow::Result<ExitCode> {
    use diesel_async::AsyncConnection;
    use easel::identity::{Role, service};
    easel::db::migrate::run_pending(config.database_url.expose()).await?;
    let mut conn = diesel_async::AsyncPgConnection::establish(config.database_url.expose()).await?;
    let describe = |e: easel::ApiError| {
        let fields: Vec<String> = e
            .errors
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect();
        anyhow::anyhow!(
            "{}{}",
            e.detail,
            if fields.is_empty() {
                String::new()
            } else {
                format!(" ({})", fields.join("; "))
            }
        )
    };
    match command {
        AdminCommand::CreateUser {
            email,
            username,
            admin,
        } => {
            let (password, generated) = new_password();
            let role = if admin { Role::Admin } else { Role::User };
            let account =
                service::parse_new_user(&email, &username, &password, role).map_err(describe)?;
            let user = service::create_account(&mut conn, account)
                .await
                .map_err(describe)?;
            println!(
                "created {} ({}) with role {}",
                user.username,
                user.id,
                role.as_str()
            );
            if generated {
                println!("password (shown once): {password}");
            }
        }
        AdminCommand::ResetPassword { username } => {
            let (password, generated) = new_password();
            let (user, ended) = service::reset_password(&mut conn, &username, &password)
                .await
                .map_err(describe)?;
            println!(
                "set the password of {} ({}); {ended} session(s) signed out",
                user.username, user.id
            );
            if generated {
                println!("password (shown once): {password}");
            }
        }
        AdminCommand::ResetTwoFactor { username } => {
            let user = service::reset_two_factor(&mut conn, &username)
                .await
                .map_err(describe)?;
            println!(
                "turned off two-step sign-in of {} ({})",
                user.username, user.id
            );
        }
        AdminCommand::SetRole { username, role } => {
            let role = if role == "admin" {
                Role::Admin
            } else {
                Role::User
            };
            let user = service::set_role(&mut conn, &username, role)
                .await
                .map_err(describe)?;
            println!("{} is now {}", user.username, user.role);
        }
        AdminCommand::ReconcilePayments { since } => {
            drop(conn);
            let pool = easel::db::pool(config.database_url.expose(), 2)?;
            let shared = easel::app::Shared::new(config.clone(), pool)?;
            let since = since.and_time(chrono::NaiveTime::MIN).and_utc();
            easel::billing::service::reconcile(&shared.state, since).await?;
        }
        AdminCommand::VerifyFiles { repair } => {
            drop(conn);
            let pool = easel::db::pool(config.database_url.expose(), 2)?;
            let shared = easel::app::Shared::new(config.clone(), pool)?;
            let report = easel::gallery::verify::verify_files(&shared.state, repair).await?;
            for file in &report.missing {
                println!(
                    "image {}: its {} ({}) is missing{}",
                    file.image_id.0,
                    file.variant,
                    file.hash,
                    if file.repaired {
                        "; made again from the original"
                    } else {
                        ""
                    }
                );
            }
            let lost = report.missing.iter().filter(|f| !f.repaired).count();
            println!(
                "{} live image(s) checked; {} file(s) missing, {} made again",
                report.images,
                report.missing.len(),
                report.missing.len() - lost
            );
            if lost > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        AdminCommand::RemakeThumbnails => {
            drop(conn);
            let pool = easel::db::pool(config.database_url.expose(), 2)?;
            let shared = easel::app::Shared::new(config.clone(), pool)?;
            let report = easel::gallery::verify::remake_thumbnails(&shared.state).await?;
            println!(
                "{} live image(s); {} thumbnail(s) made again ({} bytes before, {} after); {} without \
                 their original (see verify-files)",
                report.images,
                report.remade,
                report.bytes_before,
                report.bytes_after,
                report.without_original
            );
        }
        AdminCommand::VerifyLedger => {
            let mismatches = easel::credits::store::mismatches(&mut conn).await?;
            for m in &mismatches {
                println!(
                    "account {}: balance free {} purchased {}, ledger says free {} purchased {}",
                    m.user_id, m.free, m.purchased, m.ledger_free, m.ledger_purchased
                );
            }
            let drifts = easel::generation::store::in_flight_drift(&mut conn).await?;
            for d in &drifts {
                println!(
                    "account {}: in-flight counters say {}, its generations {}",
                    d.user_id, d.counted, d.in_flight
                );
            }
            if !mismatches.is_empty() || !drifts.is_empty() {
                println!(
                    "{} account(s) differ from the ledger, {} in their in-flight counters",
                    mismatches.len(),
                    drifts.len()
                );
                return Ok(ExitCode::FAILURE);
            }
            println!("every balance matches the ledger; every in-flight counter its generations");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn load_config() -> anyhow::Result<Config> {
    let config = Config::from_env()?;
    easel::telemetry::init(config.log_format, &config.log_filter);
    Ok(config)
}

fn openapi(check: bool, out: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let json = easel::openapi::to_json(&easel::openapi::document())?;
    match (check, out) {
        (false, None) => print!("{json}"),
        (false, Some(path)) => std::fs::write(&path, json)?,
        (true, path) => {
            let path = path.unwrap_or_else(|| PathBuf::from("openapi/openapi.json"));
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            if committed != json {
                eprintln!(
                    "{} is out of date with the code; run `make openapi` and commit the result",
                    path.display()
                );
                return Ok(ExitCode::FAILURE);
            }
            println!("{} matches the code", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list(versions: &[String]) -> String {
    if versions.is_empty() {
        String::new()
    } else {
        format!(": {}", versions.join(", "))
    }
}
