//! Timestamps: microseconds since the Unix epoch, written as UTC dates.

use std::time::SystemTime;

/// Microseconds since the Unix epoch (negative before it).
pub fn micros(at: SystemTime) -> i64 {
    burr_core::persistence::micros(at)
}

/// The civil date (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's
/// algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn parts(us: i64) -> (i64, u32, u32, i64, i64, i64, i64) {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil(days);
    (
        year,
        month,
        day,
        of_day / 3_600,
        of_day % 3_600 / 60,
        of_day % 60,
        micros,
    )
}

/// RFC 3339 in UTC with microseconds: `2025-01-31T09:05:00.123456Z` (what Burr's
/// tracking server parses, and the CLI's JSON output).
pub fn rfc3339(us: i64) -> String {
    let (y, mo, d, h, mi, s, micros) = parts(us);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{micros:06}Z")
}

/// For people: `2025-01-31 09:05:00` (UTC, to the second).
pub fn human(us: i64) -> String {
    let (y, mo, d, h, mi, s, _) = parts(us);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
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
