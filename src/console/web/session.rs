//! The dashboard's sign-in sessions, held in memory by the daemon. The operator pastes its token once; the
//! browser then holds only a random session id (cookie `sdu_session`: `Secure`, `HttpOnly`,
//! `SameSite=Strict`, `Path=/`), mapped here to the operator, the SHA-256 of its token (so that a revoked
//! token ends its sessions at the next request), a CSRF token and an expiry. A restart of the daemon signs
//! everyone out, which is the safe side.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::console::auth::Role;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "sdu_session";
/// The sign-in form's cookie: the other half of its CSRF token (double submit), as no session exists yet.
pub const SIGNIN_COOKIE: &str = "sdu_signin";
/// How long a sign-in lasts, whatever the activity: a workday.
pub const SESSION_LIFETIME: Duration = Duration::hours(8);
/// The most sessions held at once; the oldest go first past it (every one needs a valid token, so this
/// only bounds memory).
const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The operator's name.
    pub name: String,
    /// Its role, as when it signed in (re-read with the token at each request).
    pub role: Role,
    /// The SHA-256 of the token it signed in with.
    pub token_hash: String,
    /// The token every form of this session carries in its hidden `csrf` field.
    pub csrf: String,
    /// When the session ends.
    pub expires: DateTime<Utc>,
}

/// The sessions of one daemon.
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes in hex: a session id or a CSRF token.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Whether a submitted CSRF token is the expected one, compared in constant time.
pub fn same_token(expected: &str, given: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

impl Sessions {
    /// Opens a session; returns its id, for the cookie.
    pub fn open(&self, name: &str, role: Role, token_hash: &str, now: DateTime<Utc>) -> String {
        let id = random_token();
        let session = Session {
            name: name.to_owned(),
            role,
            token_hash: token_hash.to_owned(),
            csrf: random_token(),
            expires: now + SESSION_LIFETIME,
        };
        let mut map = self.by_id.lock().expect("sessions lock");
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(id.clone(), session);
        id
    }

    /// The session of an id, if it has not expired (an expired one is forgotten).
    pub fn get(&self, id: &str, now: DateTime<Utc>) -> Option<Session> {
        let mut map = self.by_id.lock().expect("sessions lock");
        match map.get(id) {
            Some(s) if s.expires > now => Some(s.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    /// The session of an id, expired or not: for the CSRF check, which needs no clock.
    pub fn peek(&self, id: &str) -> Option<Session> {
        self.by_id.lock().expect("sessions lock").get(id).cloned()
    }

    /// Ends a session (sign-out, or its token revoked).
    pub fn close(&self, id: &str) {
        self.by_id.lock().expect("sessions lock").remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lives_eight_hours_and_ends_when_closed() {
        let sessions = Sessions::default();
        let t0 = DateTime::parse_from_rfc3339("2026-11-02T10:00:00+05:00")
            .unwrap()
            .with_timezone(&Utc);
        let id = sessions.open("op", Role::Operator, "h", t0);
        assert_eq!(id.len(), 64);
        let s = sessions.get(&id, t0 + Duration::hours(7)).expect("alive");
        assert_eq!((s.name.as_str(), s.role), ("op", Role::Operator));
        assert_ne!(s.csrf, id);
        assert!(sessions.get(&id, t0 + Duration::hours(8)).is_none());
        assert!(
            sessions.peek(&id).is_none(),
            "an expired session is forgotten"
        );
        let id = sessions.open("op", Role::Operator, "h", t0);
        sessions.close(&id);
        assert!(sessions.get(&id, t0).is_none());
        assert!(sessions.get("", t0).is_none());
    }

    #[test]
    fn csrf_tokens_compare_whole() {
        let t = random_token();
        assert!(same_token(&t, &t));
        assert!(!same_token(&t, &t[..63]));
        assert!(!same_token(&t, ""));
        assert!(!same_token("", ""));
    }
}
