//! Time: RFC 3339 timestamps, durations like `3600s` or `10m`, and expiry arithmetic.

use crate::core::error::{Error, Result};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// Formats Unix seconds as RFC 3339 UTC with a `Z` and no fractional seconds. A time RFC 3339
/// cannot write (before year 0 or after 9999) comes out as the Unix epoch.
pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// Formats a time as RFC 3339 UTC with milliseconds, always three digits: log time stamps.
pub fn rfc3339_millis(t: OffsetDateTime) -> String {
    // Not `Rfc3339`: it trims a fraction's trailing zeros (.120 to .12, .000 to nothing), and
    // log lines keep one width.
    const MILLIS: &[time::format_description::BorrowedFormatItem<'_>] =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.checked_to_offset(time::UtcOffset::UTC)
        .and_then(|t| t.format(MILLIS).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".into())
}

/// Parses an RFC 3339 timestamp (any offset, optional fraction) into Unix seconds.
pub fn parse_rfc3339(s: &str) -> Result<i64> {
    Timestamp::parse(s).map(Timestamp::unix)
}

/// An instant in whole Unix seconds, parsed once from RFC 3339 and written back as RFC 3339
/// UTC with a `Z` and no fraction (the form every wif tool writes), in JSON as that string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `unix` seconds after the Unix epoch.
    pub const fn from_unix(unix: i64) -> Self {
        Timestamp(unix)
    }

    /// Now, to the second.
    pub fn now() -> Self {
        Timestamp(now_unix())
    }

    /// Parses RFC 3339 (any offset, optional fraction, which is dropped).
    pub fn parse(s: &str) -> Result<Self> {
        OffsetDateTime::parse(s.trim(), &Rfc3339)
            .map(|t| Timestamp(t.unix_timestamp()))
            .map_err(|_| Error::input(format!("{s:?} is not an RFC 3339 time (like 2026-01-31T12:00:00Z)")))
    }

    /// Seconds since the Unix epoch.
    pub const fn unix(self) -> i64 {
        self.0
    }

    /// This instant moved by `secs` seconds (saturating).
    pub const fn plus_secs(self, secs: i64) -> Self {
        Timestamp(self.0.saturating_add(secs))
    }
}

impl std::str::FromStr for Timestamp {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Timestamp::parse(s)
    }
}

/// RFC 3339 UTC, `2026-01-31T12:00:00Z` (see [`rfc3339`]).
impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&rfc3339(self.0))
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(|_| serde::de::Error::custom("not an RFC 3339 time"))
    }
}

/// Parses an HTTP `Date` in the IMF-fixdate form every current server sends (RFC 9110
/// §5.6.7: `Sun, 06 Nov 1994 08:49:37 GMT`) into Unix seconds; `None` for anything else (the
/// obsolete RFC 850 and asctime forms included: a clock judged by a date read wrongly is worse
/// than no judgement).
pub fn parse_http_date(s: &str) -> Option<i64> {
    time::PrimitiveDateTime::parse(s.trim(), IMF_FIXDATE).ok().map(|t| t.assume_utc().unix_timestamp())
}

/// `unix` as an HTTP date (IMF-fixdate, RFC 9110 §5.6.7): `Sun, 06 Dec 2026 08:49:37 GMT`;
/// the epoch for a time `time` cannot hold.
pub fn http_date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(IMF_FIXDATE).ok())
        .unwrap_or_else(|| "Thu, 01 Jan 1970 00:00:00 GMT".into())
}

/// The one form of an HTTP date wif reads and writes.
const IMF_FIXDATE: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// How far a server's clock is from this machine's, as the `Date` of its answer shows it:
/// the server's time minus ours, so positive when this machine's clock is behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Skew(i64);

impl Skew {
    /// The skew an answer dated `date` (an HTTP `Date`), received at `local_now`, shows;
    /// `None` when the date is not an IMF-fixdate.
    pub fn measure(date: &str, local_now: i64) -> Option<Skew> {
        parse_http_date(date).map(|server| Skew(server.saturating_sub(local_now)))
    }

    /// The server's time minus this machine's, in seconds.
    pub const fn secs(self) -> i64 {
        self.0
    }

    /// The server's time now, by this machine's clock and the skew.
    pub fn server_now(self) -> i64 {
        now_unix().saturating_add(self.0)
    }

    /// `this machine's clock is 600 s behind SERVER's` (or `ahead of`).
    pub fn describe(self, server: &str) -> String {
        let way = if self.0 >= 0 { "behind" } else { "ahead of" };
        format!("this machine's clock is {} s {way} {server}'s", self.0.unsigned_abs())
    }
}

