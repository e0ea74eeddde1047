//! The operators' SMS pause switch (docs/CONSOLE.md): a named value in the case store, so that it holds
//! across restarts and for every worker. The engine reads it before each claim and the core holds every
//! due SMS while it is on ([`crate::case::transition::Sending`]).

use std::sync::atomic::Ordering;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Engine;
use crate::case::transition::Sending;
use crate::store::CaseStore;

/// The store's name of the switch.
pub const SMS_PAUSE: &str = "sms_pause";

/// The switch as stored: who set it last, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct SmsPause {
    /// Whether outgoing SMS are held.
    pub paused: bool,
    /// The operator who set it last.
    pub by: Option<String>,
    /// When it was set last.
    pub at: Option<DateTime<Utc>>,
    /// The operator's reason.
    pub reason: Option<String>,
}

impl SmsPause {
    /// The stored text (absent: never paused). A value this product cannot read holds the SMS: sending
    /// by mistake in an emergency is the harm the switch exists to prevent.
    pub fn parse(stored: Option<&str>) -> Self {
        match stored {
            None => Self::default(),
            Some(text) => serde_json::from_str(text).unwrap_or(Self {
                paused: true,
                by: None,
                at: None,
                reason: Some("the stored pause switch is unreadable".into()),
            }),
        }
    }
}

impl<S: CaseStore> Engine<S> {
    /// Reads the switch from the store; true if SMS are paused.
    pub async fn refresh_pause(&self) -> Result<bool> {
        let pause = self.sms_pause().await?;
        self.sms_paused.store(pause.paused, Ordering::Relaxed);
        crate::telemetry::set_sms_paused(pause.paused);
        Ok(pause.paused)
    }

    /// The switch as stored now.
    pub async fn sms_pause(&self) -> Result<SmsPause> {
        Ok(SmsPause::parse(
            self.store.meta(SMS_PAUSE).await?.as_deref(),
        ))
    }

    /// What the core is told about sending, as last read.
    pub(super) fn sending(&self) -> Sending {
        if self.sms_paused.load(Ordering::Relaxed) {
            Sending::Paused
        } else {
            Sending::Allowed
        }
    }
}
