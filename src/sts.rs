//! The only module that knows the AWS SDK: the HTTP client (TLS, proxy, CA
//! bundle, timeouts), `GetSessionToken`, and turning STS errors into advice.

use std::fmt;
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Connector, proxy::ProxyConfig};
use aws_types::region::Region;
use aws_types::service_config::ServiceConfigKey;

use crate::config::{LongTermKeys, Origin, Role, Settings, Source};
use crate::error::Error;
use crate::secret::Secret;
use crate::session::Session;

/// The region STS is called in when none is configured (the global endpoint's).
pub const FALLBACK_REGION: &str = "us-east-1";

/// Connecting never gets longer than this, whatever `--timeout` says.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What an STS failure means for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The code was wrong or already used: the one case worth asking again.
    WrongCode,
    /// The serial number is not an MFA device of this user.
    BadSerial,
    /// STS got session credentials where it needs long-term keys.
    SessionCredentials,
    /// The access key is unknown, inactive, or the secret does not match.
    BadKeys,
    /// The request's timestamp is off: the clock is wrong.
    Clock,
    /// A parameter was refused.
    Validation,
    /// No answer in time.
    Timeout,
    /// Could not connect, or the connection broke.
    Network,
    /// `AssumeRole` was refused: the role's trust policy or the caller's rights.
    RoleDenied,
    /// `AssumeRole` refused the duration: above the role's maximum.
    RoleDuration,
    /// IAM refused `ListMFADevices`.
    ListDenied,
    /// Anything else STS said.
    Other,
}

/// Classifies an STS error answer by its code and message.
#[must_use]
pub fn classify(code: &str, message: &str) -> Failure {
    let lower = message.to_ascii_lowercase();
    // AWS reports a wrong clock as `SignatureDoesNotMatch: Signature expired`.
    if [
        "signature expired",
        "signature not yet current",
        "clock skew",
    ]
    .iter()
    .any(|m| lower.contains(m))
    {
        return Failure::Clock;
    }
    match code {
        "AccessDenied" if lower.contains("invalid mfa one time pass code") => Failure::WrongCode,
        "AccessDenied" if lower.contains("unable to validate mfa code") => Failure::BadSerial,
        "AccessDenied" if lower.contains("with session credentials") => Failure::SessionCredentials,
        "InvalidClientTokenId" | "SignatureDoesNotMatch" | "UnrecognizedClientException" => {
            Failure::BadKeys
        }
        "RequestExpired" | "RequestTimeTooSkewed" => Failure::Clock,
        "ValidationError" | "InvalidParameterValue" | "MissingParameter" => Failure::Validation,
        _ => Failure::Other,
    }
}

/// An STS failure with what the user needs to act on it.
#[derive(Debug)]
pub struct StsError {
    pub failure: Failure,
    pub code: String,
    pub message: String,
    pub context: Context,
}

/// Facts about the request, for messages.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub profile: String,
    pub origin: String,
    pub serial: String,
    pub endpoint: String,
    pub proxy: Option<String>,
    pub timeout: Duration,
    pub files: String,
    /// The service called: "STS", or "IAM" for `ListMFADevices`.
    pub service: &'static str,
    /// Set for `AssumeRole`.
    pub role: Option<Role>,
}

impl fmt::Display for StsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.context;
        match self.failure {
            Failure::WrongCode => f.write_str("STS refused the MFA code: wrong, or already used"),
            Failure::BadSerial => write!(
                f,
                "STS cannot check the code against MFA device `{}`: it is not a device of the \
                 user that owns the access key of {}",
                c.serial, c.origin
            ),
            Failure::SessionCredentials => write!(
                f,
                "STS refused the source credentials of {}: they are temporary session \
                 credentials",
                c.origin
            ),
            Failure::BadKeys => write!(
                f,
                "{} does not accept the access key of {} ({}): {}",
                c.service, c.origin, self.code, self.message
            ),
            Failure::Clock => write!(
                f,
                "{} says the request is out of date ({}): {}",
                c.service, self.code, self.message
            ),
            Failure::Validation => write!(f, "{} refused a parameter: {}", c.service, self.message),
            Failure::Timeout => write!(
                f,
                "no answer from {} at `{}` within {}{}",
                c.service,
                c.endpoint,
                crate::duration::format(c.timeout),
                via(c.proxy.as_deref())
            ),
            Failure::Network => write!(
                f,
                "cannot reach {} at `{}`{}: {}",
                c.service,
                c.endpoint,
                via(c.proxy.as_deref()),
                self.message
            ),
            Failure::RoleDenied => write!(
                f,
                "STS refused to let profile `{}` assume role `{}`: {}",
                c.profile,
                c.role.as_ref().map_or("", |r| r.arn.as_str()),
                self.message
            ),
            Failure::RoleDuration => write!(
                f,
                "role `{}` refuses a session of {}: {}",
                c.role.as_ref().map_or("", |r| r.arn.as_str()),
                c.role
                    .as_ref()
                    .and_then(|r| r.duration)
                    .map_or_else(|| "that length".into(), crate::duration::format),
                self.message
            ),
            Failure::ListDenied => write!(
                f,
                "IAM refused to list the MFA devices of {}: {}",
                c.origin, self.message
            ),
            Failure::Other => write!(f, "{} error {}: {}", c.service, self.code, self.message),
        }
    }
}

