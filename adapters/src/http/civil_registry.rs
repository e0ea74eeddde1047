//! The civil registry (АХАЖ): death records and court declarations by IIN.

use async_trait::async_trait;

use super::decode::Doc;
use crate::error::AdapterResult;
use crate::http::system_client;
use crate::ids::Iin;
use crate::systems::{CivilRecord, CivilRegistry};

system_client!(
    /// HTTP client of the civil registry (`/civil_registry`). A `404` means no record: alive, never declared.
    HttpCivilRegistry,
    "civil_registry"
);

#[async_trait]
impl CivilRegistry for HttpCivilRegistry {
    async fn record(&self, iin: &Iin) -> AdapterResult<Option<CivilRecord>> {
        let body = self
            .inner
            .get("civil record", &["records", iin.as_str()], Vec::new())
            .await;
        let Some(body) = super::found(body)? else {
            return Ok(None);
        };
        let doc = Doc::new(self.inner.system(), "civil record", &body)?;
        doc.check_echoed_iin("iin", iin)?;
        Ok(Some(CivilRecord {
            deceased: doc.bool("deceased")?,
            declared_dead: doc.bool("declared_dead")?,
            declared_missing: doc.bool("declared_missing")?,
        }))
    }
}
