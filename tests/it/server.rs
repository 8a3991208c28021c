//! `--server`: the command reads refreshing credentials from a loopback
//! endpoint (issue 5), with the real AWS CLI as the command.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use crate::fake_sts::{FakeSts, Reply};
use crate::peers;
use crate::support::{Home, SERIAL, assert_no_secrets, stderr, stdout};

const ROLE: &str = "arn:aws:iam::222222222222:role/admin";

fn home() -> Home {
    let path = format!(
        "{}:/usr/local/bin:/usr/bin:/bin",
        peers::venv_bin().display()
    );
    Home::new().var("PATH", path)
}

/// A short script run by the venv's Python: fetch the endpoint with a token.
const FETCH: &str = r#"
import json, os, sys, urllib.request
url = os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
token = sys.argv[1] if len(sys.argv) > 1 else os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
path = sys.argv[2] if len(sys.argv) > 2 else None
if path:
    url = url.rsplit("/", 2)[0] + path
req = urllib.request.Request(url, headers={"Authorization": token} if token != "-" else {})
try:
    with urllib.request.urlopen(req) as r:
        body = json.load(r)
        print(r.status, body["AccessKeyId"], body["Expiration"])
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
"#;

#[test]
fn the_aws_cli_gets_credentials_from_the_endpoint_not_the_environment() {
    let sts = FakeSts::start();
    let out = home()
        .cmd(&sts.url())
        .args(["--server", "-t", "123456", "--", "sh", "-c"])
        .arg(
            "env | grep -c '^AWS_\\(ACCESS_KEY_ID\\|SECRET_ACCESS_KEY\\|SESSION_TOKEN\\)=' ; \
             aws sts get-caller-identity --output text --query Account",
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "0\n123456789012\n");
    // The CLI signed its call with the session served by mfa-exec.
    let caller = sts
        .requests()
        .into_iter()
        .find(|r| r.action() == Some("GetCallerIdentity"))
        .unwrap();
    assert_eq!(
        caller.signing_key_id().as_deref(),
        Some("ASIAFAKESESSION00001")
    );
    assert!(caller.header("x-amz-security-token").is_some());
    assert_no_secrets(&out);
}

