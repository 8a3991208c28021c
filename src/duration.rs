//! Durations as people type them: `12h`, `90m`, `1h30m`, or plain seconds.

use std::time::Duration;

/// Parses `3600` (seconds) or a humantime duration such as `12h` or `1h30m`.
pub fn parse(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("empty".into());
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return value
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|e| e.to_string());
    }
    humantime::parse_duration(value).map_err(|e| e.to_string())
}

/// Shortest whole form for messages: `12h`, `1h30m`, `45s`.
#[must_use]
pub fn format(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    for (n, unit) in [(h, 'h'), (m, 'm'), (s, 's')] {
        if n > 0 || (unit == 's' && out.is_empty()) {
            out.push_str(&n.to_string());
            out.push(unit);
        }
    }
    out
}

/// Session lifetimes STS accepts for an IAM user's `GetSessionToken`.
pub const SESSION_MIN: Duration = Duration::from_secs(900);
pub const SESSION_MAX: Duration = Duration::from_secs(129_600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_people_type() {
        let table = [
            ("3600", 3600),
            ("12h", 43200),
            ("90m", 5400),
            ("1h30m", 5400),
            ("36h", 129_600),
            ("15m", 900),
            (" 900 ", 900),
            ("2h 15m", 8100),
        ];
        for (input, secs) in table {
            assert_eq!(parse(input), Ok(Duration::from_secs(secs)), "{input}");
        }
    }

    #[test]
    fn rejects_nonsense() {
        for input in ["", "h", "12x", "-5", "twelve hours"] {
            assert!(parse(input).is_err(), "{input}");
        }
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format(Duration::from_secs(43200)), "12h");
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format(Duration::from_secs(59)), "59s");
        assert_eq!(format(Duration::ZERO), "0s");
    }
}
