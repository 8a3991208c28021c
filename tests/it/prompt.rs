//! The MFA prompt on a real pseudo-terminal: no echo, asking again, giving
//! up, Ctrl-C and Ctrl-D, and what happens with no terminal at all.
//!
//! Every pty test runs its command through `/bin/sh` with `stty sane` first,
//! because the pty library starts the terminal with echo *off*: without it,
//! "the code is not echoed" and "echo is restored" would prove nothing.
//! Codes are typed only once the prompt is shown *and* echo is off, like a
//! person who reads the prompt before typing (rpassword prints the prompt a
//! moment before it turns echo off).

use std::ffi::OsStr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use expectrl::{ControlCode, Eof, Session, WaitStatus};

use crate::fake_sts::{FakeSts, Reply};
use crate::support::{self, Home, SERIAL};

/// How long any one expectation may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(15);

const REFUSED_BY_STS: &str = "STS refused the code";
const NOT_SIX_DIGITS: &str = "not a 6-digit code";
const ALREADY_REFUSED: &str = "already refused";

fn prompt() -> String {
    format!("MFA code for {SERIAL}: ")
}

/// `mfa-exec` (or a script around it) in its own pty, with everything it
/// printed kept in `transcript`.
struct Pty {
    session: Session,
    transcript: Vec<u8>,
}

