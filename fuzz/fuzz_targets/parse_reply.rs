//! `sdu::case::parse_reply` on any text: it never panics, it accepts only `1` or `2` with surrounding white
//! space and at most one trailing `.`, and padding a reply with white space never changes its reading.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sdu::case::{Choice, parse_reply};

fuzz_target!(|text: &str| {
    let choice = parse_reply(text);

    // Anything accepted is a single 1 or 2 once white space and one trailing dot are set aside.
    if let Some(choice) = choice {
        let kept: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let core = kept.strip_suffix('.').unwrap_or(&kept);
        let expected = match choice {
            Choice::Agree => "1",
            Choice::Refuse => "2",
        };
        assert_eq!(core, expected, "accepted {text:?} as {choice:?}");
    }

    // The plain spellings are always accepted.
    match text.trim() {
        "1" | "1." => assert_eq!(choice, Some(Choice::Agree), "{text:?}"),
        "2" | "2." => assert_eq!(choice, Some(Choice::Refuse), "{text:?}"),
        _ => {}
    }

    // Surrounding white space is ignored.
    assert_eq!(parse_reply(&format!(" \t{text}\r\n ")), choice, "{text:?}");
});
