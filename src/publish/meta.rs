//! The metadata beside the tables: the data product's description (seed 001), its entry in the register of
//! disseminated data products (seed 001's eight columns), the open-data technological passport (seed 003,
//! every attribute of every table) and a Frictionless Data Package descriptor (a Table Schema per CSV).
//! Every date in them comes from the data (the release's instant), never from the clock.

use anyhow::Result;
use serde_json::{Value, json};

use super::Release;
use super::tables::{Level, Table};

const NAME: &str = "Итоги проактивного переоформления разрешений реестра доверенного ПО";
const SHORT: &str = "sdu-proactive-reissue-outcomes";
const PROVIDER: &str = "Министерство цифрового развития, инноваций и аэрокосмической промышленности Республики Казахстан (пилот Smart Data Ukimet)";
const TERMS: &str = "Открытые данные: свободно и безвозмездно, с указанием источника (CC BY 4.0). Ячейки «X» не раскрываются по правилам конфиденциальности (методика 002).";
const SOURCES: &str =
    "Хранилище кейсов оркестратора sdu: реестр юридических лиц (КАТО, ОКЭД), e-license, SMS-шлюз";
const PERIODICITY: &str = "ежемесячно";

/// Describes one value column or key column of a table.
fn attributes(t: &Table) -> Vec<Value> {
    let mut out = Vec::new();
    for key in &t.keys {
        let (name, requirement, example) = match *key {
            "outcome" => (
                "Исход кейса",
                "Одно из: not_applicable, no_head, ineligible, no_phone, declined, expired, reissued, superseded, failed; «total» в строке итогов",
                "reissued",
            ),
            "reason" => (
                "Причина исхода",
                "Причина исхода в snake_case или пусто, если у исхода нет причины",
                "no_permit",
            ),
            "delay" => (
                "Интервал от первого SMS до ответа",
                "Номер и интервал: 1_under_1h … 6_6d_plus; «total» в строке итогов",
                "2_1h_6h",
            ),
            "message" => (
                "Вид SMS",
                "1_offer (предложение) или 2_reminder (напоминание); «total» в строке итогов",
                "1_offer",
            ),
            _ => ("Ключ", "", ""),
        };
        out.push(json!({
            "technical_name": key, "name": name, "group_attribute": "ключ строки",
            "type": "string", "mandatory": *key != "reason",
            "value_requirements": requirement, "validation_example": example,
        }));
    }
    let group = match (t.name, t.level) {
        (_, Level::Republic) => "Республика Казахстан",
        ("outcomes_by_region", _) => {
            "регион (КАТО, уровень области / города республиканского значения)"
        }
        ("outcomes_by_activity", _) => "секция ОКЭД",
        _ => "показатель",
    };
    let count = format!(
        "Целое число ≥ 0 ({}) или «X»: значение не публикуется по правилам конфиденциальности",
        t.unit
    );
    for (c, title) in t.cols.iter().zip(&t.col_titles) {
        out.push(json!({
            "technical_name": c, "name": title, "group_attribute": group, "type": "integer",
            "mandatory": true, "value_requirements": count, "validation_example": "17",
        }));
    }
    out.push(json!({
        "technical_name": "total", "name": "Итого по строке", "group_attribute": "итог",
        "type": "integer", "mandatory": true,
        "value_requirements": format!("Сумма значений строки; {count}"), "validation_example": "254",
    }));
    out
}

fn level_note(t: &Table) -> &'static str {
    match t.level {
        Level::Republic => {
            "Опубликовано на уровне республики: в разрезе классификации большинство ячеек было бы «X» (методика 002, публикация на более высоком уровне классификации)."
        }
        Level::Detailed => "",
    }
}

fn date(release: &Release) -> String {
    release
        .data_as_of
        .with_timezone(&chrono_tz::Asia::Almaty)
        .date_naive()
        .to_string()
}

