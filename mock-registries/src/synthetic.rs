//! A synthetic world of N renamed organisations, generated lazily and deterministically from
//! `(seed, index)`: nothing is stored per organisation, so a million of them cost no memory and no start-up
//! time. Every record is a pure function of the seed and an index, and every identifier encodes its index
//! through a seeded bijection, so a lookup by BIN, IIN or permit id finds the index again (and checks that
//! the identifier is exactly the one that index generates).
//!
//! The mix (fractions of organisations, or of heads for the person attributes):
//! - one rename each; rename `i` is dated `epoch - 24h + i * 24h / N` (millisecond steps, strictly
//!   increasing), so the feed order is the index order and every rename is visible from the epoch on;
//! - permits: 65 % hold an active `trusted_software_register` permit (75 % one, 18 % two, 7 % three; some
//!   of the extra ones revoked; 3 % of these orgs already bear the new name on every permit; 10 % also hold
//!   another service's permit), 10 % only other services' permits, 5 % only a revoked one, 20 % none;
//! - region and activity: a KATO code and an OKED subclass by rough national shares (`dims.rs`); 0.5 %
//!   without a region, 0.5 % without an activity;
//! - 1 % liquidated, 1 % without a first head, 0.3 % with a head IIN whose control digit is wrong;
//! - heads shared: in blocks of three consecutive organisations, 4.5 % of blocks share one head among all
//!   three and 7.5 % among the first two (about 9.5 % of organisations share their head with another);
//! - heads: 8 % ineligible, evenly over deceased, declared dead, declared missing, residence abroad,
//!   incapacitated, imprisoned; 40 % of the others have a civil record with every flag false, the rest
//!   none (404);
//! - numbers: 5 % none registered (404), 1 % malformed or not a Kazakhstan mobile, the rest valid Kazakh
//!   mobiles spelled in the usual ways (`+77…`, `87…`, `8 (7XX) XXX-XX-XX`, `+7 7XX XXX XX XX`,
//!   `8-7XX-XXX-XX-XX`), unique per person.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

use crate::scenario::{
    CivilRecord, MobileRecord, OrgStatus, PermitRecord, PermitStatus, PersonRecord,
};
use crate::views::RenameView;

/// The largest N a synthetic world supports (the BIN space used: 312 months × 100 000 serials).
pub const MAX_SYNTHETIC_ORGS: u64 = BIN_SPACE;

/// The instant every synthetic rename precedes: 2026-11-02T00:00:00+05:00. Renames are spread over the 24
/// hours before it, so a clock at or after it sees them all.
pub fn synthetic_epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 19, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The e-license service code of the trusted-software register.
pub const TRUSTED_SOFTWARE_SERVICE: &str = "trusted_software_register";

const BIN_SPACE: u64 = 312 * 100_000;
const IIN_DAYS: u64 = 19_723; // 1950-01-01 ..= 2003-12-31
const IIN_SPACE: u64 = IIN_DAYS * 10_000;
const PHONE_PREFIXES: [&str; 12] = [
    "700", "701", "702", "705", "707", "708", "747", "771", "775", "776", "777", "778",
];
const PHONE_SPACE: u64 = 12 * 10_000_000;

/// Other services whose permits some organisations hold: (id code, service code).
const OTHER_SERVICES: [(&str, &str); 3] = [
    ("COM", "communications_license"),
    ("CRY", "cryptographic_protection_license"),
    ("SEC", "information_security_license"),
];

// Salts: one per independent decision, so changing one fraction does not reshuffle the others.
const S_BIN: u64 = 1;
const S_IIN: u64 = 2;
const S_PHONE_PERM: u64 = 3;
const S_KIND: u64 = 11;
const S_NAMES: u64 = 12;
const S_PERMITS: u64 = 13;
const S_STATUS: u64 = 14;
const S_HEAD: u64 = 15;
const S_BLOCK: u64 = 16;
const S_PERSON: u64 = 20;
const S_ELIG: u64 = 21;
const S_CIVIL: u64 = 22;
const S_PHONE: u64 = 23;
const S_SEX: u64 = 24;
const S_REGION: u64 = 25;
const S_DISTRICT: u64 = 26;
const S_ACTIVITY: u64 = 27;

