//! Number types that check their range while being deserialized, so a bad value is reported
//! with the line and field path of the value itself.

use serde::{de, Deserialize, Deserializer, Serialize};
use std::fmt;

macro_rules! checked_f64 {
    ($(#[$doc:meta])* $name:ident, $check:expr, $expected:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
        #[serde(transparent)]
        pub struct $name(f64);

        impl $name {
            /// Checks `value`, returning a description of the expected range on failure.
            pub fn new(value: f64) -> Result<Self, String> {
                let check: fn(f64) -> bool = $check;
                if value.is_finite() && check(value) {
                    Ok($name(value))
                } else {
                    Err(format!("expected {}, found {}", $expected, value))
                }
            }

            /// The checked value.
            pub fn get(self) -> f64 {
                self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = deserializer.deserialize_f64(NumberVisitor($expected))?;
                $name::new(value).map_err(de::Error::custom)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

/// Reads any YAML number as f64, describing the expected range on a type error.
struct NumberVisitor(&'static str);

impl de::Visitor<'_> for NumberVisitor {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
}

/// Reads a YAML integer, rejecting negatives and fractions with the expected range.
struct CountVisitor;

impl de::Visitor<'_> for CountVisitor {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number of at least 1")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("expected an integer of at least 1, found {v}")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        Err(E::custom(format!("expected an integer of at least 1, found {v}")))
    }
}

checked_f64!(
    /// A finite number > 0.
    Positive,
    |v| v > 0.0,
    "a finite number greater than 0"
);
checked_f64!(
    /// A finite number ≥ 0.
    NonNegative,
    |v| v >= 0.0,
    "a finite number at least 0"
);
checked_f64!(
    /// A fraction in (0, 1].
    Fraction,
    |v| v > 0.0 && v <= 1.0,
    "a number in (0, 1]"
);

/// An integer ≥ 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Count(u64);

impl Count {
    /// Checks `value` ≥ 1.
    pub fn new(value: u64) -> Result<Self, String> {
        if value >= 1 {
            Ok(Count(value))
        } else {
            Err(format!("expected an integer of at least 1, found {value}"))
        }
    }

    /// The value.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = deserializer.deserialize_u64(CountVisitor)?;
        Count::new(value).map_err(de::Error::custom)
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