#[test]
fn role_sessions_are_refreshed_while_the_command_runs() {
    let sts = FakeSts::start();
    // Queued: the MFA session, the role session made before the command
    // starts, and the one its first credential fetch renews. Later role
    // sessions get the default. (GetCallerIdentity must find the queue empty.)
    sts.push(Reply::session(1));
    sts.push(Reply::assumed_role(1, ROLE).expiring_in(20 * 60));
    sts.push(Reply::assumed_role(2, ROLE).expiring_in(20 * 60));
    sts.set_default(Reply::session(9).expiring_in(20 * 60));
    let home = home();
    home.config(&format!(
        "[default]\nmfa_serial = {SERIAL}\nregion = eu-west-1\n\
         [profile prod]\nrole_arn = {ROLE}\nsource_profile = default\n"
    ));
    // With 30m as the margin, a 20-minute role session is always due for
    // renewal: every fetch forces a refresh from the cached MFA session.
    let out = home
        .cmd(&sts.url())
        .args([
            "--server",
            "-p",
            "prod",
            "-t",
            "123456",
            "--min-remaining",
            "30m",
            "--",
        ])
        .args([
            "sh",
            "-c",
            "aws sts get-caller-identity >/dev/null && aws sts get-caller-identity >/dev/null",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let keys: Vec<String> = sts
        .requests()
        .into_iter()
        .filter(|r| r.action() == Some("GetCallerIdentity"))
        .map(|r| r.signing_key_id().unwrap())
        .collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys, ["ASIAFAKEROLE00000002", "ASIAFAKESESSION00009"]);
    assert_eq!(sts.count_action("AssumeRole"), 3);
    assert_eq!(
        sts.count_action("GetSessionToken"),
        1,
        "one code for the whole run"
    );
}

#[test]
fn served_credentials_are_never_expired() {
    let sts = FakeSts::start();
    sts.push(Reply::session(1).expiring_in(20 * 60));
    sts.set_default(Reply::session(2).expiring_in(20 * 60));
    let home = home();
    home.config(&format!(
        "[default]\nmfa_serial = {SERIAL}\nmfa_process = echo 123456\n"
    ));
    let out = home
        .cmd(&sts.url())
        .args(["--server", "--min-remaining", "30m", "--", "python3", "-c"])
        .arg(format!("{FETCH}\nimport datetime\nassert datetime.datetime.fromisoformat(body['Expiration'].replace('Z', '+00:00')) > datetime.datetime.now(datetime.timezone.utc)"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).starts_with("200 ASIAFAKESESSION00002"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_missing_or_wrong_token_gets_403_and_nothing_else() {
    let sts = FakeSts::start();
    let script = format!(
        "python3 -c '{f}' - ; python3 -c '{f}' wrong-token ; python3 -c '{f}' \"\" ; \
         python3 -c '{f}' \"$AWS_CONTAINER_AUTHORIZATION_TOKEN\" /other/path ; \
         python3 -c '{f}' wrong-token /other/path ; python3 -c '{f}'",
        f = FETCH.replace('\'', "\"")
    );
    let out = home()
        .cmd(&sts.url())
        .args(["--server", "-t", "123456", "--", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 6, "{lines:?}");
    for line in &lines[..3] {
        assert_eq!(line, r#"403 {"code":"Forbidden","message":"forbidden"}"#);
    }
    assert!(lines[3].starts_with("404"), "{lines:?}");
    assert!(
        lines[4].starts_with("403"),
        "a wrong token learns nothing about paths: {lines:?}"
    );
    assert!(
        lines[5].starts_with("200 ASIAFAKESESSION00001"),
        "{lines:?}"
    );
}

#[test]
fn the_endpoint_listens_on_loopback_only_and_stops_with_the_command() {
    let sts = FakeSts::start();
    let home = home();
    let mut child = home
        .std_cmd(&sts.url())
        .args(["--server", "-t", "123456", "--", "sh", "-c"])
        .arg("echo \"$AWS_CONTAINER_CREDENTIALS_FULL_URI\"; read line")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = Vec::new();
    let mut stdout_pipe = child.stdout.take().unwrap();
    let mut byte = [0u8; 1];
    while stdout_pipe.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        first.push(byte[0]);
    }
    let url = String::from_utf8(first).unwrap();
    let port: u16 = url
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{url}"));
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    for other in ["127.0.0.2", "::1"] {
        assert!(
            TcpStream::connect((other, port)).is_err(),
            "reachable on {other}"
        );
    }
    child.stdin.take().unwrap().write_all(b"done\n").unwrap();
    assert!(child.wait().unwrap().success());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still serving after the command exited"
    );
}

#[test]
fn exit_status_and_death_by_signal_pass_through() {
    let sts = FakeSts::start();
    let home = home();
    let out = home
        .cmd(&sts.url())
        .args(["--server", "-t", "123456", "--", "sh", "-c", "exit 42"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(42));
    let out = home
        .cmd(&sts.url())
        .args(["--server", "--", "sh", "-c", "kill -TERM $$"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(15),
        "{:?} {}",
        out.status,
        stderr(&out)
    );
}

#[test]
fn sigterm_and_sigint_sent_to_mfa_exec_reach_the_command() {
    for (signal, name) in [
        (nix::sys::signal::Signal::SIGTERM, "TERM"),
        (nix::sys::signal::Signal::SIGINT, "INT"),
    ] {
        let sts = FakeSts::start();
        let home = home();
        let marker = home.path().join("got");
        let script = format!(
            "trap 'echo {name} > \"{m}\"; exit 7' {name}; touch \"{m}.ready\"; while :; do sleep 0.05; done",
            m = marker.display()
        );
        let mut child = home
            .std_cmd(&sts.url())
            .args(["--server", "-t", "123456", "--", "sh", "-c", &script])
            .spawn()
            .unwrap();
        let ready = marker.with_extension("ready");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "the command never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        nix::sys::signal::kill(pid, signal).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(7), "{name}: {status:?}");
        assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), name);
    }
}

#[test]
fn an_expiring_mfa_session_is_renewed_through_mfa_process_while_the_command_runs() {
    let sts = FakeSts::start();
    sts.push(Reply::session(1).expiring_in(20 * 60));
    sts.set_default(Reply::session(2).expiring_in(20 * 60));
    let home = home();
    let counter = home.path().join("codes");
    let code = home.script(
        "code",
        &format!("echo x >> '{}'; echo 123456", counter.display()),
    );
    home.config(&format!(
        "[default]\nmfa_serial = {SERIAL}\nmfa_process = {}\n",
        code.display()
    ));
    let out = home
        .cmd(&sts.url())
        .args([
            "--server",
            "--min-remaining",
            "30m",
            "--",
            "python3",
            "-c",
            FETCH,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("200 ASIAFAKESESSION00002"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap().lines().count(),
        2
    );
    assert_eq!(sts.count_action("GetSessionToken"), 2);
}

#[test]
fn when_no_new_code_can_be_had_a_clear_error_is_served() {
    let sts = FakeSts::start();
    sts.set_default(Reply::session(1).expiring_in(20 * 60));
    let home = home();
    // No terminal (setsid), and the code given with -t is never sent twice.
    let out = home
        .cmd_without_terminal(&sts.url())
        .args([
            "--server",
            "-t",
            "123456",
            "--min-remaining",
            "30m",
            "--",
            "python3",
            "-c",
            FETCH,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let served = stdout(&out);
    assert!(served.starts_with("500 "), "{served}");
    assert!(
        served.contains("no terminal to ask for the MFA code"),
        "{served}"
    );
    assert!(
        stderr(&out).contains("hint: pass the code with `--token-code`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        sts.count_action("GetSessionToken"),
        1,
        "the -t code was sent once"
    );
}

#[test]
fn without_a_cache_role_renewals_reuse_the_mfa_session_of_the_run() {
    let sts = FakeSts::start();
    sts.push(Reply::session(1));
    sts.set_default(Reply::session(5).expiring_in(20 * 60));
    let home = home();
    home.config(&format!(
        "[default]\nmfa_serial = {SERIAL}\nregion = eu-west-1\n\
         [profile prod]\nrole_arn = {ROLE}\nsource_profile = default\n"
    ));
    let out = home
        .cmd_without_terminal(&sts.url())
        .args([
            "--server",
            "--no-cache",
            "-p",
            "prod",
            "-t",
            "123456",
            "--min-remaining",
            "30m",
        ])
        .args(["--", "sh", "-c"])
        .arg(format!(
            "python3 -c '{f}' && python3 -c '{f}'",
            f = FETCH.replace('\'', "\"")
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let served = stdout(&out);
    let statuses: Vec<&str> = served
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(statuses, ["200", "200"], "{served}");
    assert_eq!(
        sts.count_action("GetSessionToken"),
        1,
        "one code for the run"
    );
    assert_eq!(sts.count_action("AssumeRole"), 3);
}
