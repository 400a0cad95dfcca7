//! Integers in JSON bodies: `3` and `3.0` alike (JSON has one number type; a client or a
//! generator may write an integral value with a fraction part). A fraction that is not
//! zero, or a value outside `i64`, is refused like any other wrong type (400).

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// An integer member of a body, whichever way the number was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Integral(pub i64);

impl<'de> Deserialize<'de> for Integral {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Integral;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an integer")
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Integral, E> {
                Ok(Integral(n))
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Integral, E> {
                i64::try_from(n)
                    .map(Integral)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(n), &self))
            }

            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Integral, E> {
                // 2^63 is exactly representable; every integral f64 below it fits.
                const LIMIT: f64 = 9_223_372_036_854_775_808.0;
                if n.fract() == 0.0 && (-LIMIT..LIMIT).contains(&n) {
                    #[allow(clippy::cast_possible_truncation)]
                    Ok(Integral(n as i64))
                } else {
                    Err(E::invalid_type(de::Unexpected::Float(n), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integral_numbers_whatever_their_spelling() {
        let parse = |s: &str| serde_json::from_str::<Integral>(s).map(|i| i.0);
        assert_eq!(parse("3").unwrap(), 3);
        assert_eq!(parse("-3").unwrap(), -3);
        assert_eq!(parse("3.0").unwrap(), 3);
        assert_eq!(parse("1e3").unwrap(), 1000);
        assert_eq!(parse("-0.0").unwrap(), 0);
        assert!(parse("3.5").is_err());
        assert!(parse("\"3\"").is_err());
        assert!(parse("null").is_err());
        assert!(parse("9223372036854775808").is_err());
        assert!(parse("1e19").is_err());
    }
}
