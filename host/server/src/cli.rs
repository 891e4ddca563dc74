//! Command line: `host [serve]`, `host migrate`, `host config validate FILE`.

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
    telemetry::init_logging(&settings.log);
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
