//! The data product's own read-only queries over the case store's tables, written once for both backends
//! (times are Unix milliseconds, so every parameter is a BIGINT on both). Nothing here writes to a case.

use anyhow::Result;

use crate::store::Store;

/// What the statistics need of one ended case: no name, no IIN, no phone.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CaseFact {
    /// Store id.
    pub id: i64,
    /// The organisation's BIN: the respondent (it never leaves this module's callers in any output).
    pub bin: String,
    /// The outcome.
    pub status: String,
    /// Its reason, where the outcome has one.
    pub reason: Option<String>,
    /// KATO code, when the record gave one.
    pub region: Option<String>,
    /// OKED code, when the record gave one.
    pub activity: Option<String>,
    /// SMS sent (0, 1 or 2).
    pub attempt: i64,
    /// First SMS accepted (ms).
    pub first_sent_at: Option<i64>,
    /// Ended at (ms).
    pub ended_at: i64,
    /// Last change (ms): the instant of the data.
    pub updated_at: i64,
}

/// A reply matched to one of those cases.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReplyFact {
    /// The case.
    pub case_id: i64,
    /// Its organisation.
    pub bin: String,
    /// The reply's text as received (only its digit is used).
    pub text: String,
    /// When it arrived (ms).
    pub received_at: i64,
    /// The case's first SMS (ms).
    pub first_sent_at: Option<i64>,
}

const CASES: &str = "SELECT id, bin, status, reason, region, activity, attempt, first_sent_at, ended_at, updated_at \
     FROM cases WHERE status <> 'open' AND ended_at >= $1 AND ended_at < $2 ORDER BY id";

const REPLIES: &str = "SELECT r.case_id AS case_id, c.bin AS bin, r.text AS text, r.received_at AS received_at, \
     c.first_sent_at AS first_sent_at FROM replies r JOIN cases c ON c.id = r.case_id \
     WHERE r.status = 'matched' AND c.status <> 'open' AND c.ended_at >= $1 AND c.ended_at < $2 ORDER BY r.id";

/// The cases that ended in `[from, to)` (ms), by id.
pub async fn ended_cases(store: &Store, from: i64, to: i64) -> Result<Vec<CaseFact>> {
    Ok(match store {
        Store::Sqlite(p) => {
            sqlx::query_as(CASES)
                .bind(from)
                .bind(to)
                .fetch_all(p)
                .await?
        }
        Store::Postgres(p) => {
            sqlx::query_as(CASES)
                .bind(from)
                .bind(to)
                .fetch_all(p)
                .await?
        }
    })
}

/// The matched replies of those cases, in arrival order.
pub async fn replies(store: &Store, from: i64, to: i64) -> Result<Vec<ReplyFact>> {
    Ok(match store {
        Store::Sqlite(p) => {
            sqlx::query_as(REPLIES)
                .bind(from)
                .bind(to)
                .fetch_all(p)
                .await?
        }
        Store::Postgres(p) => {
            sqlx::query_as(REPLIES)
                .bind(from)
                .bind(to)
                .fetch_all(p)
                .await?
        }
    })
}

/// One extract grant as recorded.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Grant {
    /// Id.
    pub id: i64,
    /// YYYY-MM.
    pub period: String,
    /// For whom.
    pub researcher: String,
    /// Who approved (the information-security check).
    pub approved_by: String,
    /// The date by which the researcher deletes the file.
    pub delete_by: String,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Records in the file.
    pub records: i64,
    /// The k of the k-anonymity it holds.
    pub k: i64,
    /// When it was recorded (ms).
    pub created_at: i64,
}

const INSERT_GRANT: &str = "INSERT INTO extract_grants (period, researcher, approved_by, delete_by, sha256, records, k, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const GRANTS: &str = "SELECT id, period, researcher, approved_by, delete_by, sha256, records, k, created_at \
     FROM extract_grants ORDER BY id";

/// Records a grant (the only write of the data product, into its own table).
pub async fn record_grant(store: &Store, g: &Grant) -> Result<()> {
    macro_rules! run {
        ($p:expr) => {
            sqlx::query(INSERT_GRANT)
                .bind(&g.period)
                .bind(&g.researcher)
                .bind(&g.approved_by)
                .bind(&g.delete_by)
                .bind(&g.sha256)
                .bind(g.records)
                .bind(g.k)
                .bind(g.created_at)
                .execute($p)
                .await?
                .rows_affected()
        };
    }
    match store {
        Store::Sqlite(p) => run!(p),
        Store::Postgres(p) => run!(p),
    };
    Ok(())
}

/// Every grant, oldest first.
pub async fn grants(store: &Store) -> Result<Vec<Grant>> {
    Ok(match store {
        Store::Sqlite(p) => sqlx::query_as(GRANTS).fetch_all(p).await?,
        Store::Postgres(p) => sqlx::query_as(GRANTS).fetch_all(p).await?,
    })
}
