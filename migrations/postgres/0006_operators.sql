-- The operator console (docs/CONSOLE.md). Operators sign in with a bearer token; only its SHA-256 is
-- stored, so a copy of the database gives no one a way in. A revoked operator keeps its row, so that the
-- history that names it still names someone.
CREATE TABLE operators (
    name        TEXT    PRIMARY KEY,
    role        TEXT    NOT NULL CHECK (role IN ('viewer', 'operator')),
    token_hash  TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL,
    revoked_at  BIGINT
);

-- Every operator action, in the order taken: the actions on a case are also links of that case's
-- hash-chained history; pausing and resuming the SMS are recorded only here.
CREATE TABLE operator_actions (
    id        BIGSERIAL PRIMARY KEY,
    at        BIGINT  NOT NULL,
    operator  TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    case_id   BIGINT,
    reason    TEXT    NOT NULL
);
