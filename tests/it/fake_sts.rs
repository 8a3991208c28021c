//! A fake AWS STS (plus IAM `ListMFADevices`) HTTP endpoint for tests.
//!
//! Only `std` is used. The server listens on `127.0.0.1` with an ephemeral
//! port, runs one thread per connection and supports HTTP/1.1 keep-alive.
//! Every request is recorded; answers are scripted with a queue of
//! [`Reply`] values plus a default reply.
//!
//! This file is compiled both as `mod fake_sts;` of the `it` test binary and
//! through `#[path]` from `examples/fake_sts.rs`, so not every item is used by
//! each crate.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// XML namespace of STS query-protocol responses.
pub const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// XML namespace of IAM query-protocol responses.
pub const IAM_NS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
/// Account of the fake caller.
pub const FAKE_ACCOUNT: &str = "123456789012";
/// ARN of the fake caller returned by `GetCallerIdentity`.
pub const FAKE_USER_ARN: &str = "arn:aws:iam::123456789012:user/alice";
/// User id of the fake caller returned by `GetCallerIdentity`.
pub const FAKE_USER_ID: &str = "AIDAFAKEUSER";
/// MFA device the default `ListMFADevices` answer lists.
pub const FAKE_MFA_SERIAL: &str = "arn:aws:iam::123456789012:mfa/alice";

/// How long a [`Reply::Hang`] keeps its socket open at most.
const HANG_LIMIT: Duration = Duration::from_mins(2);
const TWELVE_HOURS: i64 = 12 * 60 * 60;

/// One scripted answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Temporary credentials. Rendered as `GetSessionTokenResponse`, or as
    /// `<Action>Response` with a derived `AssumedRoleUser` when the request's
    /// `Action` starts with `AssumeRole`.
    Session {
        access_key_id: String,
        secret_access_key: String,
        session_token: String,
        expiration_secs_from_now: i64,
    },
    /// Temporary credentials plus `AssumedRoleUser` (rendered as
    /// `AssumeRoleResponse`, or `GetSessionTokenResponse` without the user when
    /// the request's `Action` does not start with `AssumeRole`).
    AssumedRole {
        access_key_id: String,
        secret_access_key: String,
        session_token: String,
        expiration_secs_from_now: i64,
        arn: String,
    },
    /// A query-protocol `ErrorResponse` with this HTTP status.
    Error {
        status: u16,
        code: String,
        message: String,
    },
    /// Read the request and never answer; the socket stays open until the
    /// server is dropped or for 120 s.
    Hang,
    /// Read the request, then close the socket without answering.
    Drop,
    /// Answer with this status and body verbatim (`Content-Type: text/xml`).
    Raw { status: u16, body: String },
    /// IAM `ListMFADevices` answer listing these serial numbers.
    MfaDevices(Vec<String>),
    /// `GetCallerIdentity` answer.
    CallerIdentity {
        arn: String,
        account: String,
        user_id: String,
    },
}

impl Reply {
    /// The deterministic default session (equal to `Reply::session(1)`).
    #[must_use]
    pub fn ok() -> Self {
        Self::session(1)
    }

    /// A session whose values embed `n`, e.g. `ASIAFAKESESSION00007`; 12 h.
    #[must_use]
    pub fn session(n: u32) -> Self {
        Self::Session {
            access_key_id: format!("ASIAFAKESESSION{n:05}"),
            secret_access_key: format!("fakeSessionSecret/{n:04}+abcdefghij"),
            session_token: format!("FakeSessionToken{n:04}//////////abcdefghijklmnopqrstuvwxyz=="),
            expiration_secs_from_now: TWELVE_HOURS,
        }
    }

    /// Assumed-role credentials whose values embed `n`, e.g.
    /// `ASIAFAKEROLE00000007`; 1 h.
    #[must_use]
    pub fn assumed_role(n: u32, arn: impl Into<String>) -> Self {
        Self::AssumedRole {
            access_key_id: format!("ASIAFAKEROLE{n:08}"),
            secret_access_key: format!("fakeRoleSecret/{n:04}+abcdefghijklm"),
            session_token: format!("FakeRoleToken{n:04}//////////abcdefghijklmnopqrstuvwxyz=="),
            expiration_secs_from_now: 60 * 60,
            arn: arn.into(),
        }
    }

