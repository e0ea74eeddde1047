//! Personal data in logs: identifiers appear only masked to their last four digits, and are correlated
//! across log lines by a keyed hash (HMAC-SHA256), never by the raw value.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Keyed hash of an identifier, short enough for a log field: the same IIN gives the same tag under one
/// key, and the tag cannot be reversed without the key (an IIN has too little entropy for a plain hash).
pub fn tag(key: &str, value: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(value.as_bytes());
    let bytes = mac.finalize().into_bytes();
    hex::encode(&bytes[..6])
}

/// The last four characters behind a mask, for any identifier-like text.
pub fn mask(value: &str) -> String {
    adapters::ids::mask_raw(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_stable_per_key_and_hide_the_value() {
        let a = tag("k1", "790415307770");
        assert_eq!(a, tag("k1", "790415307770"));
        assert_ne!(a, tag("k2", "790415307770"));
        assert!(!a.contains("7904"));
        assert_eq!(mask("790415307770"), "***7770");
    }
}
