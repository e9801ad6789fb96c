//! The `keygate` binary: parse the command line, load settings, start logging, dispatch.

use clap::Parser;
use keygate::cli::{Cli, Command, run};
use keygate::config::Settings;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("keygate: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    keygate::telemetry::init(&settings.log);
    match run(cli.command.unwrap_or(Command::Serve), settings).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("keygate: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