    /// The same reply with another expiration (only changes credential replies).
    #[must_use]
    pub fn expiring_in(mut self, secs: i64) -> Self {
        match &mut self {
            Self::Session {
                expiration_secs_from_now,
                ..
            }
            | Self::AssumedRole {
                expiration_secs_from_now,
                ..
            } => *expiration_secs_from_now = secs,
            _ => {}
        }
        self
    }

    /// An `ErrorResponse`.
    #[must_use]
    pub fn error(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Error {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    /// Real AWS answer to a wrong MFA code.
    #[must_use]
    pub fn wrong_code() -> Self {
        Self::error(
            403,
            "AccessDenied",
            "MultiFactorAuthentication failed with invalid MFA one time pass code. ",
        )
    }

    /// Real AWS answer to an MFA serial that is not the user's.
    #[must_use]
    pub fn bad_serial() -> Self {
        Self::error(
            403,
            "AccessDenied",
            "MultiFactorAuthentication failed, unable to validate MFA code. Please verify \
             your MFA serial number is valid and associated with this user.",
        )
    }

    /// Real AWS answer to `GetSessionToken` signed with session credentials.
    #[must_use]
    pub fn session_creds() -> Self {
        Self::error(
            403,
            "AccessDenied",
            "Cannot call GetSessionToken with session credentials",
        )
    }

    /// Real AWS answer to an unknown access key id.
    #[must_use]
    pub fn invalid_token_id() -> Self {
        Self::error(
            403,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        )
    }

    /// Real AWS answer to a wrong secret access key.
    #[must_use]
    pub fn signature_mismatch() -> Self {
        Self::error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you \
             provided. Check your AWS Secret Access Key and signing method. Consult the \
             service documentation for details.",
        )
    }

    /// Real AWS answer to a request signed with a skewed clock.
    #[must_use]
    pub fn request_expired() -> Self {
        Self::error(403, "RequestExpired", "Request has expired.")
    }

    /// A 400 `ValidationError` with this message.
    #[must_use]
    pub fn validation(message: impl Into<String>) -> Self {
        Self::error(400, "ValidationError", message)
    }

    /// Real AWS throttling answer.
    #[must_use]
    pub fn throttled() -> Self {
        Self::error(400, "Throttling", "Rate exceeded")
    }

    /// The default `GetCallerIdentity` answer (alice in 123456789012).
    #[must_use]
    pub fn caller_identity() -> Self {
        Self::CallerIdentity {
            arn: FAKE_USER_ARN.to_owned(),
            account: FAKE_ACCOUNT.to_owned(),
            user_id: FAKE_USER_ID.to_owned(),
        }
    }

    /// `ListMFADevices` answer listing these serial numbers.
    #[must_use]
    pub fn mfa_devices(serials: &[&str]) -> Self {
        Self::MfaDevices(serials.iter().map(|s| (*s).to_owned()).collect())
    }

    /// A verbatim answer.
    #[must_use]
    pub fn raw(status: u16, body: impl Into<String>) -> Self {
        Self::Raw {
            status,
            body: body.into(),
        }
    }

    fn is_credentials(&self) -> bool {
        matches!(self, Self::Session { .. } | Self::AssumedRole { .. })
    }
}

/// One request as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// Request-target as sent: `/` or, through a proxy, an absolute URL.
    pub target: String,
    /// Header names are lowercased; order as received.
    pub headers: Vec<(String, String)>,
    /// Form fields of the URL-encoded body (and of the target's query string).
    pub form: BTreeMap<String, String>,
    /// Raw body, decoded lossily as UTF-8.
    pub body: String,
}

