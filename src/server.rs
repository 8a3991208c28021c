//! `--server`: run the command as a child and serve it credentials that stay
//! fresh, through the container credential endpoint every AWS SDK reads
//! (`AWS_CONTAINER_CREDENTIALS_FULL_URI` + `AWS_CONTAINER_AUTHORIZATION_TOKEN`).
//!
//! Environment variables cannot change once a process runs; an endpoint can
//! hand out a new role session when the old one nears its end, so a long
//! `terraform apply` outlives a one-hour role session.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::acquire::Acquirer;
use crate::error::Error;
use crate::secret::Secret;
use crate::session::Session;

/// The only path served; anything else is 404 (after the token check).
pub const PATH: &str = "/mfa-exec/credentials";

/// How long one client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Signals passed on to the command, as a shell's job control would.
const FORWARDED: [i32; 7] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGHUP,
    signal_hook::consts::SIGQUIT,
    signal_hook::consts::SIGUSR1,
    signal_hook::consts::SIGUSR2,
    signal_hook::consts::SIGWINCH,
];

/// A fresh authorization token: 256 bits from the kernel, hex-encoded.
pub fn new_token() -> std::io::Result<Secret> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let hex = bytes.iter().fold(String::with_capacity(64), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    });
    bytes.fill(0);
    Ok(Secret::new(hex))
}

/// Compares in time independent of where the inputs differ.
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The listener on 127.0.0.1 (never another address) at a free port.
pub fn bind() -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
}

/// Spawns the command, serves credentials until it exits, and returns its
/// exit status (or dies by the signal that killed it).
pub fn serve(
    listener: &TcpListener,
    token: &Secret,
    mut command: Command,
    mut session: Session,
    mut refresh: impl FnMut() -> Result<Session, Error>,
    min_remaining: Duration,
    verbose: bool,
) -> Result<ExitCode, Error> {
    let program = PathBuf::from(command.get_program());
    crate::mfa::stop_exiting_on_signals();
    let mut process = command.spawn().map_err(|source| Error::Exec {
        command: program.clone(),
        source,
    })?;
    let pid = Pid::from_raw(i32::try_from(process.id()).unwrap_or(i32::MAX));
    forward_signals(pid, verbose);

    // The waiter wakes the accept loop with a connection of its own once the
    // command has exited, so serving stops with it.
    let addr = listener.local_addr().map_err(Error::Server)?;
    let status: Arc<Mutex<Option<std::io::Result<ExitStatus>>>> = Arc::default();
    let waiter_status = Arc::clone(&status);
    std::thread::spawn(move || {
        let result = process.wait();
        *waiter_status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(result);
        let _ = TcpStream::connect(addr);
    });

    for stream in listener.incoming() {
        if status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
        {
            break;
        }
        let Ok(stream) = stream else { continue };
        let answer = answer(
            &stream,
            token,
            &mut session,
            &mut refresh,
            min_remaining,
            verbose,
        );
        let _ = respond(&stream, &answer);
    }
    let result = status
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
        .unwrap_or_else(|| Err(std::io::Error::other("the listener closed early")));
    let exit = result.map_err(|source| Error::Exec {
        command: program,
        source,
    })?;
    Ok(pass_on(exit))
}

/// The command's exit status as ours; a death by signal is repeated on
/// ourselves, so the caller sees the same signal.
fn pass_on(status: ExitStatus) -> ExitCode {
    if let Some(signal) = status.signal() {
        let _ = signal_hook::low_level::emulate_default_handler(signal);
        return ExitCode::from(u8::try_from(128 + signal).unwrap_or(255));
    }
    ExitCode::from(u8::try_from(status.code().unwrap_or(1)).unwrap_or(1))
}

