//! Sizes (`64MiB`, `1GB`, `4096`) and durations (`5s`, `250ms`, `2m`, `1h`) as operators write
//! them, parsed exactly and printed back in the same form.
//!
//! A small parser instead of `bytesize`/`humantime`: those accept more than our contract
//! (fractions, `1h 30m`, `5 sec`, case-insensitive units) and print forms that do not round-trip
//! (`64.0 MiB`, `1m 30s`), so `--check-config` output would not read back identically.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// What a size error says, after the key and source.
pub(crate) const SIZE_EXPECTED: &str = "expected a size like 64MiB";
/// What a duration error says, after the key and source.
pub(crate) const DURATION_EXPECTED: &str = "expected a duration like 5s";

/// Units by decreasing factor: printing picks the first that divides exactly (the shortest
/// number), parsing looks the unit up by name.
const UNITS: [(&str, u64); 9] = [
    ("TiB", 1 << 40),
    ("TB", 1_000_000_000_000),
    ("GiB", 1 << 30),
    ("GB", 1_000_000_000),
    ("MiB", 1 << 20),
    ("MB", 1_000_000),
    ("KiB", 1 << 10),
    ("KB", 1_000),
    ("B", 1),
];

/// A number of bytes, written `64MiB`, `2GiB`, `512KiB`, `1GB` (decimal) or plain `4096`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// `n` bytes.
    pub const fn b(n: u64) -> Self {
        Self(n)
    }
    /// `n` KiB.
    pub const fn kib(n: u64) -> Self {
        Self(n << 10)
    }
    /// `n` MiB.
    pub const fn mib(n: u64) -> Self {
        Self(n << 20)
    }
    /// `n` GiB.
    pub const fn gib(n: u64) -> Self {
        Self(n << 30)
    }
    /// The size in bytes.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
    /// The size in bytes as `usize`, saturating on 32-bit targets.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl FromStr for ByteSize {
    type Err = ();

    /// Digits, optional spaces, an optional unit (exact case): `B`, `KiB`, `MiB`, `GiB`, `TiB`,
    /// `KB`, `MB`, `GB`, `TB`. No fractions, no overflow.
    fn from_str(s: &str) -> Result<Self, ()> {
        let s = s.trim();
        let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(digits_end);
        if number.is_empty() {
            return Err(());
        }
        let n: u64 = number.parse().map_err(|_| ())?;
        let unit = unit.trim_start();
        let factor = if unit.is_empty() {
            1
        } else {
            UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, f)| *f)
                .ok_or(())?
        };
        n.checked_mul(factor).map(ByteSize).ok_or(())
    }
}

