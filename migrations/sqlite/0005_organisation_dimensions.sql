-- The organisation record's statistical dimensions, read with it at the check (docs/DATA-PRODUCT.md):
-- the KATO code of the registered address (9 digits) and the OKED code of the main activity (5 digits).
-- NULL until the record is read, or when the registry gives none.
ALTER TABLE cases ADD COLUMN region TEXT;
ALTER TABLE cases ADD COLUMN activity TEXT;

-- Grants of de-identified research extracts (seed 000): who approved which extract for whom, until when
-- it must be deleted, and the SHA-256 of the file handed over. The pseudonymisation key is never stored.
CREATE TABLE extract_grants (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    period       TEXT    NOT NULL,           -- YYYY-MM
    researcher   TEXT    NOT NULL,
    approved_by  TEXT    NOT NULL,
    delete_by    TEXT    NOT NULL,           -- YYYY-MM-DD
    sha256       TEXT    NOT NULL,
    records      BIGINT  NOT NULL,
    k            BIGINT  NOT NULL,
    created_at   BIGINT  NOT NULL
);