fn instant(release: &Release) -> String {
    release
        .data_as_of
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The product's description (seed 001: composition, structure, purpose, terms of use; sources, updates).
pub fn metadata(release: &Release) -> Value {
    json!({
        "name": NAME,
        "short_name": SHORT,
        "period": release.period.to_string(),
        "period_rule": "кейсы, завершённые в течение календарного месяца по времени Казахстана (UTC+5)",
        "data_as_of": instant(release),
        "purpose": "Открытая статистика итогов пилота: сколько организаций после переименования получили предложение переоформить разрешения, как ответили и чем завершились кейсы, по регионам и видам деятельности.",
        "composition": release.tables.iter().map(|t| json!({
            "file": format!("{}.csv", t.name), "title": t.title, "unit": t.unit,
            "level": t.level, "note": level_note(t),
            "rows": t.rows.len(), "columns": t.cols.len(),
        })).collect::<Vec<_>>(),
        "structure": "UTF-8 CSV, разделитель запятая, первая строка — заголовок; ключевые столбцы, столбцы значений и «total»; последняя строка «total» — итоги по столбцам.",
        "terms_of_use": TERMS,
        "sources": SOURCES,
        "update_periodicity": PERIODICITY,
        "personal_data": "Не содержит персональных данных: ни БИН, ни ИИН, ни телефонов, ни наименований; только счётчики по агрегатам (правила 001).",
        "confidentiality": {
            "rule": "Ячейка, опирающаяся менее чем на min_respondents организаций (но не пустая), публикуется как «X» (первичное скрытие); дополнительно скрываются ячейки с наименьшим числом респондентов, пока ни одно «X» нельзя вычислить из итогов и других таблиц выпуска (вторичное скрытие).",
            "respondent": "организация (БИН), по которой открыт кейс",
            "min_respondents": release.control.min_respondents,
            "republic_above": release.control.republic_above,
            "x": "«X» — значение есть, но не публикуется; это не ноль и не пропуск данных.",
        },
        "sms_parts_per_message": release.parts_per_sms,
        "sms_parts_note": "Части SMS в кодировке UCS-2 (70 символов для одного SMS, 67 на часть составного) для текста предложения на настроенном языке.",
    })
}

/// The register entry, in seed 001's eight columns.
pub fn register_entry(release: &Release) -> Value {
    json!({
        "no": 1,
        "name": NAME,
        "type": "статистическая и аналитическая информация",
        "sources": SOURCES,
        "update_periodicity": PERIODICITY,
        "terms_of_provision": TERMS,
        "date_entered": date(release),
        "note": format!("Выпуск за {}; данные на {}.", release.period, instant(release)),
    })
}

/// The technological passport of seed 003.
pub fn passport(release: &Release) -> Value {
    let mut attrs = Vec::new();
    let mut requirements = Vec::new();
    let mut examples = Vec::new();
    for t in &release.tables {
        for (k, a) in attributes(t).into_iter().enumerate() {
            requirements.push(json!({
                "table": format!("{}.csv", t.name), "technical_name": a["technical_name"],
                "value_requirements": a["value_requirements"],
            }));
            attrs.push(json!({
                "table": format!("{}.csv", t.name), "no": k + 1,
                "technical_name": a["technical_name"], "name": a["name"],
                "group_attribute": a["group_attribute"], "type": a["type"], "mandatory": a["mandatory"],
            }));
        }
        examples.push(json!({
            "table": format!("{}.csv", t.name),
            "valid": "строка с ключами и целыми числами ≥ 0 или «X»; total — сумма строки",
            "invalid": "отрицательное или дробное число; пустое значение в столбце значений",
            "example_record": super::csv(t).lines().nth(1).unwrap_or_default(),
        }));
    }
    json!({
        "general": {
            "full_name": NAME,
            "short_name": SHORT,
            "category": "Информационно-коммуникационные технологии / государственные услуги",
            "provider": PROVIDER,
            "description": "Ежемесячные таблицы итогов проактивного переоформления разрешений реестра доверенного ПО после переименования организаций, с разрезами по регионам (КАТО) и видам деятельности (ОКЭД).",
            "keywords": ["проактивная услуга", "переоформление", "реестр доверенного ПО", "SMS", "КАТО", "ОКЭД", "Smart Data Ukimet"],
        },
        "update": { "frequency": PERIODICITY, "data_as_of": instant(release) },
        "geo_binding": {
            "present": true,
            "geometry": "полигон (административная единица)",
            "kind": "административно-территориальная единица (область, город республиканского значения) по КАТО",
            "address_attribute": "kato_* (столбцы таблицы outcomes_by_region)",
        },
        "attributes": attrs,
        "value_requirements": requirements,
        "validation_examples": examples,
    })
}

/// The Frictionless Data Package descriptor.
pub fn datapackage(release: &Release) -> Value {
    let resources: Vec<Value> = release
        .tables
        .iter()
        .map(|t| {
            let mut fields: Vec<Value> = t
                .keys
                .iter()
                .map(|k| json!({"name": k, "type": "string"}))
                .collect();
            for (c, title) in t.cols.iter().zip(&t.col_titles) {
                fields.push(json!({"name": c, "title": title, "type": "integer", "constraints": {"minimum": 0}}));
            }
            fields.push(json!({"name": "total", "title": "Итого", "type": "integer", "constraints": {"minimum": 0}}));
            json!({
                "name": t.name.replace('_', "-"),
                "path": format!("{}.csv", t.name),
                "title": t.title,
                "description": level_note(t),
                "profile": "tabular-data-resource",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "schema": { "fields": fields, "missingValues": ["X"] },
            })
        })
        .collect();
    json!({
        "name": SHORT,
        "title": NAME,
        "profile": "tabular-data-package",
        "version": format!("{}.0", release.period.to_string().replace('-', ".")),
        "created": instant(release),
        "licenses": [{"name": "CC-BY-4.0", "title": "Creative Commons Attribution 4.0",
                      "path": "https://creativecommons.org/licenses/by/4.0/"}],
        "sources": [{"title": SOURCES}],
        "resources": resources,
    })
}

/// The metadata files of a release: (file name, text).
pub fn files(release: &Release) -> Result<Vec<(String, String)>> {
    let pretty = |v: Value| -> Result<String> { Ok(serde_json::to_string_pretty(&v)? + "\n") };
    Ok(vec![
        ("metadata.json".into(), pretty(metadata(release))?),
        (
            "register_entry.json".into(),
            pretty(register_entry(release))?,
        ),
        ("passport.json".into(), pretty(passport(release))?),
        ("datapackage.json".into(), pretty(datapackage(release))?),
    ])
}
