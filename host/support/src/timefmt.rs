//! Times and durations as people read them: UTC wall-clock times (no time
//! zone database needed) and short durations.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::{OffsetDateTime, Time};

/// Milliseconds since the Unix epoch.
pub fn unix_millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `2026-11-28 04:12:03` (UTC) for milliseconds since the epoch; `?` for
/// a time outside years -9999 to 9999.
pub fn datetime(millis: i64) -> String {
    date_and_time(millis, ' ', "")
}

/// `2026-11-28T04:12:03Z`: RFC 3339, as GitHub writes times (whole seconds, UTC).
pub fn rfc3339(time: SystemTime) -> String {
    date_and_time(unix_millis(time), 'T', "Z")
}

/// The date, `between`, the time of day and `after`; `?` outside years -9999 to 9999.
fn date_and_time(millis: i64, between: char, after: &str) -> String {
    match utc(millis) {
        Some(time) => {
            let (year, month, day) = time.to_calendar_date();
            format!("{year:04}-{:02}-{day:02}{between}{}{after}", u8::from(month), clock(time.time()))
        }
        None => "?".to_string(),
    }
}

/// `04:12:03` (UTC).
pub fn time_of_day(time: SystemTime) -> String {
    // Every day has the same times: on 1970-01-01 the time is always in range.
    utc(unix_millis(time).rem_euclid(86_400_000)).map_or_else(String::new, |time| clock(time.time()))
}

/// The UTC time `millis` after the epoch, whole seconds.
fn utc(millis: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000)).ok()
}

fn clock(time: Time) -> String {
    format!("{:02}:{:02}:{:02}", time.hour(), time.minute(), time.second())
}

/// `0.4s`, `12.3s`, `2m05s`, `1h02m`.
pub fn duration(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    let whole = duration.as_secs();
    if seconds < 60.0 {
        format!("{seconds:.1}s")
    } else if whole < 3600 {
        format!("{}m{:02}s", whole / 60, whole % 60)
    } else {
        format!("{}h{:02}m", whole / 3600, whole / 60 % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates_and_durations() {
        assert_eq!(datetime(0), "1970-01-01 00:00:00");
        // 2026-11-28 04:05:07 UTC, a leap-year-crossing date.
        assert_eq!(datetime(1_795_838_707_000), "2026-11-28 04:05:07");
        assert_eq!(datetime(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(datetime(-1), "1969-12-31 23:59:59");
        assert_eq!(datetime(i64::MAX), "?");
        assert_eq!(time_of_day(UNIX_EPOCH + Duration::from_millis(1_795_838_707_999)), "04:05:07");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_millis(1_795_838_707_999)), "2026-11-28T04:05:07Z");
        assert_eq!(duration(Duration::from_millis(400)), "0.4s");
        assert_eq!(duration(Duration::from_secs(125)), "2m05s");
        assert_eq!(duration(Duration::from_secs(3720)), "1h02m");
    }
}
