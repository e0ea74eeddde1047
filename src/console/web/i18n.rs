//! The dashboard's labels in Russian, Kazakh and English: one table, [`entry`], whose every line holds the
//! three (a fixed-size array, so a missing translation does not compile). The language is the `lang`
//! cookie's, else the first of the browser's `Accept-Language` that the table has, else Russian.

use axum::http::HeaderMap;
use axum::http::header::ACCEPT_LANGUAGE;

/// A language of the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Русский.
    Ru,
    /// Қазақша.
    Kk,
    /// English.
    En,
}

/// The name of the cookie that holds a language chosen by a link.
pub const LANG_COOKIE: &str = "lang";

impl Lang {
    /// Every language, in the order the switch lists them.
    pub const ALL: [Lang; 3] = [Lang::Ru, Lang::Kk, Lang::En];

    /// The ISO 639-1 code (`lang` attribute, cookie, links).
    pub fn code(self) -> &'static str {
        match self {
            Self::Ru => "ru",
            Self::Kk => "kk",
            Self::En => "en",
        }
    }

    /// The language's name in itself, as the switch shows it.
    pub fn native_name(self) -> &'static str {
        match self {
            Self::Ru => "Русский",
            Self::Kk => "Қазақша",
            Self::En => "English",
        }
    }

    /// The language of a code (`ru`, `kk`, `en`, or a tag such as `ru-KZ`).
    pub fn parse(code: &str) -> Option<Self> {
        let primary = code.split(['-', '_']).next()?.trim().to_ascii_lowercase();
        match primary.as_str() {
            "ru" => Some(Self::Ru),
            "kk" => Some(Self::Kk),
            "en" => Some(Self::En),
            _ => None,
        }
    }

    /// The language of a request: the `lang` cookie, else `Accept-Language` (by its q-values), else
    /// Russian, the language most operators read.
    pub fn of_request(headers: &HeaderMap) -> Self {
        let jar = axum_extra::extract::CookieJar::from_headers(headers);
        if let Some(lang) = jar.get(LANG_COOKIE).and_then(|c| Self::parse(c.value())) {
            return lang;
        }
        headers
            .get(ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|raw| {
                accept_language::parse(raw)
                    .iter()
                    .find_map(|tag| Self::parse(tag))
            })
            .unwrap_or(Self::Ru)
    }

    fn index(self) -> usize {
        match self {
            Self::Ru => 0,
            Self::Kk => 1,
            Self::En => 2,
        }
    }
}

/// The translator a template holds.
#[derive(Debug, Clone, Copy)]
pub struct Tr(pub Lang);

impl Tr {
    /// The label of `key`; an unknown key shows as itself (the test of the templates keeps them known).
    pub fn t<'a>(&self, key: &'a str) -> &'a str {
        entry(key).map_or(key, |e| e[self.0.index()])
    }

    /// The label of a stored value (`status.reissued`, `stage.queued`, …); a value the table does not know
    /// (a new reason, say) shows as stored.
    pub fn value(&self, prefix: &str, value: &str) -> String {
        entry(&format!("{prefix}.{value}"))
            .map_or_else(|| value.to_owned(), |e| e[self.0.index()].to_owned())
    }

    /// The language.
    pub fn lang(&self) -> Lang {
        self.0
    }
}

/// `open` and the outcomes: what a case's status may be.
pub const STATUSES: [&str; 11] = [
    "open",
    "not_applicable",
    "no_head",
    "ineligible",
    "no_phone",
    "declined",
    "expired",
    "reissued",
    "superseded",
    "failed",
    "closed_by_operator",
];

/// The stages of an open case, in the order a case goes through them.
pub const STAGES: [&str; 6] = [
    "checking",
    "queued",
    "awaiting_reply",
    "consent_pending",
    "reissuing",
    "writing_back",
];

/// The outcomes, as the search form lists them.
pub const OUTCOMES: [&str; 10] = [
    "reissued",
    "declined",
    "expired",
    "not_applicable",
    "no_head",
    "ineligible",
    "no_phone",
    "superseded",
    "failed",
    "closed_by_operator",
];

