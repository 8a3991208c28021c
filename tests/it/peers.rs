//! Real third-party peers for the end-to-end tests: the AWS CLI (`awscli`) and the
//! `moto` STS emulator (`moto[server]`), installed by `cargo test` itself into a
//! Python venv pinned by `tests/e2e-requirements.txt`.
//!
//! Nothing here skips: when provisioning fails (no `python3`, no `venv` module, no
//! package index), every test that needs a peer panics with pip's output and a hint.
//!
//! Environment variables:
//! - `MFA_EXEC_E2E_VENV`: where the venv lives. Default: `<target dir>/e2e-venv`, the
//!   target dir being `CARGO_TARGET_DIR` if set, else `<crate root>/target`. Relative
//!   paths (for both variables) are taken relative to the crate root. Point it at a
//!   scratch location to use this module from another crate, or at a pre-provisioned
//!   venv (it is still checked against the requirements stamp, see below).
//! - `MFA_EXEC_E2E_PYTHON`: the interpreter that creates the venv. Default: `python3`.
//!
//! Provisioning runs at most once per test process (`OnceLock`) and is serialised
//! across processes by an exclusive lock on `<venv>.lock`. It is skipped when
//! `<venv>/.mfa-exec-e2e-stamp` records that the current requirements were installed
//! successfully; the stamp is written only after `pip install` succeeded, so an
//! interrupted or failed install is redone (from a cleared venv) next time.
//!
//! Every server started here binds 127.0.0.1 only. moto's STS is fully local: it
//! never talks to real AWS.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// The pinned peers. Compiled in so that the stamp check needs no file lookup and
/// editing the file rebuilds the tests (and thereby re-provisions the venv).
const REQUIREMENTS: &str = include_str!("../e2e-requirements.txt");
const STAMP_FILE: &str = ".mfa-exec-e2e-stamp";
const STAMP_HEADER: &str = "mfa-exec e2e venv, stamp format 1\n";
const PROVISION_HINT: &str = "hint: the end-to-end tests install their peers (moto, awscli) \
    into a Python venv. They need `python3` with the `venv` module (Debian: \
    `apt-get install python3-venv`) and a reachable package index as configured for pip \
    (pip.conf / PIP_INDEX_URL). Set MFA_EXEC_E2E_PYTHON to use another interpreter, or \
    MFA_EXEC_E2E_VENV to use another venv location.";

/// How long moto gets to answer after being spawned (a cold start imports a lot).
const MOTO_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const MOTO_ATTEMPTS: u32 = 3;

/// The provisioned venv; provisions it first if needed. Panics if that fails.
pub fn venv() -> &'static Path {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    // The outcome (success or the failure message) is computed once; a failure is
    // then reported by every caller instead of being retried by every test.
    let outcome = VENV.get_or_init(|| {
        let dir = venv_dir();
        provision(&dir).map(|()| dir)
    });
    match outcome {
        Ok(dir) => dir,
        Err(msg) => panic!("{msg}"),
    }
}

/// The venv's `bin` directory: put it first on `PATH` so that a wrapped command finds
/// the real `aws` CLI.
pub fn venv_bin() -> PathBuf {
    venv().join("bin")
}

/// The real AWS CLI (v1) from the venv.
pub fn aws_cli() -> PathBuf {
    venv_bin().join("aws")
}

fn crate_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(|v| crate_root().join(v))
}

fn venv_dir() -> PathBuf {
    env_path("MFA_EXEC_E2E_VENV").unwrap_or_else(|| {
        env_path("CARGO_TARGET_DIR")
            .unwrap_or_else(|| crate_root().join("target"))
            .join("e2e-venv")
    })
}

fn stamp_contents() -> String {
    format!("{STAMP_HEADER}{REQUIREMENTS}")
}

/// The files a usable venv must have (`exists` follows symlinks, so a venv whose base
/// interpreter was removed counts as broken).
fn venv_is_complete(dir: &Path) -> bool {
    ["bin/python", "bin/aws", "bin/moto_server"]
        .iter()
        .all(|f| dir.join(f).exists())
}

