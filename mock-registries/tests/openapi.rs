//! `/openapi.json` is an OpenAPI 3 document that lists exactly the routes the mock serves.

mod common;

use std::collections::BTreeSet;

use common::{fixture_mock, get, serve};
use mock_registries::openapi::ROUTES;
use serde_json::Value;

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                if k == "$ref" {
                    out.extend(x.as_str().map(str::to_string));
                } else {
                    refs(x, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_openapi_3_and_has_a_path_for_every_served_route() {
    let base = serve(&fixture_mock()).await;
    let c = reqwest::Client::new();
    let (s, doc) = get(&c, &format!("{base}/openapi.json")).await;
    assert_eq!(s, 200);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));

    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .into_iter()
                .flatten()
                .map(move |(method, _)| (method.clone(), path.clone()))
        })
        .collect();
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, served);

    let mut all_refs = Vec::new();
    refs(&doc, &mut all_refs);
    for r in all_refs {
        let name = r.trim_start_matches("#/components/schemas/");
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling {r}"
        );
    }
}

#[tokio::test]
async fn every_documented_route_is_really_served() {
    let base = serve(&fixture_mock()).await;
    let c = reqwest::Client::new();
    for (method, path) in ROUTES {
        let url = format!("{base}{path}")
            .replace("{bin}", "190540043216")
            .replace("{permit_id}", "KZ-TS-0001")
            .replace("{iin}", "790415307770")
            .replace("{message_id}", "m-1");
        let req = match *method {
            "get" => c.get(&url),
            "post" => c.post(&url).body("{}"),
            "delete" => c.delete(&url),
            other => panic!("unexpected method {other}"),
        };
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let body = res.text().await.unwrap_or_default();
        assert_ne!(status, 405, "{method} {path}");
        assert!(
            !body.contains("no such endpoint"),
            "{method} {path}: {body}"
        );
    }
}
