//! The study design of a dataset: which samples belong to which condition, whether there are
//! replicates, and whether a batch key is confounded with the condition.
//!
//! Cells are not replicates; samples are. Every step that makes a call between conditions asks
//! this module whether it can be decided by samples, and every limit of the design is written
//! out in plain words ([`Design::limits`]) for the console, `summary.json` and the report.

use crate::dataset::CellTable;
use crate::error::{Error, Result};

/// Labels of one cell-table key as codes `0..names.len()`, numbered in order of first
/// appearance.
#[derive(Debug, Clone, PartialEq)]
pub struct Codes {
    /// The key (`sample`, `condition` or a column name).
    pub key: String,
    /// Code of each cell.
    pub codes: Vec<u32>,
    /// Name of each code.
    pub names: Vec<String>,
}

impl Codes {
    /// Codes of `labels`, numbered in order of first appearance.
    pub fn from_labels<S: AsRef<str>>(key: &str, labels: &[S]) -> Codes {
        let mut names: Vec<String> = Vec::new();
        let mut index = std::collections::HashMap::new();
        let codes = labels
            .iter()
            .map(|l| {
                let l = l.as_ref();
                *index.entry(l.to_string()).or_insert_with(|| {
                    names.push(l.to_string());
                    (names.len() - 1) as u32
                })
            })
            .collect();
        Codes {
            key: key.to_string(),
            codes,
            names,
        }
    }

    /// Codes of a cell-table key: `sample`, `condition`, or the name of a column (its values
    /// as text). Errors name the key and the columns there are.
    pub fn of(cells: &CellTable, key: &str) -> Result<Codes> {
        match key {
            "sample" => Ok(Codes::from_labels(key, &cells.sample)),
            "condition" => Ok(Codes::from_labels(key, &cells.condition)),
            _ => {
                let col = cells.columns.get(key).ok_or_else(|| {
                    let mut have = vec!["sample".to_string(), "condition".to_string()];
                    have.extend(cells.columns.iter().map(|(n, _)| n.to_string()));
                    Error::option(
                        "batch_key",
                        format!(
                            "{key:?} is not a column of the cell table (columns: {})",
                            have.join(", ")
                        ),
                    )
                })?;
                let labels: Vec<String> = (0..col.len()).map(|i| col.format(i)).collect();
                Ok(Codes::from_labels(key, &labels))
            }
        }
    }

    /// Number of distinct labels.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when there is no label.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Samples and conditions of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Design {
    /// Sample names, in order of first appearance.
    pub samples: Vec<String>,
    /// Condition of each sample (index into `conditions`).
    pub condition_of_sample: Vec<u32>,
    /// Condition names, in order of first appearance.
    pub conditions: Vec<String>,
    /// Samples per condition.
    pub samples_per_condition: Vec<usize>,
}

impl Design {
    /// The design of `cells`. A sample whose cells carry two conditions is an error naming it.
    pub fn of(cells: &CellTable) -> Result<Design> {
        let samples = Codes::from_labels("sample", &cells.sample);
        let conditions = Codes::from_labels("condition", &cells.condition);
        let mut condition_of_sample = vec![u32::MAX; samples.len()];
        for (&s, &c) in samples.codes.iter().zip(&conditions.codes) {
            let slot = &mut condition_of_sample[s as usize];
            if *slot == u32::MAX {
                *slot = c;
            } else if *slot != c {
                return Err(Error::data(
                    format!("sample {:?}", samples.names[s as usize]),
                    format!(
                        "its cells carry two conditions ({:?} and {:?}); a sample belongs to one \
                         condition",
                        conditions.names[*slot as usize], conditions.names[c as usize]
                    ),
                ));
            }
        }
        let mut samples_per_condition = vec![0; conditions.len()];
        for &c in &condition_of_sample {
            samples_per_condition[c as usize] += 1;
        }
        Ok(Design {
            samples: samples.names,
            condition_of_sample,
            conditions: conditions.names,
            samples_per_condition,
        })
    }