fn via(proxy: Option<&str>) -> String {
    proxy.map_or_else(String::new, |p| format!(" through proxy `{p}`"))
}

impl std::error::Error for StsError {}

impl StsError {
    #[must_use]
    pub fn hint(&self) -> Option<String> {
        let c = &self.context;
        Some(match self.failure {
            Failure::WrongCode => {
                "wait for the next code in the authenticator app and run again".into()
            }
            Failure::BadSerial => format!(
                "check `--serial-number`, `AWS_MFA_SERIAL` or `mfa_serial` of profile `{}`; \
                 the ARN is under IAM > Users > Security credentials",
                c.profile
            ),
            Failure::SessionCredentials => {
                "use the IAM user's long-term access key (AKIA…) in ~/.aws/credentials".into()
            }
            Failure::BadKeys => format!(
                "check `aws_access_key_id` and `aws_secret_access_key` of profile `{}` in {}; \
                 the key may be inactive or deleted",
                c.profile, c.files
            ),
            Failure::Clock => "check the system clock (e.g. `timedatectl status`)".into(),
            Failure::Timeout | Failure::Network => format!(
                "check the network, `AWS_ENDPOINT_URL_{}`/`AWS_ENDPOINT_URL`, and \
                 `HTTPS_PROXY`/`NO_PROXY`",
                c.service
            ),
            Failure::RoleDenied => format!(
                "the role's trust policy must allow the IAM user of profile `{}` with \
                 `aws:MultiFactorAuthPresent`; check `role_arn` and `external_id` of profile `{}`",
                c.profile,
                c.role.as_ref().map_or("", |r| r.profile.as_str())
            ),
            Failure::RoleDuration => format!(
                "lower `duration_seconds` in profile `{}` to at most the role's maximum \
                 session duration (1h unless the role says more)",
                c.role.as_ref().map_or("", |r| r.profile.as_str())
            ),
            Failure::ListDenied => format!(
                "pass `--serial-number`, or add `mfa_serial` to profile `{}`",
                c.profile
            ),
            Failure::Validation | Failure::Other => return None,
        })
    }
}

/// The SDK configuration (endpoint, TLS, proxy, timeouts) and a runtime to
/// drive it; each call gets a client with the credentials it must sign with.
pub struct Sts {
    sdk: aws_types::SdkConfig,
    context: Context,
    runtime: tokio::runtime::Runtime,
    verbose: bool,
}

impl fmt::Debug for Sts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sts")
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

