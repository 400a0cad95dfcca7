//! The command line: `bulkhead serve | migrate | check-config [--config FILE]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::startup::Application;
use crate::store::postgres::PgStore;

#[derive(Debug, Parser)]
#[command(
    name = "bulkhead",
    version,
    about = "Actor-based, high-throughput REST API service"
)]
pub struct Cli {
    /// TOML configuration file (defaults apply to every key it leaves out).
    #[arg(long, global = true, env = "BULKHEAD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the effective configuration (secrets redacted), or name the bad key.
    CheckConfig,
}

/// Parse arguments, run the command and return the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bulkhead: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::CheckConfig => {
            print!("{}", config.to_redacted_toml());
            ExitCode::SUCCESS
        }
        Command::Migrate => {
            let _flush_on_exit = crate::telemetry::init(&config.log);
            run_async(migrate(config))
        }
        Command::Serve => {
            let _flush_on_exit = crate::telemetry::init(&config.log);
            run_async(serve(config))
        }
    }
}

fn run_async(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    match actix_web::rt::System::new().block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "bulkhead failed");
            eprintln!("bulkhead: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    app.run_until_stopped().await?;
    Ok(())
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    if config.database.url.is_none() {
        anyhow::bail!("database.url (or DATABASE_URL) must be set to migrate");
    }
    let store = PgStore::connect(&config.database)?;
    let applied = store.migrate().await?;
    println!("applied {applied} migration(s); schema is current");
    Ok(())
}
