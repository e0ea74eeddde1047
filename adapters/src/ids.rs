//! Validated identifiers shared by every crate: BIN, IIN and mobile numbers.
//!
//! Registry data is untrusted (docs/RULES.md §2.12, §9): every identifier is parsed into one of these newtypes at the
//! boundary, so code past the adapters can never hold a malformed one. `Display` prints the full value
//! because the case store needs it; logs must use [`Iin::masked`] / [`Msisdn::masked`] instead.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an identifier was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not exactly twelve ASCII digits.
    #[error("must be exactly 12 digits, got {len} characters")]
    Length {
        /// Number of characters seen.
        len: usize,
    },
    /// A character other than an ASCII digit.
    #[error("must contain only the digits 0-9")]
    NotDigits,
    /// The two-pass mod-11 control digit does not match (or the number can have none).
    #[error("control digit does not match")]
    ControlDigit,
    /// IIN digits 1–6 are not a real date of birth.
    #[error("digits 1-6 are not a valid birth date")]
    BirthDate,
    /// IIN digit 7 (century and sex) is outside 1–6.
    #[error("digit 7 (century and sex) must be 1-6")]
    Century,
    /// BIN digits 3–4 are not a month.
    #[error("digits 3-4 (registration month) must be 01-12")]
    RegistrationMonth,
}

/// Why a phone number could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// The text is not a phone number in any usual spelling.
    #[error("not a phone number")]
    Unparseable,
    /// A valid number, but not in Kazakhstan's mobile ranges.
    #[error("not a Kazakhstan mobile number")]
    NotKazakhMobile,
}

/// The control digit of the first eleven digits, by the two-pass mod-11 rule; `None` when none exists.
pub fn control_digit(first_eleven: &[u8; 11]) -> Option<u8> {
    const FIRST: [u32; 11] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    const SECOND: [u32; 11] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2];
    let weigh = |weights: &[u32; 11]| -> u32 {
        first_eleven
            .iter()
            .zip(weights)
            .map(|(d, w)| u32::from(*d) * w)
            .sum::<u32>()
            % 11
    };
    let first = weigh(&FIRST);
    let digit = if first == 10 { weigh(&SECOND) } else { first };
    (digit < 10).then_some(digit as u8)
}

fn twelve_digits(raw: &str) -> Result<[u8; 12], IdError> {
    let len = raw.chars().count();
    if len != 12 {
        return Err(IdError::Length { len });
    }
    let mut digits = [0u8; 12];
    for (slot, ch) in digits.iter_mut().zip(raw.chars()) {
        // `is_ascii_digit` rejects look-alikes such as Arabic-Indic or full-width digits.
        if !ch.is_ascii_digit() {
            return Err(IdError::NotDigits);
        }
        *slot = ch as u8 - b'0';
    }
    let first_eleven: [u8; 11] = digits[..11].try_into().expect("slice of 11");
    if control_digit(&first_eleven) != Some(digits[11]) {
        return Err(IdError::ControlDigit);
    }
    Ok(digits)
}

fn two(d: &[u8; 12], at: usize) -> u32 {
    u32::from(d[at]) * 10 + u32::from(d[at + 1])
}

macro_rules! id_newtype_common {
    ($name:ident) => {
        impl $name {
            /// The twelve digits.
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// The last four digits behind a mask, for logs and operator output.
            pub fn masked(&self) -> String {
                format!("********{}", &self.0[8..])
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        // Debug is masked so that a stray `{:?}` in a log line never leaks the full number.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.masked())
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(|e| {
                    serde::de::Error::custom(format!("invalid {}: {e}", stringify!($name)))
                })
            }
        }
    };
}

/// A business identification number: an organisation's 12-digit identifier.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bin(String);

impl Bin {
    /// Parses a BIN: twelve digits, a registration month 01–12 and a matching control digit.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let digits = twelve_digits(raw)?;
        if !(1..=12).contains(&two(&digits, 2)) {
            return Err(IdError::RegistrationMonth);
        }
        Ok(Self(raw.to_owned()))
    }
}
id_newtype_common!(Bin);