fn provision(dir: &Path) -> Result<(), String> {
    let fail = |what: &str, detail: &dyn std::fmt::Display| {
        format!(
            "e2e peers: could not {what} (venv {}):\n{detail}\n\n{PROVISION_HINT}",
            dir.display()
        )
    };
    let parent = dir
        .parent()
        .ok_or_else(|| fail("locate the venv's parent directory", &"no parent"))?;
    fs::create_dir_all(parent).map_err(|e| fail("create the venv's parent directory", &e))?;

    let mut lock_path = dir.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| fail("open the lock file", &e))?;
    // Blocks while another test process provisions; released when `lock` is closed.
    lock.lock().map_err(|e| fail("lock the lock file", &e))?;

    let stamp = dir.join(STAMP_FILE);
    let expected = stamp_contents();
    if fs::read_to_string(&stamp).is_ok_and(|s| s == expected) && venv_is_complete(dir) {
        return Ok(());
    }

    // `venv --clear` empties the directory: only do that to something that is a venv.
    if dir.exists() && !dir.join("pyvenv.cfg").exists() && !is_empty_dir(dir) {
        return Err(fail(
            "create the venv",
            &"the directory exists, is not empty and is not a venv; refusing to clear it",
        ));
    }
    match fs::remove_file(&stamp) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            return Err(fail("remove the stale stamp", &e));
        }
        _ => {}
    }

    let started = Instant::now();
    notice(&format!(
        "e2e peers: provisioning {} (python -m venv, pip install -r tests/e2e-requirements.txt); \
         a cold install takes a minute or so",
        dir.display()
    ));
    let python = std::env::var_os("MFA_EXEC_E2E_PYTHON")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "python3".into());
    let mut create = Command::new(&python);
    create.args(["-m", "venv", "--clear"]).arg(dir);
    run(&mut create).map_err(|e| fail("create the venv", &e))?;

    // pip gets a copy of the compiled-in requirements so that what is installed is
    // exactly what the stamp records.
    let requirements = dir.join("e2e-requirements.txt");
    fs::write(&requirements, REQUIREMENTS).map_err(|e| fail("write the requirements", &e))?;
    let mut install = Command::new(dir.join("bin/python"));
    install
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-q",
            "-r",
        ])
        .arg(&requirements);
    run(&mut install).map_err(|e| fail("install the pinned packages with pip", &e))?;
    if !venv_is_complete(dir) {
        return Err(fail(
            "find bin/aws and bin/moto_server",
            &"pip succeeded but the venv lacks them",
        ));
    }

    let mut tmp = stamp.clone();
    tmp.set_extension("tmp");
    fs::write(&tmp, expected)
        .and_then(|()| fs::rename(&tmp, &stamp))
        .map_err(|e| fail("write the stamp", &e))?;
    notice(&format!(
        "e2e peers: provisioned in {:.1?}",
        started.elapsed()
    ));
    drop(lock);
    Ok(())
}

/// Writes straight to the process's stderr: unlike `eprintln!`, this is not captured
/// by the test harness, so a long provisioning pause is explained as it happens.
fn notice(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

fn is_empty_dir(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
}

/// Runs `cmd` to completion; on failure the error carries the command and its output.
fn run(cmd: &mut Command) -> Result<Output, String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`{shown}` could not be started: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "`{shown}` failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim_end(),
            String::from_utf8_lossy(&out.stderr).trim_end(),
        ))
    }
}

/// A running `moto_server` on 127.0.0.1; killed and reaped on drop.
///
/// moto accepts any credentials and signature and ignores `SerialNumber` and
/// `TokenCode`; to check what a client sent, read [`Moto::requests`] (moto's request
/// recorder is switched on, writing into this server's temp dir).
pub struct Moto {
    child: Child,
    port: u16,
    tls: bool,
    log: PathBuf,
    recording: PathBuf,
    /// moto's working directory, holding its log and request recording.
    _dir: tempfile::TempDir,
}

impl Moto {
    /// Starts moto over plain HTTP.
    pub fn start() -> Moto {
        Self::launch(None)
    }

    /// Starts moto over HTTPS with the given PEM certificate and key (see
    /// [`self_signed_cert`]); clients must trust `cert` (e.g. `AWS_CA_BUNDLE`).
    pub fn start_tls(cert: &Path, key: &Path) -> Moto {
        Self::launch(Some((cert, key)))
    }

    /// `http://127.0.0.1:PORT`, or `https://…` for [`Moto::start_tls`].
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What moto has logged so far (one line per request), for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Every request moto has served so far (other than `/moto-api/…`), decoded, as
    /// blocks of `METHOD URL`, `Header: value` lines, an empty line, the body (for STS
    /// the form-encoded query, e.g. `Action=GetSessionToken&…&TokenCode=123456`), and
    /// a final `----` line. Header names are as the client sent them.
    pub fn requests(&self) -> String {
        if !self.recording.exists() {
            return String::new();
        }
        let mut cmd = Command::new(venv_bin().join("python"));
        cmd.arg("-c")
            .arg(DECODE_RECORDING_SCRIPT)
            .arg(&self.recording);
        match run(&mut cmd) {
            Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
            Err(e) => panic!("e2e peers: could not decode moto's recording: {e}"),
        }
    }

