//! RFC 3339 timestamps in UTC with millisecond precision, from `SystemTime` or milliseconds since the epoch, without a date library.

use std::time::{SystemTime, UNIX_EPOCH};

const MS_PER_DAY: i128 = 86_400_000;

/// `time` as RFC 3339 in UTC with milliseconds, like `2026-01-01T00:00:00.000Z`.
///
/// Times before 1970 work too; sub-millisecond parts are truncated toward the past.
pub fn format_rfc3339(time: SystemTime) -> String {
    let since_epoch_ms: i128 = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_millis() as i128,
        // Before the epoch: floor, so 1 µs before 1970 is 1969-12-31T23:59:59.999Z.
        Err(before) => {
            let before = before.duration();
            let ms = before.as_millis() as i128;
            let rounds_down = before.as_nanos() % 1_000_000 != 0;
            -(ms + i128::from(rounds_down))
        }
    };
    format_rfc3339_ms(since_epoch_ms)
}

/// Milliseconds since the Unix epoch as RFC 3339 in UTC, like `2026-01-01T00:00:00.123Z`
/// (always three digits of milliseconds; how a telemetry record may carry its timestamp).
pub fn format_rfc3339_ms(since_epoch_ms: i128) -> String {
    let days = since_epoch_ms.div_euclid(MS_PER_DAY);
    let ms_of_day = since_epoch_ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let hour = ms_of_day / 3_600_000;
    let minute = ms_of_day / 60_000 % 60;
    let second = ms_of_day / 1_000 % 60;
    let millisecond = ms_of_day % 1_000;
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millisecond:03}Z")
}

/// Milliseconds since the Unix epoch of an RFC 3339 / ISO 8601 timestamp such as
/// `2026-01-01T00:00:00Z`, `2026-01-01T00:00:00.123456789Z` (Alertmanager) or
/// `2026-01-01T00:00:00.123+0000` (the JVM's logs): any fraction (truncated to ms), and `Z`,
/// `+HH:MM` or `+HHMM`. `None` for anything else.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let number = |from: usize, to: usize| -> Option<i64> {
        let digits = text.get(from..to)?;
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if !separators
        .iter()
        .all(|&(at, c)| text.as_bytes().get(at) == Some(&c))
    {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let rest = text.get(19..)?;
    let (millisecond, zone) = match rest.strip_prefix('.') {
        Some(fraction) => {
            let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
            (padded.parse::<i64>().ok()?, &fraction[digits..])
        }
        None => (0, rest),
    };
    let offset_minutes = match zone.as_bytes() {
        [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), ..] => {
            let hhmm = zone[1..].replace(':', "");
            if hhmm.len() != 4 || !hhmm.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let minutes = hhmm[..2].parse::<i64>().ok()? * 60 + hhmm[2..].parse::<i64>().ok()?;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millisecond)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, valid for every day count).
fn civil_from_days(days: i128) -> (i128, u32, u32) {
    let shifted = days + 719_468; // days since 0000-03-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i128::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parses_what_it_formats_and_the_forms_others_write() {
        for ms in [0i64, 1_764_612_000_123, -1, 951_782_400_000] {
            assert_eq!(
                parse_rfc3339_ms(&format_rfc3339_ms(i128::from(ms))),
                Some(ms),
                "{ms}"
            );
        }
        let at = 1_764_611_872_643; // 2025-12-01T17:57:52.643Z
        assert_eq!(parse_rfc3339_ms("2025-12-01T17:57:52.643+0000"), Some(at));
        assert_eq!(parse_rfc3339_ms("2025-12-01T18:57:52.643+01:00"), Some(at));
        assert_eq!(parse_rfc3339_ms("2025-12-01T17:57:52.643999999Z"), Some(at));
        assert_eq!(parse_rfc3339_ms("2025-12-01T17:57:52Z"), Some(at - 643));
        for bad in [
            "",
            "2025-12-01",
            "2025-13-01T00:00:00Z",
            "2025-12-01T17:57:52",
            "2025-12-01T17:57:52.Z",
            "2025-12-01 17:57:52Z",
            "2025-12-01T17:57:52+1",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }

    fn at(seconds: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_millis(millis)
    }

    #[test]
    fn known_instants() {
        assert_eq!(format_rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339(at(1_767_225_600, 0)),
            "2026-01-01T00:00:00.000Z"
        );
        // 2024-02-29T23:59:59.999Z, a leap day.
        assert_eq!(
            format_rfc3339(at(1_709_251_199, 999)),
            "2024-02-29T23:59:59.999Z"
        );
        // 2000-03-01T12:34:56.789Z, just after a 400-year leap day.
        assert_eq!(
            format_rfc3339(at(951_914_096, 789)),
            "2000-03-01T12:34:56.789Z"
        );
        assert_eq!(
            format_rfc3339(UNIX_EPOCH + Duration::from_nanos(1_999_999)),
            "1970-01-01T00:00:00.001Z"
        );
    }

    #[test]
    fn before_the_epoch() {
        assert_eq!(
            format_rfc3339(UNIX_EPOCH - Duration::from_micros(1)),
            "1969-12-31T23:59:59.999Z"
        );
        assert_eq!(
            format_rfc3339(UNIX_EPOCH - Duration::from_secs(86_400 * 365)),
            "1969-01-01T00:00:00.000Z"
        );
    }
}
