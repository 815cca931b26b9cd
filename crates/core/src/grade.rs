//! Duplication grades `U<n>`: the share of records that copy an earlier record.

use crate::error::ParseError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A duplication grade: `n` percent of the records are exact copies of earlier ones.
///
/// Valid for 0 ≤ n < 100 (U100 would leave no original to copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Grade(u8);

impl Grade {
    pub const U0: Grade = Grade(0);
    pub const U50: Grade = Grade(50);
    pub const U90: Grade = Grade(90);

    pub fn new(percent: u8) -> Result<Grade, ParseError> {
        if percent < 100 {
            Ok(Grade(percent))
        } else {
            Err(ParseError::new("duplication grade", format!("U{percent}"), Self::HINT))
        }
    }

    pub fn percent(self) -> u8 {
        self.0
    }

    /// The exact number of duplicate records among `n` records: round(percent/100 × n),
    /// half rounded up, computed in integers (the original harness truncated a float and
    /// got 49 unique files of 500 at U90). Capped at n − 1 because the first record is
    /// always an original.
    pub fn duplicates_of(self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let exact = (u128::from(self.0) * u128::from(n) + 50) / 100;
        (exact as u64).min(n - 1)
    }

    const HINT: &'static str = "expected U<n> with n a whole number from 0 to 99, e.g. U0, U50, U90";
}

impl fmt::Display for Grade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "U{}", self.0)
    }
}

impl FromStr for Grade {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseError::new("duplication grade", s, Self::HINT);
        let digits = s.strip_prefix('U').or_else(|| s.strip_prefix('u')).ok_or_else(err)?;
        if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let n: u16 = digits.parse().map_err(|_| err())?;
        if n >= 100 {
            return Err(err());
        }
        Ok(Grade(n as u8))
    }
}

impl Serialize for Grade {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Grade {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_grades() {
        assert_eq!("U0".parse::<Grade>().unwrap().percent(), 0);
        assert_eq!("U90".parse::<Grade>().unwrap().percent(), 90);
        assert_eq!("u99".parse::<Grade>().unwrap().percent(), 99);
    }

    #[test]
    fn rejects_bad_grades() {
        for bad in ["U100", "U-5", "U5O", "U", "50", "U 5", "U1000", ""] {
            let e = bad.parse::<Grade>().unwrap_err();
            assert!(e.to_string().contains("U<n>"), "{bad}: {e}");
        }
    }

    #[test]
    fn u90_of_500_has_50_originals() {
        assert_eq!(Grade::U90.duplicates_of(500), 450);
        assert_eq!(Grade(50).duplicates_of(3), 2); // 1.5 rounds up
        assert_eq!(Grade(99).duplicates_of(1), 0); // the first record is an original
        assert_eq!(Grade(0).duplicates_of(1000), 0);
    }
}