/// splitmix64's finaliser: a fast, well-mixed 64-bit hash.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn hash(seed: u64, salt: u64, i: u64) -> u64 {
    mix(mix(seed ^ mix(salt)).wrapping_add(i))
}

/// A uniform number in [0, 1) from a hash.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// A seeded bijection of `0..m`: `x -> (a x + b) mod m` with `gcd(a, m) = 1`.
#[derive(Debug, Clone, Copy)]
struct Affine {
    m: u64,
    a: u64,
    b: u64,
    a_inv: u64,
}

impl Affine {
    fn new(m: u64, h: u64) -> Self {
        let mut a = (h % m) | 1;
        while gcd(a, m) != 1 {
            a = (a + 2) % m;
        }
        let b = mix(h) % m;
        Self {
            m,
            a,
            b,
            a_inv: mod_inverse(a, m),
        }
    }

    fn forward(&self, x: u64) -> u64 {
        ((u128::from(self.a) * u128::from(x) + u128::from(self.b)) % u128::from(self.m)) as u64
    }

    fn inverse(&self, y: u64) -> u64 {
        let shifted = (y % self.m + self.m - self.b) % self.m;
        ((u128::from(self.a_inv) * u128::from(shifted)) % u128::from(self.m)) as u64
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn mod_inverse(a: u64, m: u64) -> u64 {
    let (mut old_r, mut r) = (i128::from(a), i128::from(m));
    let (mut old_s, mut s) = (1i128, 0i128);
    while r != 0 {
        let q = old_r / r;
        (old_r, r) = (r, old_r - q * r);
        (old_s, s) = (s, old_s - q * s);
    }
    old_s.rem_euclid(i128::from(m)) as u64
}

/// The IIN/BIN control digit of docs/RULES.md §9.1 for the first 11 digits, or `None` if that prefix is unusable.
pub fn control_digit(digits: &[u8; 11]) -> Option<u8> {
    let first: u32 = digits
        .iter()
        .zip(1u32..)
        .map(|(d, w)| u32::from(*d) * w)
        .sum::<u32>()
        % 11;
    if first != 10 {
        return Some(first as u8);
    }
    const SECOND: [u32; 11] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2];
    let second: u32 = digits
        .iter()
        .zip(SECOND)
        .map(|(d, w)| u32::from(*d) * w)
        .sum::<u32>()
        % 11;
    (second != 10).then_some(second as u8)
}

fn push_digits(out: &mut Vec<u8>, value: u64, width: usize) {
    let s = format!("{value:0width$}");
    out.extend(s.bytes().map(|b| b - b'0'));
}

fn to_string(digits: &[u8]) -> String {
    digits.iter().map(|d| char::from(b'0' + d)).collect()
}

/// Parses exactly 12 ASCII digits.
fn parse_12(s: &str) -> Option<[u8; 12]> {
    let bytes = s.as_bytes();
    if bytes.len() != 12 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut out = [0u8; 12];
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = b - b'0';
    }
    Some(out)
}

fn number(digits: &[u8]) -> u64 {
    digits.iter().fold(0, |acc, d| acc * 10 + u64::from(*d))
}

/// Who heads an organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Head {
    /// The registry names none.
    None,
    /// A valid person, by person id.
    Person(u64),
    /// An IIN with a wrong control digit (derived from this person id).
    Malformed(u64),
}

/// Lazily generated organisations, heads, permits and numbers.
#[derive(Debug, Clone)]
pub(crate) struct SyntheticWorld {
    n: u64,
    seed: u64,
    epoch: DateTime<Utc>,
    bins: Affine,
    iins: Affine,
    phones: Affine,
}

/// One organisation as generated.
#[derive(Debug, Clone)]
pub(crate) struct SynOrg {
    pub bin: String,
    pub old_name: String,
    pub new_name: String,
    pub status: OrgStatus,
    pub first_head: Option<String>,
    pub region: Option<String>,
    pub activity: Option<String>,
}

impl SyntheticWorld {
    /// A world of `n` organisations (`n <= MAX_SYNTHETIC_ORGS`), renamed in the 24 h before `epoch`.
    pub fn new(n: u64, seed: u64, epoch: DateTime<Utc>) -> Result<Self, String> {
        if n > MAX_SYNTHETIC_ORGS {
            return Err(format!(
                "a synthetic world holds at most {MAX_SYNTHETIC_ORGS} organisations, not {n}"
            ));
        }
        Ok(Self {
            n,
            seed,
            epoch,
            bins: Affine::new(BIN_SPACE, hash(seed, S_BIN, 0)),
            iins: Affine::new(IIN_SPACE, hash(seed, S_IIN, 0)),
            phones: Affine::new(PHONE_SPACE, hash(seed, S_PHONE_PERM, 0)),
        })
    }

