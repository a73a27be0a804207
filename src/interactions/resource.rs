//! Ligand-receptor resources: the bundled CellPhoneDB v5 database and custom CSV files.
//!
//! The bundled resource ([`cellphonedb_v5`]) is CellPhoneDB's curated database, release 5.0.0
//! (Garcia-Alonso et al. 2022; Troulé et al. 2025; repository `ventolab/cellphonedb-data`,
//! MIT like the CellphoneDB package), reduced by `scripts/make_lr_resource.py` to one row per
//! interaction (`assets/interactions/SOURCES.md`). Layout of that file, which custom
//! resources may share (comma or tab separated, header required, other columns ignored):
//!
//! | column | meaning |
//! |---|---|
//! | `id_cp_interaction` | identifier (optional; defaults to `partner_a\|partner_b`) |
//! | `partner_a`, `partner_b` | a gene symbol or a complex name |
//! | `genes_a`, `genes_b` | the partner's gene, or its subunits joined by `+` (optional; default the partner's name split at `+`) |
//! | `classification` | e.g. `Signaling by Chemokines`, `Adhesion by Cadherin` (optional) |
//! | `directionality` | `Ligand-Receptor`, `Adhesion-Adhesion`, ... (optional) |
//! | `secreted`, `integrin` | `true` / `false`: either partner secreted / an integrin (optional) |
//!
//! A simple list with `ligand` and `receptor` columns also loads (a `+` in a name makes a
//! complex of those genes). Genes absent from the data are counted by [`Resource::usable`] and
//! reported, not fatal.

use crate::error::{Error, Result};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

const CELLPHONEDB_V5: &[u8] = include_bytes!("../../assets/interactions/cellphonedb_v5.csv.gz");

/// One side of an interaction: a gene, or a heteromeric complex of several.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Partner {
    /// The gene symbol, or the complex name.
    pub name: String,
    /// The gene, or the complex's subunits (at least one).
    pub genes: Vec<String>,
}

impl Partner {
    /// Whether the partner is a complex (a name other than its single gene, or several genes).
    pub fn is_complex(&self) -> bool {
        self.genes.len() > 1 || self.genes.first() != Some(&self.name)
    }
}

/// Kind of signalling an interaction belongs to, for the summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SignalKind {
    /// Classified `Adhesion by ...` or `Adhesion-Adhesion` (adhesion, whatever the flags).
    Adhesion,
    /// A partner is secreted (humoral signalling).
    Secreted,
    /// Membrane-bound signalling that is not adhesion.
    Membrane,
}

impl SignalKind {
    /// `adhesion`, `secreted` or `membrane`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::Adhesion => "adhesion",
            SignalKind::Secreted => "secreted",
            SignalKind::Membrane => "membrane",
        }
    }
}

/// One curated interaction between partner A and partner B. In CellPhoneDB v5 partner A is the
/// ligand of `Ligand-Receptor` interactions.
#[derive(Debug, Clone, PartialEq)]
pub struct LrInteraction {
    /// Identifier (CellPhoneDB's `id_cp_interaction`).
    pub id: String,
    /// Partner A (the ligand of a ligand-receptor interaction).
    pub partner_a: Partner,
    /// Partner B (the receptor).
    pub partner_b: Partner,
    /// CellPhoneDB's classification, e.g. `Signaling by Chemokines` (may be empty).
    pub classification: String,
    /// CellPhoneDB's directionality, e.g. `Ligand-Receptor` (may be empty).
    pub directionality: String,
    /// Either partner is secreted.
    pub secreted: bool,
    /// Either partner is an integrin.
    pub integrin: bool,
}

impl LrInteraction {
    /// Adhesion (classification or directionality says so), else secreted (a partner is),
    /// else membrane-bound.
    pub fn kind(&self) -> SignalKind {
        if self.classification.starts_with("Adhesion") || self.directionality == "Adhesion-Adhesion"
        {
            SignalKind::Adhesion
        } else if self.secreted {
            SignalKind::Secreted
        } else {
            SignalKind::Membrane
        }
    }

    /// `A_B` as CellPhoneDB's `interacting_pair` (partner names joined by `_`).
    pub fn pair_name(&self) -> String {
        format!("{}_{}", self.partner_a.name, self.partner_b.name)
    }
}

/// A ligand-receptor resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// Where it came from (`CellPhoneDB v5.0.0` or the file path).
    pub name: String,
    /// The interactions, in file order.
    pub interactions: Vec<LrInteraction>,
}

