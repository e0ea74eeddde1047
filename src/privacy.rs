//! Personal data in logs: identifiers appear only masked to their last four digits.

/// The last four characters behind a mask, for any identifier-like text.
pub fn mask(value: &str) -> String {
    adapters::ids::mask_raw(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mask_shows_only_the_last_four_digits() {
        assert_eq!(mask("790415307770"), "***7770");
    }
}
