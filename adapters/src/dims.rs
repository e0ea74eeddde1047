//! The two statistical dimensions of an organisation record: where it is registered (a KATO code) and what
//! it does (an OKED code). They describe the organisation, not a person, and feed the published outcome
//! statistics (docs/DATA-PRODUCT.md). Like the identifiers of [`crate::ids`], each is parsed into a newtype
//! at the boundary: a malformed one is invalid registry data.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a KATO or OKED code was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DimError {
    /// Not the expected number of ASCII digits.
    #[error("must be exactly {expected} digits")]
    Length {
        /// How many digits the code has.
        expected: usize,
    },
    /// A KATO code whose first two digits name no oblast or city of republican significance.
    #[error("digits 1-2 name no region of Kazakhstan")]
    UnknownRegion,
    /// An OKED code whose first two digits (the division) are not a division of the classifier.
    #[error("digits 1-2 are not an OKED division")]
    UnknownDivision,
}

/// The first-level units of KATO (the classifier of administrative-territorial objects): the 17 oblasts
/// and the 3 cities of republican significance, as (two-digit code, name in Kazakh, name in Russian).
pub const KATO_REGIONS: [(&str, &str, &str); 20] = [
    ("10", "Абай облысы", "область Абай"),
    ("11", "Ақмола облысы", "Акмолинская область"),
    ("15", "Ақтөбе облысы", "Актюбинская область"),
    ("19", "Алматы облысы", "Алматинская область"),
    ("23", "Атырау облысы", "Атырауская область"),
    (
        "27",
        "Батыс Қазақстан облысы",
        "Западно-Казахстанская область",
    ),
    ("31", "Жамбыл облысы", "Жамбылская область"),
    ("33", "Жетісу облысы", "область Жетісу"),
    ("35", "Қарағанды облысы", "Карагандинская область"),
    ("39", "Қостанай облысы", "Костанайская область"),
    ("43", "Қызылорда облысы", "Кызылординская область"),
    ("47", "Маңғыстау облысы", "Мангистауская область"),
    ("55", "Павлодар облысы", "Павлодарская область"),
    (
        "59",
        "Солтүстік Қазақстан облысы",
        "Северо-Казахстанская область",
    ),
    ("61", "Түркістан облысы", "Туркестанская область"),
    ("62", "Ұлытау облысы", "область Ұлытау"),
    (
        "63",
        "Шығыс Қазақстан облысы",
        "Восточно-Казахстанская область",
    ),
    ("71", "Астана қаласы", "город Астана"),
    ("75", "Алматы қаласы", "город Алматы"),
    ("79", "Шымкент қаласы", "город Шымкент"),
];

/// The sections of OKED (NACE Rev. 2 structure): (letter, first division, last division, Russian name).
pub const OKED_SECTIONS: [(char, u8, u8, &str); 21] = [
    ('A', 1, 3, "Сельское, лесное и рыбное хозяйство"),
    (
        'B',
        5,
        9,
        "Горнодобывающая промышленность и разработка карьеров",
    ),
    ('C', 10, 33, "Обрабатывающая промышленность"),
    (
        'D',
        35,
        35,
        "Электроснабжение, подача газа, пара и воздушное кондиционирование",
    ),
    (
        'E',
        36,
        39,
        "Водоснабжение; водоотведение; контроль над сбором, обработкой и удалением отходов",
    ),
    ('F', 41, 43, "Строительство"),
    (
        'G',
        45,
        47,
        "Оптовая и розничная торговля; ремонт автомобилей и мотоциклов",
    ),
    ('H', 49, 53, "Транспорт и складирование"),
    ('I', 55, 56, "Услуги по проживанию и питанию"),
    ('J', 58, 63, "Информация и связь"),
    ('K', 64, 66, "Финансовая и страховая деятельность"),
    ('L', 68, 68, "Операции с недвижимым имуществом"),
    (
        'M',
        69,
        75,
        "Профессиональная, научная и техническая деятельность",
    ),
    (
        'N',
        77,
        82,
        "Деятельность в области административного и вспомогательного обслуживания",
    ),
    (
        'O',
        84,
        84,
        "Государственное управление и оборона; обязательное социальное обеспечение",
    ),
    ('P', 85, 85, "Образование"),
    ('Q', 86, 88, "Здравоохранение и социальные услуги"),
    ('R', 90, 93, "Искусство, развлечения и отдых"),
    ('S', 94, 96, "Предоставление прочих видов услуг"),
    (
        'T',
        97,
        98,
        "Деятельность домашних хозяйств как работодателей",
    ),
    (
        'U',
        99,
        99,
        "Деятельность экстерриториальных организаций и органов",
    ),
];