    /// Number of organisations (and of renames in the feed).
    pub fn len(&self) -> u64 {
        self.n
    }

    fn h(&self, salt: u64, i: u64) -> u64 {
        hash(self.seed, salt, i)
    }

    fn u(&self, salt: u64, i: u64) -> f64 {
        unit(self.h(salt, i))
    }

    // ---- organisations ---------------------------------------------------------------------------

    /// The BIN of organisation `i`.
    pub fn bin(&self, i: u64) -> String {
        let p = self.bins.forward(i);
        let (month, serial) = (p / 100_000, p % 100_000);
        let (yy, mm) = (month / 12, month % 12 + 1);
        let u = self.u(S_KIND, i);
        let (kind, mut unit_digit) = match u {
            u if u < 0.85 => (4u64, 0u64),
            u if u < 0.92 => (4, 1),
            u if u < 0.95 => (4, 2),
            u if u < 0.98 => (5, 0),
            _ => (6, 0),
        };
        // Changing the unit digit moves the first weighted sum, so at most one of two neighbours is
        // unusable: the second try always succeeds.
        for _ in 0..4 {
            let mut d = Vec::with_capacity(12);
            push_digits(&mut d, yy, 2);
            push_digits(&mut d, mm, 2);
            push_digits(&mut d, kind, 1);
            push_digits(&mut d, unit_digit, 1);
            push_digits(&mut d, serial, 5);
            let mut first = [0u8; 11];
            first.copy_from_slice(&d[..11]);
            if let Some(c) = control_digit(&first) {
                d.push(c);
                return to_string(&d);
            }
            unit_digit = (unit_digit + 1) % 4;
        }
        String::new()
    }

    /// The organisation index a BIN belongs to, if it is exactly one this world generates.
    pub fn index_of_bin(&self, bin: &str) -> Option<u64> {
        let d = parse_12(bin)?;
        let (yy, mm, serial) = (number(&d[0..2]), number(&d[2..4]), number(&d[6..11]));
        if yy > 25 || !(1..=12).contains(&mm) {
            return None;
        }
        let p = (yy * 12 + mm - 1) * 100_000 + serial;
        let i = self.bins.inverse(p);
        (i < self.n && self.bin(i) == bin).then_some(i)
    }

    /// When organisation `i` was renamed: strictly increasing in `i`.
    pub fn rename_at(&self, i: u64) -> DateTime<Utc> {
        let day_ms: u64 = 86_400_000;
        let offset = (u128::from(i) * u128::from(day_ms) / u128::from(self.n.max(1))) as i64;
        self.epoch - Duration::milliseconds(day_ms as i64) + Duration::milliseconds(offset)
    }

    fn head(&self, i: u64) -> Head {
        let h = self.u(S_HEAD, i);
        if h < 0.01 {
            return Head::None;
        }
        let block = i / 3;
        let b = self.u(S_BLOCK, block);
        let owner = if b < 0.045 || (b < 0.12 && i % 3 < 2) {
            block * 3
        } else {
            i
        };
        if h < 0.013 {
            Head::Malformed(owner)
        } else {
            Head::Person(owner)
        }
    }

    /// Organisation `i`.
    pub fn org(&self, i: u64) -> SynOrg {
        let (old_name, new_name) = self.names(i);
        let status = if self.u(S_STATUS, i) < 0.01 {
            OrgStatus::Liquidated
        } else {
            OrgStatus::Active
        };
        let first_head = match self.head(i) {
            Head::None => None,
            Head::Person(pid) => Some(self.iin(pid)),
            Head::Malformed(pid) => {
                let mut iin = self.iin(pid).into_bytes();
                if let Some(last) = iin.last_mut() {
                    *last = b'0' + (*last - b'0' + 1) % 10;
                }
                Some(String::from_utf8_lossy(&iin).into_owned())
            }
        };
        let (r, a) = (self.u(S_REGION, i), self.u(S_ACTIVITY, i));
        SynOrg {
            bin: self.bin(i),
            old_name,
            new_name,
            status,
            first_head,
            // A region or an activity is missing from 0.5 % of records each: the tail of the uniform.
            region: (r < 0.995).then(|| crate::dims::region(r / 0.995, self.u(S_DISTRICT, i))),
            activity: (a < 0.995).then(|| crate::dims::activity(a / 0.995)),
        }
    }

