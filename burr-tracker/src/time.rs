//! Timestamps: microseconds since the Unix epoch, written as UTC dates.

use std::time::SystemTime;

/// Microseconds since the Unix epoch (negative before it).
pub fn micros(at: SystemTime) -> i64 {
    burr_core::persistence::micros(at)
}

/// The instant `us` microseconds after the Unix epoch, clamped to what a calendar holds.
fn timestamp(us: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_microsecond(us).unwrap_or(if us < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    })
}

/// RFC 3339 in UTC with microseconds: `2025-01-31T09:05:00.123456Z` (what Burr's
/// tracking server parses, and the CLI's JSON output).
pub fn rfc3339(us: i64) -> String {
    timestamp(us).strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

/// For people: `2025-01-31 09:05:00` (UTC, to the second).
pub fn human(us: i64) -> String {
    timestamp(us).strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// A duration for people: `850us`, `12.3ms`, `4.21s`, `3m05s`.
pub fn duration(us: i64) -> String {
    let us = us.max(0);
    if us < 1_000 {
        format!("{us}us")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1_000.0)
    } else if us < 60_000_000 {
        format!("{:.2}s", us as f64 / 1_000_000.0)
    } else {
        let secs = us / 1_000_000;
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        // 2024-02-29T23:59:59.5Z, a leap day.
        assert_eq!(
            rfc3339(1_709_251_199_500_000),
            "2024-02-29T23:59:59.500000Z"
        );
        assert_eq!(human(1_709_251_199_500_000), "2024-02-29 23:59:59");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn durations_pick_a_unit() {
        assert_eq!(duration(850), "850us");
        assert_eq!(duration(12_345), "12.3ms");
        assert_eq!(duration(4_210_000), "4.21s");
        assert_eq!(duration(185_000_000), "3m05s");
    }
}
