//! The consent service (ДДБ through Smart Bridge): records a data subject's consent.

use async_trait::async_trait;
use serde::Serialize;

use super::decode::Doc;
use crate::error::AdapterResult;
use crate::http::system_client;
use crate::ids::{Bin, Iin};
use crate::systems::{ConsentReceipt, ConsentService, IdempotencyKey};

system_client!(
    /// HTTP client of the consent service (`/consent`).
    HttpConsentService,
    "consent"
);

#[derive(Serialize)]
struct ConsentRequest<'a> {
    iin: &'a Iin,
    bin: &'a Bin,
    purpose: &'a str,
}

#[async_trait]
impl ConsentService for HttpConsentService {
    async fn record(
        &self,
        key: &IdempotencyKey,
        iin: &Iin,
        bin: &Bin,
        purpose: &str,
    ) -> AdapterResult<ConsentReceipt> {
        let body = self
            .inner
            .post(
                "record consent",
                &["consents"],
                key,
                &ConsentRequest { iin, bin, purpose },
            )
            .await?;
        let doc = Doc::new(self.inner.system(), "consent receipt", &body)?;
        Ok(ConsentReceipt {
            consent_id: doc.string("consent_id")?,
            recorded_at: doc.time("recorded_at")?,
        })
    }
}
