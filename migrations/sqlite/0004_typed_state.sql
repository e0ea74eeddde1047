-- no-transaction
-- Typed state (decision core, src/case/): status, stage and reason may hold only the values the core knows,
-- and the name the permits were re-issued under is kept for the write-back to SDU. SQLite adds CHECK
-- constraints only by rebuilding the table, which needs foreign keys off (case_events refers to cases),
-- and that pragma is ignored inside a transaction: hence no transaction of the migrator's, and one here.
PRAGMA foreign_keys = OFF;
BEGIN;
-- Values an older version could have left that this one does not know are made explicit first, so that
-- the constraints below hold for every row: an unknown stage of an open case becomes NULL (the engine then
-- ends that case `failed`/`invalid_data` with a history line, instead of releasing it unchanged for ever),
-- an unknown status ends the case `failed`/`invalid_data`, an unknown reason is dropped. Each keeps the
-- value it had in `detail`.
UPDATE cases SET detail = 'unknown stored stage: ' || stage, stage = NULL
 WHERE status = 'open' AND stage IS NOT NULL AND stage NOT IN ('checking', 'queued', 'awaiting_reply', 'consent_pending', 'reissuing', 'writing_back');
UPDATE cases SET detail = 'unknown stored status: ' || status, status = 'failed', reason = 'invalid_data',
       stage = NULL, due_at = NULL, offer_phone = NULL
 WHERE status NOT IN ('open', 'not_applicable', 'no_head', 'ineligible', 'no_phone', 'declined', 'expired', 'reissued', 'superseded', 'failed', 'closed_by_operator');
UPDATE cases SET stage = NULL WHERE status <> 'open' AND stage IS NOT NULL;
UPDATE cases SET detail = 'unknown stored reason: ' || reason, reason = NULL
 WHERE reason IS NOT NULL AND reason NOT IN ('no_permit', 'already_current', 'liquidated', 'deceased', 'declared_dead', 'declared_missing', 'residence_abroad', 'incapacitated', 'imprisoned', 'not_registered', 'invalid_number', 'invalid_data', 'reissue_rejected');

CREATE TABLE cases_v4 (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    case_key        TEXT    NOT NULL UNIQUE,
    bin             TEXT    NOT NULL,
    rename_at       BIGINT  NOT NULL,
    from_name       TEXT    NOT NULL,
    to_name         TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    stage           TEXT,
    reason          TEXT,
    detail          TEXT,
    attempt         INTEGER NOT NULL DEFAULT 0,
    head_iin        TEXT,
    phone           TEXT,
    offer_phone     TEXT,
    permits         TEXT    NOT NULL DEFAULT '[]',
    reissued        TEXT    NOT NULL DEFAULT '[]',
    first_sent_at   BIGINT,
    second_sent_at  BIGINT,
    due_at          BIGINT,
    retries         INTEGER NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until     BIGINT,
    state_version   INTEGER NOT NULL DEFAULT 1,
    version         BIGINT  NOT NULL DEFAULT 0,
    last_hash       TEXT    NOT NULL DEFAULT '',
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    ended_at        BIGINT,
    reissue_name    TEXT,
    CHECK (status IN ('open', 'not_applicable', 'no_head', 'ineligible', 'no_phone', 'declined', 'expired', 'reissued', 'superseded', 'failed', 'closed_by_operator')),
    CHECK (stage IS NULL OR stage IN ('checking', 'queued', 'awaiting_reply', 'consent_pending', 'reissuing', 'writing_back')),
    CHECK (status = 'open' OR stage IS NULL),
    CHECK (reason IS NULL OR reason IN ('no_permit', 'already_current', 'liquidated', 'deceased', 'declared_dead', 'declared_missing', 'residence_abroad', 'incapacitated', 'imprisoned', 'not_registered', 'invalid_number', 'invalid_data', 'reissue_rejected'))
);
INSERT INTO cases_v4 (id, case_key, bin, rename_at, from_name, to_name, status, stage, reason, detail, attempt, head_iin, phone, offer_phone, permits, reissued, first_sent_at, second_sent_at, due_at, retries, lease_owner, lease_until, state_version, version, last_hash, created_at, updated_at, ended_at) SELECT id, case_key, bin, rename_at, from_name, to_name, status, stage, reason, detail, attempt, head_iin, phone, offer_phone, permits, reissued, first_sent_at, second_sent_at, due_at, retries, lease_owner, lease_until, state_version, version, last_hash, created_at, updated_at, ended_at FROM cases;
DROP TABLE cases;
ALTER TABLE cases_v4 RENAME TO cases;
CREATE INDEX cases_due_in_order ON cases (due_at, id) WHERE status = 'open';
CREATE INDEX cases_open_phone ON cases (phone) WHERE status = 'open';
CREATE INDEX cases_bin ON cases (bin);
CREATE UNIQUE INDEX cases_offer_phone ON cases (offer_phone) WHERE offer_phone IS NOT NULL;
COMMIT;
PRAGMA foreign_keys = ON;