impl Recorded {
    /// First header with this name (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A form field.
    #[must_use]
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.get(name).map(String::as_str)
    }

    /// The form's `Action`.
    #[must_use]
    pub fn action(&self) -> Option<&str> {
        self.field("Action")
    }

    /// Parts of the `SigV4` `Credential=` value:
    /// `[key id, date, region, service, "aws4_request"]`.
    #[must_use]
    pub fn credential_scope(&self) -> Option<Vec<&str>> {
        let auth = self.header("authorization")?;
        let rest = auth.trim_start().strip_prefix("AWS4-HMAC-SHA256")?;
        let credential = rest
            .split(',')
            .map(str::trim)
            .find_map(|part| part.strip_prefix("Credential="))?;
        let parts: Vec<&str> = credential.split('/').collect();
        (parts.len() == 5).then_some(parts)
    }

    /// Access key id that signed the request (from `Authorization`).
    #[must_use]
    pub fn signing_key_id(&self) -> Option<String> {
        self.credential_scope().map(|p| p[0].to_owned())
    }

    /// Date (`YYYYMMDD`) of the `SigV4` credential scope.
    #[must_use]
    pub fn credential_scope_date(&self) -> Option<String> {
        self.credential_scope().map(|p| p[1].to_owned())
    }

    /// Region of the `SigV4` credential scope.
    #[must_use]
    pub fn credential_scope_region(&self) -> Option<String> {
        self.credential_scope().map(|p| p[2].to_owned())
    }

    /// Service of the `SigV4` credential scope (`sts`, `iam`).
    #[must_use]
    pub fn credential_scope_service(&self) -> Option<String> {
        self.credential_scope().map(|p| p[3].to_owned())
    }
}

struct State {
    queue: VecDeque<Reply>,
    default: Reply,
    requests: Vec<Recorded>,
}

struct Shared {
    state: Mutex<State>,
    shutdown: AtomicBool,
    next_request_id: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    /// Records the request and picks its reply (`None` for `CONNECT`).
    fn record(&self, recorded: Recorded) -> Option<Reply> {
        let mut state = self.lock();
        let reply = if recorded.method.eq_ignore_ascii_case("CONNECT") {
            None
        } else if let Some(reply) = state.queue.pop_front() {
            Some(reply)
        } else if state.default.is_credentials() {
            Some(match recorded.action() {
                Some("GetCallerIdentity") => Reply::caller_identity(),
                Some("ListMFADevices") => Reply::mfa_devices(&[FAKE_MFA_SERIAL]),
                _ => state.default.clone(),
            })
        } else {
            Some(state.default.clone())
        };
        state.requests.push(recorded);
        reply
    }
}

/// The fake endpoint. Dropping it stops accepting connections (threads that
/// serve open keep-alive connections may linger until their client closes).
pub struct FakeSts {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FakeSts {
    /// Binds `127.0.0.1:0` and serves on background threads.
    ///
    /// # Panics
    /// If the listener cannot be bound or the accept thread cannot start.
    #[must_use]
    pub fn start() -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address of listener");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                default: Reply::ok(),
                requests: Vec::new(),
            }),
            shutdown: AtomicBool::new(false),
            next_request_id: AtomicU64::new(1),
        });
        let accept_shared = Arc::clone(&shared);
        thread::Builder::new()
            .name("fake-sts-accept".to_owned())
            .spawn(move || accept_loop(&listener, &accept_shared))
            .expect("spawn fake STS accept thread");
        Self { addr, shared }
    }

    /// `http://127.0.0.1:PORT`
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    #[must_use]
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Queues a reply for the next request.
    pub fn push(&self, reply: Reply) {
        self.shared.lock().queue.push_back(reply);
    }

    /// Reply used when the queue is empty. While the default is a credential
    /// reply, `GetCallerIdentity` still gets [`Reply::caller_identity`] and
    /// `ListMFADevices` gets [`FAKE_MFA_SERIAL`].
    pub fn set_default(&self, reply: Reply) {
        self.shared.lock().default = reply;
    }

    /// Number of queued replies not consumed yet.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// All requests so far, in arrival order.
    #[must_use]
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// The latest request.
    #[must_use]
    pub fn last(&self) -> Option<Recorded> {
        self.shared.lock().requests.last().cloned()
    }

    #[must_use]
    pub fn count(&self) -> usize {
        self.shared.lock().requests.len()
    }

    /// Number of requests whose form `Action` is `action`.
    #[must_use]
    pub fn count_action(&self, action: &str) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.action() == Some(action))
            .count()
    }

    /// Waits until at least `n` requests were recorded; false on timeout.
    #[must_use]
    pub fn wait_for_count(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.count() >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for FakeSts {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so the listener closes.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.shutting_down() {
            break;
        }
        let Ok(stream) = conn else { continue };
        let shared = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name("fake-sts-conn".to_owned())
            .spawn(move || {
                let _ = serve_connection(stream, &shared);
            });
        drop(spawned);
    }
}

