-- Token epoch: a per-user counter bumped in the same write as a change of the user's
-- password, email (only when it really differs) or role (the bootstrap admin's promotion
-- included). Access tokens carry the epoch they were issued at (a private claim);
-- the authentication middleware refuses one whose epoch is below the user's. A counter,
-- not a time: `iat` has whole seconds and cannot order a token against a change made in
-- the same second.
--
-- The users NOTIFY trigger (0004) fires on any change of the row, this column included,
-- so other instances evict the user and see the new epoch at once.

ALTER TABLE users ADD COLUMN token_epoch integer NOT NULL DEFAULT 0;
