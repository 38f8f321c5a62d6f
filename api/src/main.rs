//! The `easel` command line.

use clap::{Parser, Subcommand};
use easel::Config;
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Apply pending database migrations to DATABASE_URL and exit
    Migrate,
    /// Print the OpenAPI document generated from the code, write it, or check the committed one
    Openapi {
        /// Fail (exit 1) if the file at --out differs from what the code generates
        #[arg(long)]
        check: bool,
        /// Where to write (or, with --check, what to compare); stdout when omitted
        #[arg(long)]
        out: Option<PathBuf>,
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
        Command::Migrate => {
            let config = load_config()?;
            let applied = easel::db::migrate::run_pending(config.database_url.expose()).await?;
            println!("applied {} migration(s){}", applied.len(), list(&applied));
            Ok(ExitCode::SUCCESS)
        }
    }
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