/// An individual identification number: a person's 12-digit identifier (digits 1–6 are the birth date).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Iin(String);

impl Iin {
    /// Parses an IIN: twelve digits, a real birth date, a century digit 1–6 and a matching control digit.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let digits = twelve_digits(raw)?;
        let century = match digits[6] {
            1 | 2 => 1800,
            3 | 4 => 1900,
            5 | 6 => 2000,
            _ => return Err(IdError::Century),
        };
        let year = century + two(&digits, 0) as i32;
        if chrono::NaiveDate::from_ymd_opt(year, two(&digits, 2), two(&digits, 4)).is_none() {
            return Err(IdError::BirthDate);
        }
        Ok(Self(raw.to_owned()))
    }
}
id_newtype_common!(Iin);

/// An IIN as a registry sent it, not yet read: kept opaque until the process needs the person (the first
/// head matters only once the permits say a head is needed, and personal data is read only where needed).
/// [`UncheckedIin::check`] validates it then; `Debug` shows only a mask.
#[derive(Clone, PartialEq, Eq)]
pub struct UncheckedIin(String);

impl UncheckedIin {
    /// Wraps the raw text (a non-string JSON value as its JSON text).
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    /// The validated IIN, or why it is not one.
    pub fn check(&self) -> Result<Iin, IdError> {
        Iin::parse(&self.0)
    }
}

impl From<Iin> for UncheckedIin {
    fn from(iin: Iin) -> Self {
        Self(iin.0)
    }
}

impl fmt::Debug for UncheckedIin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UncheckedIin({})", mask_raw(&self.0))
    }
}

/// A Kazakhstan mobile number in E.164 form, `+77XXXXXXXXX`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Msisdn(String);

impl Msisdn {
    /// Normalises the usual spellings (`+7 701 …`, `8 701 …`, `7 701 …`, `701 …`, with spaces, dashes,
    /// dots or brackets) and accepts only numbers that libphonenumber places in Kazakhstan's mobile ranges.
    pub fn parse(raw: &str) -> Result<Self, PhoneError> {
        let trimmed = raw.trim();
        let plus = trimmed.starts_with('+');
        let mut digits = String::with_capacity(16);
        for (i, ch) in trimmed.chars().enumerate() {
            match ch {
                '0'..='9' => digits.push(ch),
                '+' if i == 0 => {}
                ' ' | '-' | '(' | ')' | '.' | '\u{a0}' => {}
                _ => return Err(PhoneError::Unparseable),
            }
        }
        let national = match (plus, digits.len()) {
            (true, 11) if digits.starts_with('7') => &digits[1..],
            (false, 11) if digits.starts_with('8') || digits.starts_with('7') => &digits[1..],
            (false, 10) => &digits[..],
            _ => return Err(PhoneError::Unparseable),
        };
        let e164 = format!("+7{national}");
        let parsed = phonenumber::parse(None, &e164).map_err(|_| PhoneError::Unparseable)?;
        let is_kz = parsed.country().id() == Some(phonenumber::country::Id::KZ);
        let is_mobile = matches!(
            parsed.number_type(&phonenumber::metadata::DATABASE),
            phonenumber::Type::Mobile | phonenumber::Type::FixedLineOrMobile
        );
        // No `phonenumber::is_valid` on top: it is "the type is not Unknown", read from the same metadata
        // as `number_type`, so a mobile number is valid. Each such call finds the number's region anew,
        // trying Russia's patterns before Kazakhstan's: a third call was a quarter of the parse's cost.
        if !(is_kz && is_mobile) {
            return Err(PhoneError::NotKazakhMobile);
        }
        Ok(Self(e164))
    }

