//! Human durations on the command line (`10s`, `500ms`, `2m`): the load generator's
//! `--duration`, `--warmup` and `--timeout` take them, and so does the runner script.

use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string was empty (or only whitespace).
    #[error("empty duration")]
    Empty,
    /// The numeric part was missing or not a decimal number.
    #[error("invalid number in duration {0:?}")]
    Number(String),
    /// The unit was not one of `ns`, `us`, `ms`, `s`, `m`, `h`.
    #[error("unknown unit in duration {0:?} (use ns, us, ms, s, m or h)")]
    Unit(String),
    /// The value does not fit a `Duration` (negative, NaN or too large).
    #[error("duration {0:?} is out of range")]
    Range(String),
}

/// Parses `<number><unit>` where the number may have a fraction (`1.5s`) and the unit is one of
/// `ns`, `us`, `ms`, `s`, `m`, `h`; a bare number means seconds, as in most load tools.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    if number.is_empty() {
        return Err(DurationError::Number(input.to_owned()));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| DurationError::Number(input.to_owned()))?;
    let scale = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(DurationError::Unit(input.to_owned())),
    };
    Duration::try_from_secs_f64(value * scale).map_err(|_| DurationError::Range(input.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_rejects_garbage() {
        let ok: &[(&str, Duration)] = &[
            ("10s", Duration::from_secs(10)),
            ("10", Duration::from_secs(10)),
            (" 2s ", Duration::from_secs(2)),
            ("1.5s", Duration::from_millis(1500)),
            ("500ms", Duration::from_millis(500)),
            ("250us", Duration::from_micros(250)),
            ("250µs", Duration::from_micros(250)),
            ("100ns", Duration::from_nanos(100)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("0s", Duration::ZERO),
            ("0.25", Duration::from_millis(250)),
        ];
        for (input, want) in ok {
            assert_eq!(parse_duration(input), Ok(*want), "{input}");
        }
        let bad: &[(&str, DurationError)] = &[
            ("", DurationError::Empty),
            ("   ", DurationError::Empty),
            ("s", DurationError::Number("s".into())),
            ("-1s", DurationError::Number("-1s".into())),
            ("1.2.3s", DurationError::Number("1.2.3s".into())),
            ("10 parsecs", DurationError::Unit("10 parsecs".into())),
            ("10d", DurationError::Unit("10d".into())),
            (
                "99999999999999999999999h",
                DurationError::Range("99999999999999999999999h".into()),
            ),
        ];
        for (input, want) in bad {
            assert_eq!(parse_duration(input).as_ref(), Err(want), "{input}");
        }
    }
}
