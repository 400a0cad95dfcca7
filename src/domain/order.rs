//! Orders: statuses, the parsed order request, the stored record, idempotency keys.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::rule::Violation;

pub const MAX_ITEMS: usize = 100;
pub const MAX_QUANTITY: i64 = 1000;
pub const IDEMPOTENCY_KEY_MAX_LEN: usize = 255;

/// How long a completed idempotency key is kept (the contract asks for at least 24 h).
pub const IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// The creation time before which an idempotency key is past retention at `at` (a key
/// created before it is forgotten and may be deleted).
pub fn idempotency_cutoff(at: DateTime<Utc>) -> DateTime<Utc> {
    chrono::Duration::from_std(IDEMPOTENCY_RETENTION)
        .ok()
        .and_then(|retention| at.checked_sub_signed(retention))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    Paid,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Paid => "paid",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(OrderStatus::Pending),
            "paid" => Some(OrderStatus::Paid),
            "cancelled" => Some(OrderStatus::Cancelled),
            _ => None,
        }
    }
}

/// 1..=1000 units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(i32);

impl Quantity {
    pub fn parse(n: i64) -> Result<Self, Violation> {
        if (1..=MAX_QUANTITY).contains(&n) {
            // In range, so it fits.
            Ok(Self(n as i32))
        } else {
            Err(Violation::new("range", "must be from 1 to 1000"))
        }
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderLine {
    pub product_id: Uuid,
    pub quantity: Quantity,
}

/// 1..=100 lines of distinct products, in the order the client gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLines(Vec<OrderLine>);

impl OrderLines {
    /// Parse `(product_id, quantity)` pairs; every violation is reported with its field
    /// path (`items`, `items[3].quantity`, ...).
    pub fn parse(raw: &[(Uuid, i64)]) -> Result<Self, Vec<(String, Violation)>> {
        let mut errors = Vec::new();
        if raw.is_empty() || raw.len() > MAX_ITEMS {
            errors.push((
                "items".to_string(),
                Violation::new("length", "must hold 1 to 100 items"),
            ));
        }
        let mut seen = HashSet::new();
        let mut lines = Vec::with_capacity(raw.len());
        for (i, (product_id, quantity)) in raw.iter().enumerate() {
            if !seen.insert(*product_id) {
                errors.push((
                    format!("items[{i}].product_id"),
                    Violation::new("duplicate", "each product may appear only once"),
                ));
            }
            match Quantity::parse(*quantity) {
                Ok(quantity) => lines.push(OrderLine {
                    product_id: *product_id,
                    quantity,
                }),
                Err(v) => errors.push((format!("items[{i}].quantity"), v)),
            }
        }
        if errors.is_empty() {
            Ok(Self(lines))
        } else {
            Err(errors)
        }
    }

    pub fn lines(&self) -> &[OrderLine] {
        &self.0
    }

    /// SHA-256 of the canonical request (`product_id:quantity` per line, in order), so
    /// the same request in other JSON spelling (spacing, member order) hashes the same.
    pub fn request_hash(&self) -> Vec<u8> {
        let mut h = Sha256::new();
        for l in &self.0 {
            h.update(format!("{}:{}\n", l.product_id, l.quantity.get()).as_bytes());
        }
        h.finalize().to_vec()
    }
}

/// What creating an order needs.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub user_id: Uuid,
    pub lines: OrderLines,
}

/// One line of a stored order, with the product's SKU, name and price at order time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OrderItem {
    pub product_id: Uuid,
    pub sku: String,
    pub name: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
}

/// A stored order; its serialization is the public representation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Order {
    pub id: Uuid,
    pub user_id: Uuid,
    pub status: OrderStatus,
    pub items: Vec<OrderItem>,
    pub total_cents: i64,
    pub currency: String,
    #[serde(skip)]
    pub version: i64,
    #[serde(serialize_with = "crate::domain::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl Order {
    /// A new pending order of `items` for `user_id`, its total summed from the items.
    pub fn pending(
        user_id: Uuid,
        items: Vec<OrderItem>,
        currency: String,
        at: DateTime<Utc>,
    ) -> Self {
        let total_cents = items
            .iter()
            .map(|i| i.unit_price_cents * i64::from(i.quantity))
            .sum();
        Order {
            id: Uuid::now_v7(),
            user_id,
            status: OrderStatus::Pending,
            items,
            total_cents,
            currency,
            version: 1,
            created_at: at,
            updated_at: at,
        }
    }

    /// The response body; the idempotency record stores exactly these bytes for replays.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// `Idempotency-Key`: 1..=255 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.len() <= IDEMPOTENCY_KEY_MAX_LEN
            && s.bytes().all(|b| (0x20..=0x7e).contains(&b));
        ok.then(|| Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An order request's idempotency: its key and the hash of its body
/// ([`OrderLines::request_hash`]).
#[derive(Debug, Clone)]
pub struct IdempotentRequest {
    pub key: IdempotencyKey,
    pub request_hash: Vec<u8>,
}

/// What placing an order did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// A new order and its response body ([`Order::to_json`], serialized once): the
    /// answer, and what is stored under the key in the order's transaction.
    Created { order: Order, body: Vec<u8> },
    /// The key's first request completed earlier: answer with its status and body.
    Replay { status: u16, body: Vec<u8> },
}

/// One page of an order listing, newest first: rows strictly before `before`.
#[derive(Debug, Clone, Default)]
pub struct OrderQuery {
    pub user_id: Option<Uuid>,
    pub status: Option<OrderStatus>,
    pub before: Option<(DateTime<Utc>, Uuid)>,
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert!(Quantity::parse(1).is_ok());
        assert!(Quantity::parse(1000).is_ok());
        for bad in [0, -1, 1001, i64::MAX] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lines_report_every_violation() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        assert!(OrderLines::parse(&[(a, 1), (b, 1000)]).is_ok());
        let errs = OrderLines::parse(&[(a, 0), (a, 1001)]).unwrap_err();
        let fields: Vec<_> = errs.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "items[0].quantity",
                "items[1].product_id",
                "items[1].quantity"
            ]
        );
        assert_eq!(OrderLines::parse(&[]).unwrap_err()[0].0, "items");
        let many: Vec<_> = (0..101).map(|_| (Uuid::now_v7(), 1)).collect();
        assert_eq!(OrderLines::parse(&many).unwrap_err()[0].0, "items");
    }

    #[test]
    fn request_hash_depends_on_lines_only() {
        let a = Uuid::now_v7();
        let one = OrderLines::parse(&[(a, 2)]).unwrap();
        assert_eq!(
            one.request_hash(),
            OrderLines::parse(&[(a, 2)]).unwrap().request_hash()
        );
        assert_ne!(
            one.request_hash(),
            OrderLines::parse(&[(a, 3)]).unwrap().request_hash()
        );
    }

    #[test]
    fn idempotency_keys() {
        assert!(IdempotencyKey::parse("abc-123 x").is_some());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_some());
        for bad in ["", "tab\t", "é", &"k".repeat(256)] {
            assert!(IdempotencyKey::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn statuses() {
        for s in ["pending", "paid", "cancelled"] {
            assert_eq!(OrderStatus::parse(s).unwrap().as_str(), s);
        }
        assert!(OrderStatus::parse("shipped").is_none());
    }
}
