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
    CheckConfig {
        /// Instead, print what a reload with FILE in place of the running configuration
        /// would change (`key: old -> new`, secrets redacted) and whether it would be
        /// accepted. Exit code: 0 accepted, 1 rejected (a key that cannot change live),
        /// 2 FILE invalid.
        #[arg(long, value_name = "FILE")]
        diff: Option<PathBuf>,
    },
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
        Command::CheckConfig { diff: Some(file) } => check_reload(&config, &file),
        Command::CheckConfig { diff: None } => {
            print!("{}", config.to_redacted_toml());
            ExitCode::SUCCESS
        }
        Command::Migrate => {
            let _flush_on_exit = crate::telemetry::init(&config.log);
            run_async(migrate(config))
        }
        Command::Serve => {
            let _flush_on_exit = crate::telemetry::init(&config.log);
            run_async(serve(config, cli.config))
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

/// `check-config --diff FILE`: the reload of FILE against the running configuration.
fn check_reload(running: &Config, file: &std::path::Path) -> ExitCode {
    let next = match Config::load(Some(file)) {
        Ok(c) => c,
        Err(e) => {
            println!("rejected: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    // What a reload decides: the same function (`reload::plan`).
    let decision = crate::reload::plan(running, &next);
    let changes = crate::reload::diff(running, &next);
    for change in &changes {
        println!("{change}");
    }
    match decision {
        Err(crate::reload::Rejected::NotLive { key, .. }) => {
            println!("rejected: `{key}` cannot change without a restart");
            ExitCode::from(1)
        }
        Err(e) => {
            println!("rejected: {e}");
            ExitCode::from(1)
        }
        Ok(changes) if changes.is_empty() => {
            println!("accepted: no changes");
            ExitCode::SUCCESS
        }
        Ok(changes) => {
            println!("accepted: {} change(s) apply live", changes.len());
            ExitCode::SUCCESS
        }
    }
}

async fn serve(config: Config, path: Option<PathBuf>) -> anyhow::Result<()> {
    let app = Application::build_from(config, path).await?;
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
