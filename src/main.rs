//! The `keygate` binary: parse the command line, load settings, start logging, dispatch.

use clap::Parser;
use keygate::cli::{Cli, Command, run};
use keygate::config::Settings;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let command = match cli.command {
        // A client-side tool: no settings, logging or database.
        Some(Command::Dpop(cmd)) => return keygate::cli::run_dpop(cmd).await,
        Some(Command::ClientAssertion(args)) => {
            return keygate::cli::run_client_assertion(args);
        }
        Some(Command::Login(args)) => return keygate::cli::run_login(args).await,
        Some(Command::Proof(cmd)) => return keygate::cli::run_proof(cmd).await,
        command => command.unwrap_or(Command::Serve),
    };
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("keygate: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    keygate::telemetry::init(&settings.log);
    match run(command, settings).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("keygate: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
