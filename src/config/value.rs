//! Parsed configuration values: durations such as `"30s"` or `"14d"`.
//!
//! Owns the text-to-value step for the newtypes the rest of the crate sees; it knows nothing
//! about which key a value came from (the validator adds that).

use std::fmt;
use std::time::Duration;

/// A non-negative duration written as an integer and one unit: `ms`, `s`, `m`, `h` or `d`, at
/// most [`Span::MAX`].
#[derive(Clone, Copy, Debug, Eq, PartialEq, Ord, PartialOrd)]
pub struct Span(pub Duration);

impl Span {
    /// The longest duration accepted: 100 years (36500 days). Anything longer means "for ever"
    /// in practice, and `Instant` or `SystemTime` arithmetic with it could overflow.
    pub const MAX: Duration = Duration::from_secs(36_500 * 86_400);

    /// Parses `"500ms"`, `"30s"`, `"15m"`, `"2h"`, `"14d"`.
    pub fn parse(text: &str) -> Result<Self, SpanError> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or(SpanError::MissingUnit)?;
        let (digits, unit) = text.split_at(split);
        if digits.is_empty() {
            return Err(SpanError::MissingNumber);
        }
        let n: u64 = digits.parse().map_err(|_| SpanError::TooLarge)?;
        let duration = match unit {
            "ms" => Some(Duration::from_millis(n)),
            "s" => Some(Duration::from_secs(n)),
            "m" => n.checked_mul(60).map(Duration::from_secs),
            "h" => n.checked_mul(3_600).map(Duration::from_secs),
            "d" => n.checked_mul(86_400).map(Duration::from_secs),
            _ => return Err(SpanError::UnknownUnit),
        };
        duration
            .filter(|d| *d <= Self::MAX)
            .map(Span)
            .ok_or(SpanError::TooLarge)
    }

    pub fn duration(self) -> Duration {
        self.0
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0.as_secs())
    }
}

/// Why a duration string did not parse.
#[derive(Debug, thiserror::Error, Eq, PartialEq)]
pub enum SpanError {
    #[error("expected a number followed by a unit (ms, s, m, h, d), e.g. \"30s\"")]
    MissingUnit,
    #[error("expected a number before the unit, e.g. \"30s\"")]
    MissingNumber,
    #[error("unknown unit: use ms, s, m, h or d, e.g. \"15m\"")]
    UnknownUnit,
    #[error("longer than 100 years (36500d), the longest duration accepted")]
    TooLarge,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(Span::parse("500ms").unwrap().0, Duration::from_millis(500));
        assert_eq!(Span::parse("30s").unwrap().0, Duration::from_secs(30));
        assert_eq!(Span::parse("15m").unwrap().0, Duration::from_secs(900));
        assert_eq!(Span::parse("2h").unwrap().0, Duration::from_secs(7200));
        assert_eq!(
            Span::parse("14d").unwrap().0,
            Duration::from_secs(14 * 86_400)
        );
        assert_eq!(Span::parse("0s").unwrap().0, Duration::ZERO);
    }

    #[test]
    fn refuses_bad_text() {
        assert_eq!(Span::parse("30"), Err(SpanError::MissingUnit));
        assert_eq!(Span::parse("s"), Err(SpanError::MissingNumber));
        assert_eq!(Span::parse("3w"), Err(SpanError::UnknownUnit));
        assert_eq!(Span::parse("-3s"), Err(SpanError::MissingNumber));
        assert_eq!(
            Span::parse("99999999999999999999d"),
            Err(SpanError::TooLarge)
        );
    }

    #[test]
    fn caps_durations_at_100_years() {
        assert_eq!(Span::parse("36500d").unwrap().0, Span::MAX);
        assert_eq!(Span::parse("876000h").unwrap().0, Span::MAX);
        for text in ["36501d", "999999999999d", "3153600001s", "3153600000001ms"] {
            assert_eq!(Span::parse(text), Err(SpanError::TooLarge), "{text}");
        }
        // The cap keeps clock arithmetic in range.
        assert!(std::time::Instant::now().checked_add(Span::MAX).is_some());
        assert!(std::time::SystemTime::now()
            .checked_add(Span::MAX)
            .is_some());
    }
}
