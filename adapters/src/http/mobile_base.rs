//! The mobile citizens base (БМГ): the number registered for an IIN.

use async_trait::async_trait;
use serde_json::Value;

use super::decode::Doc;
use crate::error::AdapterResult;
use crate::http::system_client;
use crate::ids::Iin;
use crate::systems::MobileBase;

system_client!(
    /// HTTP client of the mobile citizens base (`/mobile_base`).
    ///
    /// The number is returned raw, for the orchestrator to judge (an unusable number is an outcome, not an
    /// error): a JSON number becomes its decimal text, and a `phone` of `null` counts as no number
    /// registered, like a `404`. A missing `phone` field or another JSON type is invalid data.
    HttpMobileBase,
    "mobile_base"
);

#[async_trait]
impl MobileBase for HttpMobileBase {
    async fn number(&self, iin: &Iin) -> AdapterResult<Option<String>> {
        let body = self
            .inner
            .get("mobile number", &["numbers", iin.as_str()], Vec::new())
            .await;
        let Some(body) = super::found(body)? else {
            return Ok(None);
        };
        let doc = Doc::new(self.inner.system(), "mobile number", &body)?;
        doc.check_echoed_iin("iin", iin)?;
        match doc.field("phone")? {
            Value::Null => Ok(None),
            Value::String(phone) => Ok(Some(phone.clone())),
            Value::Number(phone) => Ok(Some(phone.to_string())),
            _ => Err(doc.invalid("field `phone` must be a string")),
        }
    }
}
