//! Roles behind MFA, finding the MFA device, and `--export` (issue 4).

use crate::fake_sts::{FAKE_MFA_SERIAL, FakeSts, Reply};
use crate::support::{Home, KEY_ID, SERIAL, assert_no_secrets, stderr, stdout};

const ROLE: &str = "arn:aws:iam::222222222222:role/admin";
const ROLE2: &str = "arn:aws:iam::333333333333:role/reader";

/// A home with `base` (keys + device) and two role profiles using it.
fn role_home() -> Home {
    let home = Home::new();
    home.credentials(&format!(
        "[base]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = secret-of-base\n"
    ));
    home.config(&format!(
        "[profile base]\nmfa_serial = {SERIAL}\nregion = eu-west-1\n\
         [profile prod]\nrole_arn = {ROLE}\nsource_profile = base\nmfa_serial = {SERIAL}\n\
         region = eu-west-2\nexternal_id = ext-123\nduration_seconds = 1800\n\
         [profile staging]\nrole_arn = {ROLE2}\nsource_profile = base\n\
         role_session_name = my session\n"
    ));
    home
}

fn env_of(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", stderr(out));
    stdout(out)
}

#[test]
fn a_role_profile_assumes_the_role_with_the_mfa_session() {
    let sts = FakeSts::start();
    sts.push(Reply::session(1));
    sts.push(Reply::assumed_role(1, ROLE));
    let out = role_home()
        .cmd(&sts.url())
        .args(["-p", "prod", "-t", "123456", "--", "env"])
        .output()
        .unwrap();
    let env = env_of(&out);
    assert!(
        env.contains("AWS_ACCESS_KEY_ID=ASIAFAKEROLE00000001\n"),
        "{env}"
    );
    assert!(env.contains("AWS_REGION=eu-west-2\n"), "{env}");
    assert!(env.contains("MFA_EXEC_PROFILE=prod\n"), "{env}");

    let reqs = sts.requests();
    assert_eq!(reqs.len(), 2);
    let (gst, assume) = (&reqs[0], &reqs[1]);
    assert_eq!(gst.action(), Some("GetSessionToken"));
    assert_eq!(gst.signing_key_id().as_deref(), Some(KEY_ID));
    assert_eq!(gst.field("SerialNumber"), Some(SERIAL));
    assert!(gst.header("x-amz-security-token").is_none());

    assert_eq!(assume.action(), Some("AssumeRole"));
    assert_eq!(
        assume.signing_key_id().as_deref(),
        Some("ASIAFAKESESSION00001")
    );
    let Reply::Session { session_token, .. } = Reply::session(1) else {
        unreachable!()
    };
    assert_eq!(
        assume.header("x-amz-security-token"),
        Some(session_token.as_str())
    );
    assert_eq!(assume.field("RoleArn"), Some(ROLE));
    assert_eq!(assume.field("RoleSessionName"), Some("mfa-exec-alice"));
    assert_eq!(assume.field("ExternalId"), Some("ext-123"));
    assert_eq!(assume.field("DurationSeconds"), Some("1800"));
    assert!(
        assume.field("TokenCode").is_none(),
        "the code is used once, by GetSessionToken"
    );
}

#[test]
fn one_code_covers_every_role_profile_of_the_same_source() {
    let sts = FakeSts::start();
    let home = role_home();
    let run = |profile: &str| {
        home.cmd(&sts.url())
            .args(["-p", profile, "--", "sh", "-c", "echo $AWS_ACCESS_KEY_ID"])
            .output()
            .unwrap()
    };
    // The first run needs a code; the later ones must not ask (no -t, no tty).
    let first = home
        .cmd(&sts.url())
        .args(["-p", "prod", "-t", "123456", "--", "true"])
        .output()
        .unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        run("staging").status.success(),
        "{}",
        stderr(&run("staging"))
    );
    assert!(run("prod").status.success());
    assert_eq!(sts.count_action("GetSessionToken"), 1);
    assert_eq!(
        sts.count_action("AssumeRole"),
        2,
        "prod's role session is cached"
    );
    let staging = sts
        .requests()
        .into_iter()
        .find(|r| r.field("RoleArn") == Some(ROLE2))
        .unwrap();
    assert_eq!(staging.field("RoleSessionName"), Some("my-session"));
    assert!(staging.field("ExternalId").is_none());
    assert!(
        staging.field("DurationSeconds").is_none(),
        "STS's default (1h) applies"
    );
}

