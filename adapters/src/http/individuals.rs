//! The individuals registry (ЖТ МДҚ): a person by IIN.

use async_trait::async_trait;

use super::decode::Doc;
use crate::error::AdapterResult;
use crate::http::system_client;
use crate::ids::Iin;
use crate::systems::{Individuals, Person};

system_client!(
    /// HTTP client of the individuals registry (`/individuals`).
    HttpIndividuals,
    "individuals"
);

#[async_trait]
impl Individuals for HttpIndividuals {
    async fn person(&self, iin: &Iin) -> AdapterResult<Option<Person>> {
        let body = self
            .inner
            .get("person", &["persons", iin.as_str()], Vec::new())
            .await;
        let Some(body) = super::found(body)? else {
            return Ok(None);
        };
        let doc = Doc::new(self.inner.system(), "person", &body)?;
        Ok(Some(Person {
            iin: doc.expect_iin("iin", iin)?,
            name: doc.name("name")?,
            residence_abroad: doc.bool("residence_abroad")?,
            incapacitated: doc.bool("incapacitated")?,
            imprisoned: doc.bool("imprisoned")?,
        }))
    }
}
