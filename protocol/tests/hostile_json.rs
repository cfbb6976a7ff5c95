//! The WebSocket protocol's parser, fed what a hostile client could send: any text, and
//! JSON objects with a real message type and fields of any type and depth. It answers
//! `Ok` or `Err`, never panics; what it accepts re-serialises (so what the session
//! handles is a well-formed message); its error text is what the session clips before
//! echoing (`signaling/src/session_limits.rs`).

use cauhop_protocol::ClientMsg;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const TYPES: &[&str] = &[
    "join",
    "offer",
    "answer",
    "ready",
    "mute",
    "ping",
    "leave",
    "mute_participant",
    "grant_floor",
    "extend",
    "end_meeting",
    "view",
];

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn message() -> impl Strategy<Value = String> {
    (
        prop::sample::select(TYPES),
        prop::collection::btree_map(
            prop_oneof![
                Just("v".to_owned()),
                Just("meeting".to_owned()),
                Just("name".to_owned()),
                Just("sdp".to_owned()),
                Just("participant".to_owned()),
                Just("minutes".to_owned()),
                Just("slots".to_owned()),
                Just("tiles".to_owned()),
                "[a-z_]{1,12}",
            ],
            any_json(),
            0..6,
        ),
    )
        .prop_map(|(t, fields)| {
            let mut m = Map::new();
            m.insert("type".into(), Value::String(t.to_owned()));
            m.extend(fields);
            Value::Object(m).to_string()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, timeout: 10_000, ..ProptestConfig::default() })]

    #[test]
    fn any_text_parses_or_is_refused(text in ".{0,2000}") {
        let _ = ClientMsg::parse(&text);
    }

    #[test]
    fn messages_of_real_types_with_any_fields(text in message()) {
        if let Ok(m) = ClientMsg::parse(&text) {
            // Accepted: a well-formed message that survives a round trip.
            let again = serde_json::to_string(&m).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(ClientMsg::parse(&again).is_ok(), "{again}");
        }
    }
}
