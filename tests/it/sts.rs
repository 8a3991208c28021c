//! Talking to STS: what is sent, where the inputs come from, and what the
//! user reads for every failure of DESIGN.md section 3.

use std::time::{Duration, Instant};

use crate::fake_sts::{FakeSts, Reply};
use crate::support::{Home, KEY_ID, SERIAL, assert_no_secrets, stderr};

fn run_true(home: &Home, sts: &FakeSts, extra: &[&str]) -> std::process::Output {
    home.cmd(&sts.url())
        .args(["-t", "123456"])
        .args(extra)
        .args(["--", "true"])
        .output()
        .unwrap()
}

#[test]
fn get_session_token_is_signed_by_the_long_term_key_with_the_right_fields() {
    let sts = FakeSts::start();
    let out = run_true(&Home::new(), &sts, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let reqs = sts.requests();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.action(), Some("GetSessionToken"));
    assert_eq!(req.field("Version"), Some("2011-06-15"));
    assert_eq!(req.field("SerialNumber"), Some(SERIAL));
    assert_eq!(req.field("TokenCode"), Some("123456"));
    assert_eq!(req.field("DurationSeconds"), Some("43200"));
    assert_eq!(req.signing_key_id().as_deref(), Some(KEY_ID));
    assert_eq!(req.credential_scope_service().as_deref(), Some("sts"));
    assert_eq!(req.credential_scope_region().as_deref(), Some("eu-west-1"));
    assert!(
        req.header("x-amz-security-token").is_none(),
        "long-term keys have no token"
    );
}