/// Parses durations: `3600s`, `10m`, `1h`, `1h30m`, `2d`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || {
        Error::usage(format!("{s:?} is not a duration")).hint("write a number with a unit, like 90s, 10m, 1h or 1h30m")
    };
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = t.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| bad())?;
        num.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// Formats a duration compactly: `1h 5m`, `41 min`, `30 s`.
pub fn human(secs: i64) -> String {
    let a = secs.unsigned_abs();
    if a < 120 {
        format!("{a} s")
    } else if a < 3 * 3600 {
        format!("{} min", a / 60)
    } else if a < 3 * 86_400 {
        format!("{}h {}m", a / 3600, (a % 3600) / 60)
    } else {
        format!("{} days", a / 86_400)
    }
}

/// Describes an expiry relative to now: `expires in 41 min` or `expired 3 min ago`.
pub fn describe_expiry(expires_at: i64, now: i64) -> String {
    let left = expires_at - now;
    if left >= 0 {
        format!("expires in {}", human(left))
    } else {
        format!("expired {} ago", human(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip_without_fraction() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("2026-01-01T00:00:00Z").unwrap(), 1_767_225_600);
        assert_eq!(parse_rfc3339("2026-01-01T01:00:00.123+01:00").unwrap(), 1_767_225_600);
        assert!(parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn rfc3339_edges() {
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-62_167_219_200), "0000-01-01T00:00:00Z");
        assert_eq!(rfc3339(253_402_300_799), "9999-12-31T23:59:59Z");
        // RFC 3339 has no year 10000 nor negative years.
        for outside in [253_402_300_800, -62_167_219_201, i64::MAX, i64::MIN] {
            assert_eq!(rfc3339(outside), "1970-01-01T00:00:00Z", "{outside}");
        }
    }

    #[test]
    fn timestamps_parse_once_and_print_as_rfc3339() {
        let t: Timestamp = "2026-01-01T01:00:00.123+01:00".parse().unwrap();
        assert_eq!(t, Timestamp::from_unix(1_767_225_600));
        assert_eq!(t.to_string(), "2026-01-01T00:00:00Z");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"2026-01-01T00:00:00Z\"");
        let back: Timestamp = serde_json::from_str("\"2026-01-01T00:00:00Z\"").unwrap();
        assert_eq!(back, t);
        let e = serde_json::from_str::<Timestamp>("\"s3cret\"").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert!(serde_json::from_str::<Timestamp>("17").is_err());
        assert_eq!(t.plus_secs(60).unix(), 1_767_225_660);
    }

    #[test]
    fn milliseconds_always_three_digits_in_utc() {
        let t = OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
        assert_eq!(rfc3339_millis(t), "2026-01-01T00:00:00.000Z");
        let t = t.replace_nanosecond(120_999_999).unwrap();
        assert_eq!(rfc3339_millis(t), "2026-01-01T00:00:00.120Z");
        let t = t.to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
        assert_eq!(rfc3339_millis(t), "2026-01-01T00:00:00.120Z");
    }

    #[test]
    fn http_dates_in_imf_fixdate_only() {
        assert_eq!(http_date(1_796_546_977), "Sun, 06 Dec 2026 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(parse_http_date(&http_date(1_796_546_977)), Some(1_796_546_977));
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse_http_date(" Thu, 01 Jan 2026 00:00:00 GMT "), Some(1_767_225_600));
        for bad in ["Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "Sun, 06 Nov 1994 08:49:37 +0100", ""]
        {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn skew_from_a_date_and_which_way_it_goes() {
        let date = "Thu, 01 Jan 2026 00:10:00 GMT";
        let behind = Skew::measure(date, 1_767_225_600).unwrap();
        assert_eq!(behind.secs(), 600);
        assert_eq!(behind.describe("login.example"), "this machine's clock is 600 s behind login.example's");
        let ahead = Skew::measure(date, 1_767_225_600 + 1200).unwrap();
        assert_eq!(ahead.describe("sts.example"), "this machine's clock is 600 s ahead of sts.example's");
        assert!((ahead.server_now() - (now_unix() - 600)).abs() <= 1);
        assert_eq!(Skew::measure("yesterday", 0), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3600s").unwrap().as_secs(), 3600);
        assert_eq!(parse_duration("10m").unwrap().as_secs(), 600);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("90").unwrap().as_secs(), 90);
        for bad in ["", "s", "10x", "1h30", "-5s", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn expiry_words() {
        assert_eq!(describe_expiry(100 + 41 * 60, 100), "expires in 41 min");
        assert_eq!(describe_expiry(100, 280), "expired 3 min ago");
    }
}
