//! The one error type every adapter returns, shaped by what the caller can do about it.

/// What went wrong talking to an external system.
///
/// The orchestrator acts on the variant alone: `Transient` waits and retries, `InvalidData` and `Permanent`
/// end the case as `failed`, `Absent` is an answer (no such record), not a failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdapterError {
    /// The system answered 404: the record does not exist.
    #[error("{system}: not found")]
    Absent {
        /// Which external system.
        system: &'static str,
    },
    /// The system could not answer now (connection refused, timeout, 5xx, 429, a body that is not JSON).
    /// Retrying later may succeed.
    #[error("{system}: temporarily unavailable: {detail}")]
    Transient {
        /// Which external system.
        system: &'static str,
        /// What happened, without personal data.
        detail: String,
    },
    /// The system refused the request for good (4xx other than 404 and 429).
    #[error("{system}: rejected with status {status}: {detail}")]
    Permanent {
        /// Which external system.
        system: &'static str,
        /// HTTP status.
        status: u16,
        /// The system's own message, without personal data.
        detail: String,
    },
    /// Well-formed JSON whose content is wrong: a bad identifier, a wrong type, a missing field.
    #[error("{system}: invalid data: {detail}")]
    InvalidData {
        /// Which external system.
        system: &'static str,
        /// What is wrong, without personal data.
        detail: String,
    },
}

impl AdapterError {
    /// True when retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }
}

/// Result of an adapter call.
pub type AdapterResult<T> = Result<T, AdapterError>;
