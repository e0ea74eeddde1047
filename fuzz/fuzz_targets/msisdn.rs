//! `adapters::Msisdn::parse` on any text: it never panics; whatever it accepts is `+77` and nine more
//! digits, re-parses to itself (also from the local spellings `8 7XX…`, `7 7XX…` and the ten national
//! digits), keeps the digits it was given, and masks all but the last four.
#![no_main]

use adapters::Msisdn;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(phone) = Msisdn::parse(text) else {
        return;
    };
    let e164 = phone.as_str();
    assert_eq!(e164.len(), 12, "{text:?} -> {e164}");
    assert!(e164.starts_with("+77"), "{text:?} -> {e164}");
    assert!(
        e164[1..].bytes().all(|b| b.is_ascii_digit()),
        "{text:?} -> {e164}"
    );

    // Normalisation only drops separators and the trunk or country prefix: the national digits are the
    // last ten digits of the input.
    let national = &e164[2..];
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    assert!(digits.ends_with(national), "{text:?} -> {e164}");

    for spelling in [
        e164.to_owned(),
        format!("8{national}"),
        format!("7{national}"),
        format!(
            "8 ({}) {}-{}-{}",
            &national[..3],
            &national[3..6],
            &national[6..8],
            &national[8..]
        ),
        national.to_owned(),
    ] {
        assert_eq!(
            Msisdn::parse(&spelling).as_ref(),
            Ok(&phone),
            "{spelling:?}"
        );
    }

    let masked = phone.masked();
    assert!(masked.ends_with(&national[6..]), "{masked}");
    assert!(!masked.contains(&national[..6]), "{masked}");
    assert!(
        !format!("{phone:?}").contains(national),
        "Debug shows the number"
    );
});
