//! Durations as people write them in config and on the command line: `90s`, `15m`, `1h`,
//! `1h30m`, `1d`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A whole number of seconds, written with units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval(u64);

impl Interval {
    pub const fn from_secs(secs: u64) -> Interval {
        Interval(secs)
    }

    pub const fn as_secs(self) -> u64 {
        self.0
    }

    pub const fn as_duration(self) -> Duration {
        Duration::from_secs(self.0)
    }
}

const UNITS: [(&str, u64); 4] = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];

impl FromStr for Interval {
    type Err = String;

    fn from_str(text: &str) -> Result<Interval, String> {
        let bad = || {
            format!(
                "`{text}` is not a duration: write a number with a unit, e.g. 90s, 15m, 1h, 1h30m or 1d"
            )
        };
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        let mut total: u64 = 0;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = rest[digits..].trim_start();
            let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            if letters == 0 {
                return Err(bad());
            }
            let unit = match &rest[..letters] {
                "d" | "day" | "days" => 86_400,
                "h" | "hour" | "hours" => 3_600,
                "m" | "min" | "mins" | "minute" | "minutes" => 60,
                "s" | "sec" | "secs" | "second" | "seconds" => 1,
                _ => return Err(bad()),
            };
            total = number
                .checked_mul(unit)
                .and_then(|n| total.checked_add(n))
                .ok_or_else(bad)?;
            rest = rest[letters..].trim_start();
        }
        Ok(Interval(total))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut left = self.0;
        for (unit, size) in UNITS {
            if left >= size {
                write!(f, "{}{unit}", left / size)?;
                left %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for Interval {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Interval, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_what_people_write() {
        for (text, secs, shown) in [
            ("90s", 90, "1m30s"),
            ("15m", 900, "15m"),
            ("1h", 3600, "1h"),
            ("1h30m", 5400, "1h30m"),
            ("2 hours", 7200, "2h"),
            ("1d", 86_400, "1d"),
            ("0s", 0, "0s"),
        ] {
            let parsed: Interval = text.parse().unwrap();
            assert_eq!(parsed.as_secs(), secs, "{text}");
            assert_eq!(parsed.to_string(), shown, "{text}");
        }
        for bad in ["", "1", "h", "-1h", "1y", "1.5h", "99999999999999999999d"] {
            let err = bad.parse::<Interval>().unwrap_err();
            assert!(err.contains("not a duration"), "{bad}: {err}");
        }
    }
}
