//! e-license: permits by BIN and service, and their re-issue under a new name.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use super::decode::Doc;
use crate::error::AdapterResult;
use crate::http::system_client;
use crate::ids::Bin;
use crate::systems::{ELicense, IdempotencyKey, Permit, PermitStatus};

system_client!(
    /// HTTP client of e-license (`/e_license`). A `422` from a re-issue is a rejection (`Permanent`).
    HttpELicense,
    "e_license"
);

#[derive(Serialize)]
struct ReissueRequest<'a> {
    bin: &'a Bin,
    holder_name: &'a str,
}

#[async_trait]
impl ELicense for HttpELicense {
    async fn permits(&self, bin: &Bin, service: &str) -> AdapterResult<Vec<Permit>> {
        let query = vec![("bin", bin.to_string()), ("service", service.to_owned())];
        let body = self.inner.get("permits", &["permits"], query).await?;
        let system = self.inner.system();
        let doc = Doc::new(system, "permits", &body)?;
        doc.array("permits")?
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let permit = decode_permit(system, format!("permits[{i}]"), item, bin)?;
                if permit.service != service {
                    return Err(Doc::new(system, format!("permits[{i}]"), item)?
                        .invalid("field `service` differs from the one asked for"));
                }
                Ok(permit)
            })
            .collect()
    }

    async fn reissue(
        &self,
        key: &IdempotencyKey,
        permit_id: &str,
        bin: &Bin,
        holder_name: &str,
    ) -> AdapterResult<Permit> {
        let body = self
            .inner
            .post(
                "reissue",
                &["permits", permit_id, "reissue"],
                key,
                &ReissueRequest { bin, holder_name },
            )
            .await?;
        let system = self.inner.system();
        let permit = decode_permit(system, "re-issued permit", &body, bin)?;
        if permit.permit_id != permit_id {
            return Err(Doc::new(system, "re-issued permit", &body)?
                .invalid("field `permit_id` differs from the one asked for"));
        }
        Ok(permit)
    }
}

/// A permit, which must belong to the organisation asked about.
fn decode_permit(
    system: &'static str,
    what: impl Into<String>,
    value: &Value,
    bin: &Bin,
) -> AdapterResult<Permit> {
    let doc = Doc::new(system, what, value)?;
    let status = match doc.one_of("status", &["active", "revoked"])? {
        0 => PermitStatus::Active,
        _ => PermitStatus::Revoked,
    };
    Ok(Permit {
        permit_id: doc.string("permit_id")?,
        bin: doc.expect_bin("bin", bin)?,
        service: doc.string("service")?,
        holder_name: doc.name("holder_name")?,
        status,
    })
}
