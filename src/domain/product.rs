//! Products: parsed field values, the stored record, and listing queries.
//!
//! Rules the contract leaves open, chosen here: a name is trimmed, then 1..=200 characters
//! without control characters; a description is at most 2000 characters, may hold line
//! breaks and tabs but no other control characters, and is kept as given. Prices and stock
//! are capped at 10^12 so that an order total (at most 100 items of 1000 units) can never
//! overflow a 64-bit integer.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::rule::{has_control, Violation};

pub const SKU_MAX_CHARS: usize = 64;
pub const NAME_MAX_CHARS: usize = 200;
pub const DESCRIPTION_MAX_CHARS: usize = 2000;
pub const MAX_PRICE_CENTS: i64 = 1_000_000_000_000;
pub const MAX_STOCK: i64 = 1_000_000_000_000;

/// 1..=64 characters of `A-Za-z0-9-_`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sku(String);

impl Sku {
    pub fn parse(s: &str) -> Result<Self, Violation> {
        if s.is_empty() || s.chars().count() > SKU_MAX_CHARS {
            return Err(Violation::new("length", "must be 1 to 64 characters"));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Violation::new(
                "format",
                "may only hold A-Z, a-z, 0-9, - and _",
            ));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Trimmed, 1..=200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductName(String);

impl ProductName {
    pub fn parse(s: &str) -> Result<Self, Violation> {
        let s = s.trim();
        if s.is_empty() || s.chars().count() > NAME_MAX_CHARS {
            return Err(Violation::new(
                "length",
                "must be 1 to 200 characters after trimming",
            ));
        }
        if has_control(s, false) {
            return Err(Violation::new(
                "format",
                "must not contain control characters",
            ));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// At most 2000 characters; line breaks and tabs allowed, other control characters not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    pub fn parse(s: &str) -> Result<Self, Violation> {
        if s.chars().count() > DESCRIPTION_MAX_CHARS {
            return Err(Violation::new("length", "must be at most 2000 characters"));
        }
        if has_control(s, true) {
            return Err(Violation::new(
                "format",
                "must not contain control characters other than line breaks and tabs",
            ));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Three uppercase ASCII letters (ISO 4217 shape; the code list itself is not checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency(String);

impl Currency {
    pub fn parse(s: &str) -> Result<Self, Violation> {
        if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(s.to_string()))
        } else {
            Err(Violation::new(
                "format",
                "must be a 3-letter uppercase currency code",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn bounded(n: i64, max: i64) -> Result<i64, Violation> {
    if n < 0 {
        Err(Violation::new("range", "must be at least 0"))
    } else if n > max {
        Err(Violation::new("range", format!("must be at most {max}")))
    } else {
        Ok(n)
    }
}

/// A price in the currency's minor unit: 0..=10^12.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceCents(i64);

impl PriceCents {
    pub fn parse(n: i64) -> Result<Self, Violation> {
        bounded(n, MAX_PRICE_CENTS).map(Self)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// Units in stock: 0..=10^12.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stock(i64);

impl Stock {
    pub fn parse(n: i64) -> Result<Self, Violation> {
        bounded(n, MAX_STOCK).map(Self)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// A stored, live product; its serialization is the public representation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Product {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price_cents: i64,
    pub currency: String,
    pub stock: i64,
    /// Bumped on every write, stock changes by orders included; the ETag derives from it.
    #[serde(skip)]
    pub version: i64,
    #[serde(serialize_with = "crate::domain::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

/// Every field of a product (create, full replace).
#[derive(Debug, Clone)]
pub struct NewProduct {
    pub sku: Sku,
    pub name: ProductName,
    pub description: Description,
    pub price_cents: PriceCents,
    pub currency: Currency,
    pub stock: Stock,
}

/// The fields a write changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProductChanges {
    pub sku: Option<Sku>,
    pub name: Option<ProductName>,
    pub description: Option<Description>,
    pub price_cents: Option<PriceCents>,
    pub currency: Option<Currency>,
    pub stock: Option<Stock>,
}

impl From<NewProduct> for ProductChanges {
    fn from(p: NewProduct) -> Self {
        Self {
            sku: Some(p.sku),
            name: Some(p.name),
            description: Some(p.description),
            price_cents: Some(p.price_cents),
            currency: Some(p.currency),
            stock: Some(p.stock),
        }
    }
}

/// The column a product listing is ordered by (then by id, the tie-breaker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductSortKey {
    CreatedAt,
    PriceCents,
    Name,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProductSort {
    pub key: ProductSortKey,
    pub descending: bool,
}

impl ProductSort {
    /// `created_at`, `-created_at`, `price_cents`, `-price_cents`, `name`, `-name`.
    pub fn parse(s: &str) -> Option<Self> {
        let (descending, name) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let key = match name {
            "created_at" => ProductSortKey::CreatedAt,
            "price_cents" => ProductSortKey::PriceCents,
            "name" => ProductSortKey::Name,
            _ => return None,
        };
        Some(Self { key, descending })
    }

    pub fn as_str(self) -> &'static str {
        match (self.key, self.descending) {
            (ProductSortKey::CreatedAt, false) => "created_at",
            (ProductSortKey::CreatedAt, true) => "-created_at",
            (ProductSortKey::PriceCents, false) => "price_cents",
            (ProductSortKey::PriceCents, true) => "-price_cents",
            (ProductSortKey::Name, false) => "name",
            (ProductSortKey::Name, true) => "-name",
        }
    }
}

impl Default for ProductSort {
    fn default() -> Self {
        Self {
            key: ProductSortKey::CreatedAt,
            descending: true,
        }
    }
}

/// A sort key value of one row (the keyset position of a cursor).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SortValue {
    Time(DateTime<Utc>),
    Int(i64),
    Text(String),
}

impl Product {
    pub fn sort_value(&self, key: ProductSortKey) -> SortValue {
        match key {
            ProductSortKey::CreatedAt => SortValue::Time(self.created_at),
            ProductSortKey::PriceCents => SortValue::Int(self.price_cents),
            ProductSortKey::Name => SortValue::Text(self.name.clone()),
        }
    }
}

/// One page of a product listing: rows strictly after `after` in `sort` order.
#[derive(Debug, Clone, Default)]
pub struct ProductQuery {
    pub min_price_cents: Option<i64>,
    pub max_price_cents: Option<i64>,
    /// Case-insensitive substring of the name, taken literally (no wildcards).
    pub q: Option<String>,
    pub sort: ProductSort,
    /// Keyset position; its value must be of the sort key's kind.
    pub after: Option<(SortValue, Uuid)>,
    /// How many rows to return at most.
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus() {
        assert!(Sku::parse("AB-12_x").is_ok());
        assert!(Sku::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "a b", "é", "a.b", &"a".repeat(65)] {
            assert!(Sku::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_trimmed_and_free_of_controls() {
        assert_eq!(ProductName::parse("  Lamp ").unwrap().as_str(), "Lamp");
        assert!(ProductName::parse(&"é".repeat(200)).is_ok());
        for bad in ["", "   ", "a\u{0}b", "tab\there", &"x".repeat(201)] {
            assert!(ProductName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn descriptions() {
        assert!(Description::parse("line\nbreak\tand tab").is_ok());
        assert!(Description::parse(&"x".repeat(2000)).is_ok());
        assert!(Description::parse(&"x".repeat(2001)).is_err());
        assert!(Description::parse("bell\u{7}").is_err());
    }

    #[test]
    fn currencies_and_amounts() {
        assert!(Currency::parse("EUR").is_ok());
        for bad in ["eur", "EU", "EURO", "E1R", ""] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
        assert!(PriceCents::parse(0).is_ok());
        assert!(PriceCents::parse(-1).is_err());
        assert!(PriceCents::parse(MAX_PRICE_CENTS + 1).is_err());
        assert!(Stock::parse(-1).is_err());
        assert_eq!(Stock::parse(5).unwrap().get(), 5);
    }

    #[test]
    fn sorts_round_trip() {
        for s in [
            "created_at",
            "-created_at",
            "price_cents",
            "-price_cents",
            "name",
            "-name",
        ] {
            assert_eq!(ProductSort::parse(s).unwrap().as_str(), s);
        }
        assert!(ProductSort::parse("stock").is_none());
        assert!(ProductSort::parse("--name").is_none());
        assert_eq!(ProductSort::default().as_str(), "-created_at");
    }
}