    /// The feed entry of rename `i` (the rename of organisation `i`).
    pub fn rename(&self, i: u64) -> RenameView {
        let (from, to) = self.names(i);
        RenameView {
            bin: serde_json::Value::String(self.bin(i)),
            at: self.rename_at(i),
            from,
            to,
        }
    }

    /// (name before, name after) of organisation `i`.
    fn names(&self, i: u64) -> (String, String) {
        let h = self.h(S_NAMES, i);
        let kazakh = h & 1 == 0;
        let joint_stock = (h >> 1).is_multiple_of(5);
        let form = match (kazakh, joint_stock) {
            (true, false) => "ЖШС",
            (true, true) => "АҚ",
            (false, false) => "ТОО",
            (false, true) => "АО",
        };
        let (adjs, nouns): (&[&str], &[&str]) = if kazakh {
            (KK_ADJ, KK_NOUN)
        } else {
            (RU_ADJ, RU_NOUN)
        };
        let pick = |x: u64| {
            let adj = adjs[(x % adjs.len() as u64) as usize];
            let noun = nouns[((x / 97) % nouns.len() as u64) as usize];
            format!("{form} «{adj} {noun}»")
        };
        let old = pick(mix(h ^ 0xA5A5));
        let mut new = pick(mix(h ^ 0x5A5A));
        if new == old {
            new = pick(mix(h ^ 0x5A5A) + 1);
        }
        (old, new)
    }

    /// The current record of organisation `i`, in the shape of the fixture.
    pub fn organization(&self, i: u64) -> crate::views::OrganizationView {
        let org = self.org(i);
        crate::views::OrganizationView {
            bin: serde_json::Value::String(org.bin),
            name: org.new_name,
            status: org.status,
            first_head: org.first_head.map(serde_json::Value::String),
            region: org.region.map(serde_json::Value::String),
            activity: org.activity.map(serde_json::Value::String),
        }
    }

    // ---- permits ---------------------------------------------------------------------------------

    /// Every permit of organisation `i`.
    pub fn permits(&self, i: u64) -> Vec<PermitRecord> {
        let org = self.org(i);
        let h = self.h(S_PERMITS, i);
        let u = unit(h);
        let u2 = unit(mix(h));
        let u3 = unit(mix(h ^ 1));
        let permit = |code: &str, service: &str, k: u32, holder: &str, status| PermitRecord {
            permit_id: format!("KZ-{code}-{i:08}-{k}"),
            bin: serde_json::Value::String(org.bin.clone()),
            service: service.to_string(),
            holder_name: holder.to_string(),
            status,
        };
        let other = OTHER_SERVICES[(mix(h ^ 2) % OTHER_SERVICES.len() as u64) as usize];
        let mut out = Vec::new();
        if u < 0.65 {
            let count = if u2 < 0.75 {
                1
            } else if u2 < 0.93 {
                2
            } else {
                3
            };
            let holder = if u3 < 0.03 {
                &org.new_name
            } else {
                &org.old_name
            };
            for k in 1..=count {
                // Among several permits, the last one is revoked for a fifth of organisations.
                let status = if k > 1 && k == count && unit(mix(h ^ 3)) < 0.2 {
                    PermitStatus::Revoked
                } else {
                    PermitStatus::Active
                };
                out.push(permit("TSR", TRUSTED_SOFTWARE_SERVICE, k, holder, status));
            }
            if unit(mix(h ^ 4)) < 0.10 {
                out.push(permit(
                    other.0,
                    other.1,
                    1,
                    &org.old_name,
                    PermitStatus::Active,
                ));
            }
        } else if u < 0.75 {
            out.push(permit(
                other.0,
                other.1,
                1,
                &org.old_name,
                PermitStatus::Active,
            ));
            if u2 < 0.3 {
                out.push(permit(
                    other.0,
                    other.1,
                    2,
                    &org.old_name,
                    PermitStatus::Active,
                ));
            }
        } else if u < 0.80 {
            out.push(permit(
                "TSR",
                TRUSTED_SOFTWARE_SERVICE,
                1,
                &org.old_name,
                PermitStatus::Revoked,
            ));
        }
        out
    }

