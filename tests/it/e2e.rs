//! End to end with real third-party peers: the moto STS emulator as the
//! server and the real AWS CLI as the wrapped command (both from `PyPI`,
//! provisioned into a venv under target/ by `peers`; never skipped).

use crate::peers::{self, Moto};
use crate::support::{Home, SERIAL, stderr, stdout};

/// A hermetic home whose PATH starts with the venv (for `aws`).
fn home() -> Home {
    let path = format!(
        "{}:/usr/local/bin:/usr/bin:/bin",
        peers::venv_bin().display()
    );
    Home::new().var("PATH", path)
}

#[test]
fn the_real_aws_cli_runs_with_a_moto_session() {
    let moto = Moto::start();
    let out = home()
        .cmd(&moto.url())
        .args([
            "-t",
            "123456",
            "--",
            "aws",
            "sts",
            "get-caller-identity",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\nmoto log:\n{}",
        stderr(&out),
        moto.log()
    );
    let identity = stdout(&out);
    assert!(
        identity.contains("\"Account\": \"123456789012\""),
        "{identity}"
    );

    let requests = moto.requests();
    let get_session: Vec<&str> = requests
        .split("----")
        .filter(|r| r.contains("Action=GetSessionToken"))
        .collect();
    assert_eq!(get_session.len(), 1, "{requests}");
    assert!(get_session[0].contains("TokenCode=123456"), "{requests}");
    assert!(
        get_session[0].contains(&format!(
            "SerialNumber={}",
            SERIAL.replace(':', "%3A").replace('/', "%2F")
        )),
        "{requests}"
    );
    // The CLI's own call was signed with the session's key id, sent with its token.
    let caller: Vec<&str> = requests
        .split("----")
        .filter(|r| r.contains("Action=GetCallerIdentity"))
        .collect();
    assert_eq!(caller.len(), 1, "{requests}");
    assert!(
        caller[0].to_lowercase().contains("x-amz-security-token"),
        "{requests}"
    );
}

#[test]
fn a_ca_bundle_lets_mfa_exec_and_the_cli_trust_a_private_ca() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = peers::self_signed_cert(certs.path());
    let moto = Moto::start_tls(&cert, &key);

    // Without the bundle, mfa-exec refuses the unknown certificate, quickly.
    let out = home()
        .cmd(&moto.url())
        .args(["-t", "123456", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot reach STS at `{}`", moto.url())),
        "{err}"
    );
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    // With `AWS_CA_BUNDLE`, both mfa-exec and the wrapped AWS CLI trust it.
    let out = home()
        .var("AWS_CA_BUNDLE", &cert)
        .cmd(&moto.url())
        .args(["-t", "123456", "--", "aws", "sts", "get-caller-identity"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stderr(&out), moto.log());
    assert!(stdout(&out).contains("123456789012"));

    // And the profile's `ca_bundle` works for mfa-exec itself.
    let home = home();
    home.config(&format!(
        "[default]\nmfa_serial = {SERIAL}\nregion = eu-west-1\nca_bundle = {}\n",
        cert.display()
    ));
    let out = home
        .cmd(&moto.url())
        .args(["-t", "123456", "--", "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn the_aws_cli_gets_credentials_from_mfa_exec_as_credential_process() {
    let moto = Moto::start();
    let home = home();
    let bin = crate::support::bin();
    home.config(&format!(
        "[default]\nmfa_serial = {SERIAL}\nregion = eu-west-1\n\
         [profile dev]\nregion = eu-west-1\n\
         credential_process = {} --profile default -t 123456 --export json\n",
        bin.display()
    ));
    let out = std::process::Command::new(peers::aws_cli())
        .args([
            "sts",
            "get-caller-identity",
            "--profile",
            "dev",
            "--output",
            "json",
        ])
        .env_clear()
        .envs(home.env(&moto.url()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stderr(&out), moto.log());
    assert!(stdout(&out).contains("123456789012"), "{}", stdout(&out));
    let requests = moto.requests();
    assert_eq!(
        requests.matches("Action=GetSessionToken").count(),
        1,
        "{requests}"
    );
}

#[test]
fn exported_env_lines_evaluated_by_sh_give_the_aws_cli_a_session() {
    let moto = Moto::start();
    let home = home();
    let script = format!(
        "eval \"$('{}' --export env -t 123456)\" && aws sts get-caller-identity --output json",
        crate::support::bin().display()
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .env_clear()
        .envs(home.env(&moto.url()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stderr(&out), moto.log());
    assert!(
        stdout(&out).contains("\"Account\": \"123456789012\""),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_role_profile_works_against_moto_with_the_real_cli() {
    let moto = Moto::start();
    let home = home();
    home.config(&format!(
        "[profile base]\nmfa_serial = {SERIAL}\n\
         [profile prod]\nrole_arn = arn:aws:iam::123456789012:role/admin\nsource_profile = base\n\
         region = eu-west-1\n"
    ));
    home.credentials(&format!(
        "[base]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        crate::support::KEY_ID,
        crate::support::SECRET
    ));
    let out = home
        .cmd(&moto.url())
        .args([
            "-p",
            "prod",
            "-t",
            "123456",
            "--",
            "aws",
            "sts",
            "get-caller-identity",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stderr(&out), moto.log());
    let identity = stdout(&out);
    assert!(
        identity.contains("assumed-role/admin/mfa-exec-alice"),
        "{identity}"
    );
}
