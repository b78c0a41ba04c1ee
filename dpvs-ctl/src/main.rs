//! `dpvs-ctl`: the command-line client of the `dpvs` daemon. It sends one control request over
//! the daemon's Unix socket and prints the answer as a table (`ipvsadm -ln` layout for
//! services) or as JSON. Every error is one line on stderr and a non-zero exit: 1 for runtime
//! errors, 2 for usage errors.
#![forbid(unsafe_code)]

mod cli;
mod render;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use dpvs_api::{Client, Request, Response, RsSpec, ServiceInfo, ServiceKey, ServiceSpec};

use cli::{Action, Cli, Object, ServiceVerb};
use render::{Style, render};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let action = match cli.object.action() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("dpvs-ctl: {msg} (see dpvs-ctl --help)");
            return ExitCode::from(2);
        }
    };
    match run(&cli, action) {
        Ok(text) => print(&text),
        Err(msg) => {
            eprintln!("dpvs-ctl: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Talks to the daemon and renders its answer.
fn run(cli: &Cli, action: Action) -> Result<String, String> {
    let mut client = Client::connect(&cli.ipc).map_err(|e| e.to_string())?;
    let call = |client: &mut Client, req| client.call(req).map_err(|e| e.to_string());
    let resp = match action {
        Action::Call(req) => call(&mut client, req)?,
        Action::EditService {
            service,
            sched,
            forward,
            opts,
        } => {
            let current = current_service(&mut client, service)?.spec();
            let spec = ServiceSpec {
                sched: sched.unwrap_or(current.sched),
                forward: forward.unwrap_or(current.forward),
                ..current.clone()
            };
            let changed = spec.sched != current.sched;
            call(
                &mut client,
                Request::ServiceEdit(opts.apply(spec, changed)?),
            )?
        }
        Action::EditRs { service, rs } => {
            let current = current_service(&mut client, service)?;
            let info = current.rs.iter().find(|r| r.addr == rs.addr);
            let info = info.ok_or_else(|| format!("no real server {} in {service}", rs.addr))?;
            let rs = RsSpec {
                weight: info.weight,
                ..rs
            };
            call(&mut client, Request::RsEdit { service, rs })?
        }
    };
    Ok(render(&resp, cli.output, style(&cli.object)))
}

/// A service's definition as the daemon has it (one extra request on the same connection), so
/// that an edit changes only what the user named.
fn current_service(client: &mut Client, service: ServiceKey) -> Result<ServiceInfo, String> {
    let found = match client.call(Request::ServiceList { stats: false }) {
        Ok(Response::Services(list)) => list.into_iter().find(|s| s.key == service),
        Ok(other) => return Err(format!("unexpected answer to service list: {other:?}")),
        Err(e) => return Err(e.to_string()),
    };
    found.ok_or_else(|| format!("no such service {service}"))
}

/// Layout options that depend on the command, not on the response.
fn style(object: &Object) -> Style {
    match object {
        Object::Service {
            verb: ServiceVerb::List { stats, exact, rate },
        } => Style {
            stats: *stats,
            rate: *rate,
            exact: *exact,
        },
        _ => Style::default(),
    }
}

/// Writes the output; a closed pipe (`dpvs-ctl conn list | head`) is not an error.
fn print(text: &str) -> ExitCode {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dpvs-ctl: cannot write output: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Help and version go to stdout as clap formats them; a real usage error becomes one line
/// on stderr with exit code 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    let code = u8::try_from(e.exit_code()).unwrap_or(2);
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(code);
    }
    eprintln!(
        "dpvs-ctl: {} (see dpvs-ctl --help)",
        usage_summary(&e.render().to_string())
    );
    ExitCode::from(code)
}

/// The first paragraph of clap's message on one line, without its `error: ` prefix (later
/// paragraphs are tips and the usage synopsis, which `--help` shows better).
fn usage_summary(text: &str) -> String {
    let first: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .collect();
    let joined = first.join(" ");
    joined
        .strip_prefix("error: ")
        .unwrap_or(&joined)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_become_one_line() {
        let e = Cli::try_parse_from(["dpvs-ctl", "-o", "yaml", "stats"]).unwrap_err();
        let s = usage_summary(&e.render().to_string());
        assert_eq!(
            s,
            "invalid value 'yaml' for '--output <OUTPUT>' [possible values: table, json]"
        );
        let e = Cli::try_parse_from(["dpvs-ctl", "service", "add", "tcp:1.2.3.4"]).unwrap_err();
        let s = usage_summary(&e.render().to_string());
        assert!(
            s.starts_with("invalid value 'tcp:1.2.3.4' for '<SERVICE>': invalid service"),
            "{s}"
        );
        assert!(!s.contains('\n'));
    }
}