#[test]
fn duration_and_region_flags_reach_the_request() {
    let sts = FakeSts::start();
    let out = run_true(&Home::new(), &sts, &["-d", "90m", "--region", "ap-south-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let req = sts.last().unwrap();
    assert_eq!(req.field("DurationSeconds"), Some("5400"));
    assert_eq!(req.credential_scope_region().as_deref(), Some("ap-south-1"));
}

#[test]
fn serial_number_flag_beats_env_beats_profile() {
    let sts = FakeSts::start();
    let home = Home::new().var("AWS_MFA_SERIAL", "arn:aws:iam::123456789012:mfa/from-env");
    assert!(run_true(&home, &sts, &[]).status.success());
    assert_eq!(
        sts.last().unwrap().field("SerialNumber"),
        Some("arn:aws:iam::123456789012:mfa/from-env")
    );
    assert!(
        run_true(&home, &sts, &["-s", "arn:aws:iam::123456789012:mfa/flag"])
            .status
            .success()
    );
    assert_eq!(
        sts.last().unwrap().field("SerialNumber"),
        Some("arn:aws:iam::123456789012:mfa/flag")
    );
}

#[test]
fn a_named_profile_and_its_source_profile_are_used() {
    let sts = FakeSts::start();
    let home = Home::new();
    home.credentials(
        "[default]\naws_access_key_id = AKIADEFAULTKEY000000\naws_secret_access_key = d\n\
         [base]\naws_access_key_id = AKIABASEKEY000000000\naws_secret_access_key = b\n",
    );
    home.config(
        "[profile work]\nsource_profile = base\nmfa_serial = arn:aws:iam::222222222222:mfa/bob\n\
         region = us-west-2\n",
    );
    let out = run_true(&home, &sts, &["-p", "work"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let req = sts.last().unwrap();
    assert_eq!(
        req.signing_key_id().as_deref(),
        Some("AKIABASEKEY000000000")
    );
    assert_eq!(
        req.field("SerialNumber"),
        Some("arn:aws:iam::222222222222:mfa/bob")
    );
    assert_eq!(req.credential_scope_region().as_deref(), Some("us-west-2"));

    let home = home.var("AWS_PROFILE", "work");
    assert!(run_true(&home, &sts, &[]).status.success());
    assert_eq!(
        sts.last().unwrap().signing_key_id().as_deref(),
        Some("AKIABASEKEY000000000")
    );
}

#[test]
fn config_files_can_live_elsewhere() {
    let sts = FakeSts::start();
    let home = Home::empty();
    let config = home.path().join("cfg");
    let creds = home.path().join("creds");
    std::fs::write(&config, format!("[profile x]\nmfa_serial = {SERIAL}\n")).unwrap();
    std::fs::write(
        &creds,
        "[x]\naws_access_key_id = AKIAELSEWHERE0000000\naws_secret_access_key = e\n",
    )
    .unwrap();
    let home = home
        .var("AWS_CONFIG_FILE", &config)
        .var("AWS_SHARED_CREDENTIALS_FILE", &creds);
    let out = run_true(&home, &sts, &["-p", "x"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        sts.last().unwrap().signing_key_id().as_deref(),
        Some("AKIAELSEWHERE0000000")
    );
}

#[test]
fn long_term_keys_in_the_environment_are_used_without_a_profile() {
    let sts = FakeSts::start();
    let home = Home::empty()
        .var("AWS_ACCESS_KEY_ID", "AKIAFROMENVIRONMENT0")
        .var("AWS_SECRET_ACCESS_KEY", "e")
        .var("AWS_MFA_SERIAL", SERIAL);
    let out = run_true(&home, &sts, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        sts.last().unwrap().signing_key_id().as_deref(),
        Some("AKIAFROMENVIRONMENT0")
    );
}

#[test]
fn temporary_source_credentials_are_refused_before_any_request() {
    let sts = FakeSts::start();
    let env_session = Home::empty()
        .var("AWS_ACCESS_KEY_ID", "ASIATEMPORARY0000000")
        .var("AWS_SECRET_ACCESS_KEY", "e")
        .var("AWS_SESSION_TOKEN", "token")
        .var("AWS_MFA_SERIAL", SERIAL);
    let out = run_true(&env_session, &sts, &[]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("temporary"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`AWS_SESSION_TOKEN` is set"),
        "{}",
        stderr(&out)
    );

    let profile_session = Home::new();
    profile_session.credentials(
        "[default]\naws_access_key_id = ASIATEMP\naws_secret_access_key = s\naws_session_token = t\n",
    );
    let out = run_true(&profile_session, &sts, &[]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("profile `default`, which has `aws_session_token`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sts.count(), 0);
}

#[test]
fn credential_process_can_supply_the_long_term_keys() {
    let sts = FakeSts::start();
    let home = Home::new();
    let script = home.script(
        "creds",
        r#"echo '{"Version": 1, "AccessKeyId": "AKIAFROMPROCESS00000", "SecretAccessKey": "p"}'"#,
    );
    home.credentials("");
    home.config(&format!(
        "[default]\ncredential_process = {}\nmfa_serial = {SERIAL}\n",
        script.display()
    ));
    let out = run_true(&home, &sts, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        sts.last().unwrap().signing_key_id().as_deref(),
        Some("AKIAFROMPROCESS00000")
    );
}

#[test]
fn mfa_process_supplies_the_code() {
    let sts = FakeSts::start();
    let home = Home::new();
    let counter = home.path().join("calls");
    let script = home.script(
        "code",
        &format!("echo x >> '{}'; echo ' 654 321 '", counter.display()),
    );
    home.config(&format!(
        "[default]\nmfa_serial = {SERIAL}\nmfa_process = {}\n",
        script.display()
    ));
    let out = home.cmd(&sts.url()).args(["--", "true"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sts.last().unwrap().field("TokenCode"), Some("654321"));
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap().lines().count(),
        1
    );
}

#[test]
fn a_failing_mfa_process_is_reported() {
    let sts = FakeSts::start();
    let home = Home::new();
    home.config(&format!(
        "[default]\nmfa_serial = {SERIAL}\nmfa_process = exit 4\n"
    ));
    let out = home.cmd(&sts.url()).args(["--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("`mfa_process` of profile `default` failed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sts.count(), 0);
}

#[test]
fn an_unknown_profile_is_named() {
    let sts = FakeSts::start();
    let out = run_true(&Home::new(), &sts, &["-p", "prdo"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("profile `prdo` not found"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sts.count(), 0);
}

#[test]
fn every_sts_error_gets_its_message_and_is_never_retried() {
    let table: [(Reply, &[&str]); 8] = [
        (
            Reply::wrong_code(),
            &["refused the MFA code", "wrong, or already used"],
        ),
        (
            Reply::bad_serial(),
            &[
                SERIAL,
                "not a device of the user",
                "hint: check `--serial-number`",
            ],
        ),
        (Reply::session_creds(), &["temporary session credentials"]),
        (
            Reply::invalid_token_id(),
            &[
                "does not accept the access key of profile `default`",
                "InvalidClientTokenId",
                "inactive",
            ],
        ),
        (
            Reply::signature_mismatch(),
            &["SignatureDoesNotMatch", "aws_secret_access_key"],
        ),
        (Reply::request_expired(), &["out of date", "system clock"]),
        (
            Reply::validation("1 validation error detected: Value at 'durationSeconds' failed"),
            &["refused a parameter", "durationSeconds"],
        ),
        (Reply::throttled(), &["STS error Throttling: Rate exceeded"]),
    ];
    for (reply, needles) in table {
        let sts = FakeSts::start();
        sts.set_default(reply.clone());
        let out = run_true(&Home::new(), &sts, &[]);
        assert_eq!(out.status.code(), Some(125), "{reply:?}");
        let err = stderr(&out);
        assert!(err.starts_with("mfa-exec: "), "{err}");
        for needle in needles {
            assert!(err.contains(needle), "{reply:?}: lacks {needle}:\n{err}");
        }
        assert_eq!(sts.count(), 1, "{reply:?} was retried");
        assert_no_secrets(&out);
    }
}

#[test]
fn a_hanging_sts_times_out_once() {
    let sts = FakeSts::start();
    sts.set_default(Reply::Hang);
    let started = Instant::now();
    let out = run_true(&Home::new(), &sts, &["--timeout", "2s"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("no answer from STS at `{}` within 2s", sts.url())),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    assert_eq!(
        sts.count(),
        1,
        "a request that may have reached STS was sent again"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_dropped_connection_is_reported_and_not_retried() {
    let sts = FakeSts::start();
    sts.set_default(Reply::Drop);
    let out = run_true(&Home::new(), &sts, &[]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains(&format!("cannot reach STS at `{}`", sts.url())),
        "{}",
        stderr(&out)
    );
    assert_eq!(sts.count(), 1);
}

#[test]
fn a_refused_connection_names_the_endpoint() {
    // Bind then drop a listener so the port is closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = Home::new()
        .cmd(&url)
        .args(["-t", "123456", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot reach STS at `{url}`")),
        "{err}"
    );
    assert!(err.to_lowercase().contains("refused"), "{err}");
}

#[test]
fn the_profile_endpoint_url_is_honoured() {
    let sts = FakeSts::start();
    let home = Home::new();
    home.config(&format!(
        "[default]\nmfa_serial = {SERIAL}\nendpoint_url = {}\n",
        sts.url()
    ));
    // With no endpoint variables, a regression would call the real AWS
    // endpoint over HTTPS: a dead local proxy keeps that on this machine.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = home
        .cmd("unused")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_STS")
        .env_remove("AWS_ENDPOINT_URL_IAM")
        .env("HTTPS_PROXY", format!("http://127.0.0.1:{dead}"))
        .args(["-t", "123456", "--", "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sts.count(), 1);
}

#[test]
fn requests_go_through_the_proxy_from_the_environment() {
    // The fake STS plays the proxy: it sees the absolute-form request target.
    let proxy = FakeSts::start();
    let out = Home::new()
        .cmd("http://sts.mfa-exec.test")
        .env("HTTP_PROXY", proxy.url())
        .args(["-v", "-t", "123456", "--", "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let req = proxy.last().unwrap();
    assert!(
        req.target.starts_with("http://sts.mfa-exec.test"),
        "{}",
        req.target
    );
    assert!(stderr(&out).contains("through proxy"), "{}", stderr(&out));
}

#[test]
fn no_proxy_bypasses_the_proxy() {
    let sts = FakeSts::start();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Home::new()
        .cmd(&sts.url())
        .env("HTTP_PROXY", format!("http://127.0.0.1:{dead}"))
        .env("NO_PROXY", "127.0.0.1")
        .args(["-t", "123456", "--", "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sts.last().unwrap().target, "/");
}

#[test]
fn instance_metadata_is_never_consulted() {
    // Metadata enabled and pointed at a fake: no region configured, so a
    // loader that fell back to IMDS for region or credentials would call it.
    let imds = FakeSts::start();
    let sts = FakeSts::start();
    let home = Home::new()
        .var("AWS_EC2_METADATA_DISABLED", "false")
        .var("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url());
    home.config(&format!("[default]\nmfa_serial = {SERIAL}\n"));
    let out = run_true(&home, &sts, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        imds.count(),
        0,
        "{:?}",
        imds.requests()
            .iter()
            .map(|r| &r.target)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        sts.last().unwrap().credential_scope_region().as_deref(),
        Some("us-east-1")
    );
}