/// The interactions of a resource whose genes are all in the data ([`Resource::usable`]).
#[derive(Debug, Clone, PartialEq)]
pub struct UsableResource {
    /// Indices into [`Resource::interactions`] of the interactions kept.
    pub kept: Vec<usize>,
    /// Interactions dropped because a gene is missing from the data.
    pub n_dropped: usize,
    /// The resource's genes missing from the data, sorted.
    pub unknown_genes: Vec<String>,
}

impl UsableResource {
    /// The kept interactions of `resource` (the one this was computed from), in its order.
    pub(crate) fn interactions<'a>(&self, resource: &'a Resource) -> Vec<&'a LrInteraction> {
        self.kept
            .iter()
            .map(|&i| &resource.interactions[i])
            .collect()
    }
}

impl Resource {
    /// The interactions whose every gene is among `gene_names`, and the genes that are not.
    pub fn usable(&self, gene_names: &[String]) -> UsableResource {
        let known: HashSet<&str> = gene_names.iter().map(String::as_str).collect();
        let mut unknown = HashSet::new();
        let mut kept = Vec::new();
        for (i, it) in self.interactions.iter().enumerate() {
            let mut ok = true;
            for g in it.partner_a.genes.iter().chain(&it.partner_b.genes) {
                if !known.contains(g.as_str()) {
                    unknown.insert(g.clone());
                    ok = false;
                }
            }
            if ok {
                kept.push(i);
            }
        }
        let mut unknown_genes: Vec<String> = unknown.into_iter().collect();
        unknown_genes.sort_unstable();
        UsableResource {
            n_dropped: self.interactions.len() - kept.len(),
            kept,
            unknown_genes,
        }
    }

    /// The distinct genes of the resource, sorted.
    pub fn genes(&self) -> Vec<String> {
        let mut g: Vec<String> = self
            .interactions
            .iter()
            .flat_map(|i| i.partner_a.genes.iter().chain(&i.partner_b.genes).cloned())
            .collect();
        g.sort_unstable();
        g.dedup();
        g
    }
}

/// The bundled CellPhoneDB v5.0.0 resource (2,911 interactions; see the module docs).
pub fn cellphonedb_v5() -> Result<Resource> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(CELLPHONEDB_V5)
        .read_to_string(&mut text)
        .map_err(|e| Error::data("bundled CellPhoneDB resource", e.to_string()))?;
    let mut r = parse_resource(Path::new("<bundled cellphonedb_v5.csv.gz>"), &text)?;
    r.name = "CellPhoneDB v5.0.0".to_string();
    Ok(r)
}

/// Reads a resource file (plain or gzip) in the layout of the module docs, or a simple list
/// with `ligand` and `receptor` columns. An empty file (no header) is an error naming the file;
/// a line with a missing partner is an error naming the file and line.
pub fn read_resource(path: impl AsRef<Path>) -> Result<Resource> {
    let path = path.as_ref();
    let mut text = String::new();
    crate::io::open_text(path)?
        .read_to_string(&mut text)
        .map_err(|e| Error::parse(path, 0, e.to_string()))?;
    parse_resource(path, &text)
}

fn parse_bool(path: &Path, line: u64, col: &str, s: &str) -> Result<bool> {
    match s.to_ascii_lowercase().as_str() {
        "" | "false" | "0" | "no" => Ok(false),
        "true" | "1" | "yes" => Ok(true),
        other => Err(Error::parse(
            path,
            line,
            format!("column `{col}`: expected true or false, found {other:?}"),
        )),
    }
}

fn split_genes(path: &Path, line: u64, what: &str, s: &str) -> Result<Vec<String>> {
    let genes: Vec<String> = s.split('+').map(|g| g.trim().to_string()).collect();
    if genes.iter().any(String::is_empty) {
        return Err(Error::parse(
            path,
            line,
            format!("{what} {s:?} has an empty gene"),
        ));
    }
    Ok(genes)
}

