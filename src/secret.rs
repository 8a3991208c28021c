//! Secrets in memory: zeroed on drop, never shown by `Debug`, no `Display`.

use std::fmt;

use zeroize::Zeroizing;

/// A secret string (secret access key, session token, MFA code).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    #[must_use]
    pub fn new(value: String) -> Self {
        Secret(Zeroizing::new(value))
    }

    /// The secret itself; call sites are the few places that must hand it on.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let s = Secret::new("wJalrXUtnFEMI/K7MDENG".into());
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(
            format!("{:#?}", Some(&s)),
            "Some(\n    Secret([redacted]),\n)"
        );
    }
}