/// Forwards the usual job-control signals to the command.
///
/// A Ctrl-C at the terminal already reaches every process of the foreground
/// group, the command included: forwarding it too would deliver it twice
/// (uv's `child.rs` explains the same choice). So a SIGINT from the kernel
/// is passed on only when the command is not in the terminal's foreground
/// group; one sent by another process (`kill -INT`) always is. Signals we
/// raise on ourselves (rpassword does, on Ctrl-C at a refresh prompt) are
/// ours, not the command's.
fn forward_signals(child: Pid, verbose: bool) {
    use signal_hook::iterator::SignalsInfo;
    use signal_hook::iterator::exfiltrator::WithOrigin;
    let Ok(mut signals) = SignalsInfo::<WithOrigin>::new(FORWARDED) else {
        return;
    };
    let me = std::process::id();
    std::thread::spawn(move || {
        for origin in signals.forever() {
            let sender = origin.process.map(|p| p.pid);
            if sender.is_some_and(|p| u32::try_from(p).ok() == Some(me)) {
                continue;
            }
            let Ok(signal) = Signal::try_from(origin.signal) else {
                continue;
            };
            if signal == Signal::SIGINT && sender.is_none() && child_in_foreground(child) {
                if verbose {
                    eprintln!(
                        "mfa-exec: SIGINT came from the terminal, which sent it to the command too"
                    );
                }
                continue;
            }
            if verbose && signal != Signal::SIGWINCH {
                eprintln!("mfa-exec: forwarding {signal} to the command");
            }
            let _ = kill(child, signal);
        }
    });
}

fn child_in_foreground(child: Pid) -> bool {
    let Ok(tty) = std::fs::File::open("/dev/tty") else {
        return false;
    };
    let (Ok(foreground), Ok(group)) = (
        nix::unistd::tcgetpgrp(&tty),
        nix::unistd::getpgid(Some(child)),
    ) else {
        return false;
    };
    foreground == group
}

/// An HTTP answer: status, reason and JSON body.
struct Answer {
    status: u16,
    body: Secret,
}

impl Answer {
    fn plain(status: u16, message: &str) -> Self {
        let body = serde_json::json!({ "code": reason(status), "message": message }).to_string();
        Answer {
            status,
            body: Secret::new(body),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Internal Server Error",
    }
}

/// Reads one request and decides the answer: the token first (403 for a
/// missing or wrong one, whatever else the request says), then the path.
fn answer(
    stream: &TcpStream,
    token: &Secret,
    session: &mut Session,
    refresh: &mut impl FnMut() -> Result<Session, Error>,
    min_remaining: Duration,
    verbose: bool,
) -> Answer {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let Some(request) = read_request(stream) else {
        return Answer::plain(400, "malformed request");
    };
    let authorized = request.authorization.as_ref().is_some_and(|given| {
        constant_time_eq(given.expose().as_bytes(), token.expose().as_bytes())
    });
    if !authorized {
        return Answer::plain(403, "forbidden");
    }
    if request.path != PATH {
        return Answer::plain(404, "not found");
    }
    if request.method != "GET" {
        return Answer::plain(405, "only GET");
    }
    if session.remaining(SystemTime::now()) <= min_remaining {
        match refresh() {
            Ok(fresh) => {
                if verbose {
                    eprintln!("mfa-exec: served a refreshed session");
                }
                *session = fresh;
            }
            Err(e) => {
                // The command's SDK reports this; show it here too.
                eprint!("{}", e.report());
                return Answer::plain(500, &e.to_string());
            }
        }
    }
    let body = serde_json::json!({
        "AccessKeyId": session.access_key_id,
        "SecretAccessKey": session.secret_access_key.expose(),
        "Token": session.session_token.expose(),
        "Expiration": session.expiration_rfc3339(),
    })
    .to_string();
    Answer {
        status: 200,
        body: Secret::new(body),
    }
}

struct Request {
    method: String,
    path: String,
    authorization: Option<Secret>,
}

/// A minimal HTTP/1.x request head reader: method, path, `Authorization`.
fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.take(16 * 1024));
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut authorization = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            break;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("authorization")
        {
            authorization = Some(Secret::new(value.trim().to_owned()));
        }
    }
    Some(Request {
        method,
        path,
        authorization,
    })
}

fn respond(mut stream: &TcpStream, answer: &Answer) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        answer.status,
        reason(answer.status),
        answer.body.expose().len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(answer.body.expose().as_bytes())?;
    stream.flush()
}

/// Adapts the acquirer to `serve`'s refresh callback.
pub fn refresher<'a>(
    acquirer: &'a mut Acquirer<'_>,
    serial: &'a str,
) -> impl FnMut() -> Result<Session, Error> + 'a {
    acquirer.stop_forcing_refresh();
    move || acquirer.session(serial)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_random_bits() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(a.expose().len(), 64);
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn the_listener_is_on_loopback() {
        let l = bind().unwrap();
        assert!(l.local_addr().unwrap().ip().is_loopback());
    }
}
