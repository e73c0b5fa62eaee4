//! `flowerd`: the Flower NetFlow v9 collector and its offline tools.
//!
//! `main` only parses arguments and hands over to [`run`]; each command lives
//! in its own module.

#![forbid(unsafe_code)]

mod capture;
mod cli;
mod config;
mod decode;
mod http;
mod log;
mod output;
mod serve;
mod tools;
mod users;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flowerd: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    match cli
        .command
        .unwrap_or(cli::Command::Serve(cli::ServeArgs::default()))
    {
        cli::Command::Serve(args) => {
            let cfg = effective_config(&args)?;
            if args.check {
                cfg.validate()?;
                print!("{}", cfg.to_toml());
                return Ok(ExitCode::SUCCESS);
            }
            serve::run(cfg)
        }
        cli::Command::CheckConfig { file } => {
            let cfg = config::Config::load(&file)?;
            cfg.validate()?;
            print!("{}", cfg.to_toml());
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::User(cmd) => user(cmd),
        cli::Command::Decode(args) => decode::run(&args),
        cli::Command::Replay(args) => tools::replay::run(&args),
        cli::Command::Generate(args) => tools::generate::run(&args),
    }
}

/// Defaults, then the config file, then flags.
fn effective_config(args: &cli::ServeArgs) -> anyhow::Result<config::Config> {
    let mut cfg = match &args.config {
        Some(path) => config::Config::load(path)?,
        None => config::Config::default(),
    };
    if !args.netflow.is_empty() {
        let template = cfg.netflow.first().cloned().unwrap_or_default();
        cfg.netflow = args
            .netflow
            .iter()
            .map(|a| config::Listener {
                listen: *a,
                ..template.clone()
            })
            .collect();
    }
    if let Some(h) = args.http {
        cfg.http.listen = h;
    }
    if let Some(d) = &args.data {
        cfg.data.clone_from(d);
    }
    if args.tls_cert.is_some() {
        cfg.http.tls_cert.clone_from(&args.tls_cert);
        cfg.http.tls_key.clone_from(&args.tls_key);
    }
    Ok(cfg)
}

fn user(cmd: cli::UserCommand) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let open = |data: &std::path::Path| {
        flowstore::Store::open(data, flowstore::StoreConfig::default())
            .with_context(|| format!("opening the store in {}", data.display()))
    };
    match cmd {
        cli::UserCommand::Add {
            name,
            role,
            password_stdin,
            replace,
            data,
        } => {
            let role = match role {
                cli::RoleArg::Admin => flowstore::Role::Admin,
                cli::RoleArg::Viewer => flowstore::Role::Viewer,
            };
            users::add(&open(&data)?, &name, role, password_stdin, replace)?;
            eprintln!("flowerd: user {name:?} saved");
        }
        cli::UserCommand::Delete { name, data } => {
            users::delete(&open(&data)?, &name)?;
            eprintln!("flowerd: user {name:?} deleted");
        }
        cli::UserCommand::List { data } => {
            for u in open(&data)?.users()? {
                println!(
                    "{}\t{}",
                    u.name,
                    match u.role {
                        flowstore::Role::Admin => "admin",
                        flowstore::Role::Viewer => "viewer",
                    }
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
