//! `adapters::Iin::parse` and `adapters::Bin::parse` on any text, and on any eleven digits completed with
//! their control digit. A parsed identifier is twelve ASCII digits whose last one is the two-pass mod-11
//! control digit of docs/RULES.md §9.1 (computed here independently of the crate), re-parses to itself, and is masked
//! to its last four digits; an identifier built with a correct control digit is never refused for its
//! control digit or its shape, and any other last digit is refused for its control digit.
#![no_main]

use adapters::ids::with_control_digit;
use adapters::{Bin, IdError, Iin};
use libfuzzer_sys::fuzz_target;

/// docs/RULES.md §9.1's rule, written out again: weights 1..11, then 3..11,1,2 if the first sum is 10 mod 11.
fn control_digit_holds(id: &str) -> bool {
    let d: Vec<u32> = id.bytes().map(|b| u32::from(b - b'0')).collect();
    let sum = |weights: [u32; 11]| (0..11).map(|i| d[i] * weights[i]).sum::<u32>() % 11;
    let mut c = sum([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    if c == 10 {
        c = sum([3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2]);
    }
    c < 10 && c == d[11]
}

fn check_parsed(raw: &str, id: &str, masked: &str) {
    assert_eq!(id, raw);
    assert_eq!(id.len(), 12, "{raw:?}");
    assert!(id.bytes().all(|b| b.is_ascii_digit()), "{raw:?}");
    assert!(
        control_digit_holds(id),
        "{raw:?} accepted with a wrong control digit"
    );
    assert_eq!(masked, format!("********{}", &id[8..]));
}

fuzz_target!(|data: &[u8]| {
    // Any text.
    if let Ok(raw) = std::str::from_utf8(data) {
        if let Ok(iin) = Iin::parse(raw) {
            check_parsed(raw, iin.as_str(), &iin.masked());
            assert!(
                (b'1'..=b'6').contains(&iin.as_str().as_bytes()[6]),
                "{raw:?}: century"
            );
            assert_eq!(iin.to_string().parse::<Iin>().as_ref(), Ok(&iin));
            assert!(
                !format!("{iin:?}").contains(&raw[..8]),
                "Debug shows the IIN"
            );
        }
        if let Ok(bin) = Bin::parse(raw) {
            check_parsed(raw, bin.as_str(), &bin.masked());
            let month = &bin.as_str()[2..4];
            assert!(("01"..="12").contains(&month), "{raw:?}: month {month}");
            assert_eq!(bin.to_string().parse::<Bin>().as_ref(), Ok(&bin));
        }
    }

    // Eleven digits and their control digit: only the date, century or month can still be wrong.
    if data.len() >= 11 {
        let first_eleven: String = data[..11]
            .iter()
            .map(|b| char::from(b'0' + b % 10))
            .collect();
        match with_control_digit(&first_eleven) {
            Some(id) => {
                assert!(control_digit_holds(&id), "{id}");
                match Iin::parse(&id) {
                    Ok(_) | Err(IdError::BirthDate | IdError::Century) => {}
                    Err(e) => panic!("{id}: valid-shaped IIN refused: {e}"),
                }
                match Bin::parse(&id) {
                    Ok(_) | Err(IdError::RegistrationMonth) => {}
                    Err(e) => panic!("{id}: valid-shaped BIN refused: {e}"),
                }
                // Every other last digit is refused.
                for other in (b'0'..=b'9').filter(|c| *c != id.as_bytes()[11]) {
                    let wrong = format!("{first_eleven}{}", char::from(other));
                    assert_eq!(
                        Iin::parse(&wrong).err(),
                        Some(IdError::ControlDigit),
                        "{wrong}"
                    );
                    assert_eq!(
                        Bin::parse(&wrong).err(),
                        Some(IdError::ControlDigit),
                        "{wrong}"
                    );
                }
            }
            None => {
                for last in b'0'..=b'9' {
                    let id = format!("{first_eleven}{}", char::from(last));
                    assert_eq!(Iin::parse(&id).err(), Some(IdError::ControlDigit), "{id}");
                    assert_eq!(Bin::parse(&id).err(), Some(IdError::ControlDigit), "{id}");
                }
            }
        }
    }
});
