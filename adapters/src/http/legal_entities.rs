//! The legal-entity registry (ЗТ МДҚ): the rename feed and organisations by BIN.

use async_trait::async_trait;
use serde_json::Value;

use super::decode::Doc;
use crate::error::AdapterResult;
use crate::http::system_client;
use crate::ids::{Bin, UncheckedIin};
use crate::systems::{LegalEntities, OrgStatus, Organization, RenameEvent, RenamesPage};

system_client!(
    /// HTTP client of the legal-entity registry (`/legal_entities`).
    HttpLegalEntities,
    "legal_entities"
);

#[async_trait]
impl LegalEntities for HttpLegalEntities {
    async fn renames(&self, cursor: Option<&str>, limit: u32) -> AdapterResult<RenamesPage> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_owned()));
        }
        let body = self.inner.get("renames", &["renames"], query).await?;
        decode_renames(self.inner.system(), &body)
    }

    async fn organization(&self, bin: &Bin) -> AdapterResult<Option<Organization>> {
        let body = self
            .inner
            .get("organization", &["organizations", bin.as_str()], Vec::new())
            .await;
        let Some(body) = super::found(body)? else {
            return Ok(None);
        };
        let doc = Doc::new(self.inner.system(), "organization", &body)?;
        let status = match doc.one_of("status", &["active", "liquidated"])? {
            0 => OrgStatus::Active,
            _ => OrgStatus::Liquidated,
        };
        Ok(Some(Organization {
            bin: doc.expect_bin("bin", bin)?,
            name: doc.name("name")?,
            status,
            first_head: doc.optional_raw("first_head").map(UncheckedIin::new),
            region: doc.optional_dim("region", crate::dims::Kato::parse)?,
            activity: doc.optional_dim("activity", crate::dims::Oked::parse)?,
        }))
    }
}

/// The BIN of a rename stays raw (see [`RenameEvent`]): one bad BIN must fail its own case only, so even a
/// BIN that is not a string (a fixture's unquoted number) is passed on as text rather than failing the page.
fn decode_renames(system: &'static str, body: &Value) -> AdapterResult<RenamesPage> {
    let doc = Doc::new(system, "renames page", body)?;
    let renames = doc
        .array("renames")?
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let rename = Doc::new(system, format!("renames[{i}]"), item)?;
            Ok(RenameEvent {
                bin: rename.raw_text("bin")?,
                at: rename.time("at")?,
                from: rename.string("from")?,
                to: rename.string("to")?,
            })
        })
        .collect::<AdapterResult<_>>()?;
    Ok(RenamesPage {
        renames,
        next_cursor: doc.string("next_cursor")?,
    })
}
