//! The synthetic world: deterministic from the seed, lazy (a million organisations at once), served over
//! HTTP like a fixture, with writes in a sparse overlay, and the promised mix of registry data.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{get, post, serve};
use mock_registries::synthetic::control_digit;
use mock_registries::{Mock, OrgStatus, PermitStatus, synthetic_epoch};
use serde_json::{Value, json};

const TSR: &str = "trusted_software_register";

fn valid_id(id: &str) -> bool {
    let d: Vec<u8> = id.bytes().map(|b| b.wrapping_sub(b'0')).collect();
    if d.len() != 12 || d.iter().any(|x| *x > 9) {
        return false;
    }
    let mut first = [0u8; 11];
    first.copy_from_slice(&d[..11]);
    control_digit(&first) == Some(d[11])
}

/// A Kazakhstan mobile number in one of the usual spellings.
fn usable_number(phone: &Value) -> bool {
    let Some(s) = phone.as_str() else {
        return false;
    };
    let digits: String = s.chars().filter(|c| !" -()".contains(*c)).collect();
    let national = digits
        .strip_prefix("+7")
        .or_else(|| digits.strip_prefix('8'))
        .unwrap_or("");
    national.len() == 10
        && national.bytes().all(|b| b.is_ascii_digit())
        && [
            "700", "701", "702", "705", "707", "708", "747", "771", "775", "776", "777", "778",
        ]
        .iter()
        .any(|p| national.starts_with(p))
}

#[test]
fn the_same_seed_gives_the_same_world_and_another_seed_another() {
    let a = Mock::synthetic(10_000, 1);
    let b = Mock::synthetic(10_000, 1);
    let c = Mock::synthetic(10_000, 2);
    let pa = a.renames(Some("100"), 50).expect("page");
    let pb = b.renames(Some("100"), 50).expect("page");
    let pc = c.renames(Some("100"), 50).expect("page");
    assert_eq!(pa, pb);
    assert_ne!(pa.renames, pc.renames);
    for r in &pa.renames {
        let bin = r.bin.as_str().unwrap_or_default();
        assert_eq!(a.organization(bin), b.organization(bin));
        assert_eq!(a.permits(bin, None), b.permits(bin, None));
        if let Some(head) = a.organization(bin).and_then(|o| o.first_head) {
            let iin = head.as_str().unwrap_or_default();
            assert_eq!(a.person(iin), b.person(iin));
            assert_eq!(a.mobile_number(iin), b.mobile_number(iin));
            assert_eq!(a.civil_record(iin), b.civil_record(iin));
        }
    }
}

#[test]
fn a_million_organisations_are_ready_at_once_and_the_last_page_is_at_hand() {
    let started = common::now();
    let mock = Mock::synthetic(1_000_000, 1);
    mock.set_now(synthetic_epoch());
    let last = mock.renames(Some("999990"), 500).expect("page");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(last.renames.len(), 10);
    assert_eq!(last.next_cursor, "1000000");
    let bin = last.renames[9].bin.as_str().unwrap_or_default();
    assert!(mock.organization(bin).is_some());
}

#[test]
fn renames_fall_in_the_day_before_the_epoch_and_appear_as_the_clock_passes_them() {
    let mock = Mock::synthetic(1_000, 3);
    let epoch = synthetic_epoch();
    mock.set_now(epoch - chrono::Duration::hours(12));
    let half = mock.renames(None, 5000).expect("page");
    // Rename 500 is dated exactly 12 h before the epoch, and `at <= now` is visible.
    assert_eq!(half.renames.len(), 501, "half the day, half the renames");
    mock.set_now(epoch);
    let all = mock.renames(None, 5000).expect("page");
    assert_eq!(all.renames.len(), 1000);
    assert!(all.renames.windows(2).all(|w| w[0].at < w[1].at));
    assert!(all.renames[0].at >= epoch - chrono::Duration::hours(24));
    assert!(all.renames[999].at < epoch);
}

/// Organisations sampled from four places in a million-organisation world.
#[derive(Default)]
struct Mix {
    orgs: usize,
    active_tsr: usize,
    multi_tsr: usize,
    already_current: usize,
    other_only: usize,
    revoked_only: usize,
    no_permit: usize,
    liquidated: usize,
    no_head: usize,
    bad_head: usize,
    heads: usize,
    ineligible: HashMap<&'static str, usize>,
    civil_records: usize,
    no_number: usize,
    bad_number: usize,
    head_orgs: HashMap<String, usize>,
    kazakh_forms: usize,
    russian_forms: usize,
}