    fn launch(tls: Option<(&Path, &Path)>) -> Moto {
        let server = venv_bin().join("moto_server");
        let log_dir = tempfile::Builder::new()
            .prefix("mfa-exec-moto-")
            .tempdir()
            .expect("e2e peers: create a temp dir for moto's log");
        let recording = log_dir.path().join("recording.jsonl");
        let mut failures = String::new();
        for attempt in 1..=MOTO_ATTEMPTS {
            let port = free_port();
            let log = log_dir.path().join(format!("moto-{attempt}.log"));
            let log_file = File::create(&log).expect("e2e peers: create moto's log file");
            let mut cmd = Command::new(&server);
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            if let Some((cert, key)) = tls {
                cmd.arg("--ssl-cert").arg(cert).arg("--ssl-key").arg(key);
            }
            // moto writes files relative to its working directory: keep them in ours.
            cmd.current_dir(log_dir.path())
                .env("PYTHONUNBUFFERED", "1")
                .env("MOTO_ENABLE_RECORDING", "1")
                .env("MOTO_RECORDER_FILEPATH", &recording)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("e2e peers: clone log handle"))
                .stderr(log_file);
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("e2e peers: could not start {}: {e}", server.display()));
            match wait_ready(&mut child, port, tls.is_some(), &log) {
                Ok(()) => {
                    return Moto {
                        child,
                        port,
                        tls: tls.is_some(),
                        log,
                        recording,
                        _dir: log_dir,
                    };
                }
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let _ = write!(
                        failures,
                        "\n=== attempt {attempt}, port {port}: {why}\n--- {} ---\n{}",
                        log.display(),
                        fs::read_to_string(&log).unwrap_or_default().trim_end()
                    );
                }
            }
        }
        panic!(
            "e2e peers: `{cmd}` did not come up in {MOTO_ATTEMPTS} attempts:{failures}",
            cmd = server.display()
        );
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (the listener is closed before returning).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("e2e peers: bind 127.0.0.1:0 to find a free port")
        .port()
}

/// Waits until *our* moto is serving on `port`: werkzeug logs `Running on
/// <scheme>://127.0.0.1:<port>` only after binding it (so the port is not merely
/// answered by someone else), and over plain HTTP it must also answer a request.
fn wait_ready(child: &mut Child, port: u16, tls: bool, log: &Path) -> Result<(), String> {
    let scheme = if tls { "https" } else { "http" };
    let banner = format!("Running on {scheme}://127.0.0.1:{port}");
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("moto_server exited early ({status})"));
        }
        let logged = fs::read_to_string(log).is_ok_and(|l| l.contains(&banner));
        if logged
            && (if tls {
                tcp_connects(addr)
            } else {
                http_answers(addr)
            })
        {
            return Ok(());
        }
        if started.elapsed() > MOTO_STARTUP_TIMEOUT {
            return Err(format!(
                "not serving after {MOTO_STARTUP_TIMEOUT:?} (banner logged: {logged})"
            ));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn tcp_connects(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

fn http_answers(addr: SocketAddr) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        write!(
            stream,
            "GET /moto-api/ HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut head = [0_u8; 12];
        stream.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.") && &head[9..12] == b"200")
    };
    attempt().unwrap_or(false)
}

/// Python run by the venv's interpreter: prints moto's JSON-lines request recording
/// (bodies possibly base64-encoded) as readable text, see [`Moto::requests`].
const DECODE_RECORDING_SCRIPT: &str = r#"
import base64, json, sys

with open(sys.argv[1]) as f:
    for line in f:
        entry = json.loads(line)
        if "/moto-api/" in entry["url"]:
            continue
        body = entry.get("body") or ""
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode("utf-8", "replace")
        print(entry["method"], entry["url"])
        for name, value in entry["headers"].items():
            print(f"{name}: {value}")
        print()
        print(body)
        print("----")
"#;

/// Python run by the venv's interpreter: writes a self-signed (CA-less) ECDSA P-256
/// certificate for `IP:127.0.0.1` and `DNS:localhost`, and its PKCS#8 key.
///
/// `basicConstraints` is `CA:FALSE` (webpki/rustls reject a CA certificate used as
/// the server certificate) and there is no `keyUsage` (OpenSSL then accepts the
/// certificate as its own issuer when it is the trust anchor).
const CERT_SCRIPT: &str = r#"
import datetime, ipaddress, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

cert_path, key_path = sys.argv[1], sys.argv[2]
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mfa-exec e2e test server")])
now = datetime.datetime.now(datetime.timezone.utc)
ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
cert = (
    x509.CertificateBuilder()
    .subject_name(name)
    .issuer_name(name)
    .public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(days=1))
    .not_valid_after(now + datetime.timedelta(days=30))
    .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    .add_extension(
        x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        ),
        critical=False,
    )
    .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    .add_extension(ski, critical=False)
    .add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
    )
    .sign(key, hashes.SHA256())
)
with open(key_path, "wb") as f:
    f.write(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
with open(cert_path, "wb") as f:
    f.write(cert.public_bytes(serialization.Encoding.PEM))
"#;

/// Writes `cert.pem` and `key.pem` (a self-signed server certificate for 127.0.0.1 and
/// localhost, no CA) into `dir`, using the venv's Python `cryptography` package (a
/// dependency of moto, so always present once provisioned). Trust it by passing
/// `cert.pem` as the CA bundle.
pub fn self_signed_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let mut cmd = Command::new(venv_bin().join("python"));
    cmd.arg("-c").arg(CERT_SCRIPT).arg(&cert).arg(&key);
    if let Err(e) = run(&mut cmd) {
        panic!("e2e peers: could not generate a self-signed certificate: {e}");
    }
    (cert, key)
}