    /// A number [`Msisdn::parse`] normalised earlier and the case store kept: only its E.164 shape is
    /// checked (`+7` and ten digits). libphonenumber's range check costs tens of microseconds, once per
    /// offer; it already ran when the number came from the mobile base.
    pub fn from_stored(e164: &str) -> Result<Self, PhoneError> {
        let national = e164.strip_prefix("+7").ok_or(PhoneError::Unparseable)?;
        if national.len() == 10 && national.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(e164.to_owned()))
        } else {
            Err(PhoneError::Unparseable)
        }
    }

    /// The E.164 form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last four digits behind a mask, for logs and operator output.
    pub fn masked(&self) -> String {
        format!("+7******{}", &self.0[self.0.len() - 4..])
    }
}

impl fmt::Display for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Msisdn({})", self.masked())
    }
}

impl Serialize for Msisdn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Msisdn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw)
            .map_err(|e| serde::de::Error::custom(format!("invalid phone number: {e}")))
    }
}

/// Mask for a phone number that may not even parse: keeps only its last four characters.
pub fn mask_raw(raw: &str) -> String {
    let chars: Vec<char> = raw.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("***{tail}")
}

/// Control characters (C0, DEL, C1) and the Unicode bidirectional formatting characters (the Arabic letter
/// mark, LRM/RLM, embeddings and overrides U+202A–U+202E, isolates U+2066–U+2069): none belongs in a name
/// printed on a permit.
pub fn is_forbidden_in_name(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Why a name cannot be printed on a permit, if it cannot.
pub fn name_problem(name: &str) -> Option<&'static str> {
    if name.trim().is_empty() {
        Some("is blank")
    } else if name.chars().any(is_forbidden_in_name) {
        Some("contains a control or bidirectional formatting character")
    } else {
        None
    }
}

