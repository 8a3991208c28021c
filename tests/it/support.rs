//! A per-test world: its own HOME with AWS config files, a hermetic
//! environment that can only reach 127.0.0.1, and the built binary.

#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// The long-term key every test profile uses.
pub const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
pub const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
pub const SERIAL: &str = "arn:aws:iam::123456789012:mfa/alice";

/// Strings that must never appear in any output.
pub fn secrets() -> Vec<String> {
    let session = crate::fake_sts::Reply::ok();
    let mut out = vec![SECRET.to_owned()];
    if let crate::fake_sts::Reply::Session {
        secret_access_key,
        session_token,
        ..
    } = session
    {
        out.push(secret_access_key);
        out.push(session_token);
    }
    out
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mfa-exec"))
}

/// A temporary HOME with `~/.aws/config` and `~/.aws/credentials`.
pub struct Home {
    dir: tempfile::TempDir,
    /// Variables added to every command built from this home.
    pub vars: Vec<(OsString, OsString)>,
}

impl Home {
    /// A home whose `default` profile has long-term keys and an MFA device.
    pub fn new() -> Home {
        let home = Home::empty();
        home.credentials(&format!(
            "[default]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"
        ));
        home.config(&format!(
            "[default]\nmfa_serial = {SERIAL}\nregion = eu-west-1\n"
        ));
        home
    }

    /// A home with no AWS files at all.
    pub fn empty() -> Home {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".aws")).unwrap();
        Home {
            dir,
            vars: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self, text: &str) {
        std::fs::write(self.path().join(".aws/config"), text).unwrap();
    }

    pub fn credentials(&self, text: &str) {
        std::fs::write(self.path().join(".aws/credentials"), text).unwrap();
    }

    /// Writes an executable script into the home and returns its path.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    pub fn var(mut self, name: &str, value: impl Into<OsString>) -> Self {
        self.vars.push((name.into(), value.into()));
        self
    }

    /// The hermetic environment: nothing of the caller's AWS settings, every
    /// endpoint on 127.0.0.1, no instance metadata.
    pub fn env(&self, endpoint: &str) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> = vec![
            ("HOME".into(), self.path().into()),
            ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
            ("LANG".into(), "C.UTF-8".into()),
            ("SHELL".into(), "/bin/sh".into()),
            ("XDG_CACHE_HOME".into(), self.path().join(".cache").into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            ("AWS_ENDPOINT_URL".into(), endpoint.into()),
            ("AWS_ENDPOINT_URL_STS".into(), endpoint.into()),
            ("AWS_ENDPOINT_URL_IAM".into(), endpoint.into()),
        ];
        env.extend(self.vars.iter().cloned());
        env
    }

    /// `mfa-exec` with the hermetic environment, talking to `endpoint`.
    pub fn cmd(&self, endpoint: &str) -> Command {
        let mut cmd = Command::new(bin());
        cmd.env_clear()
            .envs(self.env(endpoint))
            .current_dir(self.path());
        cmd.timeout(std::time::Duration::from_secs(60));
        cmd
    }

    /// `mfa-exec` with no controlling terminal (util-linux `setsid -w`) and
    /// stdin from /dev/null, as under cron or CI: a prompt cannot happen.
    pub fn cmd_without_terminal(&self, endpoint: &str) -> std::process::Command {
        let setsid = "/usr/bin/setsid";
        assert!(Path::new(setsid).exists(), "util-linux `setsid` is needed");
        let mut cmd = std::process::Command::new(setsid);
        cmd.arg("-w")
            .arg(bin())
            .env_clear()
            .envs(self.env(endpoint))
            .current_dir(self.path())
            .stdin(std::process::Stdio::null());
        cmd
    }

    /// Same, as a plain std command (for spawning, signals, ptys).
    pub fn std_cmd(&self, endpoint: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(bin());
        cmd.env_clear()
            .envs(self.env(endpoint))
            .current_dir(self.path());
        cmd
    }
}

/// Asserts that no secret shows up in a run's output.
pub fn assert_no_secrets(output: &std::process::Output) {
    for secret in secrets() {
        for (name, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
            let text = String::from_utf8_lossy(bytes);
            assert!(!text.contains(&secret), "{name} shows a secret:\n{text}");
        }
    }
}

pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}
