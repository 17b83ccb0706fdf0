//! Concise problem details (RFC 9290), the error bodies of the SCRAPI endpoints.

use coset::cbor::value::Value;

/// Media type of concise problem details.
pub const PROBLEM_CONTENT_TYPE: &str = "application/concise-problem-details+cbor";

/// `{-1: title, -2: detail}` (RFC 9290 section 2: title and detail).
pub fn problem_details(title: &str, detail: &str) -> Vec<u8> {
    let value = Value::Map(vec![
        (Value::from(-1), Value::Text(title.to_owned())),
        (Value::from(-2), Value::Text(detail.to_owned())),
    ]);
    let mut out = Vec::new();
    // Writing to a Vec cannot fail; an empty body is the fallback all the same.
    if coset::cbor::ser::into_writer(&value, &mut out).is_err() {
        out.clear();
    }
    out
}

/// Reads the title and detail back (for clients and tests); `None` if the bytes are not
/// a problem-details map with both.
pub fn parse_problem_details(bytes: &[u8]) -> Option<(String, String)> {
    let Ok(Value::Map(entries)) = crate::decode_value(bytes) else {
        return None;
    };
    let text = |key: i64| {
        entries.iter().find_map(|(k, v)| match (k.as_integer(), v) {
            (Some(k), Value::Text(t)) if i128::from(k) == i128::from(key) => Some(t.clone()),
            _ => None,
        })
    };
    Some((text(-1)?, text(-2)?))
}
