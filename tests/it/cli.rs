//! The command line as a user meets it: help, version, usage errors, completions.

use crate::fake_sts::FakeSts;
use crate::support::{Home, stderr, stdout};

#[test]
fn help_shows_examples_and_exit_statuses() {
    let home = Home::new();
    let out = home
        .cmd("http://127.0.0.1:9")
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = stdout(&out);
    for needle in [
        "mfa-exec -- aws ec2 describe-instances",
        "--profile",
        "--serial-number",
        "--token-code",
        "--duration",
        "--region",
        "--completions",
        "125 if mfa-exec fails",
    ] {
        assert!(text.contains(needle), "help lacks {needle}:\n{text}");
    }
}

#[test]
fn version_is_the_crate_version() {
    let out = Home::new()
        .cmd("http://127.0.0.1:9")
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        stdout(&out).trim(),
        format!("mfa-exec {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_125_without_a_request() {
    let sts = FakeSts::start();
    let home = Home::new();
    for args in [
        &["--no-such-flag"][..],
        &["--duration"],
        &["--completions", "tcsh"],
    ] {
        let out = home.cmd(&sts.url()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(125), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("error:"), "{args:?}");
    }
    assert_eq!(sts.count(), 0);
}

#[test]
fn completions_are_printed_for_each_shell() {
    let home = Home::new();
    for (shell, needle) in [
        ("bash", "_mfa__exec()"),
        ("zsh", "#compdef mfa-exec"),
        ("fish", "complete -c mfa-exec"),
        ("elvish", "mfa-exec"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = home
            .cmd("http://127.0.0.1:9")
            .args(["--completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        assert!(stdout(&out).contains(needle), "{shell}");
    }
}

#[test]
fn bad_durations_are_refused_before_any_request() {
    let sts = FakeSts::start();
    let home = Home::new();
    for (value, needle) in [
        ("10m", "out of range"),
        ("37h", "out of range"),
        ("soon", "invalid `--duration`"),
    ] {
        let out = home
            .cmd(&sts.url())
            .args(["-t", "123456", "-d", value, "--", "true"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(125), "{value}");
        assert!(stderr(&out).contains(needle), "{value}: {}", stderr(&out));
        assert!(stderr(&out).contains("hint:"), "{value}");
    }
    assert_eq!(sts.count(), 0);
}

#[test]
fn a_malformed_token_code_is_refused_before_any_request() {
    let sts = FakeSts::start();
    let out = Home::new()
        .cmd(&sts.url())
        .args(["-t", "12345", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("`12345` is not an MFA code"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sts.count(), 0);
}
