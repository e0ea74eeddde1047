//! Every adapter client's response decoding, on any body. The fuzzer's first byte picks one call of one
//! system (organisation, rename feed, permits, re-issue, person, civil record, mobile number, SMS send,
//! replies, SMS status, consent, SDU write-back); the rest is the body that a tiny in-process axum server
//! answers with `200 OK`. The call goes through the real `adapters::http::Http*` client, so the bounded
//! body reading, the JSON parse and the field-by-field decoding are all under test.
//!
//! What must hold: no panic; a body that is not JSON is a `Transient` error, except one nested past
//! serde_json's 128 levels, which is `InvalidData`; a body that is JSON is decoded or refused as
//! `InvalidData`, never anything else; no error message holds a run of seven digits or more (an IIN, BIN or
//! phone number from the body); what is decoded is about what was asked (the same BIN, IIN, service,
//! permit id); and a decoded name holds no control or bidirectional formatting character.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use adapters::http::{
    HttpCivilRegistry, HttpConsentService, HttpELicense, HttpIndividuals, HttpLegalEntities,
    HttpMobileBase, HttpSdu, HttpSettings, HttpSmsGateway, RetryPolicy,
};
use adapters::{
    AdapterError, Bin, CivilRegistry, ConsentService, ELicense, IdempotencyKey, Iin, Individuals,
    LegalEntities, MobileBase, Msisdn, Sdu, SduRecord, SmsGateway, TRUSTED_SOFTWARE_SERVICE,
};
use libfuzzer_sys::fuzz_target;

const BIN: &str = "201140000017";
const IIN: &str = "850214300013";
const PHONE: &str = "+77011234567";
const PERMIT: &str = "KZ-TS-0001";
const MESSAGE: &str = "msg-1";

struct World {
    runtime: tokio::runtime::Runtime,
    body: Arc<Mutex<Vec<u8>>>,
    legal: HttpLegalEntities,
    elicense: HttpELicense,
    individuals: HttpIndividuals,
    civil: HttpCivilRegistry,
    mobile: HttpMobileBase,
    sms: HttpSmsGateway,
    consent: HttpConsentService,
    sdu: HttpSdu,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let body = Arc::new(Mutex::new(Vec::new()));
        let served = Arc::clone(&body);
        let app = axum::Router::new().fallback(move || {
            let served = Arc::clone(&served);
            async move {
                let bytes = served.lock().unwrap().clone();
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    bytes,
                )
            }
        });
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().unwrap());
        runtime.spawn(async move { axum::serve(listener, app).await });
        let settings = |system| HttpSettings {
            retry: RetryPolicy::no_retries(),
            ..HttpSettings::for_system(&base, system)
        };
        World {
            legal: HttpLegalEntities::new(settings("legal_entities")).unwrap(),
            elicense: HttpELicense::new(settings("e_license")).unwrap(),
            individuals: HttpIndividuals::new(settings("individuals")).unwrap(),
            civil: HttpCivilRegistry::new(settings("civil_registry")).unwrap(),
            mobile: HttpMobileBase::new(settings("mobile_base")).unwrap(),
            sms: HttpSmsGateway::new(settings("sms")).unwrap(),
            consent: HttpConsentService::new(settings("consent")).unwrap(),
            sdu: HttpSdu::new(settings("sdu")).unwrap(),
            runtime,
            body,
        }
    })
}

/// What a call decoded, reduced to what the checks need.
type Outcome = Result<(), AdapterError>;

async fn call(w: &World, which: u8) -> Outcome {
    let bin = Bin::parse(BIN).unwrap();
    let iin = Iin::parse(IIN).unwrap();
    let key = IdempotencyKey::for_step("case-1", "fuzz");
    match which % 12 {
        0 => {
            let org = w
                .legal
                .organization(&bin)
                .await?
                .expect("a 200 is not absent");
            assert_eq!(org.bin, bin);
            assert_clean_name(&org.name);
        }
        1 => {
            w.legal.renames(None, 100).await?;
        }
        2 => {
            for permit in w.elicense.permits(&bin, TRUSTED_SOFTWARE_SERVICE).await? {
                assert_eq!(permit.bin, bin);
                assert_eq!(permit.service, TRUSTED_SOFTWARE_SERVICE);
                assert_clean_name(&permit.holder_name);
            }
        }
        3 => {
            let permit = w.elicense.reissue(&key, PERMIT, &bin, "ТОО «Жаңа»").await?;
            assert_eq!(permit.permit_id, PERMIT);
            assert_eq!(permit.bin, bin);
        }
        4 => {
            let person = w
                .individuals
                .person(&iin)
                .await?
                .expect("a 200 is not absent");
            assert_eq!(person.iin, iin);
            assert_clean_name(&person.name);
        }
        5 => {
            w.civil.record(&iin).await?.expect("a 200 is not absent");
        }
        6 => {
            w.mobile.number(&iin).await?;
        }
        7 => {
            let to = Msisdn::parse(PHONE).unwrap();
            w.sms.send(&key, &to, "1").await?;
        }
        8 => {
            w.sms.replies(None, 100).await?;
        }
        9 => {
            w.sms.status(MESSAGE).await?;
        }
        10 => {
            w.consent.record(&key, &iin, &bin, "re-issue").await?;
        }
        _ => {
            let record = SduRecord {
                case_id: 1,
                bin: bin.clone(),
                new_name: "ТОО «Жаңа»".into(),
                head_iin: iin.clone(),
                permit_ids: vec![PERMIT.into()],
            };
            w.sdu.write_back(&key, &record).await?;
        }
    }
    Ok(())
}

/// A name that reached the orchestrator holds no control or bidirectional formatting character.
fn assert_clean_name(name: &str) {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    };
    assert!(
        !name.chars().any(hidden),
        "name with a hidden character: {name:?}"
    );
}

/// True when `text` holds seven or more ASCII digits in a row.
fn has_long_digit_run(text: &str) -> bool {
    let mut run = 0;
    for b in text.bytes() {
        run = if b.is_ascii_digit() { run + 1 } else { 0 };
        if run >= 7 {
            return true;
        }
    }
    false
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let w = world();
    *w.body.lock().unwrap() = body.to_vec();
    let outcome = w.runtime.block_on(call(w, which));

    if let Err(error) = &outcome {
        let message = error.to_string();
        assert!(
            !has_long_digit_run(&message),
            "identifier in an error: {message}"
        );
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(_) => assert!(
            matches!(outcome, Ok(()) | Err(AdapterError::InvalidData { .. })),
            "JSON body gave {outcome:?}"
        ),
        Err(e) if e.to_string().starts_with("recursion limit exceeded") => assert!(
            matches!(outcome, Err(AdapterError::InvalidData { .. })),
            "deeply nested body gave {outcome:?}"
        ),
        Err(_) => assert!(
            matches!(outcome, Err(AdapterError::Transient { .. })),
            "non-JSON body gave {outcome:?}"
        ),
    }
});