impl Sts {
    /// Builds the SDK configuration: region, endpoint, TLS, proxy, timeouts.
    ///
    /// Region and credentials are always given explicitly, so the loader
    /// never falls back to EC2 instance metadata, which stalls for seconds
    /// off EC2.
    pub fn connect(settings: &Settings, timeout: Duration, verbose: bool) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::HttpClient(Box::new(e)))?;
        let region = settings
            .region
            .clone()
            .unwrap_or_else(|| FALLBACK_REGION.into());
        let proxy = proxy_in_env();
        let ca_pem = match &settings.ca_bundle {
            Some(path) => Some(std::fs::read(path).map_err(|source| Error::CaBundle {
                path: path.clone(),
                source,
            })?),
            None => None,
        };
        let loader = aws_config::defaults(BehaviorVersion::latest())
            .profile_name(&settings.profile)
            .region(Region::new(region.clone()))
            .no_credentials()
            // A one-time code must never be sent twice: no automatic retries.
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT.min(timeout))
                    .operation_timeout(timeout)
                    .build(),
            );
        let sdk = runtime.block_on(loader.load());
        let endpoint = endpoint_of(&sdk, "STS", &region);
        // Plain-HTTP endpoints (local emulators) need no root certificates:
        // loading the system's store costs more than the whole request.
        let tls_needed = !endpoint.starts_with("http://") || proxy.is_some();
        let sdk = sdk
            .into_builder()
            .http_client(http_client(ca_pem, tls_needed, proxy.is_some())?)
            .build();
        let context = Context {
            profile: settings.source_profile.clone(),
            origin: String::new(),
            serial: settings.serial.clone().unwrap_or_default(),
            endpoint,
            proxy,
            timeout,
            files: settings.files.clone(),
            service: "STS",
            role: None,
        };
        if verbose {
            eprintln!(
                "mfa-exec: STS at `{}`{}, region {region}",
                context.endpoint,
                via(context.proxy.as_deref()),
            );
        }
        Ok(Sts {
            sdk,
            context,
            runtime,
            verbose,
        })
    }

    /// The long-term keys: as configured, or by running `credential_process`.
    pub fn source_keys(&self, source: &Source) -> Result<LongTermKeys, Error> {
        let keys = self.runtime.block_on(source_keys(source))?;
        if self.verbose {
            eprintln!(
                "mfa-exec: using the access key {} of {}",
                mask(&keys.access_key_id),
                keys.origin
            );
        }
        Ok(keys)
    }

    fn client(&self, credentials: Credentials) -> aws_sdk_sts::Client {
        let conf = aws_sdk_sts::config::Builder::from(&self.sdk)
            .credentials_provider(credentials)
            .build();
        aws_sdk_sts::Client::from_conf(conf)
    }

    /// Calls `GetSessionToken` once, signed with the long-term keys; never retried.
    pub fn get_session_token(
        &self,
        keys: &LongTermKeys,
        serial: &str,
        code: &Secret,
        duration: Duration,
    ) -> Result<Session, Box<StsError>> {
        let secs = i32::try_from(duration.as_secs()).unwrap_or(i32::MAX);
        let client = self.client(long_term(keys));
        let call = client
            .get_session_token()
            .serial_number(serial)
            .token_code(code.expose())
            .duration_seconds(secs)
            .send();
        let mut context = self.context.clone();
        serial.clone_into(&mut context.serial);
        context.origin = keys.origin.to_string();
        let out = self
            .runtime
            .block_on(call)
            .map_err(|err| Box::new(to_sts_error(&err, context.clone())))?;
        session_of(out.credentials, duration, context)
    }

    /// Calls `AssumeRole` signed with the MFA session (its token sent along).
    pub fn assume_role(
        &self,
        base: &Session,
        role: &Role,
        session_name: &str,
    ) -> Result<Session, Box<StsError>> {
        let credentials = Credentials::new(
            base.access_key_id.clone(),
            base.secret_access_key.expose(),
            Some(base.session_token.expose().to_owned()),
            Some(base.expiration),
            "mfa-exec-session",
        );
        let client = self.client(credentials);
        let mut call = client
            .assume_role()
            .role_arn(&role.arn)
            .role_session_name(session_name)
            .set_external_id(role.external_id.clone());
        if let Some(duration) = role.duration {
            call = call.duration_seconds(i32::try_from(duration.as_secs()).unwrap_or(i32::MAX));
        }
        let mut context = self.context.clone();
        context.role = Some(role.clone());
        context.origin = format!("the MFA session of profile `{}`", self.context.profile);
        if self.verbose {
            eprintln!(
                "mfa-exec: assuming role `{}` as `{session_name}` for profile `{}`",
                role.arn, role.profile
            );
        }
        let out = self
            .runtime
            .block_on(call.send())
            .map_err(|err| Box::new(to_sts_error(&err, context.clone())))?;
        let fallback = role.duration.unwrap_or(Duration::from_secs(3600));
        session_of(out.credentials, fallback, context)
    }

    /// Lists the caller's MFA devices with IAM `ListMFADevices`, signed with
    /// the long-term keys (AWS's "force MFA" policy allows this without MFA).
    pub fn list_mfa_devices(&self, keys: &LongTermKeys) -> Result<Vec<String>, Box<StsError>> {
        let conf = aws_sdk_iam::config::Builder::from(&self.sdk)
            .credentials_provider(long_term(keys))
            .build();
        let client = aws_sdk_iam::Client::from_conf(conf);
        let mut context = self.context.clone();
        context.origin = keys.origin.to_string();
        context.service = "IAM";
        context.endpoint = endpoint_of(
            &self.sdk,
            "IAM",
            self.sdk.region().map_or(FALLBACK_REGION, |r| r.as_ref()),
        );
        let out = self
            .runtime
            .block_on(client.list_mfa_devices().send())
            .map_err(|err| Box::new(to_sts_error(&err, context.clone())))?;
        Ok(out
            .mfa_devices
            .into_iter()
            .map(|d| d.serial_number)
            .collect())
    }
}