    /// Every permit of the organisation with this BIN (empty when the BIN is not in this world).
    pub fn permits_of_bin(&self, bin: &str) -> Vec<PermitRecord> {
        self.index_of_bin(bin)
            .map(|i| self.permits(i))
            .unwrap_or_default()
    }

    /// One permit by id, if this world generates it.
    pub fn permit(&self, permit_id: &str) -> Option<PermitRecord> {
        let mut parts = permit_id.split('-');
        let (kz, _code, index, _k) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if kz != "KZ" || parts.next().is_some() || index.len() != 8 {
            return None;
        }
        let i: u64 = index.parse().ok()?;
        if i >= self.n {
            return None;
        }
        self.permits(i)
            .into_iter()
            .find(|p| p.permit_id == permit_id)
    }

    // ---- people ----------------------------------------------------------------------------------

    /// The IIN of person `pid` (valid control digit).
    fn iin(&self, pid: u64) -> String {
        let p = self.iins.forward(pid);
        let (day, serial) = (p / 10_000, p % 10_000);
        let first = NaiveDate::from_ymd_opt(1950, 1, 1).unwrap_or_default();
        let date = first + Duration::days(day as i64);
        let female = self.h(S_SEX, pid) & 1 == 1;
        let century_base: u64 = if date.year() < 2000 { 3 } else { 5 };
        // Flipping the sex digit moves the first weighted sum, so one of the two is always usable.
        for flip in [false, true] {
            let digit = century_base + u64::from(female ^ flip);
            let mut d = Vec::with_capacity(12);
            push_digits(&mut d, (date.year() % 100) as u64, 2);
            push_digits(&mut d, u64::from(date.month()), 2);
            push_digits(&mut d, u64::from(date.day()), 2);
            push_digits(&mut d, digit, 1);
            push_digits(&mut d, serial, 4);
            let mut first11 = [0u8; 11];
            first11.copy_from_slice(&d[..11]);
            if let Some(c) = control_digit(&first11) {
                d.push(c);
                return to_string(&d);
            }
        }
        String::new()
    }

    /// The person id an IIN belongs to, if it is exactly the IIN of a head in this world.
    fn pid_of_iin(&self, iin: &str) -> Option<u64> {
        let d = parse_12(iin)?;
        let century = match d[6] {
            3 | 4 => 1900,
            5 | 6 => 2000,
            _ => return None,
        };
        let year = century + number(&d[0..2]) as i32;
        let date = NaiveDate::from_ymd_opt(year, number(&d[2..4]) as u32, number(&d[4..6]) as u32)?;
        let first = NaiveDate::from_ymd_opt(1950, 1, 1)?;
        let day = (date - first).num_days();
        if day < 0 || day as u64 >= IIN_DAYS {
            return None;
        }
        let p = day as u64 * 10_000 + number(&d[7..11]);
        let pid = self.iins.inverse(p);
        if pid >= self.n || self.iin(pid) != iin {
            return None;
        }
        // The person exists only if some organisation of its block names it as a valid head.
        let block = pid / 3;
        let named =
            (block * 3..(block * 3 + 3).min(self.n)).any(|j| self.head(j) == Head::Person(pid));
        named.then_some(pid)
    }

    /// Index 0..6 of the ineligibility criterion of a person, if any.
    fn ineligibility(&self, pid: u64) -> Option<usize> {
        let u = self.u(S_ELIG, pid);
        (u < 0.08).then(|| ((u / 0.08 * 6.0) as usize).min(5))
    }

    fn person_name(&self, pid: u64, female: bool) -> String {
        let h = self.h(S_PERSON, pid);
        let given: &[&str] = if female { GIVEN_F } else { GIVEN_M };
        let g = given[(h % given.len() as u64) as usize];
        let s = SURNAMES[((h / 131) % SURNAMES.len() as u64) as usize];
        if female {
            format!("{g} {s}а")
        } else {
            format!("{g} {s}")
        }
    }

