//! `mock_registries::Scenario::parse` on any text: it never panics (nor overflows its stack on deep
//! nesting); a scenario it accepts keeps the rules its checks promise (`run_until` not before `start`,
//! exactly one kind per event, fault rates within 0..=1, faults that end after they start), and survives
//! a round trip through its JSON form unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mock_registries::{EventKind, Scenario};

fuzz_target!(|text: &str| {
    let Ok(scenario) = Scenario::parse(text) else {
        return;
    };
    assert!(scenario.run_until >= scenario.start);
    for event in &scenario.events {
        match event
            .kind()
            .expect("an accepted event has exactly one kind")
        {
            EventKind::Fault(fault) => {
                assert!((0.0..=1.0).contains(&fault.rate), "rate {}", fault.rate);
                assert!(fault.until >= event.at);
            }
            EventKind::SmsReply(_) | EventKind::Rename(_) | EventKind::Update(_) => {}
        }
    }

    let json = serde_json::to_value(&scenario).expect("a scenario serialises");
    let again: Scenario = serde_json::from_value(json.clone())
        .unwrap_or_else(|e| panic!("its own JSON form does not load: {e}"));
    assert_eq!(serde_json::to_value(&again).unwrap(), json);
});
