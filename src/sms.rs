//! The offer SMS: the official Kazakh text of the order's appendix 1, a faithful Russian one, and how many
//! SMS parts each takes on the air.

/// The official text (appendix 1 of order No. 204/НҚ), word for word.
pub const OFFER_KK: &str = "Құрметті көрсетілетін қызметті алушы! Сіз көрсетілетін қызметті алушының атауының өзгеруіне байланысты Қазақстан Республикасы Цифрлық даму, инновациялар және аэроғарыш өнеркәсібі министрлігінің \"Сенімді бағдарламалық қамтамасыз ету тізіліміне (тізілімінен) бағдарламалық қамтамасыз етуді және электронды өнеркәсіп өнімін енгізу (алып тастау)\" мемлекеттік көрсетілетін қызмет бойынша рұқсат беру құжаттарын қайта ресімдеу процесін көрсету жөніндегі әлеуетті көрсетілетін қызметті алушы болып табыласыз. Көрсетілетін қызметті алушының атауын өзгертуге келіскен жағдайда 1 санын, келіспеген жағдайда 2 санын жіберіңіз. Барлық сұрақтар бойынша 1414 тегін нөмірі бойынша Бірыңғай байланыс орталығына хабарласа аласыз.";

/// The same offer in Russian.
pub const OFFER_RU: &str = "Уважаемый услугополучатель! В связи с изменением наименования услугополучателя Вы являетесь потенциальным услугополучателем процесса переоформления разрешительных документов по государственной услуге \"Включение (исключение) программного обеспечения и продукции электронной промышленности в (из) реестр(а) доверенного программного обеспечения и продукции электронной промышленности\" Министерства цифрового развития, инноваций и аэрокосмической промышленности Республики Казахстан. В случае согласия на изменение наименования услугополучателя отправьте цифру 1, в случае несогласия - цифру 2. По всем вопросам Вы можете обратиться в Единый контакт-центр по бесплатному номеру 1414.";

/// How a text is encoded on the air and how many parts it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Encoding {
    /// `GSM-7` or `UCS-2`.
    pub name: &'static str,
    /// Characters (GSM-7 septets, or UTF-16 units for UCS-2).
    pub units: usize,
    /// SMS parts: 160/153 for GSM-7, 70/67 for UCS-2.
    pub segments: usize,
}

/// The GSM 03.38 basic set plus its extension table (which costs two septets per character).
fn gsm7_units(c: char) -> Option<usize> {
    const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    const EXTENDED: &str = "^{}\\[~]|€\u{c}";
    if BASIC.contains(c) {
        Some(1)
    } else if EXTENDED.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Encoding and segment count of a text: Kazakh or Cyrillic letters force UCS-2.
pub fn encoding(text: &str) -> Encoding {
    let gsm: Option<usize> = text.chars().map(gsm7_units).sum();
    let (name, units, single, part) = match gsm {
        Some(units) => ("GSM-7", units, 160, 153),
        None => ("UCS-2", text.encode_utf16().count(), 70, 67),
    };
    let segments = if units <= single {
        1
    } else {
        units.div_ceil(part)
    };
    Encoding {
        name,
        units,
        segments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kazakh_offer_is_ucs2_in_several_parts() {
        let e = encoding(OFFER_KK);
        assert_eq!(e.name, "UCS-2");
        assert_eq!(e.segments, e.units.div_ceil(67));
        assert!(e.segments > 1);
        assert!(OFFER_KK.contains("1414"));
    }

    #[test]
    fn short_latin_text_is_one_gsm7_part() {
        assert_eq!(
            encoding("Reply 1 or 2"),
            Encoding {
                name: "GSM-7",
                units: 12,
                segments: 1
            }
        );
        assert_eq!(encoding(&"a".repeat(161)).segments, 2);
        assert_eq!(encoding("ә").segments, 1);
        assert_eq!(encoding(&"ә".repeat(71)).segments, 2);
    }
}
