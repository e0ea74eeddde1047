//! Operators and their bearer tokens (docs/CONSOLE.md). A token is 32 random bytes shown once, when the
//! operator is added; the store keeps only its SHA-256, so a stolen database opens nothing. Every route
//! but `/health` names the role it needs: no valid token is 401, a viewer on an action is 403.

use std::sync::Arc;

use anyhow::{Result, bail};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ApiError, Console};
use crate::store::{OperatorRow, Store, ms};

/// What an operator may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything the console shows.
    Viewer,
    /// Reads, and acts: retry, end by hand, pause and resume the SMS.
    Operator,
}

impl Role {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "viewer" => Ok(Self::Viewer),
            "operator" => Ok(Self::Operator),
            other => Err(format!("role `{other}`: expected viewer or operator")),
        }
    }
}

/// The operator a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The operator's name, recorded with every action it takes.
    pub name: String,
    /// Its role.
    pub role: Role,
}

impl Caller {
    /// Refuses (403) a caller whose role is below `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {} role; {} is a {}",
                role.as_str(),
                self.name,
                self.role.as_str()
            )))
        }
    }
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token: `sdu_` and 64 hex digits.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("sdu_{}", hex::encode(bytes))
}

/// The operator a token belongs to, if it is valid and not revoked.
pub async fn authenticate(store: &Store, token: &str) -> Result<Option<Caller>> {
    let token = token.trim();
    if token.is_empty() {
        return Ok(None);
    }
    let Some(row) = store.operator_by_token(&token_hash(token)).await? else {
        return Ok(None);
    };
    let role = row.role.parse().map_err(anyhow::Error::msg)?;
    Ok(Some(Caller {
        name: row.name,
        role,
    }))
}

/// Adds an operator; returns its token, which is shown once and never stored.
pub async fn add_operator(
    store: &Store,
    name: &str,
    role: Role,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
        bail!("an operator's name is 1 to 64 printable characters");
    }
    let token = new_token();
    let added = store
        .add_operator(&OperatorRow {
            name: name.to_owned(),
            role: role.as_str().to_owned(),
            token_hash: token_hash(&token),
            created_at: ms(now),
            revoked_at: None,
        })
        .await?;
    if !added {
        bail!("an operator named `{name}` exists already (a revoked name is not reused)");
    }
    Ok(token)
}

/// The bearer token of a request's `Authorization` header.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

impl FromRequestParts<Arc<Console>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = bearer(parts) else {
            return Err(ApiError::unauthorized(
                "an `Authorization: Bearer <token>` header is required",
            ));
        };
        match authenticate(&console.engine.store, token).await {
            Ok(Some(caller)) => Ok(caller),
            Ok(None) => Err(ApiError::unauthorized("the token is not valid")),
            Err(e) => Err(ApiError::internal(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_new_each_time_and_only_their_hash_matches() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with("sdu_") && a.len() == 68);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
        assert!(!token_hash(&a).contains(&a[4..]));
    }

    #[test]
    fn an_operator_outranks_a_viewer() {
        let viewer = Caller {
            name: "v".into(),
            role: Role::Viewer,
        };
        let operator = Caller {
            name: "o".into(),
            role: Role::Operator,
        };
        assert!(viewer.require(Role::Viewer).is_ok());
        assert_eq!(viewer.require(Role::Operator).unwrap_err().status, 403);
        assert!(operator.require(Role::Operator).is_ok());
    }
}
