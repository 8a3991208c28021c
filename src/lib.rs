//! mfa-exec: get an AWS STS session with an MFA code, then exec a command
//! with the session's credentials in its environment only.
//!
//! `run` is the whole program: parse, find the command, resolve settings,
//! get the session, build the child's environment, exec.

pub mod acquire;
pub mod cache;
pub mod cli;
pub mod config;
pub mod duration;
pub mod env;
pub mod error;
pub mod exec;
pub mod mfa;
pub mod secret;
pub mod server;
pub mod session;
pub mod sts;

use std::ffi::OsString;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Parser as _;

use crate::acquire::{Acquirer, open_cache};
use crate::cache::Cache;
use crate::cli::{Cli, ExportFormat};
use crate::config::{Environ, Overrides, Source};
use crate::error::Error;

/// Entry point of the binary: runs, prints any error once, and maps it to an exit status.
#[must_use]
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(error::EXIT_FAILURE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprint!("{}", e.report());
            e.exit_code()
        }
    }
}

/// Does what the command line asks; returns only when there is nothing to exec.
pub fn run(cli: &Cli) -> Result<ExitCode, Error> {
    if let Some(shell) = cli.completions {
        let mut out = Vec::new();
        cli::write_completions(shell, &mut out);
        std::io::stdout().write_all(&out).map_err(Error::Stdout)?;
        return Ok(ExitCode::SUCCESS);
    }
    let env = Environ::current();
    // The command first: a typo must cost neither a code nor a request.
    let (target, command) = resolve_command(cli, &env)?;

    let options = acquire::Options {
        lifetime: session_duration(&cli.duration)?,
        timeout: parse_duration("`--timeout`", &cli.timeout)?,
        min_remaining: parse_duration("`--min-remaining`", &cli.min_remaining)?,
        refresh: cli.refresh,
        use_cache: !cli.no_cache,
        verbose: cli.verbose,
    };
    if cli.logout {
        return logout(cli, &env);
    }
    if cli.status {
        return status(&env);
    }
    let flag_code = cli.token_code.as_deref().map(mfa::from_flag).transpose()?;
    let settings = config::resolve(
        &Overrides {
            profile: cli.profile.as_deref(),
            serial: cli.serial_number.as_deref(),
            region: cli.region.as_deref(),
            role_arn: cli.role_arn.as_deref(),
        },
        &env,
    )?;
    if let Source::Process { profile, command } = &settings.source
        && command.contains("mfa-exec")
    {
        return Err(Error::CredentialProcessLoop {
            profile: profile.clone(),
        });
    }

    let mut acquirer = Acquirer::new(&settings, &env, options, flag_code);
    let serial = acquirer.serial()?;
    let session = acquirer.session(&serial)?;
    let cached = acquirer.caches();

    let left = duration::format(session.remaining(SystemTime::now()));
    if cli.login {
        println!(
            "mfa-exec: session of profile `{}` valid for {left} (until {}){}",
            settings.profile,
            session.expiration_rfc3339(),
            if cached { "" } else { "; not cached" }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let plan = env::child_env(
        &env,
        &session,
        &settings.profile,
        settings.region.as_deref(),
    );
    if let Some(format) = cli.export {
        let text = match format {
            ExportFormat::Json => env::credential_process_json(&session),
            ExportFormat::Env => env::shell_script(&plan, env::Shell::Posix),
            ExportFormat::Fish => env::shell_script(&plan, env::Shell::Fish),
        };
        std::io::stdout()
            .write_all(text.as_bytes())
            .map_err(Error::Stdout)?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some((program, argv0)) = target else {
        return Ok(ExitCode::SUCCESS);
    };
    if cli.server {
        let refresh = server::refresher(&mut acquirer, &serial);
        let command = Command {
            program: &program,
            argv0: &argv0,
            args: &command,
        };
        return run_server(cli, &env, &settings, &command, session, refresh, options);
    }
    drop(acquirer);
    if cli.verbose {
        eprintln!(
            "mfa-exec: session valid for {left}; running `{}` ({})",
            program.display(),
            env::describe(&plan)
        );
    }
    drop(session);
    Err(exec::exec(&program, &argv0, &command, &plan))
}

/// A command found on `PATH`, with its `argv[0]` as typed.
type Found = (std::path::PathBuf, OsString);

/// Finds the command (or `$SHELL`) unless an action runs none; returns its
/// path and `argv[0]`, and its arguments.
fn resolve_command(cli: &Cli, env: &Environ) -> Result<(Option<Found>, Vec<OsString>), Error> {
    let mut command = cli.command.clone();
    if cli.login || cli.logout || cli.status || cli.export.is_some() {
        return Ok((None, command));
    }
    if command.is_empty() {
        command.push(env.get("SHELL").unwrap_or("/bin/sh").into());
    }
    let argv0 = command.remove(0);
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    let path_var = env
        .0
        .get(std::ffi::OsStr::new("PATH"))
        .map(OsString::as_os_str);
    Ok((
        Some((exec::resolve(&argv0, path_var, &cwd)?, argv0)),
        command,
    ))
}

/// The command to run: its path, its `argv[0]` as typed, its arguments.
struct Command<'a> {
    program: &'a std::path::Path,
    argv0: &'a std::ffi::OsStr,
    args: &'a [OsString],
}

/// `--server`: spawns the command and serves it refreshing credentials.
fn run_server(
    cli: &Cli,
    env: &Environ,
    settings: &config::Settings,
    command: &Command<'_>,
    session: session::Session,
    refresh: impl FnMut() -> Result<session::Session, Error>,
    options: acquire::Options,
) -> Result<ExitCode, Error> {
    let listener = server::bind().map_err(Error::Server)?;
    let token = server::new_token().map_err(Error::Server)?;
    let port = listener.local_addr().map_err(Error::Server)?.port();
    let endpoint = format!("http://127.0.0.1:{port}{}", server::PATH);
    let plan = env::server_env(
        env,
        &endpoint,
        token.expose(),
        &settings.profile,
        settings.region.as_deref(),
    );
    if cli.verbose {
        eprintln!(
            "mfa-exec: serving credentials at `{endpoint}`; running `{}` ({})",
            command.program.display(),
            env::describe(&plan)
        );
    }
    server::serve(
        &listener,
        &token,
        exec::command(command.program, command.argv0, command.args, &plan),
        session,
        refresh,
        options.min_remaining,
        cli.verbose,
    )
}

/// `--logout`: removes this profile's entries, or all with `--all`.
fn logout(cli: &Cli, env: &Environ) -> Result<ExitCode, Error> {
    let profile = config::profile_name(cli.profile.as_deref(), env);
    let Some(cache) = open_cache(env, false) else {
        println!("mfa-exec: no cached sessions");
        return Ok(ExitCode::SUCCESS);
    };
    let removed = if cli.all {
        cache.sweep_temp_files(true);
        cache.remove(|_, _| true)
    } else {
        cache.remove(Cache::of_profile(&profile))
    }
    .map_err(|source| Error::Cache {
        dir: cache.dir().to_owned(),
        source,
    })?;
    let whose = if cli.all {
        "all profiles".to_owned()
    } else {
        format!("profile `{profile}`")
    };
    match removed.len() {
        0 => println!("mfa-exec: no cached sessions of {whose}"),
        1 => println!("mfa-exec: removed 1 cached session of {whose}"),
        n => println!("mfa-exec: removed {n} cached sessions of {whose}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `--status`: profiles with their MFA device, and cached sessions with time left.
fn status(env: &Environ) -> Result<ExitCode, Error> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let profiles = config::overview(env)?;
    let files = config::files_in_force(env).replace(" or ", " and ");
    let _ = writeln!(out, "profiles (from {files}):");
    if profiles.is_empty() {
        let _ = writeln!(out, "  none; `aws configure` creates one");
    }
    let width = profiles.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
    for (name, serial) in &profiles {
        let device = serial.as_deref().map_or_else(
            || "no MFA device (set `mfa_serial`)".to_owned(),
            |s| format!("MFA device {s}"),
        );
        let _ = writeln!(out, "  {name:<width$}  {device}");
    }
    let dir = cache::default_dir(env);
    let _ = writeln!(
        out,
        "cached sessions ({}):",
        dir.as_deref()
            .map_or_else(|| "no cache directory".into(), |d| d.display().to_string())
    );
    let entries = open_cache(env, false)
        .map(|c| c.summaries())
        .unwrap_or_default();
    if entries.is_empty() {
        let _ = writeln!(out, "  none");
    }
    let now = SystemTime::now();
    for (path, summary) in entries {
        match summary {
            Ok(s) => {
                let expires = std::time::UNIX_EPOCH + Duration::from_secs(s.expires_at);
                let state = match expires.duration_since(now) {
                    Ok(left) => format!(
                        "{} left (until {})",
                        duration::format(left),
                        session::rfc3339(expires)
                    ),
                    Err(_) => format!("expired at {}", session::rfc3339(expires)),
                };
                let role = s.key.role.map(|r| format!(" role {r}")).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {}  {}{role}  key {}  {state}",
                    s.key.profile,
                    s.key.serial,
                    sts::mask(&s.key.source)
                );
            }
            Err(why) => {
                let _ = writeln!(out, "  `{}`: {why}", path.display());
            }
        }
    }
    std::io::stdout()
        .write_all(out.as_bytes())
        .map_err(Error::Stdout)?;
    Ok(ExitCode::SUCCESS)
}

fn parse_duration(what: &'static str, value: &str) -> Result<Duration, Error> {
    duration::parse(value).map_err(|reason| Error::InvalidDuration {
        what,
        value: value.to_owned(),
        reason,
    })
}

/// The session lifetime, checked against what STS accepts before any prompt.
fn session_duration(value: &str) -> Result<Duration, Error> {
    let lifetime = parse_duration("`--duration`", value)?;
    if (duration::SESSION_MIN..=duration::SESSION_MAX).contains(&lifetime) {
        Ok(lifetime)
    } else {
        Err(Error::DurationOutOfRange {
            secs: lifetime.as_secs(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_duration_bounds_are_sts_bounds() {
        assert!(session_duration("15m").is_ok());
        assert!(session_duration("36h").is_ok());
        assert_eq!(session_duration("899").unwrap_err().exit_status(), 125);
        assert!(matches!(
            session_duration("37h"),
            Err(Error::DurationOutOfRange { secs: 133_200 })
        ));
        assert!(matches!(
            session_duration("soon"),
            Err(Error::InvalidDuration { .. })
        ));
    }
}
