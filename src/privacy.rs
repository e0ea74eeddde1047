//! Personal data in logs: identifiers appear only masked to their last four digits, or as a keyed-hash
//! [`tag`] that lets one person be followed across log lines without the identifier appearing.

use std::sync::OnceLock;

use hmac::{KeyInit, Mac};

/// The last four characters behind a mask, for any identifier-like text.
pub fn mask(value: &str) -> String {
    adapters::ids::mask_raw(value)
}

/// Hex characters of a tag: 64 bits, so that two people of the registries (some millions) share a tag
/// with odds of about one in a million, while a tag stays short in a log line.
pub const TAG_HEX_CHARS: usize = 16;

/// The key of the tags, set once per process by [`set_tag_key`] (or drawn at random on first use).
static TAG_KEY: OnceLock<Vec<u8>> = OnceLock::new();

/// Sets the key of [`tag`] from the configuration's `log_hash_key`; `None` draws a random key for this
/// process. Returns false when the key was already fixed (by an earlier call or an earlier tag), which
/// then stays.
pub fn set_tag_key(key: Option<&str>) -> bool {
    let key = match key {
        Some(key) => key.as_bytes().to_vec(),
        None => random_key(),
    };
    TAG_KEY.set(key).is_ok()
}

fn random_key() -> Vec<u8> {
    rand::random::<[u8; 32]>().to_vec()
}

/// The tag of an identifier (an IIN, a phone number in E.164) for log lines: the first
/// [`TAG_HEX_CHARS`] hex characters of HMAC-SHA256 of the value under the tag key. Without the key the
/// tag cannot be turned back into the identifier, not even by trying every IIN.
pub fn tag(value: &str) -> String {
    let key = TAG_KEY.get_or_init(random_key);
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(value.as_bytes());
    let mut hex = hex::encode(mac.finalize().into_bytes());
    hex.truncate(TAG_HEX_CHARS);
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mask_shows_only_the_last_four_digits() {
        assert_eq!(mask("790415307770"), "***7770");
    }

    #[test]
    fn a_tag_is_the_truncated_hmac_of_the_value_and_stable() {
        // The unit tests share one process: whichever test sets the key first, the tag is the HMAC under
        // the key in force.
        set_tag_key(Some("a key of the unit tests"));
        let key = TAG_KEY.get().unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(b"790415307770");
        let full = hex::encode(mac.finalize().into_bytes());
        let t = tag("790415307770");
        assert_eq!(t, full[..TAG_HEX_CHARS]);
        assert_eq!(t, tag("790415307770"));
        assert_ne!(t, tag("790415307771"));
        assert_eq!(t.len(), TAG_HEX_CHARS);
    }
}
