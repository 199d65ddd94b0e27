//! Parsed configuration values: durations such as `"30s"` or `"14d"`.
//!
//! Owns the text-to-value step for the newtypes the rest of the crate sees; it knows nothing
//! about which key a value came from (the validator adds that).

use std::fmt;
use std::time::Duration;

/// A non-negative duration written as an integer and one unit: `ms`, `s`, `m`, `h` or `d`.
#[derive(Clone, Copy, Debug, Eq, PartialEq, Ord, PartialOrd)]
pub struct Span(pub Duration);

impl Span {
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
        let secs_per_unit = match unit {
            "ms" => return Ok(Span(Duration::from_millis(n))),
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            _ => return Err(SpanError::UnknownUnit),
        };
        n.checked_mul(secs_per_unit)
            .map(|s| Span(Duration::from_secs(s)))
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
    #[error("the number is too large")]
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
}
