//! The in-memory tables, all under the store's one mutex (`State`). Only data and the
//! bookkeeping that keeps their indexes in step; the operations are the trait impls in
//! the sibling files.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::order::{idempotency_cutoff, IdempotentRequest, Order, Placed};
use crate::domain::precondition::IfMatch;
use crate::domain::product::Product;
use crate::domain::user::User;
use crate::store::{Conflict, StoreError};

/// Live users only: a deleted user is removed, which frees its email.
#[derive(Default)]
pub(crate) struct Users {
    pub(crate) by_id: HashMap<Uuid, User>,
    pub(crate) id_by_email: HashMap<String, Uuid>,
}

#[derive(Default)]
pub(crate) struct Products {
    /// Live products only: a soft delete removes the row here (nothing reads deleted
    /// products except order history, which keeps its own copy of SKU, name and price).
    pub(crate) by_id: HashMap<Uuid, Product>,
    pub(crate) id_by_sku: HashMap<String, Uuid>,
}

impl Products {
    /// The live product `id`, if `if_match` admits its version.
    pub(crate) fn checked(
        &mut self,
        id: Uuid,
        if_match: &IfMatch,
    ) -> Result<&mut Product, StoreError> {
        let product = self.by_id.get_mut(&id).ok_or(StoreError::NotFound)?;
        if !if_match.admits(product.version) {
            return Err(StoreError::Conflict(Conflict::VersionMismatch));
        }
        Ok(product)
    }
}

#[derive(Default)]
pub(crate) struct Orders {
    pub(crate) by_id: HashMap<Uuid, Order>,
    /// `(created_at, id)` of every order, for newest-first listing.
    pub(crate) by_time: BTreeSet<(DateTime<Utc>, Uuid)>,
    pub(crate) idempotency: Idempotency,
}

#[derive(Debug, Clone)]
pub(crate) struct TokenRow {
    pub(crate) family_id: Uuid,
    pub(crate) user_id: Uuid,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) rotated_at: Option<DateTime<Utc>>,
    pub(crate) revoked_at: Option<DateTime<Utc>>,
}

/// Refresh tokens by hash, with the hashes of each family and each user, so revoking a
/// family or a user's tokens does not scan every token.
#[derive(Default)]
pub(crate) struct RefreshTokens {
    pub(crate) by_hash: HashMap<Vec<u8>, TokenRow>,
    by_family: HashMap<Uuid, Vec<Vec<u8>>>,
    by_user: HashMap<Uuid, Vec<Uuid>>,
}

impl RefreshTokens {
    pub(crate) fn insert(&mut self, hash: Vec<u8>, row: TokenRow) {
        let family = self.by_family.entry(row.family_id).or_default();
        if family.is_empty() {
            self.by_user
                .entry(row.user_id)
                .or_default()
                .push(row.family_id);
        }
        family.push(hash.clone());
        self.by_hash.insert(hash, row);
    }

    /// Revoke every live member of `family`.
    pub(crate) fn revoke_family(&mut self, family: Uuid, at: DateTime<Utc>) {
        for hash in self.by_family.get(&family).into_iter().flatten() {
            if let Some(row) = self.by_hash.get_mut(hash) {
                row.revoked_at.get_or_insert(at);
            }
        }
    }

    /// Revoke every refresh token of `user`.
    pub(crate) fn revoke_user(&mut self, user: Uuid, at: DateTime<Utc>) {
        let families = self.by_user.get(&user).cloned().unwrap_or_default();
        for family in families {
            self.revoke_family(family, at);
        }
    }
}

/// The completed idempotency keys, kept for
/// [`IDEMPOTENCY_RETENTION`](crate::domain::order::IDEMPOTENCY_RETENTION) as Postgres keeps
/// them: every placement purges what has expired, oldest first, so the map never holds
/// more than the keys of the last 24 hours. There is no claim in flight to keep: a
/// placement runs under the store's one mutex from the key's lookup to its response.
#[derive(Default)]
pub(crate) struct Idempotency {
    records: HashMap<(Uuid, String), IdempotencyRecord>,
    /// `(created_at, user, key)` of every record, oldest first, for the purge.
    by_time: BTreeSet<(DateTime<Utc>, Uuid, String)>,
}

pub(crate) struct IdempotencyRecord {
    request_hash: Vec<u8>,
    status: u16,
    body: Vec<u8>,
    created_at: DateTime<Utc>,
}

