//! The command as the shell sees it: found first, exec'd in place, with the
//! session in its environment only.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::ExitStatusExt;

use crate::fake_sts::FakeSts;
use crate::support::{Home, KEY_ID, assert_no_secrets, stderr, stdout};

fn run(home: &Home, sts: &FakeSts, args: &[&str]) -> std::process::Output {
    home.cmd(&sts.url())
        .args(["-t", "123456", "--"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_child_gets_the_session_and_nothing_stale() {
    let sts = FakeSts::start();
    let home = Home::new()
        .var("AWS_ACCESS_KEY_ID", "AKIASTALE")
        .var("AWS_SECRET_ACCESS_KEY", "stale-secret")
        .var("AWS_SECURITY_TOKEN", "stale-security-token")
        .var("AWS_PROFILE", "default")
        .var("AWS_ROLE_ARN", "arn:aws:iam::1:role/stale")
        .var("AWS_WEB_IDENTITY_TOKEN_FILE", "/stale")
        .var("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/")
        .var("KEEP_ME", "kept");
    let config = home.path().join(".aws/config");
    let home = home.var("AWS_CONFIG_FILE", &config);
    let out = run(&home, &sts, &["env"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let env = stdout(&out);
    let lines: Vec<&str> = env.lines().collect();
    let config_line = format!("AWS_CONFIG_FILE={}", config.display());
    for want in [
        "AWS_ACCESS_KEY_ID=ASIAFAKESESSION00001",
        "AWS_SECRET_ACCESS_KEY=fakeSessionSecret/0001+abcdefghij",
        "AWS_SESSION_TOKEN=FakeSessionToken0001//////////abcdefghijklmnopqrstuvwxyz==",
        "AWS_REGION=eu-west-1",
        "AWS_DEFAULT_REGION=eu-west-1",
        "MFA_EXEC_PROFILE=default",
        "KEEP_ME=kept",
        config_line.as_str(),
    ] {
        assert!(lines.contains(&want), "child env lacks {want}:\n{env}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("AWS_CREDENTIAL_EXPIRATION=20") && l.ends_with('Z'))
    );
    for gone in [
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        assert!(
            !env.contains(&format!("{gone}=")),
            "{gone} leaked into the child:\n{env}"
        );
    }
    assert!(!env.contains("stale"), "{env}");
    // The request was signed with the profile's key, not the stale variables.
    assert_eq!(
        sts.last().unwrap().signing_key_id().as_deref(),
        Some(KEY_ID)
    );
}

#[test]
fn exit_status_passes_through() {
    let sts = FakeSts::start();
    let out = run(&Home::new(), &sts, &["sh", "-c", "exit 42"]);
    assert_eq!(out.status.code(), Some(42));
}

#[test]
fn death_by_signal_reaches_the_parent() {
    let sts = FakeSts::start();
    let out = run(&Home::new(), &sts, &["sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.status.signal(), Some(15), "{:?}", out.status);
}

#[test]
fn the_command_runs_in_the_same_process() {
    let sts = FakeSts::start();
    let home = Home::new();
    let child = home
        .std_cmd(&sts.url())
        .args(["-t", "123456", "--", "sh", "-c", "echo $$"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(stdout(&out).trim(), pid.to_string());
}

#[test]
fn a_missing_command_exits_127_without_a_request() {
    let sts = FakeSts::start();
    let out = run(&Home::new(), &sts, &["terrafrom", "apply"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        stderr(&out).starts_with("mfa-exec: `terrafrom`: command not found\nhint: "),
        "{}",
        stderr(&out)
    );
    assert_eq!(sts.count(), 0);
}

#[test]
fn a_missing_command_is_found_out_before_asking_for_a_code() {
    let sts = FakeSts::start();
    // No --token-code and no terminal: it would fail on the prompt, if it got there.
    let out = Home::new()
        .cmd(&sts.url())
        .args(["--", "no-such-command-anywhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert_eq!(sts.count(), 0);
}

#[test]
fn a_file_that_cannot_run_exits_126_without_a_request() {
    let sts = FakeSts::start();
    let home = Home::new();
    let path = home.path().join("notes.txt");
    std::fs::write(&path, "not a program").unwrap();
    let out = run(&home, &sts, &[path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert!(stderr(&out).contains("not executable"));
    assert_eq!(sts.count(), 0);
}

#[test]
fn arguments_reach_the_command_byte_for_byte() {
    let sts = FakeSts::start();
    let home = Home::new();
    let odd: Vec<OsString> = vec![
        OsString::from_vec(b"caf\xe9 latin-1".to_vec()),
        OsString::from_vec(b"\xff\xfe".to_vec()),
        "  spaced  ".into(),
        "".into(),
        "--profile".into(),
        "$HOME `id` \"q\" 'q'".into(),
        "line\nbreak".into(),
    ];
    let out = home
        .cmd(&sts.url())
        .args([
            "-t",
            "123456",
            "--",
            "sh",
            "-c",
            r#"for a in "$@"; do printf '%s\0' "$a"; done"#,
            "sh",
        ])
        .args(&odd)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut want = Vec::new();
    for arg in &odd {
        want.extend_from_slice(arg.as_encoded_bytes());
        want.push(0);
    }
    assert_eq!(out.stdout, want);
}

#[test]
fn stdin_belongs_to_the_command() {
    let sts = FakeSts::start();
    let out = Home::new()
        .cmd(&sts.url())
        .args(["-t", "123456", "--", "cat"])
        .write_stdin("piped through\n")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(stdout(&out), "piped through\n");
}

#[test]
fn the_calling_shell_never_holds_the_session() {
    let sts = FakeSts::start();
    let home = Home::new();
    let bin = crate::support::bin();
    let script = format!(
        "'{}' -t 123456 -- true; echo \"after=${{AWS_SESSION_TOKEN-unset}} ${{AWS_ACCESS_KEY_ID-unset}}\"",
        bin.display()
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .env_clear()
        .envs(home.env(&sts.url()))
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), "after=unset unset");
    assert_eq!(sts.count(), 1);
}

#[test]
fn with_no_command_it_runs_the_users_shell() {
    let sts = FakeSts::start();
    let home = Home::new();
    let shell = home.script("myshell", "echo \"shell with $AWS_ACCESS_KEY_ID\"");
    let out = home
        .cmd(&sts.url())
        .env("SHELL", &shell)
        .args(["-t", "123456"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "shell with ASIAFAKESESSION00001\n");
}

#[test]
fn verbose_output_never_shows_secrets() {
    let sts = FakeSts::start();
    let home = Home::new();
    let out = home
        .cmd(&sts.url())
        .args(["-v", "-t", "987650", "--", "true"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(err.contains("AKIA…MPLE"), "{err}");
    assert!(err.contains("AWS_SESSION_TOKEN"), "{err}");
    assert!(!err.contains("987650"), "the code leaked: {err}");
    assert_no_secrets(&out);
}
