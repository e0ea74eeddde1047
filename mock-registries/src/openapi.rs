//! The OpenAPI 3.0 document served at `/openapi.json`, written by hand so that it says exactly what the
//! router serves (a test checks that every served route has a path here, and the reverse).

use std::sync::LazyLock;

use serde_json::{Value, json};

/// Every `(method, path)` the router serves, in the document's notation. Tests compare it with the
/// document and hit each one.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/legal_entities/renames"),
    ("get", "/legal_entities/organizations/{bin}"),
    ("get", "/e_license/permits"),
    ("post", "/e_license/permits/{permit_id}/reissue"),
    ("get", "/individuals/persons/{iin}"),
    ("get", "/civil_registry/records/{iin}"),
    ("get", "/mobile_base/numbers/{iin}"),
    ("post", "/sms/messages"),
    ("get", "/sms/replies"),
    ("post", "/consent/consents"),
    ("post", "/sdu/records"),
    ("post", "/_control/sms/reply"),
    ("get", "/_control/sms/sent"),
    ("get", "/_control/faults"),
    ("post", "/_control/faults"),
    ("delete", "/_control/faults"),
    ("get", "/_control/state"),
    ("get", "/_control/clock"),
    ("post", "/_control/clock"),
    ("post", "/_control/rename"),
    ("post", "/_control/update"),
    ("get", "/_control/calls"),
    ("get", "/openapi.json"),
];

/// The document (built once).
pub fn document() -> &'static Value {
    static DOC: LazyLock<Value> = LazyLock::new(build);
    &DOC
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn error(description: &str) -> Value {
    json_response(description, schema_ref("Error"))
}

fn path_param(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description,
            "schema": { "type": "string" } })
}

fn query_param(name: &str, required: bool, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": required, "description": description,
            "schema": schema })
}

fn idempotency_header() -> Value {
    json!({ "name": "Idempotency-Key", "in": "header", "required": true,
            "description": "A repeated key returns the first answer unchanged and writes nothing.",
            "schema": { "type": "string", "minLength": 1 } })
}

fn body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

/// Responses every system endpoint may give under an injected fault.
fn with_fault_responses(mut responses: Value) -> Value {
    if let Some(map) = responses.as_object_mut() {
        map.insert("500".into(), error("Injected fault `error`"));
        map.insert(
            "503".into(),
            json!({ "description": "Injected fault `unavailable` (with Retry-After)",
                    "headers": { "Retry-After": { "schema": { "type": "integer" } } },
                    "content": { "application/json": { "schema": schema_ref("Error") } } }),
        );
    }
    responses
}

fn get_op(tag: &str, summary: &str, params: Vec<Value>, responses: Value) -> Value {
    let responses = if tag == "control" || tag == "meta" {
        responses
    } else {
        with_fault_responses(responses)
    };
    json!({ "tags": [tag], "summary": summary, "parameters": params, "responses": responses })
}

fn post_op(
    tag: &str,
    summary: &str,
    params: Vec<Value>,
    request: Value,
    responses: Value,
) -> Value {
    let mut op = get_op(tag, summary, params, responses);
    if let Some(map) = op.as_object_mut() {
        map.insert("requestBody".into(), body(request));
    }
    op
}

/// One branch of `UpdateRequest`: a system and a record of its shape.
fn update_of(system: &str, record: &str) -> Value {
    json!({ "type": "object", "required": ["system", "record"], "additionalProperties": false,
            "properties": { "system": { "type": "string", "enum": [system] }, "record": schema_ref(record) } })
}

fn page_params() -> Vec<Value> {
    vec![
        query_param(
            "cursor",
            false,
            "Opaque cursor from the previous page; absent = from the start.",
            json!({ "type": "string", "pattern": "^[0-9]*$" }),
        ),
        query_param(
            "limit",
            false,
            "Page size, default 500, at most 5000 (larger values are capped).",
            json!({ "type": "integer", "minimum": 0 }),
        ),
    ]
}

