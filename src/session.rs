//! An STS session: temporary credentials and when they expire.

use std::time::{Duration, SystemTime};

use crate::secret::Secret;

/// Temporary credentials from STS.
#[derive(Debug, Clone)]
pub struct Session {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Secret,
    pub expiration: SystemTime,
}

impl Session {
    /// Time left before STS stops honouring it (zero once expired).
    #[must_use]
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.expiration
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
    }

    /// The expiration in RFC 3339 UTC (`2026-12-04T16:40:00Z`), as SDKs expect.
    #[must_use]
    pub fn expiration_rfc3339(&self) -> String {
        rfc3339(self.expiration)
    }
}

/// Formats a time as RFC 3339 UTC with whole seconds.
#[must_use]
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiration_is_rfc3339_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_402_400);
        assert_eq!(rfc3339(t), "2026-12-04T16:40:00Z");
    }

    #[test]
    fn remaining_is_zero_after_expiry() {
        let now = SystemTime::now();
        let s = Session {
            access_key_id: "ASIA".into(),
            secret_access_key: Secret::new("s".into()),
            session_token: Secret::new("t".into()),
            expiration: now - Duration::from_secs(5),
        };
        assert_eq!(s.remaining(now), Duration::ZERO);
        assert!(!format!("{s:?}").contains("\"s\""));
    }
}
