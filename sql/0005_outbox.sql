-- The transactional outbox (README, "Events"): one row per domain event, written in the
-- transaction of the change it reports and deleted by the relay once JetStream has
-- acknowledged it. Written only when events.nats_url is set.
--
-- `seq` is taken by the INSERT, which every writer runs after it has locked (or created)
-- the resource's row: two changes of one resource get seqs in their commit order. The
-- relay reads the rows its snapshot sees in seq order and deletes what it published, so a
-- transaction that commits late (with an older seq) is read on a later pass, not skipped.
CREATE TABLE outbox (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         uuid NOT NULL,          -- the CloudEvents id and Nats-Msg-Id
    kind       text NOT NULL,          -- order.placed, ...: the subject's suffix
    payload    text NOT NULL,          -- the CloudEvents 1.0 JSON, published as it is
    created_at timestamptz NOT NULL DEFAULT now()
);
-- A queue table: rows live seconds; vacuum it often so dead rows do not pile up.
ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 1000);