fn build() -> Value {
    let raw = json!({ "description": "An identifier or number exactly as the registry holds it (a string, or a number if the fixture had an unquoted one).",
                      "anyOf": [ { "type": "string" }, { "type": "number" } ] });
    let date_time = json!({ "type": "string", "format": "date-time" });
    let schemas = json!({
        "Error": { "type": "object", "required": ["error"],
                   "properties": { "error": { "type": "string" } } },
        "RawId": raw,
        "Rename": { "type": "object", "required": ["bin", "at", "from", "to"], "properties": {
            "bin": schema_ref("RawId"), "at": date_time, "from": { "type": "string" },
            "to": { "type": "string" } } },
        "RenamesPage": { "type": "object", "required": ["renames", "next_cursor"], "properties": {
            "renames": { "type": "array", "items": schema_ref("Rename") },
            "next_cursor": { "type": "string" } } },
        "Organization": { "type": "object", "required": ["bin", "name", "status", "first_head"], "properties": {
            "bin": schema_ref("RawId"), "name": { "type": "string" },
            "status": { "type": "string", "enum": ["active", "liquidated"] },
            "first_head": { "description": "IIN as held, or null when the registry names none",
                            "anyOf": [ { "type": "string", "nullable": true }, { "type": "number" } ] },
            "region": { "description": "KATO code of the registered address (9 digits), absent when none",
                        "anyOf": [ { "type": "string", "nullable": true }, { "type": "number" } ] },
            "activity": { "description": "OKED code of the main activity (5 digits, e.g. 62010), absent when none",
                          "anyOf": [ { "type": "string", "nullable": true }, { "type": "number" } ] } } },
        "Permit": { "type": "object", "required": ["permit_id", "bin", "service", "holder_name", "status"], "properties": {
            "permit_id": { "type": "string" }, "bin": schema_ref("RawId"), "service": { "type": "string" },
            "holder_name": { "type": "string" },
            "status": { "type": "string", "enum": ["active", "revoked"] } } },
        "Permits": { "type": "object", "required": ["permits"], "properties": {
            "permits": { "type": "array", "items": schema_ref("Permit") } } },
        "ReissueRequest": { "type": "object", "required": ["bin", "holder_name"], "properties": {
            "bin": schema_ref("RawId"), "holder_name": { "type": "string" } } },
        "ReissuedPermit": { "type": "object",
            "required": ["permit_id", "bin", "service", "holder_name", "status", "reissued_at"], "properties": {
            "permit_id": { "type": "string" }, "bin": schema_ref("RawId"), "service": { "type": "string" },
            "holder_name": { "type": "string" },
            "status": { "type": "string", "enum": ["active", "revoked"] }, "reissued_at": date_time } },
        "Person": { "type": "object", "required": ["iin", "name", "residence_abroad", "incapacitated", "imprisoned"], "properties": {
            "iin": schema_ref("RawId"), "name": { "type": "string" },
            "residence_abroad": { "type": "boolean" }, "incapacitated": { "type": "boolean" },
            "imprisoned": { "type": "boolean" } } },
        "CivilRecord": { "type": "object", "required": ["iin", "deceased", "declared_dead", "declared_missing"], "properties": {
            "iin": schema_ref("RawId"), "deceased": { "type": "boolean" },
            "declared_dead": { "type": "boolean" }, "declared_missing": { "type": "boolean" } } },
        "MobileNumber": { "type": "object", "required": ["iin", "phone"], "properties": {
            "iin": schema_ref("RawId"), "phone": schema_ref("RawId") } },
        "SmsRequest": { "type": "object", "required": ["to", "text"], "properties": {
            "to": { "type": "string" }, "text": { "type": "string" } } },
        "SmsAccepted": { "type": "object", "required": ["message_id", "accepted_at"], "properties": {
            "message_id": { "type": "string" }, "accepted_at": date_time } },
        "Reply": { "type": "object", "required": ["message_id", "from", "text", "received_at"], "properties": {
            "message_id": { "type": "string" }, "from": { "type": "string" }, "text": { "type": "string" },
            "received_at": date_time } },
        "RepliesPage": { "type": "object", "required": ["replies", "next_cursor"], "properties": {
            "replies": { "type": "array", "items": schema_ref("Reply") },
            "next_cursor": { "type": "string" } } },
        "ConsentRequest": { "type": "object", "required": ["iin", "bin", "purpose"], "properties": {
            "iin": schema_ref("RawId"), "bin": schema_ref("RawId"), "purpose": { "type": "string" } } },
        "ConsentRecorded": { "type": "object", "required": ["consent_id", "recorded_at"], "properties": {
            "consent_id": { "type": "string" }, "recorded_at": date_time } },
        "SduRequest": { "type": "object", "required": ["case_id", "bin", "new_name", "head_iin", "permit_ids"], "properties": {
            "case_id": schema_ref("RawId"), "bin": schema_ref("RawId"), "new_name": { "type": "string" },
            "head_iin": schema_ref("RawId"),
            "permit_ids": { "type": "array", "items": schema_ref("RawId") } } },
        "SduWritten": { "type": "object", "required": ["record_id", "written_at"], "properties": {
            "record_id": { "type": "string" }, "written_at": date_time } },
        "SystemName": { "type": "string", "enum": ["legal_entities", "e_license", "individuals",
            "civil_registry", "mobile_base", "sms", "consent", "sdu"] },
        "Fault": { "type": "object", "required": ["system", "mode"], "additionalProperties": false, "properties": {
            "system": schema_ref("SystemName"),
            "mode": { "type": "string", "enum": ["unavailable", "error", "slow", "malformed"] },
            "rate": { "type": "number", "minimum": 0, "maximum": 1, "default": 1 },
            "delay_ms": { "type": "integer", "minimum": 0, "default": 0 } } },
        "Faults": { "type": "object", "required": ["faults"], "properties": {
            "faults": { "type": "array", "items": schema_ref("Fault") } } },
        "ReplyRequest": { "type": "object", "required": ["from", "text"], "additionalProperties": false, "properties": {
            "from": schema_ref("RawId"), "text": { "type": "string" } } },
        "SentSms": { "type": "object", "required": ["message_id", "to", "text", "idempotency_key", "accepted_at"], "properties": {
            "message_id": { "type": "string" }, "to": { "type": "string" }, "text": { "type": "string" },
            "idempotency_key": { "type": "string" }, "accepted_at": date_time } },
        "PermitState": { "type": "object",
            "required": ["permit_id", "bin", "service", "holder_name", "status", "idempotency_key", "reissued_at"], "properties": {
            "permit_id": { "type": "string" }, "bin": schema_ref("RawId"), "service": { "type": "string" },
            "holder_name": { "type": "string" },
            "status": { "type": "string", "enum": ["active", "revoked"] },
            "idempotency_key": { "type": "string", "nullable": true },
            "reissued_at": { "type": "string", "format": "date-time", "nullable": true } } },
        "Consent": { "type": "object",
            "required": ["consent_id", "iin", "bin", "purpose", "idempotency_key", "recorded_at"], "properties": {
            "consent_id": { "type": "string" }, "iin": schema_ref("RawId"), "bin": schema_ref("RawId"),
            "purpose": { "type": "string" }, "idempotency_key": { "type": "string" }, "recorded_at": date_time } },
        "SduRecord": { "type": "object",
            "required": ["record_id", "case_id", "bin", "new_name", "head_iin", "permit_ids", "idempotency_key", "written_at"], "properties": {
            "record_id": { "type": "string" }, "case_id": schema_ref("RawId"), "bin": schema_ref("RawId"),
            "new_name": { "type": "string" }, "head_iin": schema_ref("RawId"),
            "permit_ids": { "type": "array", "items": schema_ref("RawId") },
            "idempotency_key": { "type": "string" }, "written_at": date_time } },
        "State": { "type": "object", "required": ["permits", "sdu_records", "consents"], "properties": {
            "permits": { "type": "array", "items": schema_ref("PermitState") },
            "sdu_records": { "type": "array", "items": schema_ref("SduRecord") },
            "consents": { "type": "array", "items": schema_ref("Consent") } } },
        "Clock": { "type": "object", "required": ["now"], "additionalProperties": false, "properties": {
            "now": date_time } },
        "RenameRequest": { "type": "object", "required": ["bin", "to"], "additionalProperties": false, "properties": {
            "bin": schema_ref("RawId"), "to": { "type": "string" }, "at": date_time } },
        "RenameApplied": { "type": "object", "required": ["bin", "to", "at"], "properties": {
            "bin": schema_ref("RawId"), "to": { "type": "string" }, "at": date_time } },
        "UpdateRequest": { "description": "A record in the fixture shape of its system (docs/RULES.md §6).", "oneOf": [
            update_of("legal_entities", "LegalEntityRecord"), update_of("e_license", "PermitRecord"),
            update_of("individuals", "PersonRecord"), update_of("civil_registry", "CivilRecordRecord"),
            update_of("mobile_base", "MobileRecord") ] },
        "LegalEntityRecord": { "type": "object", "required": ["bin", "name"], "additionalProperties": false, "properties": {
            "bin": schema_ref("RawId"), "name": { "type": "string" },
            "status": { "type": "string", "enum": ["active", "liquidated"] },
            "first_head": { "anyOf": [ { "type": "string", "nullable": true }, { "type": "number" } ] },
            "region": { "anyOf": [ { "type": "string", "nullable": true }, { "type": "number" } ] },
            "activity": { "anyOf": [ { "type": "string", "nullable": true }, { "type": "number" } ] },
            "renames": { "type": "array", "items": { "type": "object", "required": ["at", "from"],
                "additionalProperties": false,
                "properties": { "at": date_time, "from": { "type": "string" } } } } } },
        "PermitRecord": { "type": "object", "required": ["permit_id", "bin", "service", "holder_name"],
            "additionalProperties": false, "properties": {
            "permit_id": { "type": "string" }, "bin": schema_ref("RawId"), "service": { "type": "string" },
            "holder_name": { "type": "string" },
            "status": { "type": "string", "enum": ["active", "revoked"] } } },
        "PersonRecord": { "type": "object", "required": ["iin"], "additionalProperties": false, "properties": {
            "iin": schema_ref("RawId"), "name": { "type": "string" },
            "residence_abroad": { "type": "boolean" }, "incapacitated": { "type": "boolean" },
            "imprisoned": { "type": "boolean" } } },
        "CivilRecordRecord": { "type": "object", "required": ["iin"], "additionalProperties": false, "properties": {
            "iin": schema_ref("RawId"), "deceased": { "type": "boolean" },
            "declared_dead": { "type": "boolean" }, "declared_missing": { "type": "boolean" } } },
        "MobileRecord": { "type": "object", "required": ["iin", "phone"], "additionalProperties": false,
            "properties": { "iin": schema_ref("RawId"), "phone": schema_ref("RawId") } },
        "CallCounts": { "type": "object", "additionalProperties": { "type": "integer" } },
    });

    let bad =
        || error("Bad request (missing Idempotency-Key, body not the expected JSON, bad cursor)");
    let mut paths = serde_json::Map::new();
    let mut add = |method: &str, path: &str, op: Value| {
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        if let Some(map) = entry.as_object_mut() {
            map.insert(method.to_string(), op);
        }
    };

    add(
        "get",
        "/legal_entities/renames",
        get_op(
            "legal_entities",
            "Renames ordered by (at, bin), only those with at <= the mock clock",
            page_params(),
            json!({ "200": json_response("A page of renames", schema_ref("RenamesPage")), "400": bad() }),
        ),
    );
    add(
        "get",
        "/legal_entities/organizations/{bin}",
        get_op(
            "legal_entities",
            "One organisation",
            vec![path_param("bin", "BIN as held")],
            json!({ "200": json_response("The organisation", schema_ref("Organization")),
                "404": error("Unknown BIN") }),
        ),
    );
    add(
        "get",
        "/e_license/permits",
        get_op(
            "e_license",
            "An organisation's permits",
            vec![
                query_param("bin", true, "Holder's BIN", json!({ "type": "string" })),
                query_param(
                    "service",
                    false,
                    "Service code; absent = every service",
                    json!({ "type": "string" }),
                ),
            ],
            json!({ "200": json_response("Permits (possibly none)", schema_ref("Permits")), "400": bad() }),
        ),
    );
    add(
        "post",
        "/e_license/permits/{permit_id}/reissue",
        post_op(
            "e_license",
            "Re-issue a permit under a new holder name (idempotent)",
            vec![
                path_param("permit_id", "e-license permit id"),
                idempotency_header(),
            ],
            schema_ref("ReissueRequest"),
            json!({ "200": json_response("The re-issued permit", schema_ref("ReissuedPermit")),
                "400": bad(), "404": error("Unknown permit"),
                "422": error("Rejected: the permit is revoked or belongs to another BIN") }),
        ),
    );
    add(
        "get",
        "/individuals/persons/{iin}",
        get_op(
            "individuals",
            "A person",
            vec![path_param("iin", "IIN")],
            json!({ "200": json_response("The person", schema_ref("Person")), "404": error("Unknown IIN") }),
        ),
    );
    add(
        "get",
        "/civil_registry/records/{iin}",
        get_op(
            "civil_registry",
            "A person's civil record",
            vec![path_param("iin", "IIN")],
            json!({ "200": json_response("The record", schema_ref("CivilRecord")),
                "404": error("No record: alive, never declared") }),
        ),
    );
    add(
        "get",
        "/mobile_base/numbers/{iin}",
        get_op(
            "mobile_base",
            "The number registered for an IIN",
            vec![path_param("iin", "IIN")],
            json!({ "200": json_response("The number as registered", schema_ref("MobileNumber")),
                "404": error("No number registered") }),
        ),
    );
    add(
        "post",
        "/sms/messages",
        post_op(
            "sms",
            "Send an SMS (idempotent)",
            vec![idempotency_header()],
            schema_ref("SmsRequest"),
            json!({ "200": json_response("Accepted", schema_ref("SmsAccepted")), "400": bad() }),
        ),
    );
    add(
        "get",
        "/sms/replies",
        get_op(
            "sms",
            "Replies in arrival order",
            page_params(),
            json!({ "200": json_response("A page of replies", schema_ref("RepliesPage")), "400": bad() }),
        ),
    );
    add(
        "post",
        "/consent/consents",
        post_op(
            "consent",
            "Record consent (idempotent)",
            vec![idempotency_header()],
            schema_ref("ConsentRequest"),
            json!({ "200": json_response("Recorded", schema_ref("ConsentRecorded")), "400": bad() }),
        ),
    );
    add(
        "post",
        "/sdu/records",
        post_op(
            "sdu",
            "Write the re-issue result back to SDU (idempotent)",
            vec![idempotency_header()],
            schema_ref("SduRequest"),
            json!({ "200": json_response("Written", schema_ref("SduWritten")), "400": bad() }),
        ),
    );

    add(
        "post",
        "/_control/sms/reply",
        post_op(
            "control",
            "A head answers an SMS",
            vec![],
            schema_ref("ReplyRequest"),
            json!({ "200": json_response("The reply as the gateway received it", schema_ref("Reply")),
                "400": bad() }),
        ),
    );
    add(
        "get",
        "/_control/sms/sent",
        get_op(
            "control",
            "Every SMS the gateway accepted",
            vec![],
            json!({ "200": json_response("Sent SMS in order",
                                     json!({ "type": "array", "items": schema_ref("SentSms") })) }),
        ),
    );
    add(
        "get",
        "/_control/faults",
        get_op(
            "control",
            "Faults switched on",
            vec![],
            json!({ "200": json_response("Active faults", schema_ref("Faults")) }),
        ),
    );
    add(
        "post",
        "/_control/faults",
        post_op(
            "control",
            "Switch a fault on for one system (replaces its previous one)",
            vec![],
            schema_ref("Fault"),
            json!({ "200": json_response("Active faults", schema_ref("Faults")), "400": bad() }),
        ),
    );
    add(
        "delete",
        "/_control/faults",
        get_op(
            "control",
            "Clear every fault, or one system's",
            vec![query_param(
                "system",
                false,
                "Clear only this system's fault",
                schema_ref("SystemName"),
            )],
            json!({ "200": json_response("Active faults", schema_ref("Faults")), "400": bad() }),
        ),
    );
    add(
        "get",
        "/_control/state",
        get_op(
            "control",
            "Permits, SDU records and consents as they stand",
            vec![],
            json!({ "200": json_response("State", schema_ref("State")) }),
        ),
    );
    add(
        "get",
        "/_control/clock",
        get_op(
            "control",
            "The mock's clock",
            vec![],
            json!({ "200": json_response("Now", schema_ref("Clock")) }),
        ),
    );
    add(
        "post",
        "/_control/clock",
        post_op(
            "control",
            "Set the mock's clock",
            vec![],
            schema_ref("Clock"),
            json!({ "200": json_response("Now", schema_ref("Clock")), "400": bad() }),
        ),
    );
    add(
        "post",
        "/_control/rename",
        post_op(
            "control",
            "A scenario rename event (at defaults to the mock's now)",
            vec![],
            schema_ref("RenameRequest"),
            json!({ "200": json_response("Applied", schema_ref("RenameApplied")), "400": bad(),
                "404": error("Unknown BIN") }),
        ),
    );
    add(
        "post",
        "/_control/update",
        post_op(
            "control",
            "A scenario update event: replace or add one registry record",
            vec![],
            schema_ref("UpdateRequest"),
            json!({ "200": json_response("Applied", schema_ref("UpdateRequest")), "400": bad() }),
        ),
    );
    add(
        "get",
        "/_control/calls",
        get_op(
            "control",
            "Requests served per system",
            vec![],
            json!({ "200": json_response("Counts", schema_ref("CallCounts")) }),
        ),
    );
    add(
        "get",
        "/openapi.json",
        get_op(
            "meta",
            "This document",
            vec![],
            json!({ "200": json_response("OpenAPI 3.0 document", json!({ "type": "object" })) }),
        ),
    );

    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "sdu mock registries",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every external system of the proactive re-issue service (legal entities, e-license, individuals, civil registry, mobile base, SMS gateway, consent service, SDU), each under its own path prefix, plus control endpoints for tests. Any system endpoint may answer 503/500 or a non-JSON body while a fault is injected."
        },
        "paths": paths,
        "components": { "schemas": schemas },
    })
}