fn sample_mix() -> Mix {
    let mock = Mock::synthetic(1_000_000, 1);
    mock.set_now(synthetic_epoch());
    let mut m = Mix::default();
    for cursor in ["0", "250000", "500000", "750000"] {
        let page = mock.renames(Some(cursor), 5000).expect("page");
        assert_eq!(page.renames.len(), 5000);
        for rename in page.renames {
            m.orgs += 1;
            let bin = rename.bin.as_str().expect("a string BIN").to_string();
            assert!(valid_id(&bin), "{bin}");
            if rename.from.starts_with("ЖШС") || rename.from.starts_with("АҚ") {
                m.kazakh_forms += 1;
            }
            if rename.from.starts_with("ТОО") || rename.from.starts_with("АО") {
                m.russian_forms += 1;
            }
            let org = mock
                .organization(&bin)
                .expect("every BIN in the feed is known");
            assert_eq!(org.name, rename.to);
            let permits = mock.permits(&bin, None);
            let tsr: Vec<_> = permits.iter().filter(|p| p.service == TSR).collect();
            let active: Vec<_> = tsr
                .iter()
                .filter(|p| p.status == PermitStatus::Active)
                .collect();
            if !active.is_empty() {
                m.active_tsr += 1;
                if tsr.len() > 1 {
                    m.multi_tsr += 1;
                }
                if active.iter().all(|p| p.holder_name == org.name) {
                    m.already_current += 1;
                }
            } else if !tsr.is_empty() {
                m.revoked_only += 1;
            } else if !permits.is_empty() {
                m.other_only += 1;
            } else {
                m.no_permit += 1;
            }
            if org.status == OrgStatus::Liquidated {
                m.liquidated += 1;
            }
            let Some(head) = org.first_head else {
                m.no_head += 1;
                continue;
            };
            let iin = head.as_str().expect("a string IIN").to_string();
            if !valid_id(&iin) {
                m.bad_head += 1;
                continue;
            }
            m.heads += 1;
            *m.head_orgs.entry(iin.clone()).or_default() += 1;
            let person = mock
                .person(&iin)
                .expect("every valid head is in the individuals registry");
            let civil = mock.civil_record(&iin);
            if civil.is_some() {
                m.civil_records += 1;
            }
            let civil = civil.unwrap_or(mock_registries::CivilRecord {
                iin: json!(iin),
                deceased: false,
                declared_dead: false,
                declared_missing: false,
            });
            let reason = [
                ("deceased", civil.deceased),
                ("declared_dead", civil.declared_dead),
                ("declared_missing", civil.declared_missing),
                ("residence_abroad", person.residence_abroad),
                ("incapacitated", person.incapacitated),
                ("imprisoned", person.imprisoned),
            ]
            .into_iter()
            .find(|(_, hit)| *hit);
            if let Some((name, _)) = reason {
                *m.ineligible.entry(name).or_default() += 1;
            }
            match mock.mobile_number(&iin) {
                None => m.no_number += 1,
                Some(n) if !usable_number(&n.phone) => m.bad_number += 1,
                Some(_) => {}
            }
        }
    }
    m
}

fn rate(part: usize, whole: usize) -> f64 {
    part as f64 / whole as f64
}

fn assert_near(what: &str, got: f64, want: f64, tolerance: f64) {
    assert!(
        (got - want).abs() <= tolerance,
        "{what}: {got:.4}, expected {want} ± {tolerance}"
    );
}

#[test]
fn a_sample_of_twenty_thousand_organisations_has_the_documented_mix() {
    let m = sample_mix();
    assert_eq!(m.orgs, 20_000);
    assert_near(
        "active register permit",
        rate(m.active_tsr, m.orgs),
        0.65,
        0.02,
    );
    assert_near(
        "other services only",
        rate(m.other_only, m.orgs),
        0.10,
        0.015,
    );
    assert_near("revoked only", rate(m.revoked_only, m.orgs), 0.05, 0.01);
    assert_near("no permit", rate(m.no_permit, m.orgs), 0.20, 0.02);
    assert_near(
        "several register permits",
        rate(m.multi_tsr, m.active_tsr),
        0.25,
        0.03,
    );
    assert_near(
        "already current",
        rate(m.already_current, m.active_tsr),
        0.03,
        0.01,
    );
    assert_near("liquidated", rate(m.liquidated, m.orgs), 0.01, 0.004);
    assert_near("no head", rate(m.no_head, m.orgs), 0.01, 0.004);
    assert_near("malformed head IIN", rate(m.bad_head, m.orgs), 0.003, 0.002);

    let ineligible: usize = m.ineligible.values().sum();
    assert_near("ineligible heads", rate(ineligible, m.heads), 0.08, 0.012);
    for reason in [
        "deceased",
        "declared_dead",
        "declared_missing",
        "residence_abroad",
        "incapacitated",
        "imprisoned",
    ] {
        let n = m.ineligible.get(reason).copied().unwrap_or(0);
        assert!(n > 100, "{reason}: only {n}");
    }
    assert!(
        m.civil_records > m.heads / 4,
        "some heads have a clean civil record"
    );
    assert!(m.civil_records < m.heads * 3 / 4, "some heads have none");

    assert_near("no number", rate(m.no_number, m.heads), 0.05, 0.01);
    assert_near("malformed number", rate(m.bad_number, m.heads), 0.01, 0.005);

    let shared = m
        .head_orgs
        .values()
        .filter(|n| **n > 1)
        .copied()
        .sum::<usize>();
    assert!(
        m.head_orgs.values().any(|n| *n == 3),
        "some heads lead three organisations"
    );
    assert_near(
        "organisations sharing a head",
        rate(shared, m.heads),
        0.10,
        0.03,
    );

    assert!(m.kazakh_forms > m.orgs / 3 && m.russian_forms > m.orgs / 3);
}

