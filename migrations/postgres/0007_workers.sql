-- The workers that have run against this database (src/store/liveness.rs). A worker adds itself once it
-- holds its mark of life; another that finds the mark gone frees the dead worker's claims and then removes
-- its row. Looking for the claims of dead workers reads this small table, where it read every case.
CREATE TABLE workers (
    owner       TEXT    PRIMARY KEY,
    started_at  BIGINT  NOT NULL
);
