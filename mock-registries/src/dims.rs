//! The synthetic spread of the organisation record's statistical dimensions (docs/DATA-PRODUCT.md): the
//! region of the registered address (a KATO code over the 17 oblasts and 3 cities of republican
//! significance) and the main activity (an OKED subclass over sections A–U). The weights are rough shares of
//! Kazakhstan's registered legal entities: the three cities hold about half, trade leads the activities.
//! Both are pure functions of a uniform number, so a world stays a pure function of its seed.

/// (KATO first-level code, weight in ‰).
const REGIONS: [(&str, u32); 20] = [
    ("75", 230), // Almaty city
    ("71", 160), // Astana
    ("79", 60),  // Shymkent
    ("35", 55),  // Karaganda
    ("63", 40),  // East Kazakhstan
    ("19", 40),  // Almaty region
    ("23", 35),  // Atyrau
    ("47", 35),  // Mangystau
    ("15", 35),  // Aktobe
    ("55", 35),  // Pavlodar
    ("61", 35),  // Turkistan
    ("39", 30),  // Kostanay
    ("27", 30),  // West Kazakhstan
    ("31", 30),  // Zhambyl
    ("11", 30),  // Akmola
    ("43", 25),  // Kyzylorda
    ("59", 20),  // North Kazakhstan
    ("10", 20),  // Abai
    ("33", 20),  // Zhetysu
    ("62", 5),   // Ulytau
];

/// (an OKED subclass of the section, weight in ‰), sections A–U in order.
const ACTIVITIES: [(&str, u32); 21] = [
    ("01110", 40),  // A: growing of cereals
    ("06100", 10),  // B: crude petroleum
    ("25110", 70),  // C: metal structures
    ("35111", 10),  // D: electricity
    ("38110", 10),  // E: waste collection
    ("41201", 100), // F: construction of buildings
    ("46900", 280), // G: non-specialised wholesale trade
    ("49410", 50),  // H: freight by road
    ("56101", 30),  // I: restaurants
    ("62010", 120), // J: computer programming
    ("64190", 15),  // K: other monetary intermediation
    ("68201", 45),  // L: renting of own real estate
    ("70220", 90),  // M: management consultancy
    ("82990", 55),  // N: other business support
    ("84110", 10),  // O: general public administration
    ("85590", 25),  // P: other education
    ("86101", 15),  // Q: hospitals
    ("93290", 10),  // R: other amusement
    ("96090", 13),  // S: other personal services
    ("97000", 1),   // T: households as employers
    ("99000", 1),   // U: extraterritorial organisations
];

fn pick<T: Copy>(table: &[(T, u32)], u: f64) -> T {
    let total: u32 = table.iter().map(|(_, w)| w).sum();
    let mut target = (u * f64::from(total)) as u32;
    for (value, w) in table {
        if target < *w {
            return *value;
        }
        target -= w;
    }
    table[table.len() - 1].0
}

/// A KATO code from two uniform numbers: the region by weight, then one of ten districts (`AA` `DD`
/// `0000` `0`, the district's centre; district `00` is the region itself).
pub(crate) fn region(u: f64, v: f64) -> String {
    let oblast = pick(&REGIONS, u);
    let district = (v * 10.0) as u32 * 2;
    format!("{oblast}{district:02}00000")
}

/// An OKED subclass from a uniform number.
pub(crate) fn activity(u: f64) -> String {
    pick(&ACTIVITIES, u).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generated_code_is_valid_and_every_region_and_section_occurs() {
        let mut regions = std::collections::BTreeSet::new();
        let mut sections = std::collections::BTreeSet::new();
        for k in 0..20_000u32 {
            let u = (f64::from(k) + 0.5) / 20_000.0;
            let v = f64::from(k % 97) / 97.0;
            let kato = region(u, v);
            assert!(
                kato.len() == 9 && kato.bytes().all(|b| b.is_ascii_digit()),
                "{kato}"
            );
            regions.insert(kato[..2].to_string());
            let oked = activity(u);
            assert!(
                oked.len() == 5 && oked.bytes().all(|b| b.is_ascii_digit()),
                "{oked}"
            );
            sections.insert(oked[..2].to_string());
        }
        assert_eq!(regions.len(), 20);
        assert_eq!(sections.len(), 21);
    }
}
