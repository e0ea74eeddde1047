//! Smart Data Ukimet: the write-back of a re-issue's result.

use async_trait::async_trait;

use super::decode::Doc;
use crate::error::AdapterResult;
use crate::http::system_client;
use crate::systems::{IdempotencyKey, Sdu, SduReceipt, SduRecord};

system_client!(
    /// HTTP client of SDU (`/sdu`).
    HttpSdu,
    "sdu"
);

#[async_trait]
impl Sdu for HttpSdu {
    async fn write_back(
        &self,
        key: &IdempotencyKey,
        record: &SduRecord,
    ) -> AdapterResult<SduReceipt> {
        let body = self
            .inner
            .post("sdu write-back", &["records"], key, record)
            .await?;
        let doc = Doc::new(self.inner.system(), "sdu receipt", &body)?;
        Ok(SduReceipt {
            record_id: doc.string("record_id")?,
        })
    }
}