/// The outcome reasons, as the search form lists them.
pub const REASONS: [&str; 13] = [
    "no_permit",
    "already_current",
    "liquidated",
    "deceased",
    "declared_dead",
    "declared_missing",
    "residence_abroad",
    "incapacitated",
    "imprisoned",
    "not_registered",
    "invalid_number",
    "invalid_data",
    "reissue_rejected",
];

/// The table: `[Russian, Kazakh, English]` for each key.
pub fn entry(key: &str) -> Option<[&'static str; 3]> {
    Some(match key {
        // The frame.
        "app.title" => [
            "Проактивное переоформление разрешений",
            "Рұқсаттарды проактивті қайта ресімдеу",
            "Proactive permit re-issue",
        ],
        "app.console" => ["Консоль оператора", "Оператор консолі", "Operator console"],
        "nav.overview" => ["Обзор", "Шолу", "Overview"],
        "nav.search" => ["Поиск дел", "Істерді іздеу", "Case search"],
        "nav.queue" => ["Очередь", "Кезек", "Queue"],
        "nav.attention" => ["Нужен сотрудник", "Қызметкер қажет", "Needing a person"],
        "nav.language" => ["Язык", "Тіл", "Language"],
        "auth.sign_in" => ["Войти", "Кіру", "Sign in"],
        "auth.sign_out" => ["Выйти", "Шығу", "Sign out"],
        "auth.token" => ["Токен оператора", "Оператор токені", "Operator token"],
        "auth.hint" => [
            "Вставьте токен, выданный при добавлении вашей учётной записи (sdu operator add). Токен не сохраняется в браузере: вход действует 8 часов.",
            "Тіркелгіңіз қосылған кезде берілген токенді қойыңыз (sdu operator add). Токен браузерде сақталмайды: кіру 8 сағат жарамды.",
            "Paste the token you were given when your account was added (sdu operator add). The token is not kept in the browser: a sign-in lasts 8 hours.",
        ],
        "auth.bad_token" => [
            "Токен недействителен или отозван.",
            "Токен жарамсыз немесе кері қайтарылған.",
            "This token is not valid or has been revoked.",
        ],
        "auth.signed_in_as" => ["Вы вошли как", "Кірген пайдаланушы", "Signed in as"],
        "role.viewer" => ["наблюдатель", "бақылаушы", "viewer"],
        "role.operator" => ["оператор", "оператор", "operator"],
        // The overview.
        "overview.funnel" => [
            "Воронка за 30 дней",
            "Соңғы 30 күннің воронкасы",
            "Funnel, last 30 days",
        ],
        "overview.funnel_hint" => [
            "Дела по дате переименования организации.",
            "Ұйым атауының өзгерген күні бойынша істер.",
            "Cases by the date the organisation renamed itself.",
        ],
        "overview.chart" => [
            "Дела по дням и исходам, 14 дней",
            "Күндер мен нәтижелер бойынша істер, 14 күн",
            "Cases per day by outcome, 14 days",
        ],
        "overview.sms_parts" => [
            "Отправлено частей SMS",
            "Жіберілген SMS бөліктері",
            "SMS parts sent",
        ],
        "overview.sms_sent" => ["SMS отправлено", "SMS жіберілді", "SMS sent"],
        "overview.parts_per_sms" => ["частей в одном SMS", "бір SMS-тегі бөлік", "parts per SMS"],
        "overview.failing" => [
            "Системы с ошибками сейчас",
            "Қазір ақаулы жүйелер",
            "Systems failing now",
        ],
        "overview.failing_none" => [
            "Нет: все системы отвечают.",
            "Жоқ: барлық жүйе жауап береді.",
            "None: every system answers.",
        ],
        "overview.sms_switch" => ["Исходящие SMS", "Шығыс SMS", "Outgoing SMS"],
        "overview.sms_running" => [
            "SMS отправляются.",
            "SMS жіберіліп жатыр.",
            "SMS are being sent.",
        ],
        "overview.sms_paused" => [
            "Отправка SMS приостановлена.",
            "SMS жіберу тоқтатылды.",
            "SMS are paused.",
        ],
        "overview.set_by" => ["Переключил", "Ауыстырған", "Set by"],
        "overview.pause" => ["Приостановить SMS", "SMS жіберуді тоқтату", "Pause SMS"],
        "overview.resume" => ["Возобновить SMS", "SMS жіберуді жалғастыру", "Resume SMS"],
        "overview.recent_actions" => [
            "Последние действия операторов",
            "Операторлардың соңғы әрекеттері",
            "Recent operator actions",
        ],
        "overview.all_cases" => ["Все дела", "Барлық істер", "All cases"],
        "overview.in_progress" => ["В работе", "Жұмыста", "In progress"],
        "overview.ended" => ["Завершены", "Аяқталды", "Ended"],
        "overview.no_cases" => [
            "За этот период дел нет.",
            "Бұл кезеңде істер жоқ.",
            "No cases in this period.",
        ],
        // Common words.
        "word.total" => ["Всего", "Барлығы", "Total"],
        "word.none" => ["Нет", "Жоқ", "None"],
        "word.reason" => ["Причина", "Себебі", "Reason"],
        "word.reason_required" => [
            "Причина (обязательно)",
            "Себебі (міндетті)",
            "Reason (required)",
        ],
        "word.when" => ["Когда", "Қашан", "When"],
        "word.what" => ["Что", "Не", "What"],
        "word.who" => ["Кто", "Кім", "Who"],
        "word.detail" => ["Подробности", "Толығырақ", "Detail"],
        "word.case" => ["Дело", "Іс", "Case"],
        "word.back" => ["Назад", "Артқа", "Back"],
        "word.confirm" => ["Подтвердить", "Растау", "Confirm"],
        "word.cancel" => ["Отмена", "Болдырмау", "Cancel"],
        "word.error" => ["Ошибка", "Қате", "Error"],
        "word.next_page" => ["Следующая страница →", "Келесі бет →", "Next page →"],
        "word.first_page" => ["← В начало", "← Басына", "← First page"],
        // The case lists.
        "col.id" => ["№", "№", "No."],
        "col.bin" => ["БИН", "БСН", "BIN"],
        "col.organisation" => [
            "Организация (новое наименование)",
            "Ұйым (жаңа атауы)",
            "Organisation (new name)",
        ],
        "col.renamed" => ["Переименована", "Атауы өзгерді", "Renamed"],
        "col.status" => ["Статус", "Күйі", "Status"],
        "col.stage_reason" => ["Этап или причина", "Кезең немесе себеп", "Stage or reason"],
        "col.sms" => ["SMS", "SMS", "SMS"],
        "col.head" => ["Руководитель (ИИН)", "Басшы (ЖСН)", "Head (IIN)"],
        "col.phone" => ["Телефон", "Телефон", "Phone"],
        "col.due" => ["Следующая проверка", "Келесі тексеру", "Next look"],
        "list.empty" => [
            "Подходящих дел нет.",
            "Сәйкес істер жоқ.",
            "No cases match.",
        ],
        // The search.
        "search.title" => ["Поиск дел", "Істерді іздеу", "Case search"],
        "search.any" => ["Любой", "Кез келген", "Any"],
        "search.status" => ["Статус", "Күйі", "Status"],
        "search.open" => ["Открытые", "Ашық", "Open"],
        "search.ended" => ["Завершённые", "Аяқталған", "Ended"],
        "search.outcome" => ["Исход", "Нәтиже", "Outcome"],
        "search.reason" => ["Причина", "Себеп", "Reason"],
        "search.stage" => ["Этап", "Кезең", "Stage"],
        "search.bin" => ["БИН", "БСН", "BIN"],
        "search.renamed_from" => [
            "Переименована с",
            "Атауы өзгерген күн, бастап",
            "Renamed from",
        ],
        "search.renamed_to" => ["по", "дейін", "until"],
        "search.submit" => ["Найти", "Іздеу", "Search"],
        "search.reset" => ["Сбросить", "Тазарту", "Reset"],
        "search.bad_date" => [
            "Дата должна быть в формате ГГГГ-ММ-ДД.",
            "Күн ЖЖЖЖ-АА-КК пішімінде болуы керек.",
            "A date is written YYYY-MM-DD.",
        ],
        // The queue and the cases needing a person.
        "queue.title" => [
            "Очередь: дела, ожидающие телефона",
            "Кезек: телефонды күтіп тұрған істер",
            "Queue: cases waiting for a phone",
        ],
        "queue.hint" => [
            "Каждое дело ждёт, пока закончится прежнее предложение на тот же номер, или окна отправки SMS.",
            "Әр іс сол нөмірге жіберілген алдыңғы ұсыныстың аяқталуын немесе SMS жіберу уақытын күтеді.",
            "Each case waits for the earlier offer to the same number to end, or for the SMS window.",
        ],
        "attention.title" => [
            "Дела, требующие участия сотрудника",
            "Қызметкердің қатысуын қажет ететін істер",
            "Cases needing a person",
        ],
        "attention.hint" => [
            "Дела, завершённые с ошибкой: исправьте данные в реестре и повторите обработку или оставьте дело для общего порядка.",
            "Қатемен аяқталған істер: тізілімдегі деректерді түзетіп, өңдеуді қайталаңыз немесе істі жалпы тәртіпке қалдырыңыз.",
            "Failed cases: correct the data in the registry and retry, or leave the case to the general procedure.",
        ],
        // The timeline.
        "case.from_name" => ["Прежнее наименование", "Бұрынғы атауы", "Former name"],
        "case.to_name" => ["Новое наименование", "Жаңа атауы", "New name"],
        "case.permits" => ["Разрешения", "Рұқсаттар", "Permits"],
        "case.reissued" => ["Переоформлены", "Қайта ресімделгендер", "Re-issued"],
        "case.decision" => ["Последнее решение", "Соңғы шешім", "Last decision"],
        "case.retries" => [
            "Временных сбоев подряд",
            "Қатарынан уақытша ақаулар",
            "Transient failures in a row",
        ],
        "case.history" => ["История", "Тарихы", "History"],
        "case.writes" => ["Внешние записи", "Сыртқы жазбалар", "Outward writes"],
        "case.no_writes" => [
            "Внешних записей ещё не было.",
            "Сыртқы жазбалар әлі жоқ.",
            "No outward write yet.",
        ],
        "case.key" => [
            "Ключ идемпотентности",
            "Идемпотенттілік кілті",
            "Idempotency key",
        ],
        "case.system" => ["Система", "Жүйе", "System"],
        "case.answer" => ["Ответ", "Жауап", "Answer"],
        "case.actions" => ["Действия", "Әрекеттер", "Actions"],
        "case.viewer_no_actions" => [
            "Роль наблюдателя не позволяет действовать с делами.",
            "Бақылаушы рөлі істермен әрекет етуге рұқсат бермейді.",
            "The viewer role cannot act on cases.",
        ],
        "case.no_action" => [
            "К делу с этим исходом действия не применяются.",
            "Бұл нәтижемен аяқталған іске әрекет қолданылмайды.",
            "No action applies to a case that ended with this outcome.",
        ],
        "case.retry" => ["Повторить обработку…", "Қайта өңдеу…", "Retry…"],
        "case.retry_hint" => [
            "Проверки выполняются заново после исправления данных в реестре; уже выполненные записи не повторяются.",
            "Тізілімдегі деректер түзетілгеннен кейін тексерулер қайта орындалады; жасалған жазбалар қайталанбайды.",
            "Runs the checks again once the registry data is corrected; writes already done are not repeated.",
        ],
        "case.end" => ["Завершить вручную…", "Қолмен аяқтау…", "End by hand…"],
        "case.end_hint" => [
            "Завершает открытое дело; услуга затем оказывается в общем порядке.",
            "Ашық істі аяқтайды; қызмет кейін жалпы тәртіппен көрсетіледі.",
            "Ends the open case; the service is then given under the general procedure.",
        ],
        "case.confirm_retry" => [
            "Повторить обработку этого дела?",
            "Бұл істі қайта өңдеу керек пе?",
            "Retry this case?",
        ],
        "case.confirm_end" => [
            "Завершить это дело вручную?",
            "Бұл істі қолмен аяқтау керек пе?",
            "End this case by hand?",
        ],
        "case.done_retry" => [
            "Дело снова открыто; система проверяет его заново.",
            "Іс қайта ашылды; жүйе оны қайта тексереді.",
            "The case is open again; the engine checks it anew.",
        ],
        "case.done_end" => [
            "Дело завершено вручную.",
            "Іс қолмен аяқталды.",
            "The case was ended by hand.",
        ],
        // Errors.
        "error.forbidden" => ["Доступ запрещён", "Рұқсат жоқ", "Forbidden"],
        "error.csrf" => [
            "Форма устарела или отправлена не из этой консоли. Обновите страницу и повторите.",
            "Пішін ескірген немесе осы консольден жіберілмеген. Бетті жаңартып, қайталаңыз.",
            "The form has expired or did not come from this console. Reload the page and try again.",
        ],
        "error.viewer" => [
            "Это действие доступно только роли «оператор».",
            "Бұл әрекет тек «оператор» рөліне қолжетімді.",
            "This action needs the operator role.",
        ],
        "error.not_found" => ["Не найдено", "Табылмады", "Not found"],
        "error.reason" => [
            "Укажите причину: она записывается вместе с действием.",
            "Себебін көрсетіңіз: ол әрекетпен бірге жазылады.",
            "Give a reason: it is recorded with the action.",
        ],
        "error.refused" => [
            "Действие отклонено",
            "Әрекет қабылданбады",
            "The action was refused",
        ],
        // Statuses: open, and the outcomes.
        "status.open" => ["В работе", "Жұмыста", "In progress"],
        "status.not_applicable" => ["Неприменимо", "Қолданылмайды", "Not applicable"],
        "status.no_head" => ["Нет руководителя", "Басшы жоқ", "No head"],
        "status.ineligible" => [
            "Не соответствует критериям",
            "Талаптарға сәйкес емес",
            "Ineligible",
        ],
        "status.no_phone" => ["Нет телефона", "Телефон жоқ", "No phone"],
        "status.declined" => ["Отказ", "Бас тартты", "Declined"],
        "status.expired" => ["Нет ответа", "Жауап жоқ", "Expired"],
        "status.reissued" => ["Переоформлено", "Қайта ресімделді", "Re-issued"],
        "status.superseded" => [
            "Заменено новым переименованием",
            "Жаңа атау өзгерісімен алмастырылды",
            "Superseded",
        ],
        "status.failed" => ["Ошибка", "Қате", "Failed"],
        "status.closed_by_operator" => {
            ["Закрыто оператором", "Оператор жапты", "Closed by operator"]
        }
        // Stages of open cases.
        "stage.checking" => ["Проверка", "Тексеру", "Checking"],
        "stage.queued" => ["В очереди", "Кезекте", "Queued"],
        "stage.awaiting_reply" => ["Ожидает ответа", "Жауап күтуде", "Awaiting reply"],
        "stage.consent_pending" => ["Запись согласия", "Келісімді тіркеу", "Recording consent"],
        "stage.reissuing" => ["Переоформление", "Қайта ресімдеу", "Re-issuing"],
        "stage.writing_back" => ["Запись в SDU", "SDU-ға жазу", "Writing to SDU"],
        // Reasons of outcomes.
        "reason.no_permit" => [
            "Нет действующего разрешения",
            "Қолданыстағы рұқсат жоқ",
            "No active permit",
        ],
        "reason.already_current" => [
            "Уже на новое наименование",
            "Жаңа атауымен ресімделген",
            "Already under the new name",
        ],
        "reason.liquidated" => ["Ликвидирована", "Таратылған", "Liquidated"],
        "reason.deceased" => ["Умер", "Қайтыс болған", "Deceased"],
        "reason.declared_dead" => [
            "Объявлен умершим",
            "Қайтыс болды деп жарияланған",
            "Declared dead",
        ],
        "reason.declared_missing" => [
            "Признан безвестно отсутствующим",
            "Хабар-ошарсыз кетті деп танылған",
            "Declared missing",
        ],
        "reason.residence_abroad" => ["Проживает за рубежом", "Шетелде тұрады", "Resides abroad"],
        "reason.incapacitated" => ["Недееспособен", "Әрекетке қабілетсіз", "Incapacitated"],
        "reason.imprisoned" => [
            "В местах лишения свободы",
            "Бас бостандығынан айыру орнында",
            "Imprisoned",
        ],
        "reason.not_registered" => [
            "Номер не зарегистрирован",
            "Нөмір тіркелмеген",
            "No number registered",
        ],
        "reason.invalid_number" => ["Непригодный номер", "Жарамсыз нөмір", "Unusable number"],
        "reason.invalid_data" => [
            "Неверные данные реестра",
            "Тізілім деректері қате",
            "Invalid registry data",
        ],
        "reason.reissue_rejected" => [
            "Отказ в переоформлении",
            "Қайта ресімдеуден бас тартылды",
            "Re-issue refused",
        ],
        // Lines of a case's history.
        "event.ingested" => [
            "Получено переименование",
            "Атау өзгерісі алынды",
            "Rename received",
        ],
        "event.checked" => [
            "Реестры проверены",
            "Тізілімдер тексерілді",
            "Registries checked",
        ],
        "event.queued" => ["Поставлено в очередь", "Кезекке қойылды", "Queued"],
        "event.sms_sent" => ["SMS отправлено", "SMS жіберілді", "SMS sent"],
        "event.reply" => ["Ответ руководителя", "Басшының жауабы", "The head's reply"],
        "event.consent_recorded" => ["Согласие записано", "Келісім тіркелді", "Consent recorded"],
        "event.permit_reissued" => [
            "Разрешение переоформлено",
            "Рұқсат қайта ресімделді",
            "Permit re-issued",
        ],
        "event.sdu_written" => ["Записано в SDU", "SDU-ға жазылды", "Written to SDU"],
        "event.transient" => ["Временный сбой", "Уақытша ақау", "Transient failure"],
        "event.operator_action" => ["Действие оператора", "Оператор әрекеті", "Operator action"],
        "event.ended" => ["Завершено", "Аяқталды", "Ended"],
        // Outward writes.
        "write.sms" => ["SMS-шлюз", "SMS шлюзі", "SMS gateway"],
        "write.consent" => ["Сервис согласий", "Келісім сервисі", "Consent service"],
        "write.reissue" => [
            "Е-лицензирование: переоформление",
            "Е-лицензиялау: қайта ресімдеу",
            "e-license: re-issue",
        ],
        "write.sdu" => ["SDU", "SDU", "SDU"],
        // Operator actions.
        "action.retry" => ["Повтор обработки", "Қайта өңдеу", "Retry"],
        "action.end_by_hand" => ["Завершение вручную", "Қолмен аяқтау", "End by hand"],
        "action.pause_sms" => ["Пауза SMS", "SMS кідірісі", "SMS paused"],
        "action.resume_sms" => ["Возобновление SMS", "SMS жалғастырылды", "SMS resumed"],
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::{Outcome, Reason, Stage};
    use axum::http::header::COOKIE;

    #[test]
    fn every_stored_value_has_its_three_labels() {
        for s in STATUSES {
            assert!(entry(&format!("status.{s}")).is_some(), "status {s}");
        }
        for s in STAGES {
            assert!(Stage::parse(s).is_some(), "{s} is a stage");
            assert!(entry(&format!("stage.{s}")).is_some(), "stage {s}");
        }
        for o in OUTCOMES {
            assert!(Outcome::parse(o).is_some(), "{o} is an outcome");
        }
        for r in REASONS {
            assert!(Reason::parse(r).is_some(), "{r} is a reason");
            assert!(entry(&format!("reason.{r}")).is_some(), "reason {r}");
        }
        assert_eq!(STATUSES.len(), OUTCOMES.len() + 1);
        // The history's kinds (src/case/transition.rs), the outbox's and the operators' actions.
        let events = [
            "ingested",
            "checked",
            "queued",
            "sms_sent",
            "reply",
            "consent_recorded",
            "permit_reissued",
            "sdu_written",
            "transient",
            "operator_action",
            "ended",
        ];
        for e in events {
            assert!(entry(&format!("event.{e}")).is_some(), "event {e}");
        }
        for w in ["sms", "consent", "reissue", "sdu"] {
            assert!(entry(&format!("write.{w}")).is_some(), "write {w}");
        }
        for a in ["retry", "end_by_hand", "pause_sms", "resume_sms"] {
            assert!(entry(&format!("action.{a}")).is_some(), "action {a}");
        }
        let source = include_str!("../../case/transition.rs");
        let used = source.matches("Event::new(").count();
        assert!(
            used >= 10,
            "the history's kinds are still written by Event::new"
        );
        for piece in source.split("Event::new(").skip(1) {
            let kind = piece.trim_start().trim_start_matches('"');
            let kind = kind.split('"').next().unwrap_or("");
            if kind.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !kind.is_empty() {
                assert!(
                    events.contains(&kind),
                    "the history kind `{kind}` has no label"
                );
            }
        }
    }

    #[test]
    fn no_label_is_empty_or_left_in_english_by_mistake() {
        // Labels that are the same in every language on purpose (codes and abbreviations).
        let same_everywhere = ["col.sms", "write.sdu", "col.id", "role.operator"];
        for key in template_keys() {
            let e =
                entry(&key).unwrap_or_else(|| panic!("a template uses `{key}`, not in the table"));
            assert!(e.iter().all(|l| !l.trim().is_empty()), "{key}");
            if !same_everywhere.contains(&key.as_str()) && !key.starts_with("auth.token") {
                assert_ne!(e[0], e[2], "{key}: the Russian label is the English one");
                assert_ne!(e[1], e[2], "{key}: the Kazakh label is the English one");
            }
        }
    }

    /// Every `t("…")` key the templates and the Rust code of the dashboard use.
    fn template_keys() -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/console/web");
        let mut keys = Vec::new();
        let mut files: Vec<_> = std::fs::read_dir(dir.join("templates"))
            .expect("templates")
            .flatten()
            .map(|e| e.path())
            .collect();
        files.push(dir.join("mod.rs"));
        for file in files {
            let text = std::fs::read_to_string(&file).expect("readable");
            for piece in text.split("t(\"").skip(1) {
                if let Some(key) = piece.split('"').next()
                    && key.contains('.')
                    && !key.contains(' ')
                {
                    keys.push(key.to_owned());
                }
            }
        }
        assert!(keys.len() > 50, "the templates were found");
        keys
    }

    #[test]
    fn the_language_comes_from_the_cookie_then_the_browser() {
        let mut h = HeaderMap::new();
        assert_eq!(Lang::of_request(&h), Lang::Ru);
        h.insert(
            ACCEPT_LANGUAGE,
            "de-DE, kk-KZ;q=0.8, en;q=0.5".parse().unwrap(),
        );
        assert_eq!(Lang::of_request(&h), Lang::Kk);
        h.insert(ACCEPT_LANGUAGE, "en-US,en;q=0.9,ru;q=0.8".parse().unwrap());
        assert_eq!(Lang::of_request(&h), Lang::En);
        h.insert(COOKIE, "sdu_session=x; lang=ru".parse().unwrap());
        assert_eq!(Lang::of_request(&h), Lang::Ru);
        h.insert(COOKIE, "lang=xx".parse().unwrap());
        assert_eq!(Lang::of_request(&h), Lang::En);
        assert_eq!(Tr(Lang::Kk).t("nav.queue"), "Кезек");
        assert_eq!(
            Tr(Lang::En).value("reason", "something_new"),
            "something_new"
        );
    }
}
