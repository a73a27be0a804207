//! The page: its sections, its data object, and the template they fill.

use super::escape::{html, json_for_script};
use serde_json::{Map, Value};

const TEMPLATE: &str = include_str!("../../assets/report/template.html");
const CSS: &str = include_str!("../../assets/report/report.css");
const JS: &str = include_str!("../../assets/report/report.js");

/// One section of the page.
pub struct Section {
    /// The element id (stable: the browser test looks sections up by it).
    pub id: &'static str,
    /// Heading.
    pub title: String,
    /// Body (HTML, already escaped).
    pub body: String,
}

/// Sections in order and the data object the script reads.
#[derive(Default)]
pub struct Page {
    sections: Vec<Section>,
    data: Map<String, Value>,
    tables: Map<String, Value>,
}

impl Page {
    /// Adds a section.
    pub fn section(&mut self, id: &'static str, title: impl Into<String>, body: String) {
        self.sections.push(Section {
            id,
            title: title.into(),
            body,
        });
    }

    /// Sets a top-level key of the data object.
    pub fn set(&mut self, key: &str, value: Value) {
        self.data.insert(key.to_string(), value);
    }

    /// Registers a sortable, filterable table and returns the placeholder the script fills.
    /// `columns` are (header, whether the column holds numbers: sorted as numbers and
    /// written with four significant digits).
    pub fn table(&mut self, id: &str, columns: &[(&str, bool)], rows: Vec<Vec<Value>>) -> String {
        let cols: Vec<Value> = columns
            .iter()
            .map(|(name, num)| serde_json::json!({"name": name, "num": num}))
            .collect();
        self.tables.insert(
            id.to_string(),
            serde_json::json!({"columns": cols, "rows": rows}),
        );
        format!("<div class=\"tbl\" data-table=\"{}\"></div>", html(id))
    }

    /// The whole page.
    pub fn render(mut self, title: &str) -> String {
        self.data
            .insert("tables".to_string(), Value::Object(self.tables));
        self.data.insert(
            "sections".to_string(),
            Value::Array(
                self.sections
                    .iter()
                    .map(|s| Value::String(s.id.to_string()))
                    .collect(),
            ),
        );
        let nav: String = self
            .sections
            .iter()
            .map(|s| format!("<a href=\"#{}\">{}</a>", s.id, html(&s.title)))
            .collect();
        let body: String = self
            .sections
            .iter()
            .map(|s| {
                format!(
                    "<section id=\"{}\"><h2>{}</h2>{}</section>\n",
                    s.id,
                    html(&s.title),
                    s.body
                )
            })
            .collect();
        let data = json_for_script(&Value::Object(self.data));
        // The template's slots are filled in one pass over the template only, so text in the
        // filled parts is never read as a slot.
        let mut out = String::with_capacity(TEMPLATE.len() + body.len() + data.len() + JS.len());
        let mut rest = TEMPLATE;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let Some(len) = rest[start..].find("}}") else {
                break;
            };
            match &rest[start + 2..start + len] {
                "title" => out.push_str(&html(title)),
                "css" => out.push_str(CSS),
                "nav" => out.push_str(&nav),
                "sections" => out.push_str(&body),
                "data" => out.push_str(&data),
                "js" => out.push_str(JS),
                other => {
                    out.push_str("{{");
                    out.push_str(other);
                    out.push_str("}}");
                }
            }
            rest = &rest[start + len + 2..];
        }
        out.push_str(rest);
        out
    }
}