/// Appends the control digit to eleven digits, if one exists: the building block of test-data generators.
pub fn with_control_digit(first_eleven: &str) -> Option<String> {
    let bytes = first_eleven.as_bytes();
    if bytes.len() != 11 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let digits: [u8; 11] = std::array::from_fn(|i| bytes[i] - b'0');
    control_digit(&digits).map(|c| format!("{first_eleven}{c}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_contract_examples_are_valid() {
        for iin in ["790415307770", "860101403216", "850214300013"] {
            Iin::parse(iin).unwrap_or_else(|e| panic!("{iin}: {e}"));
        }
        for bin in ["190540043216", "210840000983", "201140000017"] {
            Bin::parse(bin).unwrap_or_else(|e| panic!("{bin}: {e}"));
        }
    }

    #[test]
    fn a_wrong_control_digit_is_rejected() {
        assert_eq!(Iin::parse("790415307771"), Err(IdError::ControlDigit));
        assert_eq!(Bin::parse("190540043217"), Err(IdError::ControlDigit));
    }

    #[test]
    fn shape_errors_say_what_is_wrong() {
        assert_eq!(Iin::parse("7904153077"), Err(IdError::Length { len: 10 }));
        assert_eq!(Iin::parse("79041530777a"), Err(IdError::NotDigits));
        // Full-width and Arabic-Indic digits look like digits to a person but not to us.
        assert_eq!(Iin::parse("７90415307770"), Err(IdError::NotDigits));
        assert_eq!(Iin::parse("٧90415307770"), Err(IdError::NotDigits));
    }

    #[test]
    fn an_iin_with_an_impossible_birth_date_is_rejected() {
        let bad_month = with_control_digit("79131530777").unwrap();
        assert_eq!(Iin::parse(&bad_month), Err(IdError::BirthDate));
        let bad_century = with_control_digit("79041570777").unwrap();
        assert_eq!(Iin::parse(&bad_century), Err(IdError::Century));
    }

    #[test]
    fn a_bin_with_month_thirteen_is_rejected() {
        let bad = with_control_digit("19134004321").unwrap();
        assert_eq!(Bin::parse(&bad), Err(IdError::RegistrationMonth));
    }

    #[test]
    fn masking_keeps_only_the_last_four_digits() {
        let iin = Iin::parse("790415307770").unwrap();
        assert_eq!(iin.masked(), "********7770");
        assert!(!format!("{iin:?}").contains("790415"));
        let phone = Msisdn::parse("+77011234567").unwrap();
        assert_eq!(phone.masked(), "+7******4567");
        assert!(!format!("{phone:?}").contains("1234567"));
    }

    #[test]
    fn usual_spellings_normalise_to_e164() {
        for raw in [
            "+77011234567",
            "87011234567",
            "8 701 123 45 67",
            "+7 (701) 123-45-67",
            "7 701 123 45 67",
            "8-701-123-45-67",
            " +7 701 1234567 ",
            "7011234567",
        ] {
            assert_eq!(
                Msisdn::parse(raw).map(|m| m.to_string()),
                Ok("+77011234567".into()),
                "{raw}"
            );
        }
    }

    #[test]
    fn non_kazakh_or_non_mobile_numbers_are_rejected() {
        // Moscow mobile: +7 9xx is Russia, not Kazakhstan.
        assert_eq!(
            Msisdn::parse("+79161234567"),
            Err(PhoneError::NotKazakhMobile)
        );
        // Almaty fixed line.
        assert_eq!(
            Msisdn::parse("+77272501234"),
            Err(PhoneError::NotKazakhMobile)
        );
        assert_eq!(Msisdn::parse("12345"), Err(PhoneError::Unparseable));
        assert_eq!(
            Msisdn::from_stored("+77011234567").map(|m| m.to_string()),
            Ok("+77011234567".to_string())
        );
        for bad in [
            "77011234567",
            "+7701123456",
            "+770112345678",
            "+7701123456x",
            "",
        ] {
            assert_eq!(
                Msisdn::from_stored(bad),
                Err(PhoneError::Unparseable),
                "{bad}"
            );
        }
        assert_eq!(Msisdn::parse("+7701123456x"), Err(PhoneError::Unparseable));
        assert_eq!(Msisdn::parse(""), Err(PhoneError::Unparseable));
        assert_eq!(Msisdn::parse("+447911123456"), Err(PhoneError::Unparseable));
    }

    fn valid_iin() -> impl Strategy<Value = String> {
        (0u32..100, 1u32..=12, 1u32..=28, 1u8..=6, 0u32..10_000)
            .prop_filter_map("no control digit", |(y, m, d, c, n)| {
                with_control_digit(&format!("{y:02}{m:02}{d:02}{c}{n:04}"))
            })
    }

    proptest! {
        #[test]
        fn valid_iins_round_trip(raw in valid_iin()) {
            let iin = Iin::parse(&raw).unwrap();
            prop_assert_eq!(iin.as_str(), raw.as_str());
            prop_assert_eq!(iin.to_string().parse::<Iin>().unwrap(), iin);
        }

        #[test]
        fn every_single_digit_corruption_is_caught(raw in valid_iin(), pos in 0usize..12, delta in 1u8..10) {
            let mut bytes = raw.clone().into_bytes();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            let corrupted = String::from_utf8(bytes).unwrap();
            let caught = twelve_digits(&corrupted).is_err();
            // The two-pass rule has two blind spots, and a corruption may only escape through them:
            // weight 11 is 0 mod 11, so digit 11 is invisible to the first pass; and a change that moves
            // the first-pass sum to or from 10 switches to the other weights, which may land on the same digit.
            let first_pass = |s: &str| s.bytes().take(11).enumerate().map(|(i, b)| (i as u32 + 1) * u32::from(b - b'0')).sum::<u32>() % 11;
            let switched_pass = (first_pass(&raw) == 10) != (first_pass(&corrupted) == 10);
            let blind_spot = switched_pass || (pos == 10 && first_pass(&raw) != 10);
            prop_assert!(caught || blind_spot, "{} -> {} not caught", raw, corrupted);
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(s in "\\PC{0,20}") {
            let _ = Iin::parse(&s);
            let _ = Bin::parse(&s);
            let _ = Msisdn::parse(&s);
        }
    }
}