impl fmt::Display for ByteSize {
    /// The largest unit that divides the size exactly: `64MiB`, `1GB`, `20GB`, `1000KiB`,
    /// `1536B`... `0` prints as `0B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0B");
        }
        for (name, factor) in UNITS {
            if self.0.is_multiple_of(factor) {
                return write!(f, "{}{name}", self.0 / factor);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    /// A string (`"64MiB"`) or a non-negative integer of bytes.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size like 64MiB")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse()
                    .map_err(|()| E::custom(format!("{SIZE_EXPECTED}, got {v:?}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("{SIZE_EXPECTED}, got {v}")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ByteSize, E> {
                Err(E::custom(format!("{SIZE_EXPECTED}, got {v}")))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ByteSize, E> {
                Err(E::custom(format!("{SIZE_EXPECTED}, got {v}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses `250ms`, `5s`, `2m`, `1h` (a whole number and exactly one unit).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let digits_end = s.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = s.split_at(digits_end);
    if number.is_empty() {
        return None;
    }
    let n: u64 = number.parse().ok()?;
    let millis_per_unit: u64 = match unit.trim_start() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(millis_per_unit).map(Duration::from_millis)
}

/// Prints a duration in the largest unit that divides it exactly; sub-millisecond parts are
/// dropped (the parser cannot express them, so they never occur in a loaded config).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    for (unit, factor) in [("h", 3_600_000u128), ("m", 60_000), ("s", 1_000)] {
        if ms.is_multiple_of(factor) {
            return format!("{}{unit}", ms / factor);
        }
    }
    format!("{ms}ms")
}

/// `#[serde(with = "duration")]` for `std::time::Duration` fields written `5s`.
pub(crate) mod duration {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration like 5s")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                parse_duration(v)
                    .ok_or_else(|| E::custom(format!("{DURATION_EXPECTED}, got {v:?}")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                Err(E::custom(format!("{DURATION_EXPECTED}, got {v}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Err(E::custom(format!("{DURATION_EXPECTED}, got {v}")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
                Err(E::custom(format!("{DURATION_EXPECTED}, got {v}")))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Duration, E> {
                Err(E::custom(format!("{DURATION_EXPECTED}, got {v}")))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_exactly() {
        let cases: [(&str, Option<u64>); 22] = [
            ("0", Some(0)),
            ("4096", Some(4096)),
            ("4096B", Some(4096)),
            ("512KiB", Some(512 << 10)),
            ("64MiB", Some(64 << 20)),
            ("2GiB", Some(2 << 30)),
            ("1TiB", Some(1 << 40)),
            ("1KB", Some(1_000)),
            ("3MB", Some(3_000_000)),
            ("1GB", Some(1_000_000_000)),
            ("2TB", Some(2_000_000_000_000)),
            (" 64 MiB ", Some(64 << 20)),
            ("64mib", None),
            ("64Mb", None),
            ("1.5GiB", None),
            ("-1", None),
            ("MiB", None),
            ("", None),
            ("lots", None),
            ("64 MiB extra", None),
            ("99999999999TiB", None),
            ("18446744073709551616", None),
        ];
        for (input, want) in cases {
            assert_eq!(
                input.parse::<ByteSize>().ok().map(|s| s.0),
                want,
                "{input:?}"
            );
        }
    }

    #[test]
    fn sizes_print_in_the_largest_exact_unit_and_round_trip() {
        let cases = [
            (0, "0B"),
            (1, "1B"),
            (1000, "1KB"),
            (1024, "1KiB"),
            (1536, "1536B"),
            (64 << 20, "64MiB"),
            (1 << 30, "1GiB"),
            (1_000_000_000, "1GB"),
            (1_500_000, "1500KB"),
            (20_000_000_000, "20GB"),
            (1_024_000, "1000KiB"),
            (1 << 40, "1TiB"),
            (3 << 40, "3TiB"),
        ];
        for (n, text) in cases {
            assert_eq!(ByteSize(n).to_string(), text);
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(n)));
        }
    }

    #[test]
    fn durations_parse_exactly() {
        let ms = Duration::from_millis;
        let cases = [
            ("250ms", Some(ms(250))),
            ("5s", Some(ms(5_000))),
            ("2m", Some(ms(120_000))),
            ("1h", Some(ms(3_600_000))),
            ("0s", Some(ms(0))),
            (" 10 s ", Some(ms(10_000))),
            ("5", None),
            ("5S", None),
            ("1.5s", None),
            ("1h30m", None),
            ("5sec", None),
            ("-5s", None),
            ("s", None),
            ("", None),
            ("x", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input), want, "{input:?}");
        }
    }

    #[test]
    fn durations_print_in_the_largest_exact_unit_and_round_trip() {
        let cases = [
            (0, "0s"),
            (250, "250ms"),
            (1_500, "1500ms"),
            (5_000, "5s"),
            (90_000, "90s"),
            (120_000, "2m"),
            (86_400_000, "24h"),
        ];
        for (millis, text) in cases {
            let d = Duration::from_millis(millis);
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(text), Some(d));
        }
    }

    #[test]
    fn serde_forms() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct T {
            size: ByteSize,
            #[serde(with = "duration")]
            wait: Duration,
        }
        let t: T = toml::from_str("size = \"2GiB\"\nwait = \"250ms\"").unwrap();
        assert_eq!(
            t,
            T {
                size: ByteSize::gib(2),
                wait: Duration::from_millis(250)
            }
        );
        let t: T = toml::from_str("size = 1024\nwait = \"1h\"").unwrap();
        assert_eq!(t.size, ByteSize::kib(1));
        assert_eq!(
            toml::to_string(&t).unwrap(),
            "size = \"1KiB\"\nwait = \"1h\"\n"
        );
        let err = toml::from_str::<T>("size = \"lots\"\nwait = \"1s\"").unwrap_err();
        assert_eq!(err.message(), "expected a size like 64MiB, got \"lots\"");
        let err = toml::from_str::<T>("size = -1\nwait = \"1s\"").unwrap_err();
        assert_eq!(err.message(), "expected a size like 64MiB, got -1");
        let err = toml::from_str::<T>("size = 1\nwait = 5").unwrap_err();
        assert_eq!(err.message(), "expected a duration like 5s, got 5");
    }
}