fn digits(raw: &str, n: usize) -> Result<(), DimError> {
    if raw.len() != n || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DimError::Length { expected: n });
    }
    Ok(())
}

/// A KATO code: nine ASCII digits `AABBCCDDD`, `AA` one of [`KATO_REGIONS`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kato(String);

impl Kato {
    /// Parses a code as the registry writes it.
    pub fn parse(raw: &str) -> Result<Self, DimError> {
        digits(raw, 9)?;
        if !KATO_REGIONS
            .iter()
            .any(|(code, _, _)| raw.starts_with(code))
        {
            return Err(DimError::UnknownRegion);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The nine digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first-level unit (oblast or city of republican significance): the first two digits.
    pub fn oblast(&self) -> &str {
        &self.0[..2]
    }
}

/// An OKED code in the classifier's subclass form without separators: five ASCII digits `DDGCS` (division,
/// group, class, subclass; `62010` is written `62.01.0` in the classifier's printed tables).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Oked(String);

impl Oked {
    /// Parses a code as the registry writes it (five digits).
    pub fn parse(raw: &str) -> Result<Self, DimError> {
        digits(raw, 5)?;
        let division: u8 = raw[..2].parse().map_err(|_| DimError::UnknownDivision)?;
        if section_of_division(division).is_none() {
            return Err(DimError::UnknownDivision);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The five digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The section letter A–U.
    pub fn section(&self) -> char {
        let division: u8 = self.0[..2].parse().unwrap_or(0);
        section_of_division(division).unwrap_or('?')
    }
}

/// The section of a division; `None` for the numbers the classifier leaves unused (00, 04, 34, 40, 44, 48,
/// 54, 57, 67, 76, 83, 89), which fall between the sections' ranges.
fn section_of_division(division: u8) -> Option<char> {
    OKED_SECTIONS
        .iter()
        .find(|(_, first, last, _)| (*first..=*last).contains(&division))
        .map(|(letter, _, _, _)| *letter)
}

/// The section letter of a stored OKED code, `None` when it is not one.
pub fn oked_section(code: &str) -> Option<char> {
    Oked::parse(code).ok().map(|o| o.section())
}

macro_rules! dim_common {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
        impl std::str::FromStr for $name {
            type Err = DimError;
            fn from_str(s: &str) -> Result<Self, DimError> {
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
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}
dim_common!(Kato);
dim_common!(Oked);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kato_takes_nine_digits_of_a_known_region() {
        assert_eq!(Kato::parse("750000000").unwrap().oblast(), "75");
        assert_eq!(Kato::parse("631010000").unwrap().oblast(), "63");
        assert_eq!(
            Kato::parse("75000000"),
            Err(DimError::Length { expected: 9 })
        );
        assert_eq!(
            Kato::parse("7500000000"),
            Err(DimError::Length { expected: 9 })
        );
        assert_eq!(
            Kato::parse("75000000a"),
            Err(DimError::Length { expected: 9 })
        );
        assert_eq!(
            Kato::parse("７50000000"),
            Err(DimError::Length { expected: 9 })
        );
        assert_eq!(Kato::parse("510000000"), Err(DimError::UnknownRegion));
        assert_eq!(Kato::parse("000000000"), Err(DimError::UnknownRegion));
    }

    #[test]
    fn oked_takes_five_digits_of_a_division_and_names_its_section() {
        assert_eq!(Oked::parse("62010").unwrap().section(), 'J');
        assert_eq!(Oked::parse("01110").unwrap().section(), 'A');
        assert_eq!(Oked::parse("47111").unwrap().section(), 'G');
        assert_eq!(Oked::parse("99000").unwrap().section(), 'U');
        assert_eq!(
            Oked::parse("62.01.0"),
            Err(DimError::Length { expected: 5 })
        );
        assert_eq!(Oked::parse("6201"), Err(DimError::Length { expected: 5 }));
        for gap in [
            "00000", "04000", "34000", "40000", "44000", "48000", "54000", "57000",
        ] {
            assert_eq!(Oked::parse(gap), Err(DimError::UnknownDivision), "{gap}");
        }
    }

    #[test]
    fn every_region_and_section_is_distinct() {
        let mut codes: Vec<_> = KATO_REGIONS.iter().map(|r| r.0).collect();
        codes.dedup();
        assert_eq!(codes.len(), 20);
        for w in OKED_SECTIONS.windows(2) {
            assert!(w[0].2 < w[1].1);
        }
    }
}
