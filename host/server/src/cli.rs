//! Command line: `host [serve]`, `host migrate`, `host config validate FILE`, `host plugin ...`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::settings::Settings;
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(name = "host", version, about = "Challenge platform server with Wasm rule plugins")]
pub struct Cli {
    /// Settings file (TOML). Environment variables override it; see the README.
    #[arg(long, global = true, env = "CHALLENGE_SETTINGS")]
    pub settings: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Challenge configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Rule plugin lifecycle: push, list, test, activate, rollback.
    Plugin {
        #[command(subcommand)]
        command: crate::admin::cli::PluginCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a challenges file and print every problem found.
    Validate {
        /// The challenges.json file to check.
        file: PathBuf,
    },
}

/// Entry point of the `host` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.settings.as_deref()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(2);
        }
    };
    let mut log = settings.log.clone();
    if matches!(cli.command, Some(Command::Plugin { .. })) {
        // Tool output, not server logs: only warnings and errors unless RUST_LOG says otherwise.
        log.level = "warn".to_owned();
    }
    telemetry::init_logging(&log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli.command.unwrap_or(Command::Serve), settings))
}

async fn run(command: Command, settings: Settings) -> ExitCode {
    let outcome = match command {
        Command::Serve => crate::server::serve(settings).await,
        Command::Migrate => crate::server::migrate(&settings).await,
        Command::Config { command: ConfigCommand::Validate { file } } => return crate::server::validate_config(&file),
        Command::Plugin { command } => return crate::admin::cli::run(command).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