#[test]
fn role_arn_flag_assumes_a_role_from_any_profile() {
    let sts = FakeSts::start();
    let out = Home::new()
        .cmd(&sts.url())
        .args(["--role-arn", ROLE, "-t", "123456", "--", "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let reqs = sts.requests();
    assert_eq!(reqs[1].action(), Some("AssumeRole"));
    assert_eq!(reqs[1].field("RoleArn"), Some(ROLE));
}

#[test]
fn a_refused_assume_role_names_the_role_and_its_trust_policy() {
    let sts = FakeSts::start();
    sts.push(Reply::ok());
    sts.push(Reply::error(
        403,
        "AccessDenied",
        "User: arn:aws:iam::123456789012:user/alice is not authorized to perform: sts:AssumeRole",
    ));
    let out = role_home()
        .cmd(&sts.url())
        .args(["-p", "prod", "-t", "123456", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(err.contains(&format!("assume role `{ROLE}`")), "{err}");
    assert!(err.contains("not authorized"), "{err}");
    assert!(err.contains("hint: the role's trust policy"), "{err}");
    assert_no_secrets(&out);
}

#[test]
fn a_too_long_role_session_is_explained() {
    let sts = FakeSts::start();
    sts.push(Reply::ok());
    sts.push(Reply::validation(
        "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
    ));
    let out = role_home()
        .cmd(&sts.url())
        .args(["-p", "prod", "-t", "123456", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("role `{ROLE}` refuses a session of 30m")),
        "{err}"
    );
    assert!(
        err.contains("lower `duration_seconds` in profile `prod`"),
        "{err}"
    );
}

#[test]
fn a_role_profile_without_a_usable_source_says_so() {
    let sts = FakeSts::start();
    let home = Home::new();
    home.config(&format!(
        "[profile a]\nrole_arn = {ROLE}\nmfa_serial = {SERIAL}\n\
         [profile b]\nrole_arn = {ROLE}\nsource_profile = nowhere\n\
         [profile c]\nrole_arn = {ROLE}\ncredential_source = Ec2InstanceMetadata\n"
    ));
    for (profile, needle) in [
        ("a", "has no usable `source_profile`"),
        ("b", "(`nowhere` is not a profile)"),
        ("c", "`credential_source`"),
    ] {
        let out = home
            .cmd(&sts.url())
            .args(["-p", profile, "-t", "123456", "--", "true"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(125), "{profile}");
        assert!(stderr(&out).contains(needle), "{profile}: {}", stderr(&out));
    }
    assert_eq!(sts.count(), 0);
}

#[test]
fn one_mfa_device_is_found_used_and_remembered() {
    let sts = FakeSts::start();
    let home = Home::new();
    home.config("[default]\nregion = eu-west-1\n");
    let out = home
        .cmd(&sts.url())
        .args(["-t", "123456", "--", "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("using MFA device `{FAKE_MFA_SERIAL}`")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "hint: add `mfa_serial = {FAKE_MFA_SERIAL}` to profile `default`"
        )),
        "{err}"
    );
    let list = &sts.requests()[0];
    assert_eq!(list.action(), Some("ListMFADevices"));
    assert_eq!(list.signing_key_id().as_deref(), Some(KEY_ID));
    assert_eq!(list.credential_scope_service().as_deref(), Some("iam"));
    assert_eq!(
        sts.requests()[1].field("SerialNumber"),
        Some(FAKE_MFA_SERIAL)
    );

    // A cold run later (forced with --refresh) does not ask IAM again.
    let out = home
        .cmd(&sts.url())
        .args(["--refresh", "-t", "654321", "--", "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sts.count_action("ListMFADevices"), 1);
    assert_eq!(sts.count_action("GetSessionToken"), 2);
}

#[test]
fn no_several_or_fido_only_devices_are_explained() {
    let cases: [(&[&str], &[&str]); 3] = [
        (
            &[],
            &["has no MFA device", "hint: assign a virtual MFA device"],
        ),
        (
            &[
                "arn:aws:iam::123456789012:mfa/a",
                "arn:aws:iam::123456789012:mfa/b",
            ],
            &["several MFA devices", "mfa/a", "mfa/b", "--serial-number"],
        ),
        (
            &["arn:aws:iam::123456789012:u2f/user/alice/yubikey-ABC"],
            &["FIDO security keys", "cannot be used from the command line"],
        ),
    ];
    for (devices, needles) in cases {
        let sts = FakeSts::start();
        sts.push(Reply::mfa_devices(devices));
        let home = Home::new();
        home.config("[default]\n");
        let out = home
            .cmd(&sts.url())
            .args(["-t", "123456", "--", "true"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(125), "{devices:?}");
        for needle in needles {
            assert!(
                stderr(&out).contains(needle),
                "{devices:?}: {}",
                stderr(&out)
            );
        }
        assert_eq!(sts.count_action("GetSessionToken"), 0);
    }
}

#[test]
fn export_json_is_the_credential_process_format() {
    let sts = FakeSts::start();
    let out = Home::new()
        .cmd(&sts.url())
        .args(["--export", "json", "-t", "123456"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Version"], 1);
    assert_eq!(v["AccessKeyId"], "ASIAFAKESESSION00001");
    assert_eq!(v["SecretAccessKey"], "fakeSessionSecret/0001+abcdefghij");
    assert!(
        v["SessionToken"]
            .as_str()
            .unwrap()
            .starts_with("FakeSessionToken0001")
    );
    assert!(v["Expiration"].as_str().unwrap().ends_with('Z'));
    assert!(
        !stderr(&out).contains("fakeSession"),
        "secrets only on stdout"
    );
}

#[test]
fn export_env_lines_give_a_working_session_when_evaluated() {
    let sts = FakeSts::start();
    let home = Home::new()
        .var("AWS_PROFILE", "default")
        .var("AWS_SECURITY_TOKEN", "stale");
    let script = format!(
        "eval \"$('{}' --export env -t 123456)\" && echo \"$AWS_ACCESS_KEY_ID ${{AWS_PROFILE-unset}} ${{AWS_SECURITY_TOKEN-unset}} $MFA_EXEC_PROFILE\"",
        crate::support::bin().display()
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .env_clear()
        .envs(home.env(&sts.url()))
        .output()
        .unwrap();
    assert_eq!(
        stdout(&out),
        "ASIAFAKESESSION00001 unset unset default\n",
        "{}",
        stderr(&out)
    );
}

#[test]
fn export_fish_lines_are_fish_syntax() {
    let sts = FakeSts::start();
    let out = Home::new()
        .var("AWS_PROFILE", "default")
        .cmd(&sts.url())
        .args(["--export", "fish", "-t", "123456"])
        .output()
        .unwrap();
    let text = env_of(&out);
    assert!(
        text.contains("set -gx AWS_ACCESS_KEY_ID 'ASIAFAKESESSION00001';\n"),
        "{text}"
    );
    assert!(text.contains("set -e AWS_PROFILE;\n"), "{text}");
}

#[test]
fn export_and_actions_refuse_a_command() {
    let sts = FakeSts::start();
    for flag in ["--export=json", "--login", "--status", "--logout"] {
        let out = Home::new()
            .cmd(&sts.url())
            .args([flag, "--", "true"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(125), "{flag}");
    }
    assert_eq!(sts.count(), 0);
}

#[test]
fn a_credential_process_that_runs_mfa_exec_is_not_followed() {
    let sts = FakeSts::start();
    let home = Home::new();
    home.credentials("");
    home.config(&format!(
        "[default]\ncredential_process = mfa-exec --export json\nmfa_serial = {SERIAL}\n"
    ));
    let out = home
        .cmd(&sts.url())
        .args(["-t", "123456", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("runs mfa-exec"), "{}", stderr(&out));
    assert_eq!(sts.count(), 0);
}

#[test]
fn discovery_failures_name_iam_not_sts() {
    let sts = FakeSts::start();
    sts.push(Reply::error(
        403,
        "AccessDenied",
        "User: arn:aws:iam::123456789012:user/alice is not authorized to perform: iam:ListMFADevices",
    ));
    let home = Home::new();
    home.config("[default]\n");
    let out = home
        .cmd(&sts.url())
        .args(["-t", "123456", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(
        err.contains("IAM refused to list the MFA devices of profile `default`"),
        "{err}"
    );
    assert!(err.contains("hint: pass `--serial-number`"), "{err}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let iam = format!("http://127.0.0.1:{closed}");
    let out = home
        .cmd(&sts.url())
        .env("AWS_ENDPOINT_URL_IAM", &iam)
        .args(["-t", "123456", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot reach IAM at `{iam}`")),
        "{err}"
    );
    assert!(err.contains("`AWS_ENDPOINT_URL_IAM`"), "{err}");
    assert_eq!(sts.count_action("GetSessionToken"), 0);
}
