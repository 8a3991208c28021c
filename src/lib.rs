//! mfa-exec: get an AWS STS session with an MFA code, then exec a command
//! with the session's credentials in its environment only.
//!
//! `run` is the whole program: parse, find the command, resolve settings,
//! get the session, build the child's environment, exec.

pub mod cache;
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

use crate::cache::{Cache, Miss};
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
    let runs_command = !(cli.login || cli.logout || cli.status);

    // The command first: a typo must cost neither a code nor a request.
    let mut command = cli.command.clone();
    let mut target = None;
    if runs_command {
        if command.is_empty() {
            command.push(env.get("SHELL").unwrap_or("/bin/sh").into());
        }
        let argv0 = command.remove(0);
        let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
        let path_var = env
            .0
            .get(std::ffi::OsStr::new("PATH"))
            .map(OsString::as_os_str);
        target = Some((exec::resolve(&argv0, path_var, &cwd)?, argv0));
    }

    let lifetime = session_duration(&cli.duration)?;
    let timeout = parse_duration("`--timeout`", &cli.timeout)?;
    let min_remaining = parse_duration("`--min-remaining`", &cli.min_remaining)?;
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
        },
        &env,
    )?;
    let serial = settings.serial.clone().ok_or_else(|| Error::NoSerial {
        profile: settings.profile.clone(),
    })?;
    let key = cache::Key {
        profile: settings.profile.clone(),
        serial: serial.clone(),
        source: settings.source.cache_id(),
        role: None,
    };

    let times = Times {
        lifetime,
        timeout,
        min_remaining,
    };
    let (session, cached) = session_for(cli, &env, &settings, &key, flag_code, times)?;

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
    let Some((program, argv0)) = target else {
        return Ok(ExitCode::SUCCESS);
    };
    let plan = env::child_env(
        &env,
        &session,
        &settings.profile,
        settings.region.as_deref(),
    );
    if verbose {
        eprintln!(
            "mfa-exec: session valid for {left}; running `{}` ({})",
            program.display(),
            env::describe(&plan)
        );
    }
    drop(session);
    Err(exec::exec(&program, &argv0, &command, &plan))
}

/// The durations a run works with.
#[derive(Debug, Clone, Copy)]
struct Times {
    lifetime: Duration,
    timeout: Duration,
    min_remaining: Duration,
}

/// The session for `key`: from the cache when it has a good one, else from
/// STS (then cached). Returns whether the session is in the cache.
fn session_for(
    cli: &Cli,
    env: &Environ,
    settings: &Settings,
    key: &cache::Key,
    flag_code: Option<Secret>,
    times: Times,
) -> Result<(Session, bool), Error> {
    let cache = if cli.no_cache {
        None
    } else {
        open_cache(env, true)
    };
    // Held from the cache check through the code and the STS call, so
    // parallel runs ask once; released before exec.
    let lock = cache.as_ref().and_then(|c| {
        let wait = || {
            eprintln!(
                "mfa-exec: waiting for another mfa-exec to get the session of profile `{}`",
                key.profile
            );
        };
        c.lock(key, wait)
            .map_err(|e| warn(&format!("cannot lock the session cache: {e}")))
            .ok()
    });
    let cache = cache.filter(|_| lock.is_some());
    if let Some(c) = cache.as_ref().filter(|_| !cli.refresh)
        && let Some(session) = load_cached(c, key, times.min_remaining, cli.verbose)
    {
        return Ok((session, true));
    }
    mfa::guard_terminal_against_signals();
    let sts = Sts::connect(settings, times.timeout, cli.verbose)?;
    let session = new_session(
        &sts,
        settings,
        &key.serial,
        flag_code,
        times.lifetime,
        cli.verbose,
    )?;
    let mut cached = false;
    if let Some(c) = &cache {
        match c.store(key, &session) {
            Ok(()) => cached = true,
            Err(e) => warn(&format!(
                "cannot cache the session in `{}`: {e}",
                c.dir().display()
            )),
        }
    }
    drop(lock);
    Ok((session, cached))
}

fn warn(message: &str) {
    eprintln!("mfa-exec: warning: {message}");
}

/// The cache, or `None` (with a warning) when its directory is not safe to use.
fn open_cache(env: &Environ, create: bool) -> Option<Cache> {
    let Some(dir) = cache::default_dir(env) else {
        warn("no cache directory: neither `XDG_CACHE_HOME` nor `HOME` is set");
        return None;
    };
    match Cache::open(dir, create) {
        Ok(cache) => Some(cache),
        Err(reason) if !create && reason.ends_with("does not exist") => None,
        Err(reason) => {
            warn(&format!("not using the session cache: {reason}"));
            None
        }
    }
}

/// A usable cached session; says why not otherwise (a warning when the
/// entry is suspicious, a note with `-v` when it is merely old).
fn load_cached(
    cache: &Cache,
    key: &cache::Key,
    min_remaining: Duration,
    verbose: bool,
) -> Option<Session> {
    match cache.load(key, min_remaining) {
        Ok(session) => {
            if verbose {
                eprintln!(
                    "mfa-exec: using the cached session of profile `{}` ({} left)",
                    key.profile,
                    duration::format(session.remaining(SystemTime::now()))
                );
            }
            Some(session)
        }
        Err(Miss::Unusable(reason)) => {
            warn(&format!(
                "ignoring the cached session `{}`: {reason}",
                cache
                    .dir()
                    .join(format!("{}.json", key.file_stem()))
                    .display()
            ));
            None
        }
        Err(miss) => {
            if verbose {
                let why = match miss {
                    Miss::TooShort(left) => format!("only {} left", duration::format(left)),
                    Miss::Expired => "expired".into(),
                    _ => "none cached".into(),
                };
                eprintln!("mfa-exec: no usable cached session ({why}); getting a new one");
            }
            None
        }
    }
}

/// `--logout`: removes this profile's entries, or all with `--all`.
fn logout(cli: &Cli, env: &Environ) -> Result<ExitCode, Error> {
    let profile = config::profile_name(cli.profile.as_deref(), env);
    let Some(cache) = open_cache(env, false) else {
        println!("mfa-exec: no cached sessions");
        return Ok(ExitCode::SUCCESS);
    };
    let removed = if cli.all {
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
    let _ = writeln!(out, "profiles ({}):", config::files_in_force(env));
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
