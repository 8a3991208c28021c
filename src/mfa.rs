//! Where the MFA code comes from: the flag, the profile's `mfa_process`, or a
//! no-echo prompt on `/dev/tty`; and keeping the terminal sane on Ctrl-C.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::termios::{self, SetArg, Termios};

use crate::error::Error;
use crate::secret::Secret;

/// How many codes a person may type at the prompt, wrong or malformed.
pub const MAX_TRIES: u32 = 3;

/// True for exactly six ASCII digits, the only form STS accepts.
#[must_use]
pub fn is_well_formed(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

/// Normalises what a person types: authenticator apps show `123 456`.
#[must_use]
pub fn normalise(typed: &str) -> String {
    typed.chars().filter(|c| !c.is_whitespace()).collect()
}

/// A code given with `--token-code`.
pub fn from_flag(value: &str) -> Result<Secret, Error> {
    let code = normalise(value);
    if is_well_formed(&code) {
        Ok(Secret::new(code))
    } else {
        Err(Error::MalformedCode {
            value: value.to_owned(),
            from: "`--token-code`",
        })
    }
}

/// Runs the profile's `mfa_process` with `sh -c` and reads the code from its stdout.
///
/// Its stdin and stderr are ours, so it can talk to the user (e.g. "touch
/// your `YubiKey`"); its output is never echoed, not even when malformed.
pub fn from_process(profile: &str, command: &str) -> Result<Secret, Error> {
    let fail = |reason: String| Error::CodeProcess {
        profile: profile.to_owned(),
        reason,
    };
    let output = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::inherit())
        .stderr(Stdio::inherit())
        .stdout(Stdio::piped())
        .output()
        .map_err(|e| fail(format!("cannot start `/bin/sh`: {e}")))?;
    if !output.status.success() {
        return Err(fail(format!("`{command}` {}", output.status)));
    }
    let code = Secret::new(normalise(&String::from_utf8_lossy(&output.stdout)));
    drop(output);
    if is_well_formed(code.expose()) {
        Ok(code)
    } else {
        Err(fail(format!("`{command}` did not print a 6-digit code")))
    }
}

/// The terminal whose settings must be put back if a signal ends us mid-prompt.
static TERMINAL: Mutex<Option<(File, Termios)>> = Mutex::new(None);

/// Whether a signal ends mfa-exec (true until a `--server` child runs: then
/// signals are the child's, and a prompt only gives up).
static EXIT_ON_SIGNAL: AtomicBool = AtomicBool::new(true);

/// From now on the terminal guard restores the terminal but does not exit.
pub fn stop_exiting_on_signals() {
    EXIT_ON_SIGNAL.store(false, Ordering::SeqCst);
}

/// Makes SIGINT, SIGTERM, SIGHUP and SIGQUIT restore the terminal and exit
/// (130 for SIGINT, else 128 + the signal), until mfa-exec execs the command.
///
/// rpassword turns off `ISIG` and raises SIGINT itself when it reads Ctrl-C,
/// before it restores echo; with the default action that would kill us with
/// the terminal still silent. exec resets these handlers to the default.
pub fn guard_terminal_against_signals() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])
    else {
        return;
    };
    std::thread::spawn(move || {
        for signal in signals.forever() {
            restore_terminal();
            if EXIT_ON_SIGNAL.load(Ordering::SeqCst) {
                let status = if signal == SIGINT { 130 } else { 128 + signal };
                std::process::exit(status);
            }
        }
    });
}

fn restore_terminal() {
    let guard = TERMINAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((tty, saved)) = guard.as_ref() {
        let _ = termios::tcsetattr(tty, SetArg::TCSANOW, saved);
        let _ = (&*tty).write_all(b"\n");
    }
}

/// An open `/dev/tty` whose settings are restored on drop.
pub struct Terminal {
    tty: File,
}