impl Idempotency {
    /// Forget every record created before `at` minus the retention.
    pub(crate) fn purge(&mut self, at: DateTime<Utc>) {
        self.purge_before(idempotency_cutoff(at), usize::MAX);
    }

    /// Forget at most `limit` records created before `cutoff`, oldest first; how many.
    pub(crate) fn purge_before(&mut self, cutoff: DateTime<Utc>, limit: usize) -> usize {
        let mut purged = 0;
        while purged < limit && self.by_time.first().is_some_and(|first| first.0 < cutoff) {
            if let Some((_, user, key)) = self.by_time.pop_first() {
                self.records.remove(&(user, key));
                purged += 1;
            }
        }
        purged
    }

    /// The earlier use of `req`'s key by `user`: a replay, or a mismatch.
    pub(crate) fn find(
        &self,
        user: Uuid,
        req: &IdempotentRequest,
    ) -> Result<Option<Placed>, StoreError> {
        let Some(rec) = self.records.get(&(user, req.key.as_str().to_string())) else {
            return Ok(None);
        };
        if rec.request_hash != req.request_hash {
            return Err(StoreError::Conflict(Conflict::IdempotencyKeyMismatch));
        }
        Ok(Some(Placed::Replay {
            status: rec.status,
            body: rec.body.clone(),
        }))
    }

    pub(crate) fn insert(
        &mut self,
        user: Uuid,
        req: &IdempotentRequest,
        body: Vec<u8>,
        at: DateTime<Utc>,
    ) {
        let key = req.key.as_str().to_string();
        let old = self.records.insert(
            (user, key.clone()),
            IdempotencyRecord {
                request_hash: req.request_hash.clone(),
                status: 201,
                body,
                created_at: at,
            },
        );
        if let Some(old) = old {
            self.by_time.remove(&(old.created_at, user, key.clone()));
        }
        self.by_time.insert((at, user, key));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::order::{IdempotencyKey, IDEMPOTENCY_RETENTION};

    fn req(key: &str) -> IdempotentRequest {
        IdempotentRequest {
            key: IdempotencyKey::parse(key).unwrap(),
            request_hash: vec![1; 32],
        }
    }

    #[test]
    fn idempotency_records_expire_after_the_retention() {
        let mut idem = Idempotency::default();
        let user = Uuid::new_v4();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let day = chrono::Duration::from_std(IDEMPOTENCY_RETENTION).unwrap();
        idem.insert(user, &req("a"), b"{}".to_vec(), t0);
        idem.insert(
            user,
            &req("b"),
            b"{}".to_vec(),
            t0 + chrono::Duration::hours(1),
        );
        // Replaced: the older time of "a" must not purge its newer record.
        idem.insert(
            user,
            &req("a"),
            b"{}".to_vec(),
            t0 + chrono::Duration::hours(2),
        );
        idem.purge(t0 + day);
        assert_eq!(idem.len(), 2);
        assert!(matches!(
            idem.find(user, &req("a")),
            Ok(Some(Placed::Replay { .. }))
        ));
        idem.purge(t0 + day + chrono::Duration::minutes(61));
        assert_eq!(idem.len(), 1);
        assert!(matches!(idem.find(user, &req("b")), Ok(None)));
        idem.purge(t0 + day + chrono::Duration::minutes(121));
        assert_eq!(idem.len(), 0);
        assert_eq!(idem.by_time.len(), 0);
    }

    #[test]
    fn a_purge_takes_the_oldest_first_and_stops_at_its_limit() {
        let mut idem = Idempotency::default();
        let user = Uuid::new_v4();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for (i, key) in ["a", "b", "c"].into_iter().enumerate() {
            let at = t0 + chrono::Duration::minutes(i as i64);
            idem.insert(user, &req(key), b"{}".to_vec(), at);
        }
        let cutoff = t0 + chrono::Duration::minutes(2);
        assert_eq!(idem.purge_before(cutoff, 1), 1);
        assert!(matches!(idem.find(user, &req("a")), Ok(None)));
        assert_eq!(
            idem.purge_before(cutoff, 10),
            1,
            "only b is before the cutoff"
        );
        assert!(matches!(
            idem.find(user, &req("c")),
            Ok(Some(Placed::Replay { .. }))
        ));
    }
}
