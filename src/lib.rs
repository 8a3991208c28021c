//! mfa-exec: get an AWS STS session with an MFA code, then exec a command
//! with the session's credentials in its environment only.
//!
//! `run` is the whole program: parse, find the command, resolve settings,
//! get the session, build the child's environment, exec.

pub mod cli;
pub mod config;
pub mod duration;
pub mod env;
pub mod error;
pub mod exec;
pub mod mfa;
pub mod secret;
pub mod session;
pub mod sts;

use std::ffi::OsString;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Parser as _;

use crate::cli::Cli;
use crate::config::{Environ, Overrides, Settings};
use crate::error::Error;
use crate::secret::Secret;
use crate::session::Session;
use crate::sts::{Failure, Sts};

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
    let verbose = cli.verbose;

    // The command first: a typo must cost neither a code nor a request.
    let mut command = cli.command.clone();
    if command.is_empty() {
        let shell = env.get("SHELL").unwrap_or("/bin/sh");
        command.push(shell.into());
    }
    let argv0 = command.remove(0);
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    let program = exec::resolve(
        &argv0,
        env.0
            .get(std::ffi::OsStr::new("PATH"))
            .map(OsString::as_os_str),
        &cwd,
    )?;

    let lifetime = session_duration(&cli.duration)?;
    let timeout = parse_duration("`--timeout`", &cli.timeout)?;
    let flag_code = cli.token_code.as_deref().map(mfa::from_flag).transpose()?;
    let settings = config::resolve(
        &Overrides {
            profile: cli.profile.as_deref(),
            serial: cli.serial_number.as_deref(),
            region: cli.region.as_deref(),
        },
        &env,
    )?;
    let serial = settings.serial.clone().ok_or_else(|| Error::NoSerial {
        profile: settings.profile.clone(),
    })?;

    mfa::guard_terminal_against_signals();
    let sts = Sts::connect(&settings, timeout, verbose)?;
    let session = new_session(&sts, &settings, &serial, flag_code, lifetime, verbose)?;

    let plan = env::child_env(
        &env,
        &session,
        &settings.profile,
        settings.region.as_deref(),
    );
    if verbose {
        eprintln!(
            "mfa-exec: session valid for {}; running `{}` ({})",
            duration::format(session.remaining(SystemTime::now())),
            program.display(),
            env::describe(&plan)
        );
    }
    drop(session);
    Err(exec::exec(&program, &argv0, &command, &plan))
}

/// Gets a new session, asking for a code in the order: flag, `mfa_process`, terminal.
fn new_session(
    sts: &Sts,
    settings: &Settings,
    serial: &str,
    flag_code: Option<Secret>,
    lifetime: Duration,
    verbose: bool,
) -> Result<Session, Error> {
    let say = |what: &str| {
        if verbose {
            eprintln!("mfa-exec: MFA device `{serial}`; code from {what}");
        }
    };
    if let Some(code) = flag_code {
        say("`--token-code`");
        return Ok(sts.get_session_token(serial, &code, lifetime)?);
    }
    if let Some(command) = &settings.mfa_process {
        say("`mfa_process`");
        let code = mfa::from_process(&settings.profile, command)?;
        return Ok(sts.get_session_token(serial, &code, lifetime)?);
    }
    say("the terminal");
    let mut tty = mfa::Terminal::open()?;
    let prompt = format!("MFA code for {serial}: ");
    let mut rejected = Vec::new();
    let mut tries_left = mfa::MAX_TRIES;
    loop {
        let code = tty.ask_code(&prompt, &rejected, &mut tries_left)?;
        match sts.get_session_token(serial, &code, lifetime) {
            Ok(session) => return Ok(session),
            Err(e) if e.failure == Failure::WrongCode => {
                tty.say("mfa-exec: STS refused the code (wrong, or already used)");
                if tries_left == 0 {
                    return Err(Error::TooManyTries {
                        tries: mfa::MAX_TRIES,
                    });
                }
                rejected.push(code);
            }
            Err(e) => return Err(e.into()),
        }
    }
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
