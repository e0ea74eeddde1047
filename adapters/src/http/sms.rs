//! The SMS gateway of the e-gov portal: sending and replies.

use async_trait::async_trait;
use serde::Serialize;

use super::decode::Doc;
use crate::error::AdapterResult;
use crate::http::system_client;
use crate::ids::Msisdn;
use crate::systems::{IdempotencyKey, InboundSms, RepliesPage, SentSms, SmsGateway};

system_client!(
    /// HTTP client of the SMS gateway (`/sms`).
    HttpSmsGateway,
    "sms"
);

#[derive(Serialize)]
struct SendRequest<'a> {
    to: &'a Msisdn,
    text: &'a str,
}

#[async_trait]
impl SmsGateway for HttpSmsGateway {
    async fn send(&self, key: &IdempotencyKey, to: &Msisdn, text: &str) -> AdapterResult<SentSms> {
        let body = self
            .inner
            .post("send sms", &["messages"], key, &SendRequest { to, text })
            .await?;
        let doc = Doc::new(self.inner.system(), "sent sms", &body)?;
        Ok(SentSms {
            message_id: doc.string("message_id")?,
            accepted_at: doc.time("accepted_at")?,
        })
    }

    async fn replies(&self, cursor: Option<&str>, limit: u32) -> AdapterResult<RepliesPage> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_owned()));
        }
        let body = self.inner.get("sms replies", &["replies"], query).await?;
        let system = self.inner.system();
        let doc = Doc::new(system, "replies page", &body)?;
        let replies = doc
            .array("replies")?
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let reply = Doc::new(system, format!("replies[{i}]"), item)?;
                Ok(InboundSms {
                    message_id: reply.string("message_id")?,
                    // Kept raw like the rename BIN: the orchestrator judges the number.
                    from: reply.raw_text("from")?,
                    text: reply.string("text")?,
                    received_at: reply.time("received_at")?,
                })
            })
            .collect::<AdapterResult<_>>()?;
        Ok(RepliesPage {
            replies,
            next_cursor: doc.string("next_cursor")?,
        })
    }
}