struct Request {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    fn wants_close(&self) -> bool {
        self.header_has_token("connection", "close")
            || (self.version.eq_ignore_ascii_case("HTTP/1.0")
                && !self.header_has_token("connection", "keep-alive"))
    }
}

fn serve_connection(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some(request) = read_request(&mut reader, &mut writer)? else {
            return Ok(());
        };
        let close = request.wants_close();
        let mut form = BTreeMap::new();
        if let Some((_, query)) = request.target.split_once('?') {
            form.extend(parse_form(query));
        }
        let body = String::from_utf8_lossy(&request.body).into_owned();
        form.extend(parse_form(&body));
        let recorded = Recorded {
            method: request.method,
            target: request.target,
            headers: request.headers,
            form,
            body,
        };
        let action = recorded.action().map(str::to_owned);
        let role_arn = recorded.field("RoleArn").map(str::to_owned);
        let role_session = recorded.field("RoleSessionName").map(str::to_owned);
        let request_id = format!(
            "fa4e5775-0000-4000-8000-{:012x}",
            shared.next_request_id.fetch_add(1, Ordering::SeqCst)
        );
        let Some(reply) = shared.record(recorded) else {
            // CONNECT (HTTPS through a proxy) is not supported.
            writer.write_all(&http_response(405, "", &request_id, true))?;
            writer.flush()?;
            return Ok(());
        };
        let (status, body) = match reply {
            Reply::Hang => {
                let started = Instant::now();
                while !shared.shutting_down() && started.elapsed() < HANG_LIMIT {
                    thread::sleep(Duration::from_millis(20));
                }
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
            Reply::Drop => {
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
            other => {
                let ctx = RenderCtx {
                    action: action.as_deref().unwrap_or(""),
                    role_arn: role_arn.as_deref(),
                    role_session: role_session.as_deref(),
                    request_id: &request_id,
                    now: unix_now(),
                };
                render(&other, &ctx)
            }
        };
        let close = close || shared.shutting_down();
        writer.write_all(&http_response(status, &body, &request_id, close))?;
        writer.flush()?;
        if close {
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

/// Reads one line without its line terminator; `None` at EOF.
fn read_line(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    if reader.read_until(b'\n', &mut buf)? == 0 {
        return Ok(None);
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// Reads one request; `None` on a clean EOF between requests.
fn read_request(reader: &mut impl BufRead, writer: &mut impl Write) -> io::Result<Option<Request>> {
    let request_line = loop {
        match read_line(reader)? {
            None => return Ok(None),
            Some(line) if line.trim().is_empty() => {}
            Some(line) => break line,
        }
    };
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(invalid("malformed request line"));
    };
    let version = parts.next().unwrap_or("HTTP/1.0");
    let mut request = Request {
        method: method.to_owned(),
        target: target.to_owned(),
        version: version.to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
    };
    loop {
        let line = read_line(reader)?.ok_or_else(|| invalid("EOF in headers"))?;
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            request
                .headers
                .push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    if request.header_has_token("expect", "100-continue") {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        writer.flush()?;
    }
    if request.header_has_token("transfer-encoding", "chunked") {
        request.body = read_chunked(reader)?;
    } else if let Some(len) = request.header("content-length") {
        let len: usize = len
            .trim()
            .parse()
            .map_err(|_| invalid("bad Content-Length"))?;
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        request.body = body;
    }
    Ok(Some(request))
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or_else(|| invalid("EOF in chunk size"))?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            // Trailers up to the empty line.
            while !read_line(reader)?
                .ok_or_else(|| invalid("EOF in trailers"))?
                .is_empty()
            {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        read_line(reader)?; // CRLF after the chunk data
    }
}

/// Decodes an `application/x-www-form-urlencoded` string.
#[must_use]
pub fn parse_form(input: &str) -> BTreeMap<String, String> {
    input
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (url_decode(key), url_decode(value))
        })
        .collect()
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn url_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                match (
                    bytes.get(i + 1).copied().and_then(hex_value),
                    bytes.get(i + 2).copied().and_then(hex_value),
                ) {
                    (Some(hi), Some(lo)) => {
                        out.push(hi << 4 | lo);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Escapes text for XML element content and attribute values.
#[must_use]
pub fn xml_escape(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

struct RenderCtx<'a> {
    action: &'a str,
    role_arn: Option<&'a str>,
    role_session: Option<&'a str>,
    request_id: &'a str,
    now: i64,
}

fn credentials_xml(key: &str, secret: &str, token: &str, expires_in: i64, now: i64) -> String {
    format!(
        "<Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey>\
         <SessionToken>{}</SessionToken><Expiration>{}</Expiration></Credentials>",
        xml_escape(key),
        xml_escape(secret),
        xml_escape(token),
        rfc3339(now.saturating_add(expires_in)),
    )
}

fn response_metadata(request_id: &str) -> String {
    format!(
        "<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata>",
        xml_escape(request_id)
    )
}

/// `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION` for a role ARN.
fn assumed_role_arn(role_arn: Option<&str>, session: &str) -> String {
    let (account, name) = role_arn
        .and_then(|arn| {
            let mut fields = arn.splitn(6, ':');
            let account = fields.nth(4)?;
            let resource = fields.next()?;
            let name = resource.strip_prefix("role/")?.rsplit('/').next()?;
            Some((account, name))
        })
        .unwrap_or((FAKE_ACCOUNT, "fake-role"));
    format!("arn:aws:sts::{account}:assumed-role/{name}/{session}")
}

fn render(reply: &Reply, ctx: &RenderCtx<'_>) -> (u16, String) {
    let (key, secret, token, expires_in, arn) = match reply {
        Reply::Session {
            access_key_id,
            secret_access_key,
            session_token,
            expiration_secs_from_now,
        } => (
            access_key_id,
            secret_access_key,
            session_token,
            *expiration_secs_from_now,
            None,
        ),
        Reply::AssumedRole {
            access_key_id,
            secret_access_key,
            session_token,
            expiration_secs_from_now,
            arn,
        } => (
            access_key_id,
            secret_access_key,
            session_token,
            *expiration_secs_from_now,
            Some(arn.clone()),
        ),
        Reply::Error {
            status,
            code,
            message,
        } => {
            let kind = if *status >= 500 { "Receiver" } else { "Sender" };
            let body = format!(
                "<ErrorResponse xmlns=\"{STS_NS}\"><Error><Type>{kind}</Type><Code>{}</Code>\
                 <Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
                xml_escape(code),
                xml_escape(message),
                xml_escape(ctx.request_id),
            );
            return (*status, body);
        }
        Reply::Raw { status, body } => return (*status, body.clone()),
        Reply::MfaDevices(serials) => {
            let mut members = String::new();
            for serial in serials {
                let _ = write!(
                    members,
                    "<member><UserName>alice</UserName><SerialNumber>{}</SerialNumber>\
                     <EnableDate>2026-01-01T00:00:00Z</EnableDate></member>",
                    xml_escape(serial)
                );
            }
            let body = format!(
                "<ListMFADevicesResponse xmlns=\"{IAM_NS}\"><ListMFADevicesResult>\
                 <IsTruncated>false</IsTruncated><MFADevices>{members}</MFADevices>\
                 </ListMFADevicesResult>{}</ListMFADevicesResponse>",
                response_metadata(ctx.request_id)
            );
            return (200, body);
        }
        Reply::CallerIdentity {
            arn,
            account,
            user_id,
        } => {
            let body = format!(
                "<GetCallerIdentityResponse xmlns=\"{STS_NS}\"><GetCallerIdentityResult>\
                 <Arn>{}</Arn><UserId>{}</UserId><Account>{}</Account>\
                 </GetCallerIdentityResult>{}</GetCallerIdentityResponse>",
                xml_escape(arn),
                xml_escape(user_id),
                xml_escape(account),
                response_metadata(ctx.request_id)
            );
            return (200, body);
        }
        Reply::Hang | Reply::Drop => return (500, String::new()),
    };
    let credentials = credentials_xml(key, secret, token, expires_in, ctx.now);
    let body = if ctx.action.starts_with("AssumeRole") {
        let session = ctx.role_session.unwrap_or("session");
        let arn = arn.unwrap_or_else(|| assumed_role_arn(ctx.role_arn, session));
        let action = ctx.action;
        format!(
            "<{action}Response xmlns=\"{STS_NS}\"><{action}Result>{credentials}\
             <AssumedRoleUser><AssumedRoleId>AROAFAKE:{}</AssumedRoleId><Arn>{}</Arn>\
             </AssumedRoleUser></{action}Result>{}</{action}Response>",
            xml_escape(session),
            xml_escape(&arn),
            response_metadata(ctx.request_id)
        )
    } else {
        format!(
            "<GetSessionTokenResponse xmlns=\"{STS_NS}\"><GetSessionTokenResult>{credentials}\
             </GetSessionTokenResult>{}</GetSessionTokenResponse>",
            response_metadata(ctx.request_id)
        )
    };
    (200, body)
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

fn http_response(status: u16, body: &str, request_id: &str, close: bool) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nx-amzn-RequestId: {request_id}\r\nContent-Type: text/xml\r\n\
         Content-Length: {}\r\nDate: {}\r\n",
        reason_phrase(status),
        body.len(),
        http_date(unix_now()),
    );
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// Seconds since the Unix epoch, now.
#[must_use]
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
#[must_use]
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // March = 0
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix timestamp.
#[must_use]
pub fn rfc3339(unix: i64) -> String {
    let (year, month, day) = civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// IMF-fixdate (`Thu, 04 Dec 2026 16:40:00 GMT`) for a Unix timestamp.
#[must_use]
pub fn http_date(unix: i64) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix.div_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let secs = unix.rem_euclid(86_400);
    let weekday = usize::try_from(days.rem_euclid(7)).map_or("Thu", |i| WEEKDAYS[i]);
    let month_name = usize::try_from(month - 1).map_or("Jan", |i| MONTHS[i]);
    format!(
        "{weekday}, {day:02} {month_name} {year:04} {:02}:{:02}:{:02} GMT",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_445_600), "2026-12-05T04:40:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(http_date(1_796_400_000), "Fri, 04 Dec 2026 16:00:00 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn form_and_scope() {
        let form = parse_form(
            "Action=GetSessionToken&SerialNumber=arn%3Aaws%3Aiam%3A%3A1%3Amfa%2Fa+b&X=%zz%4",
        );
        assert_eq!(form["Action"], "GetSessionToken");
        assert_eq!(form["SerialNumber"], "arn:aws:iam::1:mfa/a b");
        assert_eq!(form["X"], "%zz%4");
        let rec = Recorded {
            method: "POST".into(),
            target: "/".into(),
            headers: vec![(
                "authorization".into(),
                "AWS4-HMAC-SHA256 Credential=AKIDX/20261204/us-east-1/sts/aws4_request, \
                 SignedHeaders=host, Signature=ab"
                    .into(),
            )],
            form,
            body: String::new(),
        };
        assert_eq!(rec.signing_key_id().as_deref(), Some("AKIDX"));
        assert_eq!(rec.credential_scope_region().as_deref(), Some("us-east-1"));
        assert_eq!(rec.credential_scope_service().as_deref(), Some("sts"));
        assert!(rec.header("Authorization").is_some());
    }
}
