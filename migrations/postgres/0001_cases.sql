-- The case store. Times are Unix milliseconds (BIGINT) so that SQLite and PostgreSQL share every query.
CREATE TABLE cases (
    id              BIGSERIAL PRIMARY KEY,
    case_key        TEXT    NOT NULL UNIQUE,     -- BIN and rename instant: one case per rename event
    bin             TEXT    NOT NULL,            -- as the registry sent it (may be invalid)
    rename_at       BIGINT  NOT NULL,
    from_name       TEXT    NOT NULL,
    to_name         TEXT    NOT NULL,
    status          TEXT    NOT NULL,            -- 'open' or an outcome
    stage           TEXT,                        -- when open
    reason          TEXT,
    detail          TEXT,
    attempt         BIGINT  NOT NULL DEFAULT 0,  -- SMS sent so far
    head_iin        TEXT,
    phone           TEXT,                        -- E.164, once known
    offer_phone     TEXT,                        -- set while this case holds the phone's one offer
    permits         TEXT    NOT NULL DEFAULT '[]', -- JSON: permit ids to re-issue
    reissued        TEXT    NOT NULL DEFAULT '[]', -- JSON: permit ids re-issued so far
    first_sent_at   BIGINT,
    second_sent_at  BIGINT,
    due_at          BIGINT,                      -- next time to look at it; NULL = waits for a wake-up
    retries         BIGINT  NOT NULL DEFAULT 0,  -- consecutive transient failures
    lease_owner     TEXT,
    lease_until     BIGINT,
    state_version   BIGINT  NOT NULL DEFAULT 1,  -- layout version of the stored state, for upgrades
    version         BIGINT  NOT NULL DEFAULT 0,  -- row version for guarded updates
    last_hash       TEXT    NOT NULL DEFAULT '', -- head of this case's event hash chain
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    ended_at        BIGINT
);
CREATE INDEX cases_due ON cases (due_at) WHERE status = 'open';
CREATE INDEX cases_open_phone ON cases (phone) WHERE status = 'open';
CREATE INDEX cases_bin ON cases (bin);
CREATE UNIQUE INDEX cases_offer_phone ON cases (offer_phone) WHERE offer_phone IS NOT NULL;

-- Append-only history of each case, hash-chained per case.
CREATE TABLE case_events (
    id        BIGSERIAL PRIMARY KEY,
    case_id   BIGINT  NOT NULL REFERENCES cases (id),
    at        BIGINT  NOT NULL,
    kind      TEXT    NOT NULL,
    detail    TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);
CREATE INDEX case_events_case ON case_events (case_id, id);
CREATE FUNCTION case_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'case_events is append-only'; END; $$;
CREATE TRIGGER case_events_no_change BEFORE UPDATE OR DELETE ON case_events
FOR EACH ROW EXECUTE FUNCTION case_events_append_only();

-- Every reply the gateway delivered, stored before it is matched.
CREATE TABLE replies (
    id          BIGSERIAL PRIMARY KEY,
    message_id  TEXT    NOT NULL UNIQUE,
    from_raw    TEXT    NOT NULL,
    phone       TEXT,                        -- normalised, when it normalises
    text        TEXT    NOT NULL,
    received_at BIGINT  NOT NULL,
    status      TEXT    NOT NULL,            -- pending, matched, invalid, no_offer
    case_id     BIGINT,
    handled_at  BIGINT
);
CREATE INDEX replies_pending ON replies (id) WHERE status = 'pending';
CREATE INDEX replies_phone ON replies (phone, received_at);

-- Outward writes done, with the idempotency key each carried.
CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    case_id         BIGINT  NOT NULL,
    idempotency_key TEXT    NOT NULL UNIQUE,
    kind            TEXT    NOT NULL,
    result          TEXT    NOT NULL,
    done_at         BIGINT  NOT NULL
);

-- Small named values: feed cursors, the last nightly ingest.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