/// Parses resource text (see [`read_resource`]); `path` names the source in errors.
pub fn parse_resource(path: &Path, text: &str) -> Result<Resource> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| Error::parse(path, 1, "empty file: expected a header"))?;
    let sep = if header.contains('\t') { '\t' } else { ',' };
    let cols: Vec<String> = header
        .trim_end_matches('\r')
        .split(sep)
        .map(|c| c.trim().to_lowercase())
        .collect();
    let col = |name: &str| cols.iter().position(|c| c == name);
    let (ia, ib) = match (
        col("partner_a"),
        col("partner_b"),
        col("ligand"),
        col("receptor"),
    ) {
        (Some(a), Some(b), _, _) | (None, _, Some(a), Some(b)) => (a, b),
        _ => {
            return Err(Error::parse(
                path,
                1,
                "header needs `partner_a` and `partner_b` columns, or `ligand` and `receptor`",
            ))
        }
    };
    let (iga, igb) = (col("genes_a"), col("genes_b"));
    let (iid, icl, idir, isec, iint) = (
        col("id_cp_interaction"),
        col("classification"),
        col("directionality"),
        col("secreted"),
        col("integrin"),
    );
    let simple = col("partner_a").is_none();
    let mut interactions = Vec::new();
    for (i, line) in lines {
        let line_no = i as u64 + 1;
        let f: Vec<&str> = line
            .trim_end_matches('\r')
            .split(sep)
            .map(str::trim)
            .collect();
        let get = |k: Option<usize>| k.and_then(|k| f.get(k).copied()).unwrap_or("");
        let name = |k: usize, what: &str| -> Result<String> {
            match f.get(k) {
                Some(s) if !s.is_empty() => Ok(s.to_string()),
                _ => Err(Error::parse(
                    path,
                    line_no,
                    format!("missing {what} (column {})", k + 1),
                )),
            }
        };
        let (wa, wb) = if simple {
            ("ligand", "receptor")
        } else {
            ("partner_a", "partner_b")
        };
        let (na, nb) = (name(ia, wa)?, name(ib, wb)?);
        let genes = |g: &str, n: &str, what: &str| {
            split_genes(path, line_no, what, if g.is_empty() { n } else { g })
        };
        let partner_a = Partner {
            genes: genes(get(iga), &na, wa)?,
            name: na,
        };
        let partner_b = Partner {
            genes: genes(get(igb), &nb, wb)?,
            name: nb,
        };
        let id = match get(iid) {
            "" => format!("{}|{}", partner_a.name, partner_b.name),
            s => s.to_string(),
        };
        interactions.push(LrInteraction {
            id,
            classification: get(icl).to_string(),
            directionality: match get(idir) {
                "" if simple => "Ligand-Receptor".to_string(),
                s => s.to_string(),
            },
            secreted: parse_bool(path, line_no, "secreted", get(isec))?,
            integrin: parse_bool(path, line_no, "integrin", get(iint))?,
            partner_a,
            partner_b,
        });
    }
    Ok(Resource {
        name: path.display().to_string(),
        interactions,
    })
}

/// Position of each gene symbol among the data's gene names (the first when repeated).
pub(crate) fn gene_positions(gene_names: &[String]) -> HashMap<&str, usize> {
    let mut pos = HashMap::with_capacity(gene_names.len());
    for (i, g) in gene_names.iter().enumerate() {
        pos.entry(g.as_str()).or_insert(i);
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_resource_has_complexes_and_kinds() {
        let r = cellphonedb_v5().unwrap();
        assert_eq!(r.interactions.len(), 2911);
        let ccl2 = r
            .interactions
            .iter()
            .find(|i| i.partner_a.name == "CCL2" && i.partner_b.name == "CCR2")
            .unwrap();
        assert_eq!(ccl2.kind(), SignalKind::Secreted);
        let complexes = r
            .interactions
            .iter()
            .filter(|i| i.partner_b.genes.len() > 1)
            .count();
        assert!(complexes > 300, "{complexes}");
        assert!(r
            .interactions
            .iter()
            .any(|i| i.kind() == SignalKind::Adhesion && i.integrin));
    }

    #[test]
    fn simple_list_and_errors() {
        let p = Path::new("x.csv");
        let r = parse_resource(p, "ligand,receptor\nCCL2,CCR2\nIL6,IL6R+IL6ST\n").unwrap();
        assert_eq!(r.interactions.len(), 2);
        assert!(r.interactions[1].partner_b.is_complex());
        assert_eq!(r.interactions[1].partner_b.genes, ["IL6R", "IL6ST"]);
        let e = parse_resource(p, "ligand,receptor\nCCL2,CCR2\n\nIL6,\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.csv") && e.contains('4'), "{e}");
        assert!(parse_resource(p, "").is_err());
        assert!(parse_resource(p, "a,b\n").is_err());
    }
}