#[tokio::test]
async fn a_synthetic_world_is_served_over_http_and_keeps_writes_in_a_sparse_overlay() {
    let mock = Mock::synthetic(100_000, 5);
    mock.set_now(synthetic_epoch());
    let base = serve(&mock).await;
    let c = reqwest::Client::new();

    let (s, page) = get(&c, &format!("{base}/legal_entities/renames?limit=5000")).await;
    assert_eq!(s, 200);
    let renames = page["renames"].as_array().cloned().unwrap_or_default();
    assert_eq!(renames.len(), 5000);

    // The first organisation with an active register permit under its old name gets it re-issued.
    let mut done = None;
    for r in &renames {
        let bin = r["bin"].as_str().unwrap_or_default();
        let (_, permits) = get(
            &c,
            &format!("{base}/e_license/permits?bin={bin}&service={TSR}"),
        )
        .await;
        let Some(p) = permits["permits"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["status"] == "active" && p["holder_name"] == r["from"])
        else {
            continue;
        };
        let id = p["permit_id"].as_str().unwrap_or_default().to_string();
        let (s, answer) = post(
            &c,
            &format!("{base}/e_license/permits/{id}/reissue"),
            Some("k-1"),
            &json!({"bin": bin, "holder_name": r["to"]}),
        )
        .await;
        assert_eq!(s, 200);
        assert_eq!(answer["holder_name"], r["to"]);
        let (_, after) = get(
            &c,
            &format!("{base}/e_license/permits?bin={bin}&service={TSR}"),
        )
        .await;
        assert!(
            after["permits"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|q| q["permit_id"] == id.as_str() && q["holder_name"] == r["to"])
        );
        done = Some(id);
        break;
    }
    let id = done.expect("some organisation has an active permit");

    post(
        &c,
        &format!("{base}/sms/messages"),
        Some("s-1"),
        &json!({"to": "+77011234567", "text": "t"}),
    )
    .await;
    let (_, state) = get(&c, &format!("{base}/_control/state")).await;
    assert_eq!(
        state["permits"].as_array().map(Vec::len),
        Some(1),
        "only what changed"
    );
    assert_eq!(state["permits"][0]["permit_id"], id.as_str());
    assert_eq!(state["permits"][0]["idempotency_key"], "k-1");
    assert_eq!(
        get(&c, &format!("{base}/_control/sms/sent"))
            .await
            .1
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // Unknown identifiers are absent, not errors.
    assert_eq!(
        get(
            &c,
            &format!("{base}/legal_entities/organizations/123456789012")
        )
        .await
        .0,
        404
    );
    assert_eq!(
        get(&c, &format!("{base}/individuals/persons/abc")).await.0,
        404
    );
}

#[test]
fn events_apply_to_a_synthetic_world_too() {
    let mock = Mock::synthetic(1_000, 9);
    mock.set_now(synthetic_epoch());
    let first = mock.renames(None, 5000).expect("page");
    let bin = first.renames[10]
        .bin
        .as_str()
        .unwrap_or_default()
        .to_string();
    let at = synthetic_epoch() + chrono::Duration::hours(1);
    mock.set_now(at);
    mock.rename(&bin, "ТОО «Жаңа Атау»", at);
    assert_eq!(
        mock.organization(&bin).map(|o| o.name).as_deref(),
        Some("ТОО «Жаңа Атау»")
    );
    let fresh = mock.renames(Some(&first.next_cursor), 5000).expect("page");
    assert_eq!(fresh.renames.len(), 1);
    assert_eq!(fresh.renames[0].from, first.renames[10].to);

    let head = mock
        .organization(&bin)
        .and_then(|o| o.first_head)
        .and_then(|h| h.as_str().map(str::to_string));
    if let Some(iin) = head {
        let record = json!({"iin": iin, "deceased": true});
        mock.update(
            mock_registries::SystemName::CivilRegistry,
            record.as_object().cloned().unwrap_or_default(),
        )
        .expect("update");
        assert_eq!(mock.civil_record(&iin).map(|r| r.deceased), Some(true));
    }
    assert!(Mock::try_synthetic(mock_registries::MAX_SYNTHETIC_ORGS + 1, 1).is_err());
}
