//! The sections of the page, one module per part of the results.

pub mod cells;
pub mod comparison;
pub mod interactions;
pub mod summary;

use super::escape::html;
use serde_json::Value;

/// A finite number as JSON, `null` otherwise (NaN, infinities).
pub fn num(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// A `<dl>` of label / value pairs (both escaped).
pub fn facts(items: &[(&str, String)]) -> String {
    let mut s = String::from("<dl class=\"facts\">");
    for (k, v) in items {
        s.push_str(&format!("<dt>{}</dt><dd>{}</dd>", html(k), html(v)));
    }
    s.push_str("</dl>");
    s
}

/// A list of notes (escaped), styled as warnings; empty when there are none.
pub fn notes(items: &[String]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let mut s = String::from("<ul class=\"notes\">");
    for n in items {
        s.push_str(&format!("<li>{}</li>", html(n)));
    }
    s.push_str("</ul>");
    s
}
