//! Escaping for the two contexts the page puts text in.
//!
//! - HTML text and attribute values ([`html`]): `&`, `<`, `>`, `"` and `'` become character
//!   references, so a gene or sample name can never open a tag or leave an attribute.
//! - Data inside `<script type="application/json">` ([`json_for_script`]): the JSON text with
//!   `<`, `>` and `&` written as `\u003c`, `\u003e`, `\u0026` (as Go's `html/template` and
//!   Rails' `json_escape` do), so no string can close the script element (`</script>`) or open
//!   a comment (`<!--`), and `JSON.parse` still reads the same strings back. U+2028 and U+2029
//!   are escaped too, for readers that evaluate the text as JavaScript.
//!
//! Non-ASCII text is kept as UTF-8 (the page declares `charset="utf-8"`).

use std::borrow::Cow;

/// `s` escaped for HTML text or a quoted attribute value.
pub fn html(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `value` serialized as JSON that is safe inside a `<script type="application/json">`
/// element (see the module docs).
pub fn json_for_script(value: &serde_json::Value) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len() + text.len() / 64);
    for ch in text.chars() {
        match ch {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_markup_and_keeps_unicode() {
        assert_eq!(
            html(r#"<b>"A&B'</b> é"#),
            "&lt;b&gt;&quot;A&amp;B&#39;&lt;/b&gt; é"
        );
        assert!(matches!(html("CD3E"), Cow::Borrowed(_)));
    }

    #[test]
    fn script_json_cannot_close_the_element_and_round_trips() {
        let v = serde_json::json!({"name": "</script><script>alert(1)</script> <!-- & é \u{2028}"});
        let s = json_for_script(&v);
        assert!(!s.contains('<') && !s.contains('>') && !s.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
    }
}