    /// The individuals-registry record of a head.
    pub fn person(&self, iin: &str) -> Option<PersonRecord> {
        let pid = self.pid_of_iin(iin)?;
        let female = iin
            .as_bytes()
            .get(6)
            .is_some_and(|d| (d - b'0').is_multiple_of(2));
        let crit = self.ineligibility(pid);
        Some(PersonRecord {
            iin: serde_json::Value::String(iin.to_string()),
            name: self.person_name(pid, female),
            residence_abroad: crit == Some(3),
            incapacitated: crit == Some(4),
            imprisoned: crit == Some(5),
        })
    }

    /// The civil-registry record of a head, if there is one.
    pub fn civil(&self, iin: &str) -> Option<CivilRecord> {
        let pid = self.pid_of_iin(iin)?;
        let crit = self.ineligibility(pid);
        let has_record = matches!(crit, Some(0..=2)) || self.u(S_CIVIL, pid) < 0.4;
        has_record.then(|| CivilRecord {
            iin: serde_json::Value::String(iin.to_string()),
            deceased: crit == Some(0),
            declared_dead: crit == Some(1),
            declared_missing: crit == Some(2),
        })
    }

    /// The mobile number registered for a head, if any.
    pub fn mobile(&self, iin: &str) -> Option<MobileRecord> {
        let pid = self.pid_of_iin(iin)?;
        let h = self.h(S_PHONE, pid);
        let u = unit(h);
        if u < 0.05 {
            return None;
        }
        let q = self.phones.forward(pid);
        let prefix = PHONE_PREFIXES[(q / 10_000_000) as usize];
        let sub = format!("{:07}", q % 10_000_000);
        let (a, b, c) = (&sub[0..3], &sub[3..5], &sub[5..7]);
        let style = mix(h) % 100;
        let phone = if u < 0.06 {
            match style % 5 {
                0 => format!("+79{:02}{sub}", style),   // a Russian mobile
                1 => format!("8{prefix}{}", &sub[..6]), // a digit short
                2 => format!("+7{prefix}{sub}0"),       // a digit too many
                3 => format!("+7 (727) {a}-{b}-{c}"),   // an Almaty landline
                _ => "н/д".to_string(),
            }
        } else {
            match style {
                0..40 => format!("+7{prefix}{sub}"),
                40..65 => format!("8{prefix}{sub}"),
                65..80 => format!("8 ({prefix}) {a}-{b}-{c}"),
                80..90 => format!("+7 {prefix} {a} {b} {c}"),
                _ => format!("8-{prefix}-{a}-{b}-{c}"),
            }
        };
        Some(MobileRecord {
            iin: serde_json::Value::String(iin.to_string()),
            phone: serde_json::Value::String(phone),
        })
    }

    // ---- feed ------------------------------------------------------------------------------------

    /// Number of renames with `at <= now`.
    pub fn visible(&self, now: DateTime<Utc>) -> u64 {
        partition_point(self.n, |i| self.rename_at(i) <= now)
    }

    /// Number of renames whose `(at, bin)` sorts at or before the given key.
    pub fn count_le(&self, at: DateTime<Utc>, bin: &str) -> u64 {
        partition_point(self.n, |i| {
            let ai = self.rename_at(i);
            ai < at || (ai == at && self.bin(i).as_str() <= bin)
        })
    }
}