    /// True when every condition has at least two samples: tests between conditions can then
    /// be decided by samples.
    pub fn has_replicates(&self) -> bool {
        !self.samples_per_condition.is_empty() && self.samples_per_condition.iter().all(|&n| n >= 2)
    }

    /// The limits of the design for a comparison of conditions, in plain words (empty when
    /// there are none): one sample in a condition, one condition only, and a batch key that
    /// splits the cells exactly as the conditions do (`batch`, when integration is used).
    pub fn limits(&self, cells: &CellTable, batch: Option<&Codes>) -> Vec<String> {
        let mut out = Vec::new();
        if self.conditions.len() < 2 {
            return out;
        }
        let single: Vec<&str> = self
            .conditions
            .iter()
            .zip(&self.samples_per_condition)
            .filter(|(_, &n)| n < 2)
            .map(|(c, _)| c.as_str())
            .collect();
        if !single.is_empty() {
            out.push(format!(
                "condition(s) {} have a single sample: a difference between conditions cannot be \
                 told from a difference between samples, so condition calls rest on cells as if \
                 they were replicates and their p-values are too small",
                single.join(", ")
            ));
        }
        if let Some(b) = batch {
            let conditions = Codes::from_labels("condition", &cells.condition);
            if same_partition(&b.codes, &conditions.codes) {
                out.push(format!(
                    "the batch key {:?} splits the cells exactly as the conditions do: \
                     integration over it removes condition differences together with batch \
                     differences, so clusters specific to a condition may be merged away",
                    b.key
                ));
            } else if b.key == "sample" && !single.is_empty() {
                out.push(
                    "integration over samples with a single sample in a condition also removes \
                     part of that condition's difference"
                        .to_string(),
                );
            }
        }
        out
    }
}

/// True when the two labellings group the cells identically (up to renaming).
fn same_partition(a: &[u32], b: &[u32]) -> bool {
    let mut ab = std::collections::HashMap::new();
    let mut ba = std::collections::HashMap::new();
    a.iter()
        .zip(b)
        .all(|(&x, &y)| *ab.entry(x).or_insert(y) == y && *ba.entry(y).or_insert(x) == x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(samples: &[&str], conditions: &[&str]) -> CellTable {
        let mut t = CellTable::new(
            (0..samples.len()).map(|i| format!("c{i}")).collect(),
            "",
            "",
        );
        t.sample = samples.iter().map(|s| s.to_string()).collect();
        t.condition = conditions.iter().map(|s| s.to_string()).collect();
        t
    }

    #[test]
    fn replicates_and_limits() {
        let t = cells(&["a", "a", "b", "c", "d"], &["p", "p", "p", "r", "r"]);
        let d = Design::of(&t).unwrap();
        assert_eq!(d.samples_per_condition, vec![2, 2]);
        assert!(d.has_replicates());
        let b = Codes::of(&t, "sample").unwrap();
        assert!(d.limits(&t, Some(&b)).is_empty());

        let t = cells(&["a", "a", "b", "b"], &["p", "p", "r", "r"]);
        let d = Design::of(&t).unwrap();
        assert!(!d.has_replicates());
        let b = Codes::of(&t, "sample").unwrap();
        let l = d.limits(&t, Some(&b));
        assert_eq!(l.len(), 2, "{l:?}");
        assert!(l[0].contains("single sample"));
        assert!(l[1].contains("splits the cells exactly as the conditions"));
    }

    #[test]
    fn a_sample_with_two_conditions_is_an_error() {
        let t = cells(&["a", "a"], &["p", "r"]);
        let e = Design::of(&t).unwrap_err().to_string();
        assert!(e.contains("\"a\"") && e.contains("two conditions"), "{e}");
    }

    #[test]
    fn unknown_batch_key_names_the_columns() {
        let t = cells(&["a"], &["p"]);
        let e = Codes::of(&t, "lane").unwrap_err().to_string();
        assert!(e.contains("lane") && e.contains("sample, condition"), "{e}");
    }
}