fn long_term(keys: &LongTermKeys) -> Credentials {
    Credentials::new(
        keys.access_key_id.clone(),
        keys.secret_access_key.expose(),
        None,
        None,
        "mfa-exec",
    )
}

fn session_of(
    credentials: Option<aws_sdk_sts::types::Credentials>,
    fallback: Duration,
    context: Context,
) -> Result<Session, Box<StsError>> {
    let c = credentials.ok_or_else(|| {
        Box::new(StsError {
            failure: Failure::Other,
            code: "MissingCredentials".into(),
            message: "the answer holds no credentials".into(),
            context,
        })
    })?;
    Ok(Session {
        access_key_id: c.access_key_id().to_owned(),
        secret_access_key: Secret::new(c.secret_access_key().to_owned()),
        session_token: Secret::new(c.session_token().to_owned()),
        expiration: SystemTime::try_from(*c.expiration())
            .unwrap_or_else(|_| SystemTime::now() + fallback),
    })
}

/// A valid `RoleSessionName` (2–64 of `[\w+=,.@-]`): the profile's, else
/// `mfa-exec-<name>` from the MFA device's ARN or the login name.
#[must_use]
pub fn role_session_name(configured: Option<&str>, serial: &str, user: Option<&str>) -> String {
    let base = configured.map_or_else(
        || {
            let name = serial
                .rsplit_once('/')
                .map(|(_, n)| n)
                .filter(|n| !n.is_empty())
                .or(user)
                .unwrap_or("user");
            format!("mfa-exec-{name}")
        },
        str::to_owned,
    );
    let mut clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    while clean.len() < 2 {
        clean.push('-');
    }
    clean
}

/// Shows the first four and last four characters of a key id, as `aws configure list` does.
#[must_use]
pub fn mask(access_key_id: &str) -> String {
    let n = access_key_id.len();
    if n <= 8 || !access_key_id.is_ascii() {
        return "****".into();
    }
    format!("{}…{}", &access_key_id[..4], &access_key_id[n - 4..])
}

async fn source_keys(source: &Source) -> Result<LongTermKeys, Error> {
    match source {
        Source::Keys(keys) => Ok(keys.clone()),
        Source::Process { profile, command } => {
            let provider =
                aws_config::credential_process::CredentialProcessProvider::new(command.clone());
            let creds =
                provider
                    .provide_credentials()
                    .await
                    .map_err(|e| Error::CredentialProcess {
                        profile: profile.clone(),
                        source: Box::new(e),
                    })?;
            if creds.session_token().is_some() {
                return Err(Error::TemporarySourceCredentials {
                    origin: format!(
                        "the `credential_process` of profile `{profile}`, which printed a \
                         `SessionToken`"
                    ),
                });
            }
            Ok(LongTermKeys {
                access_key_id: creds.access_key_id().to_owned(),
                secret_access_key: Secret::new(creds.secret_access_key().to_owned()),
                origin: Origin::CredentialProcess(profile.clone()),
            })
        }
    }
}

/// The endpoint the SDK will use for `service` ("STS", "IAM"), resolved as
/// the SDK does, for messages.
fn endpoint_of(sdk: &aws_types::SdkConfig, service: &str, region: &str) -> String {
    let key = ServiceConfigKey::builder()
        .service_id(service)
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build();
    key.ok()
        .and_then(|key| sdk.service_config().and_then(|c| c.load_config(key)))
        .or_else(|| sdk.endpoint_url().map(str::to_owned))
        .unwrap_or_else(|| match service {
            "IAM" => "https://iam.amazonaws.com".into(),
            _ => format!("https://{}.{region}.amazonaws.com", service.to_lowercase()),
        })
}

/// The proxy the SDK will use, if the environment names one.
fn proxy_in_env() -> Option<String> {
    [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ]
    .iter()
    .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    .map(|p| strip_userinfo(&p))
}

/// Proxy URLs may carry a password: never show it.
fn strip_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// One TLS stack (rustls with ring), the extra CA bundle, and the proxy from
/// the environment, which the SDK's default client ignores.
fn http_client(
    ca_pem: Option<Vec<u8>>,
    native_roots: bool,
    proxy: bool,
) -> Result<aws_smithy_runtime_api::client::http::SharedHttpClient, Error> {
    let mut trust = TrustStore::default().with_native_roots(native_roots);
    if let Some(pem) = ca_pem {
        trust = trust.with_pem_certificate(pem);
    }
    let tls_context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| Error::HttpClient(Box::new(e)))?;
    Ok(
        aws_smithy_http_client::Builder::new().build_with_connector_fn(
            move |settings, components| {
                let mut builder = Connector::builder()
                    .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                    .tls_context(tls_context.clone());
                builder.set_connector_settings(settings.cloned());
                if let Some(components) = components {
                    builder.set_sleep_impl(components.sleep_impl());
                }
                if proxy {
                    builder = builder.proxy_config(ProxyConfig::from_env());
                }
                builder.build()
            },
        ),
    )
}