impl Pty {
    /// Runs `sh -c 'stty sane && exec "$0" "$@"' mfa-exec ARGS…` in a pty.
    fn mfa_exec(home: &Home, sts: &FakeSts, args: &[&str]) -> Pty {
        Pty::script(home, sts, r#"stty sane && exec "$0" "$@""#, args)
    }

    /// Runs `sh -c SCRIPT mfa-exec ARGS…` in a pty with the hermetic
    /// environment, so `"$0"` is the binary and `"$@"` its arguments.
    fn script(home: &Home, sts: &FakeSts, script: &str, args: &[&str]) -> Pty {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(script)
            .arg(support::bin())
            .args(args.iter().map(OsStr::new))
            .env_clear()
            .envs(home.env(&sts.url()))
            .current_dir(home.path());
        let mut session = Session::spawn(cmd).expect("spawn in a pty");
        session.set_expect_timeout(Some(TIMEOUT));
        Pty {
            session,
            transcript: Vec::new(),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.transcript).into_owned()
    }

    /// Waits for `needle`; returns the bytes read up to and including it.
    fn expect(&mut self, needle: &str) -> Vec<u8> {
        match self.session.expect(needle) {
            Ok(found) => {
                let bytes = found.as_bytes().to_vec();
                self.transcript.extend_from_slice(&bytes);
                bytes
            }
            Err(e) => panic!("waiting for {needle:?}: {e}\nread so far:\n{}", self.text()),
        }
    }

    /// Waits until the prompt reads keys itself: echo off, and `ISIG` off so
    /// that Ctrl-C arrives as a key, not as a signal to the whole group.
    /// (mfa-exec turns echo off just before rpassword turns `ISIG` off.)
    fn wait_for_echo_off(&self) {
        use nix::sys::termios::{LocalFlags, tcgetattr};
        let deadline = Instant::now() + TIMEOUT;
        let master = self
            .session
            .get_process()
            .get_raw_handle()
            .expect("pty master");
        while tcgetattr(&master)
            .expect("tcgetattr")
            .local_flags
            .intersects(LocalFlags::ECHO | LocalFlags::ISIG)
        {
            assert!(
                Instant::now() < deadline,
                "echo still on at the prompt; read so far:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the prompt, then types `code` and Enter.
    fn answer(&mut self, code: &str) -> Vec<u8> {
        let before = self.expect(&prompt());
        self.wait_for_echo_off();
        self.session.send_line(code).expect("type into the pty");
        before
    }

    /// Waits for the prompt, then presses one control key.
    fn press_at_prompt(&mut self, key: ControlCode) {
        self.expect(&prompt());
        self.wait_for_echo_off();
        self.session.send(key).expect("type into the pty");
    }

    /// Reads to the end of the output and returns the exit status, with the
    /// bytes read since the last expectation.
    fn finish(&mut self) -> (i32, Vec<u8>) {
        let rest = match self.session.expect(Eof) {
            Ok(found) => found.as_bytes().to_vec(),
            Err(e) => panic!("waiting for the end: {e}\nread so far:\n{}", self.text()),
        };
        self.transcript.extend_from_slice(&rest);
        // The pty is closed, so the process is gone or about to be: this returns.
        let status = self.session.get_process().wait().expect("waitpid");
        match status {
            WaitStatus::Exited(_, code) => (code, rest),
            other => panic!("not a normal exit: {other:?}\noutput:\n{}", self.text()),
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

fn token_codes(sts: &FakeSts) -> Vec<String> {
    sts.requests()
        .iter()
        .map(|r| r.field("TokenCode").unwrap_or("<none>").to_owned())
        .collect()
}

/// The local-mode words of `stty -a` (e.g. `echo`, `-echo`), asserted on.
fn assert_terminal_sane(stty: &str) {
    let words: Vec<&str> = stty
        .split(|c: char| c.is_whitespace() || c == ';')
        .filter(|w| !w.is_empty())
        .collect();
    for mode in ["echo", "icanon", "isig"] {
        assert!(
            words.contains(&mode),
            "`{mode}` is not on after mfa-exec ended:\n{stty}"
        );
        let off = format!("-{mode}");
        assert!(
            !words.contains(&off.as_str()),
            "`{off}` after mfa-exec ended:\n{stty}"
        );
    }
}

/// `mfa-exec -- true` at a prompt answered with `key`, then `$?` and `stty -a`.
fn cancel_at_prompt(key: ControlCode) {
    let home = Home::new();
    let sts = FakeSts::start();
    let mut pty = Pty::script(
        &home,
        &sts,
        r#"stty sane; "$0" -- true; echo "status=$?"; stty -a"#,
        &[],
    );
    pty.press_at_prompt(key);
    let before = pty.expect("status=");
    let exit = String::from_utf8_lossy(&pty.expect("\n")).trim().to_owned();
    assert_eq!(exit, "130", "{}", pty.text());
    let (status, stty) = pty.finish();
    assert_eq!(status, 0, "{}", pty.text());
    if key == ControlCode::EndOfTransmission {
        // After Ctrl-C the signal thread may exit before `cancelled` is printed.
        assert!(
            contains(&before, "cancelled"),
            "no word of the cancellation:\n{}",
            pty.text()
        );
    }
    assert_terminal_sane(&String::from_utf8_lossy(&stty));
    assert_eq!(sts.count(), 0, "a cancelled prompt sent a request");
}

#[test]
fn prompt_does_not_echo_the_code() {
    let home = Home::new();
    let sts = FakeSts::start();
    let mut pty = Pty::mfa_exec(&home, &sts, &["--", "sh", "-c", "echo ran-ok"]);
    pty.answer("123456");
    let after_prompt = pty.expect("ran-ok");
    assert!(
        !contains(&after_prompt, "123456"),
        "the code was echoed:\n{}",
        String::from_utf8_lossy(&after_prompt)
    );
    let (status, _) = pty.finish();
    assert_eq!(status, 0, "{}", pty.text());
    // The account id in the serial starts with the same digits.
    assert!(
        !pty.text().replace(SERIAL, "").contains("123456"),
        "{}",
        pty.text()
    );
    for secret in support::secrets() {
        assert!(
            !contains(&pty.transcript, &secret),
            "the terminal shows a secret:\n{}",
            pty.text()
        );
    }
    assert_eq!(token_codes(&sts), ["123456"]);
    let request = sts.last().unwrap();
    assert_eq!(request.action(), Some("GetSessionToken"));
    assert_eq!(request.field("SerialNumber"), Some(SERIAL));
}

#[test]
fn wrong_code_then_right_code() {
    let home = Home::new();
    let sts = FakeSts::start();
    sts.push(Reply::wrong_code());
    sts.push(Reply::ok());
    let mut pty = Pty::mfa_exec(&home, &sts, &["--", "sh", "-c", "echo ran-ok"]);
    pty.answer("111111");
    pty.expect(REFUSED_BY_STS);
    pty.answer("222222");
    pty.expect("ran-ok");
    let (status, _) = pty.finish();
    assert_eq!(status, 0, "{}", pty.text());
    assert_eq!(token_codes(&sts), ["111111", "222222"]);
}

#[test]
fn malformed_code_is_asked_again_without_a_request() {
    let home = Home::new();
    let sts = FakeSts::start();
    let mut pty = Pty::mfa_exec(&home, &sts, &["--", "sh", "-c", "echo ran-ok"]);
    pty.answer("12ab");
    pty.expect(NOT_SIX_DIGITS);
    pty.expect(&prompt());
    assert_eq!(sts.count(), 0, "a malformed code was sent");
    pty.wait_for_echo_off();
    pty.session.send_line("123456").unwrap();
    pty.expect("ran-ok");
    let (status, _) = pty.finish();
    assert_eq!(status, 0, "{}", pty.text());
    assert_eq!(token_codes(&sts), ["123456"]);
}

#[test]
fn same_rejected_code_is_not_sent_twice() {
    let home = Home::new();
    let sts = FakeSts::start();
    sts.push(Reply::wrong_code());
    let mut pty = Pty::mfa_exec(&home, &sts, &["--", "sh", "-c", "echo ran-ok"]);
    pty.answer("111111");
    pty.expect(REFUSED_BY_STS);
    pty.answer("111111");
    pty.expect(ALREADY_REFUSED);
    pty.expect(&prompt());
    assert_eq!(sts.count(), 1, "the refused code was sent again");
    pty.wait_for_echo_off();
    pty.session.send_line("333333").unwrap();
    pty.expect("ran-ok");
    let (status, _) = pty.finish();
    assert_eq!(status, 0, "{}", pty.text());
    assert_eq!(token_codes(&sts), ["111111", "333333"]);
}

#[test]
fn three_wrong_codes_give_up_with_125() {
    let home = Home::new();
    let sts = FakeSts::start();
    sts.set_default(Reply::wrong_code());
    let mut pty = Pty::mfa_exec(&home, &sts, &["--", "sh", "-c", "echo ran-ok"]);
    for code in ["111111", "222222", "333333"] {
        pty.answer(code);
        pty.expect(REFUSED_BY_STS);
    }
    pty.expect("gave up after 3 wrong MFA codes");
    let (status, _) = pty.finish();
    assert_eq!(status, 125, "{}", pty.text());
    assert!(!pty.text().contains("ran-ok"), "{}", pty.text());
    assert_eq!(token_codes(&sts), ["111111", "222222", "333333"]);
}

#[test]
fn ctrl_c_at_the_prompt_exits_130_and_restores_echo() {
    cancel_at_prompt(ControlCode::EndOfText);
}

#[test]
fn ctrl_d_at_the_prompt_cancels() {
    cancel_at_prompt(ControlCode::EndOfTransmission);
}

#[test]
fn no_terminal_is_a_clear_error() {
    let home = Home::new();
    let sts = FakeSts::start();
    let started = Instant::now();
    let mut child = home
        .cmd_without_terminal(&sts.url())
        .args(["--", "true"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its output is a few lines, far less than a pipe holds: polling is enough.
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "mfa-exec hangs with no terminal:\n{}",
                support::stderr(&output)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    let stderr = support::stderr(&output);
    assert_eq!(output.status.code(), Some(125), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(stderr.contains("no terminal"), "{stderr}");
    let hint = stderr
        .lines()
        .find(|line| line.starts_with("hint:"))
        .unwrap_or_else(|| panic!("no hint:\n{stderr}"));
    assert!(hint.contains("--token-code"), "{stderr}");
    assert!(hint.contains("mfa_process"), "{stderr}");
    assert_eq!(sts.count(), 0);
    support::assert_no_secrets(&output);
}

/// Regression: every typed code counts, wrong or malformed; at most 3 in all.
#[test]
fn typed_codes_are_capped_at_three_overall() {
    let home = Home::new();
    let sts = FakeSts::start();
    sts.set_default(Reply::wrong_code());
    let mut pty = Pty::mfa_exec(&home, &sts, &["--", "sh", "-c", "echo ran-ok"]);
    pty.answer("111111");
    pty.expect(REFUSED_BY_STS);
    pty.answer("12ab");
    pty.expect(NOT_SIX_DIGITS);
    pty.answer("12ab");
    pty.expect(NOT_SIX_DIGITS);
    let (status, _) = pty.finish();
    assert_eq!(status, 125, "{}", pty.text());
    assert_eq!(token_codes(&sts), ["111111"]);
}

/// `--server`: a Ctrl-C typed at the terminal reaches the command once (the
/// terminal sends it to the whole foreground group), not twice by forwarding,
/// and mfa-exec itself survives it and passes the command's status on.
#[test]
fn server_mode_ctrl_c_reaches_the_command_once() {
    const COUNT_SIGINTS: &str = "import signal, time\n\
        n = 0\n\
        def on_int(sig, frame):\n    global n\n    n += 1\n\
        signal.signal(signal.SIGINT, on_int)\n\
        print('ready', flush=True)\n\
        while n == 0:\n    time.sleep(0.01)\n\
        time.sleep(0.5)\n\
        print('sigints=%d' % n, flush=True)\n\
        raise SystemExit(3)\n";
    let home = Home::new();
    let sts = FakeSts::start();
    let mut pty = Pty::mfa_exec(
        &home,
        &sts,
        &[
            "-v",
            "--server",
            "-t",
            "123456",
            "--",
            "python3",
            "-c",
            COUNT_SIGINTS,
        ],
    );
    pty.expect("ready");
    pty.session
        .send(ControlCode::EndOfText)
        .expect("type Ctrl-C");
    pty.expect("sigints=");
    let (status, rest) = pty.finish();
    let text = String::from_utf8_lossy(&rest).into_owned();
    assert!(text.starts_with('1'), "the command got SIGINT {text} times");
    assert_eq!(status, 3, "{}", pty.text());
    // Two SIGINTs close together may merge into one delivery, so the count
    // alone cannot show a second one was sent: mfa-exec's own account can.
    let all = pty.text();
    assert!(all.contains("SIGINT came from the terminal"), "{all}");
    assert!(!all.contains("forwarding SIGINT"), "{all}");
}