/// The first index in `0..n` where `pred` turns false (`pred` must be true on a prefix).
pub(crate) fn partition_point(n: u64, pred: impl Fn(u64) -> bool) -> u64 {
    let (mut lo, mut hi) = (0u64, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

const KK_ADJ: &[&str] = &[
    "Жаңа",
    "Ескі",
    "Алтын",
    "Көк",
    "Ақ",
    "Ұлы",
    "Жарық",
    "Нұрлы",
    "Дала",
    "Таза",
    "Шұғыла",
    "Сенімді",
    "Қазына",
    "Бірлік",
    "Болашақ",
    "Самұрық",
    "Жұлдыз",
    "Күміс",
    "Сәулет",
    "Тұлпар",
];
const KK_NOUN: &[&str] = &[
    "Технологиялар",
    "Шешімдер",
    "Жүйелер",
    "Бағдарлама",
    "Сервис",
    "Құрылыс",
    "Инвест",
    "Дәуір",
    "Өлке",
    "Жол",
    "Орда",
    "Сандық Әлем",
    "Деректер",
    "Желі",
    "Қорған",
    "Бастау",
    "Өркен",
    "Тау",
    "Арна",
    "Көпір",
];
const RU_ADJ: &[&str] = &[
    "Северный",
    "Южный",
    "Восточный",
    "Новый",
    "Первый",
    "Цифровой",
    "Единый",
    "Степной",
    "Каспийский",
    "Алматинский",
    "Надёжный",
    "Быстрый",
    "Умный",
    "Открытый",
    "Точный",
    "Главный",
    "Свободный",
    "Современный",
    "Национальный",
    "Сибирский",
];
const RU_NOUN: &[&str] = &[
    "Альянс",
    "Софт",
    "Сервис",
    "Проект",
    "Стандарт",
    "Капитал",
    "Монолит",
    "Контур",
    "Горизонт",
    "Вектор",
    "Интеграл",
    "Код",
    "Ресурс",
    "Партнёр",
    "Центр",
    "Технопарк",
    "Импульс",
    "Модуль",
    "Континент",
    "Датацентр",
];
const GIVEN_M: &[&str] = &[
    "Серік",
    "Ерлан",
    "Нұрлан",
    "Асхат",
    "Данияр",
    "Бауыржан",
    "Ержан",
    "Қайрат",
    "Алексей",
    "Дмитрий",
    "Сергей",
    "Арман",
    "Тимур",
    "Руслан",
    "Марат",
    "Ильяс",
];
const GIVEN_F: &[&str] = &[
    "Айжан",
    "Гүлнар",
    "Динара",
    "Әсел",
    "Жанар",
    "Мәдина",
    "Сәуле",
    "Айгерім",
    "Елена",
    "Ольга",
    "Наталья",
    "Аружан",
    "Камила",
    "Салтанат",
    "Индира",
    "Лаура",
];
const SURNAMES: &[&str] = &[
    "Ахметов",
    "Серіков",
    "Жұмабаев",
    "Омаров",
    "Сейтқалиев",
    "Нұрғалиев",
    "Қасымов",
    "Беков",
    "Исмаилов",
    "Иванов",
    "Петров",
    "Смағұлов",
    "Тоқаев",
    "Мұратов",
    "Әбенов",
    "Кузнецов",
    "Ержанов",
    "Алиев",
    "Садықов",
    "Байжанов",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> SyntheticWorld {
        SyntheticWorld::new(10_000, 7, synthetic_epoch()).expect("world")
    }

    #[test]
    fn control_digit_matches_a_known_valid_iin() {
        // 790415307770 and 190540043216 are valid identifiers from the examples.
        for id in [
            "790415307770",
            "190540043216",
            "860101403216",
            "210840000983",
        ] {
            let d = parse_12(id).expect("digits");
            let mut first = [0u8; 11];
            first.copy_from_slice(&d[..11]);
            assert_eq!(control_digit(&first), Some(d[11]), "{id}");
        }
    }

    #[test]
    fn every_bin_maps_back_to_its_index() {
        let w = world();
        for i in (0..10_000).step_by(7) {
            let bin = w.bin(i);
            assert_eq!(bin.len(), 12);
            assert_eq!(w.index_of_bin(&bin), Some(i), "{bin}");
        }
    }

    #[test]
    fn every_generated_identifier_has_a_valid_control_digit() {
        let w = world();
        for i in 0..2_000 {
            for id in [w.bin(i), w.iin(i)] {
                let d = parse_12(&id).expect("12 digits");
                let mut first = [0u8; 11];
                first.copy_from_slice(&d[..11]);
                assert_eq!(control_digit(&first), Some(d[11]), "{id}");
            }
        }
    }

    #[test]
    fn rename_times_increase_strictly_within_the_day_before_the_epoch() {
        let w = world();
        let mut last = w.rename_at(0);
        assert_eq!(last, synthetic_epoch() - Duration::hours(24));
        for i in 1..10_000 {
            let at = w.rename_at(i);
            assert!(at > last);
            assert!(at < synthetic_epoch());
            last = at;
        }
    }

    #[test]
    fn affine_maps_are_bijections() {
        let a = Affine::new(1_000, 12345);
        let mut seen = vec![false; 1_000];
        for x in 0..1_000 {
            let y = a.forward(x);
            assert!(!seen[y as usize]);
            seen[y as usize] = true;
            assert_eq!(a.inverse(y), x);
        }
    }
}