impl Terminal {
    /// Opens the controlling terminal; there is none under cron, CI or `ssh host cmd`.
    pub fn open() -> Result<Self, Error> {
        let tty = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .map_err(Error::NoTerminal)?;
        let saved = termios::tcgetattr(&tty).map_err(|e| Error::NoTerminal(e.into()))?;
        let copy = tty.try_clone().map_err(Error::Terminal)?;
        *TERMINAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((copy, saved));
        Ok(Terminal { tty })
    }

    /// Prints a line on the terminal (not on stderr, which belongs to the command's user).
    pub fn say(&mut self, line: &str) {
        let _ = writeln!(self.tty, "{line}");
    }

    /// Asks until a well-formed code is typed; every code typed uses one of
    /// `tries_left`, whatever became of it.
    ///
    /// `rejected` holds codes STS already refused: typing one again is caught
    /// here, since a one-time code must never be sent twice.
    pub fn ask_code(
        &mut self,
        prompt: &str,
        rejected: &[Secret],
        tries_left: &mut u32,
    ) -> Result<Secret, Error> {
        while *tries_left > 0 {
            *tries_left -= 1;
            self.echo_off()?;
            let config = rpassword::ConfigBuilder::new()
                .input_file_path("/dev/tty")
                .output_file_path("/dev/tty")
                .password_feedback_hide()
                .build();
            let typed = match rpassword::prompt_password_with_config(prompt, config) {
                Ok(typed) => Secret::new(typed),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::Interrupted | std::io::ErrorKind::UnexpectedEof
                    ) =>
                {
                    return Err(Error::Cancelled);
                }
                Err(e) => return Err(Error::Terminal(e)),
            };
            let code = Secret::new(normalise(typed.expose()));
            if !is_well_formed(code.expose()) {
                self.say("mfa-exec: not a 6-digit code; try again");
            } else if rejected.contains(&code) {
                self.say("mfa-exec: STS already refused that code; wait for the next one");
            } else {
                return Ok(code);
            }
        }
        Err(Error::TooManyTries { tries: MAX_TRIES })
    }

    /// rpassword prints the prompt before it turns echo off; a quick typist
    /// (or a script) would see the code echoed in between. Turn it off first;
    /// `Drop` and the signal guard restore the settings saved at `open`.
    fn echo_off(&mut self) -> Result<(), Error> {
        let mut attrs = termios::tcgetattr(&self.tty).map_err(|e| Error::Terminal(e.into()))?;
        attrs.local_flags.remove(termios::LocalFlags::ECHO);
        termios::tcsetattr(&self.tty, SetArg::TCSANOW, &attrs)
            .map_err(|e| Error::Terminal(e.into()))
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let mut guard = TERMINAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, saved)) = guard.take() {
            let _ = termios::tcsetattr(&self.tty, SetArg::TCSANOW, &saved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_six_digits_are_codes() {
        for good in ["123456", "000000"] {
            assert!(is_well_formed(good), "{good}");
        }
        for bad in [
            "",
            "12345",
            "1234567",
            "12345a",
            "١٢٣٤٥٦",
            "12 456",
            "+12345",
        ] {
            assert!(!is_well_formed(bad), "{bad}");
        }
    }

    #[test]
    fn spaces_as_shown_by_apps_are_ignored() {
        assert_eq!(normalise(" 123 456\n"), "123456");
        assert!(from_flag("123 456").is_ok());
    }

    #[test]
    fn a_malformed_flag_is_refused_without_echoing_twice() {
        let err = from_flag("12345").unwrap_err();
        assert_eq!(err.exit_status(), 125);
        assert!(err.to_string().contains("6 digits"));
    }

    #[test]
    fn mfa_process_output_is_trimmed() {
        assert_eq!(
            from_process("p", "echo ' 654321 '").unwrap().expose(),
            "654321"
        );
    }

    #[test]
    fn mfa_process_failures_are_reported_without_output() {
        let err = from_process("p", "echo 999; exit 3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("exit status: 3"), "{err}");
        let err = from_process("p", "printf 'sec%s' ret-output")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret-output"), "{err}");
    }
}
