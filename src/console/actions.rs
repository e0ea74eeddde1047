//! The operators' actions (docs/CONSOLE.md): each one a transition of the decision core
//! ([`transition::on_operator_action`]) saved like any step, so that it becomes a link of the case's
//! hash-chained history naming the operator, and each recorded in `operator_actions`.

use serde::Deserialize;

use super::auth::{Caller, Role};
use super::{ApiError, Console};
use crate::case::transition::{self, OperatorAction};
use crate::engine::pause::{SMS_PAUSE, SmsPause};
use crate::store::{ActionRow, CaseChange, Read, ms};

/// The body of every action: why.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ActionRequest {
    /// Required, recorded with the action.
    pub reason: String,
}

/// The longest reason kept, in characters.
const MAX_REASON: usize = 500;

fn reason_of(request: &ActionRequest) -> Result<&str, ApiError> {
    let reason = request.reason.trim();
    if reason.is_empty() {
        return Err(ApiError::bad_request("a reason is required"));
    }
    if reason.chars().count() > MAX_REASON {
        return Err(ApiError::bad_request(format!(
            "the reason is longer than {MAX_REASON} characters"
        )));
    }
    Ok(reason)
}

impl Console {
    /// Retries a failed case from its checks, or ends an open case by hand; returns the case's id.
    pub async fn act_on_case(
        &self,
        caller: &Caller,
        case_id: i64,
        action: OperatorAction,
        request: &ActionRequest,
    ) -> Result<i64, ApiError> {
        caller.require(Role::Operator)?;
        let reason = reason_of(request)?;
        let store = &self.engine.store;
        let row = store
            .case(case_id)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found("no such case"))?;
        let wall = ms(self.engine.wall.now());
        if row.lease_owner.is_some() && row.lease_until.is_some_and(|until| until > wall) {
            return Err(ApiError::conflict(
                "a worker is advancing this case right now; try again in a few seconds",
            ));
        }
        let case = match row.read() {
            Read::Case(case) => case,
            Read::Unreadable(_, problem) => {
                return Err(ApiError::conflict(format!(
                    "the stored case cannot be read ({problem}); the engine ends it as failed at its next look"
                )));
            }
        };
        let now = self.engine.clock.now();
        let t = transition::on_operator_action(&case, action, &caller.name, reason, now)
            .map_err(ApiError::conflict)?;
        let mut next = row.clone();
        next.set_state(&t.case, now);
        let change = CaseChange {
            row: next,
            expected_version: row.version,
            events: t.events,
            outbox: vec![],
            reply: None,
            now,
        };
        if store
            .save(&change)
            .await
            .map_err(ApiError::internal)?
            .is_none()
        {
            return Err(ApiError::conflict(
                "the case changed while the action was applied; look at it again",
            ));
        }
        // The history line above is the record that counts; this one lists every action in one place.
        store
            .record_action(&ActionRow {
                id: 0,
                at: ms(now),
                operator: caller.name.clone(),
                action: action_name(action).to_owned(),
                case_id: Some(case_id),
                reason: reason.to_owned(),
            })
            .await
            .map_err(ApiError::internal)?;
        tracing::info!(case = case_id, operator = %caller.name, action = action_name(action), "operator action");
        self.wake.notify_one();
        Ok(case_id)
    }

    /// Pauses (`true`) or resumes all outgoing SMS; the engine reads the switch before each claim.
    pub async fn set_sms_pause(
        &self,
        caller: &Caller,
        paused: bool,
        request: &ActionRequest,
    ) -> Result<SmsPause, ApiError> {
        caller.require(Role::Operator)?;
        let reason = reason_of(request)?;
        // Business time, as every case action and history line (simulated under `--now`).
        let now = self.engine.clock.now();
        let pause = SmsPause {
            paused,
            by: Some(caller.name.clone()),
            at: Some(now),
            reason: Some(reason.to_owned()),
        };
        let value = serde_json::to_string(&pause).map_err(|e| ApiError::internal(e.into()))?;
        let action = ActionRow {
            id: 0,
            at: ms(now),
            operator: caller.name.clone(),
            action: if paused { "pause_sms" } else { "resume_sms" }.to_owned(),
            case_id: None,
            reason: reason.to_owned(),
        };
        self.engine
            .store
            .set_switch(SMS_PAUSE, &value, &action)
            .await
            .map_err(ApiError::internal)?;
        self.engine
            .refresh_pause()
            .await
            .map_err(ApiError::internal)?;
        if !paused {
            self.engine
                .store
                .wake_offers(ms(now), ms(now + transition::PAUSED_RECHECK))
                .await
                .map_err(ApiError::internal)?;
        }
        tracing::warn!(operator = %caller.name, paused, "outgoing SMS {}", if paused { "paused" } else { "resumed" });
        // Resumed: what waited goes at once (within the window), not at the next tick.
        self.wake.notify_one();
        Ok(pause)
    }
}

/// The recorded name of a case action.
pub fn action_name(action: OperatorAction) -> &'static str {
    match action {
        OperatorAction::Retry => "retry",
        OperatorAction::EndByHand => "end_by_hand",
    }
}
