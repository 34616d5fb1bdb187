//! JSON round trips of records, findings and timelines, as a recording and its replay make.

use serde_json::Value;

/// A JSON value with every `comm` member blanked, to compare what must survive a round trip
/// even when a comm is shown lossily.
pub fn without_comms(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if k == "comm" {
                        *x = Value::Null;
                    } else {
                        walk(x);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

/// Serializes `x`, reads it back as `T`, and checks that the JSON of both agree (comms aside).
/// Returns the value read back.
pub fn round_trip<T>(x: &T) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let json = serde_json::to_string(x).expect("serializes");
    let back: T = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("own output does not read back: {e}: {json}"));
    let again = serde_json::to_string(&back).expect("serializes");
    if again != json {
        let before: Value = serde_json::from_str(&json).expect("valid JSON");
        let after: Value = serde_json::from_str(&again).expect("valid JSON");
        assert_eq!(
            without_comms(before),
            without_comms(after),
            "JSON round trip changed {json}"
        );
    }
    back
}

/// The sink's own record encoder writes exactly what serde_json writes.
pub fn same_as_serde(r: &signal_trace::event::record::Record) {
    let mut ours = Vec::new();
    signal_trace::sink::ndjson::Encoder::default().record(&mut ours, r);
    let theirs = serde_json::to_vec(r).expect("serializes");
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&theirs),
        "the record encoder and serde_json disagree"
    );
}
