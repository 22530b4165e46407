//! Durations written as string literals in attribute arguments (`"500ms"`, `"30s"`, `"5m"`,
//! `"1h"`): a whole number and a unit, checked when the macro expands, so that a mistake
//! is a compile error rather than a panic or a surprise when the program runs.

use std::fmt;

/// The units a duration literal may have, as error messages list them.
pub(crate) const UNITS: &str = "`ms`, `s`, `m` or `h`";

/// Why a string is not a duration.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DurationError {
    /// It does not start with a digit: `"s"`, `""`, `"-5s"`.
    NoNumber,
    /// A number and nothing after it: `"30"`.
    NoUnit,
    /// A fraction: `"1.5s"`.
    Fraction,
    /// A number and something that is not a unit: `"30 s"`, `"30sec"`.
    UnknownUnit(String),
    /// Zero of any unit.
    Zero,
    /// More milliseconds than a `u64` holds.
    TooLong,
}

/// The milliseconds of `text`: a whole number followed by a unit, with nothing between them.
pub(crate) fn millis(text: &str) -> Result<u64, DurationError> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    if number.is_empty() {
        return Err(DurationError::NoNumber);
    }
    let per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "" => return Err(DurationError::NoUnit),
        fraction if fraction.starts_with('.') => return Err(DurationError::Fraction),
        other => return Err(DurationError::UnknownUnit(other.to_owned())),
    };
    // Only digits: parsing fails only when the number is too large.
    let number: u64 = number.parse().map_err(|_| DurationError::TooLong)?;
    let millis = number.checked_mul(per_unit).ok_or(DurationError::TooLong)?;
    if millis == 0 {
        return Err(DurationError::Zero);
    }
    Ok(millis)
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::NoNumber => write!(f, "it does not start with a whole number"),
            DurationError::NoUnit => write!(f, "it has no unit"),
            DurationError::Fraction => {
                write!(f, "it is not a whole number (write `1500ms`, not `1.5s`)")
            }
            DurationError::UnknownUnit(unit) => {
                write!(f, "`{unit}` is not a unit (nor are spaces)")
            }
            DurationError::Zero => write!(f, "it is zero, which would time every child out"),
            DurationError::TooLong => write!(f, "it is too long to count in milliseconds"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_and_a_unit() {
        assert_eq!(millis("500ms"), Ok(500));
        assert_eq!(millis("30s"), Ok(30_000));
        assert_eq!(millis("5m"), Ok(300_000));
        assert_eq!(millis("2h"), Ok(7_200_000));
        assert_eq!(millis("007s"), Ok(7_000));
    }

    #[test]
    fn mistakes_say_what_is_wrong() {
        assert_eq!(millis(""), Err(DurationError::NoNumber));
        assert_eq!(millis("s"), Err(DurationError::NoNumber));
        assert_eq!(millis("-5s"), Err(DurationError::NoNumber));
        assert_eq!(millis("1.5s"), Err(DurationError::Fraction));
        assert_eq!(millis("30"), Err(DurationError::NoUnit));
        assert_eq!(millis("30 s"), Err(DurationError::UnknownUnit(" s".into())));
        assert_eq!(
            millis("30sec"),
            Err(DurationError::UnknownUnit("sec".into()))
        );
        assert_eq!(millis("0ms"), Err(DurationError::Zero));
        assert_eq!(millis("0h"), Err(DurationError::Zero));
        assert_eq!(
            millis("99999999999999999999ms"),
            Err(DurationError::TooLong)
        );
        assert_eq!(millis("9999999999999999h"), Err(DurationError::TooLong));
    }
}