fn to_sts_error<E, R>(err: &SdkError<E, R>, context: Context) -> StsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    let (failure, code, message) = match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().unwrap_or("Unknown").to_owned();
            let message = e.message().unwrap_or("").trim().to_owned();
            // What a refusal means depends on the call: AssumeRole, or IAM's
            // ListMFADevices; GetSessionToken's own cases are in `classify`.
            let failure = match classify(&code, &message) {
                Failure::Other if code == "AccessDenied" && context.role.is_some() => {
                    Failure::RoleDenied
                }
                Failure::Other if code == "AccessDenied" && context.service == "IAM" => {
                    Failure::ListDenied
                }
                Failure::Validation
                    if context.role.is_some() && message.contains("DurationSeconds") =>
                {
                    Failure::RoleDuration
                }
                f => f,
            };
            (failure, code, message)
        }
        SdkError::TimeoutError(_) => (Failure::Timeout, "Timeout".into(), String::new()),
        SdkError::DispatchFailure(d) if d.is_timeout() => {
            (Failure::Timeout, "Timeout".into(), String::new())
        }
        SdkError::DispatchFailure(_) => (Failure::Network, "Network".into(), innermost(err)),
        _ => {
            let detail = innermost(err);
            (Failure::Other, "Unexpected".into(), detail)
        }
    };
    StsError {
        failure,
        code,
        message,
        context,
    }
}

/// The most specific message in an error's chain ("Connection refused (os error 111)").
fn innermost(err: &dyn std::error::Error) -> String {
    let mut last = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        last = e.to_string();
        source = e.source();
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sts_errors_are_classified_as_the_design_table_says() {
        let table = [
            (
                "AccessDenied",
                "MultiFactorAuthentication failed with invalid MFA one time pass code. ",
                Failure::WrongCode,
            ),
            (
                "AccessDenied",
                "MultiFactorAuthentication failed, unable to validate MFA code. Please verify \
                 your MFA serial number is valid and associated with this user.",
                Failure::BadSerial,
            ),
            (
                "AccessDenied",
                "Cannot call GetSessionToken with session credentials",
                Failure::SessionCredentials,
            ),
            (
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
                Failure::BadKeys,
            ),
            (
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match",
                Failure::BadKeys,
            ),
            ("RequestExpired", "Request has expired.", Failure::Clock),
            (
                "SignatureDoesNotMatch",
                "Signature expired: 20261204T000000Z is now earlier than",
                Failure::Clock,
            ),
            (
                "InvalidSignatureException",
                "Signature expired: 2026",
                Failure::Clock,
            ),
            (
                "ValidationError",
                "1 validation error detected: Value '5' at 'durationSeconds'",
                Failure::Validation,
            ),
            (
                "AccessDenied",
                "User is not authorized to perform sts:GetSessionToken",
                Failure::Other,
            ),
            ("Throttling", "Rate exceeded", Failure::Other),
        ];
        for (code, message, want) in table {
            assert_eq!(classify(code, message), want, "{code}: {message}");
        }
    }

    #[test]
    fn role_session_names_are_valid() {
        let serial = "arn:aws:iam::1:mfa/alice";
        assert_eq!(role_session_name(None, serial, None), "mfa-exec-alice");
        assert_eq!(
            role_session_name(None, "GAHT1234", Some("bob")),
            "mfa-exec-bob"
        );
        assert_eq!(
            role_session_name(None, "arn:aws:iam::1:mfa/", Some("bob smith")),
            "mfa-exec-bob-smith"
        );
        assert_eq!(
            role_session_name(Some("ci job #7"), serial, None),
            "ci-job--7"
        );
        assert_eq!(role_session_name(Some("x"), serial, None), "x-");
        assert_eq!(
            role_session_name(Some(&"a".repeat(80)), serial, None).len(),
            64
        );
    }

    #[test]
    fn key_ids_are_masked() {
        assert_eq!(mask("AKIAIOSFODNN7EXAMPLE"), "AKIA…MPLE");
        assert_eq!(mask("short"), "****");
    }

    #[test]
    fn proxy_passwords_are_not_shown() {
        assert_eq!(
            strip_userinfo("http://u:pw@proxy:3128"),
            "http://proxy:3128"
        );
        assert_eq!(strip_userinfo("http://proxy:3128"), "http://proxy:3128");
    }
}
