//! Hostile registry payloads against the real HTTP clients: every body of `tests/fixtures/hostile/` (and a
//! few generated ones) is answered with `200 OK` by an in-process server, and the client must sort it the
//! way docs/RULES.md §2.12 says: well-formed JSON whose data is wrong is `InvalidData`, a body that is not JSON is
//! `Transient`, and an oversize body is cut off at the size limit (a `Transient` error) without the process
//! ever holding it. Nothing panics or overflows its stack, and no error message repeats an identifier.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use adapters::http::{
    HttpCivilRegistry, HttpConsentService, HttpELicense, HttpIndividuals, HttpLegalEntities,
    HttpMobileBase, HttpSettings, HttpSmsGateway, RetryPolicy,
};
use adapters::{
    AdapterError, Bin, CivilRegistry, ConsentService, ELicense, IdempotencyKey, Iin, Individuals,
    LegalEntities, MobileBase, Msisdn, SmsGateway, TRUSTED_SOFTWARE_SERVICE,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

const BIN: &str = "201140000017";
const IIN: &str = "850214300013";
const PERMIT: &str = "KZ-TS-0001";

/// One adapter call, the one a payload is meant for.
#[derive(Debug, Clone, Copy)]
enum Call {
    Organization,
    Renames,
    Permits,
    Reissue,
    Person,
    CivilRecord,
    MobileNumber,
    SendSms,
    Consent,
}

fn settings(base: &str, system: &str) -> HttpSettings {
    HttpSettings {
        timeout: Duration::from_secs(10),
        retry: RetryPolicy::no_retries(),
        ..HttpSettings::for_system(base, system)
    }
}

/// Makes `call` against the server at `base`; only whether it failed, and how, matters here.
async fn make(call: Call, base: &str) -> Result<(), AdapterError> {
    let bin = Bin::parse(BIN).unwrap();
    let iin = Iin::parse(IIN).unwrap();
    let key = IdempotencyKey::for_step("case-7", "hostile");
    match call {
        Call::Organization => {
            let client = HttpLegalEntities::new(settings(base, "legal_entities")).unwrap();
            // The head is checked where the process needs it; a bad one is invalid data there.
            let org = client.organization(&bin).await?;
            match org.and_then(|o| o.first_head).map(|h| h.check()) {
                Some(Err(e)) => Err(AdapterError::InvalidData {
                    system: "legal_entities",
                    detail: format!("field `first_head` is not a valid IIN: {e}"),
                }),
                _ => Ok(()),
            }
        }
        Call::Renames => {
            let client = HttpLegalEntities::new(settings(base, "legal_entities")).unwrap();
            client.renames(None, 100).await.map(drop)
        }
        Call::Permits => {
            let client = HttpELicense::new(settings(base, "e_license")).unwrap();
            client
                .permits(&bin, TRUSTED_SOFTWARE_SERVICE)
                .await
                .map(drop)
        }
        Call::Reissue => {
            let client = HttpELicense::new(settings(base, "e_license")).unwrap();
            client
                .reissue(&key, PERMIT, &bin, "ТОО «Жаңа»")
                .await
                .map(drop)
        }
        Call::Person => {
            let client = HttpIndividuals::new(settings(base, "individuals")).unwrap();
            client.person(&iin).await.map(drop)
        }
        Call::CivilRecord => {
            let client = HttpCivilRegistry::new(settings(base, "civil_registry")).unwrap();
            client.record(&iin).await.map(drop)
        }
        Call::MobileNumber => {
            let client = HttpMobileBase::new(settings(base, "mobile_base")).unwrap();
            client.number(&iin).await.map(drop)
        }
        Call::SendSms => {
            let client = HttpSmsGateway::new(settings(base, "sms")).unwrap();
            let to = Msisdn::parse("+77011234567").unwrap();
            client.send(&key, &to, "1").await.map(drop)
        }
        Call::Consent => {
            let client = HttpConsentService::new(settings(base, "consent")).unwrap();
            client
                .record(&key, &iin, &bin, "permit re-issue")
                .await
                .map(drop)
        }
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hostile")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Serves `body` with `200 OK` to any request, then makes `call`.
async fn answer_with(
    server: &MockServer,
    body: Vec<u8>,
    mime: &str,
    call: Call,
) -> Result<(), AdapterError> {
    server.reset().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, mime))
        .mount(server)
        .await;
    make(call, &server.uri()).await
}

/// No run of seven digits or more: an error message never repeats an IIN, BIN or phone number.
fn assert_no_identifier(what: &str, message: &str) {
    let mut run = 0;
    for b in message.bytes() {
        run = if b.is_ascii_digit() { run + 1 } else { 0 };
        assert!(run < 7, "{what}: identifier-like digits in {message:?}");
    }
}

/// Each payload, served to its call, must give invalid data naming `field`.
async fn assert_each_is_invalid_data(payloads: &[(&str, Call, &str)]) {
    let server = MockServer::start().await;
    for &(file, call, field) in payloads {
        match answer_with(&server, fixture(file), "application/json", call).await {
            Err(AdapterError::InvalidData { detail, .. }) => {
                assert!(
                    detail.contains(field),
                    "{file}: {detail:?} does not name {field}"
                );
                assert_no_identifier(file, &detail);
            }
            other => panic!("{file} via {call:?}: expected invalid data, got {other:?}"),
        }
    }
}

/// Each payload, served to its call, must give a transient error (retried later, never ending a case).
async fn assert_each_is_transient(payloads: &[(&[u8], &str, Call)]) {
    let server = MockServer::start().await;
    for &(body, mime, call) in payloads {
        let what = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
        match answer_with(&server, body.to_vec(), mime, call).await {
            Err(error @ AdapterError::Transient { .. }) => {
                assert_no_identifier(&what, &error.to_string())
            }
            other => panic!("{what:?} via {call:?}: expected transient, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn wrong_types_are_invalid_data() {
    assert_each_is_invalid_data(&[
        ("wrong-type-person-iin-number.json", Call::Person, "`iin`"),
        ("wrong-type-person-name-number.json", Call::Person, "`name`"),
        (
            "wrong-type-person-imprisoned-string.json",
            Call::Person,
            "`imprisoned`",
        ),
        (
            "wrong-type-civil-deceased-string.json",
            Call::CivilRecord,
            "`deceased`",
        ),
        ("wrong-type-permits-object.json", Call::Permits, "`permits`"),
        (
            "wrong-type-organization-bin-number.json",
            Call::Organization,
            "`bin`",
        ),
        (
            "wrong-type-sms-accepted-at-number.json",
            Call::SendSms,
            "`accepted_at`",
        ),
    ])
    .await;
}

#[tokio::test]
async fn nulls_in_required_fields_are_invalid_data() {
    assert_each_is_invalid_data(&[
        ("null-person-name.json", Call::Person, "`name`"),
        (
            "null-person-residence-abroad.json",
            Call::Person,
            "`residence_abroad`",
        ),
        (
            "null-organization-status.json",
            Call::Organization,
            "`status`",
        ),
        (
            "null-permit-holder-name.json",
            Call::Permits,
            "`holder_name`",
        ),
        ("null-consent-id.json", Call::Consent, "`consent_id`"),
        ("null-renames.json", Call::Renames, "`renames`"),
    ])
    .await;
}

#[tokio::test]
async fn look_alike_digits_in_identifiers_are_invalid_data() {
    assert_each_is_invalid_data(&[
        ("lookalike-person-iin-fullwidth.json", Call::Person, "`iin`"),
        (
            "lookalike-person-iin-arabic-indic.json",
            Call::Person,
            "`iin`",
        ),
        (
            "lookalike-organization-bin-fullwidth.json",
            Call::Organization,
            "`bin`",
        ),
        (
            "lookalike-organization-first-head-arabic-indic.json",
            Call::Organization,
            "`first_head`",
        ),
        (
            "lookalike-permit-bin-one-fullwidth-digit.json",
            Call::Permits,
            "`bin`",
        ),
        (
            "lookalike-civil-iin-fullwidth.json",
            Call::CivilRecord,
            "`iin`",
        ),
    ])
    .await;
}

#[tokio::test]
async fn control_and_bidirectional_characters_in_names_are_invalid_data() {
    assert_each_is_invalid_data(&[
        ("name-person-rtl-override.json", Call::Person, "`name`"),
        ("name-person-escape-sequence.json", Call::Person, "`name`"),
        ("name-person-nul.json", Call::Person, "`name`"),
        (
            "name-organization-rtl-isolate.json",
            Call::Organization,
            "`name`",
        ),
        (
            "name-organization-line-break.json",
            Call::Organization,
            "`name`",
        ),
        (
            "name-permit-holder-left-to-right-embedding.json",
            Call::Permits,
            "`holder_name`",
        ),
    ])
    .await;
}

#[tokio::test]
async fn a_record_about_someone_else_is_invalid_data() {
    assert_each_is_invalid_data(&[
        ("other-person-iin.json", Call::Person, "another person"),
        ("other-civil-iin.json", Call::CivilRecord, "another person"),
        (
            "other-mobile-iin.json",
            Call::MobileNumber,
            "another person",
        ),
        (
            "other-organization-bin.json",
            Call::Organization,
            "another organisation",
        ),
        (
            "other-permit-bin.json",
            Call::Permits,
            "another organisation",
        ),
        (
            "other-reissued-permit-id.json",
            Call::Reissue,
            "`permit_id`",
        ),
    ])
    .await;
}

/// `depth` arrays, each inside the next.
fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn ten_thousand_nested_arrays_are_invalid_data_without_overflowing_the_stack() {
    let deep = nested_arrays(10_000);
    let payloads = [
        (deep.clone(), Call::Person),
        (
            format!(r#"{{"iin": {deep}, "name": "x", "residence_abroad": false}}"#),
            Call::Person,
        ),
        (
            format!(r#"{{"renames": {deep}, "next_cursor": "1"}}"#),
            Call::Renames,
        ),
        (format!(r#"{{"permits": [{deep}]}}"#), Call::Permits),
    ];
    let server = MockServer::start().await;
    for (body, call) in payloads {
        match answer_with(&server, body.into_bytes(), "application/json", call).await {
            Err(AdapterError::InvalidData { detail, .. }) => {
                assert!(detail.contains("nested"), "{call:?}: {detail:?}")
            }
            other => panic!("{call:?}: expected invalid data, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_is_transient() {
    let truncated_person = fixture("truncated-person.json");
    let truncated_permits = fixture("truncated-permits.json");
    let garbage = fixture("garbage.json");
    let empty = fixture("empty.json");
    let html = fixture("html-error-page.html");
    assert!(empty.is_empty());
    assert_each_is_transient(&[
        (&truncated_person, "application/json", Call::Person),
        (&truncated_permits, "application/json", Call::Permits),
        (&garbage, "application/json", Call::Organization),
        (&empty, "application/json", Call::CivilRecord),
        (&empty, "application/json", Call::SendSms),
        (&html, "text/html", Call::MobileNumber),
        (&html, "text/html", Call::Renames),
        (&html, "text/html", Call::Consent),
    ])
    .await;
}

/// What the streaming server did with one connection.
#[derive(Default)]
struct Streamed {
    bytes_written: AtomicUsize,
    finished: AtomicBool,
}

/// A one-connection HTTP/1.1 server that answers `200 OK` with `total` bytes of a JSON-looking array,
/// generated chunk by chunk (it never holds the body either). With `announce`, it sends a
/// `Content-Length`; without, it streams chunked, so the client only learns the size by reading.
async fn stream_server(
    total: usize,
    announce: bool,
) -> (String, Arc<Streamed>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let streamed = Arc::new(Streamed::default());
    let report = Arc::clone(&streamed);
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let framing = if announce {
            format!("Content-Length: {total}")
        } else {
            "Transfer-Encoding: chunked".to_owned()
        };
        let head =
            format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{framing}\r\n\r\n");
        if socket.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk: Vec<u8> = b"["
            .iter()
            .chain(b"0,".repeat(32 * 1024).iter())
            .copied()
            .collect();
        let mut sent = 0;
        while sent < total {
            let piece = &chunk[..chunk.len().min(total - sent)];
            let mut frame = Vec::with_capacity(piece.len() + 16);
            if !announce {
                write!(frame, "{:x}\r\n", piece.len()).unwrap();
            }
            frame.extend_from_slice(piece);
            if !announce {
                frame.extend_from_slice(b"\r\n");
            }
            if socket.write_all(&frame).await.is_err() {
                return;
            }
            sent += piece.len();
            report.bytes_written.store(sent, Ordering::SeqCst);
        }
        if !announce {
            let _ = socket.write_all(b"0\r\n\r\n").await;
        }
        report.finished.store(true, Ordering::SeqCst);
    });
    (base, streamed, server)
}

/// A line of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`), where there is one.
fn proc_status_bytes(key: &str) -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

const BODY: usize = 50 * 1024 * 1024;
const LIMIT: usize = 1024 * 1024;

#[tokio::test]
async fn a_streamed_fifty_megabyte_body_is_cut_off_at_the_limit_in_bounded_memory() {
    let (base, streamed, server) = stream_server(BODY, false).await;
    let client = HttpIndividuals::new(HttpSettings {
        max_body_bytes: LIMIT,
        ..settings(&base, "individuals")
    })
    .unwrap();
    let iin = Iin::parse(IIN).unwrap();

    // Writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS, so that the peak read
    // afterwards is the peak of this call (and of whatever else this process did meanwhile).
    let measured = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = proc_status_bytes("VmRSS");
    let result = client.person(&iin).await;
    let peak = proc_status_bytes("VmHWM");

    match result {
        Err(AdapterError::Transient { detail, .. }) => {
            assert!(detail.contains("too large"), "{detail:?}")
        }
        other => panic!("expected a transient 'too large', got {other:?}"),
    }
    // The client hung up: the server's writes failed before the whole body was out.
    server.await.unwrap();
    assert!(!streamed.finished.load(Ordering::SeqCst));
    assert!(streamed.bytes_written.load(Ordering::SeqCst) < BODY);
    match (measured, before, peak) {
        (true, Some(before), Some(peak)) => {
            let grew = peak.saturating_sub(before);
            println!(
                "peak RSS grew by {} KiB while a {} KiB body was refused",
                grew / 1024,
                BODY / 1024
            );
            assert!(
                grew < 16 * 1024 * 1024,
                "peak RSS grew by {grew} bytes for a {BODY}-byte body"
            );
        }
        _ => println!("skipped the RSS check: /proc/self/clear_refs or status unavailable"),
    }
}

#[tokio::test]
async fn an_announced_fifty_megabyte_body_is_refused_before_it_is_read() {
    let (base, streamed, server) = stream_server(BODY, true).await;
    let client = HttpLegalEntities::new(HttpSettings {
        max_body_bytes: LIMIT,
        ..settings(&base, "legal_entities")
    })
    .unwrap();
    match client.renames(None, 100).await {
        Err(AdapterError::Transient { detail, .. }) => {
            assert!(detail.contains("too large"), "{detail:?}")
        }
        other => panic!("expected a transient 'too large', got {other:?}"),
    }
    server.await.unwrap();
    assert!(!streamed.finished.load(Ordering::SeqCst));
    assert!(streamed.bytes_written.load(Ordering::SeqCst) < BODY);
}
