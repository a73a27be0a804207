//! Gene sets: GMT and two-column tables, the bundled Gene Ontology library, over-representation
//! tests and per-cell gene-set scores.

use crate::error::{Error, Result};
use crate::sparse::CsrMatrix;
use crate::stats::{benjamini_hochberg, hypergeom_sf};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, Read};
use std::path::Path;

/// A named set of genes.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneSet {
    /// Identifier (e.g. `GO:0098609`).
    pub id: String,
    /// Description (e.g. `cell-cell adhesion`); the id when the source has none.
    pub name: String,
    /// Gene symbols, unique, in file order.
    pub genes: Vec<String>,
}

/// Human GO biological-process sets bundled with the crate (see `assets/genesets/SOURCES.md`).
const GO_BP_HUMAN: &[u8] = include_bytes!("../assets/genesets/go_bp_human.gmt.gz");

/// The bundled human Gene Ontology biological-process library (6,484 terms of 10 to 500
/// genes, plus the cell-cell interaction and humoral signaling programs; GO 2022-07-01,
/// CC BY 4.0). Loaded from the library itself, without a network.
pub fn go_biological_process_human() -> Result<Vec<GeneSet>> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(GO_BP_HUMAN)
        .read_to_string(&mut text)
        .map_err(|e| Error::data("bundled GO library", e.to_string()))?;
    parse_gmt(Path::new("<bundled go_bp_human.gmt.gz>"), text.as_bytes())
}

/// Reads a GMT file (MSigDB / Enrichr format: one set per line, `id <TAB> description <TAB>
/// gene...`), plain or gzipped.
pub fn read_gmt(path: impl AsRef<Path>) -> Result<Vec<GeneSet>> {
    let path = path.as_ref();
    let reader = crate::io::open_text(path)?;
    parse_gmt(path, reader)
}

fn parse_gmt(path: &Path, reader: impl BufRead) -> Result<Vec<GeneSet>> {
    let mut sets = Vec::new();
    let mut seen_ids = HashSet::new();
    for (i, line) in reader.lines().enumerate() {
        let line_no = i as u64 + 1;
        let line = line.map_err(|e| Error::parse(path, line_no, e.to_string()))?;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() < 3 {
            return Err(Error::parse(
                path,
                line_no,
                "a GMT line needs at least 3 tab-separated fields: id, description, genes",
            ));
        }
        let id = fields[0].trim();
        if id.is_empty() {
            return Err(Error::parse(path, line_no, "empty gene-set id"));
        }
        if !seen_ids.insert(id.to_string()) {
            return Err(Error::parse(
                path,
                line_no,
                format!("duplicate gene-set id {id:?}"),
            ));
        }
        let name = match fields[1].trim() {
            "" | "na" | "NA" => id,
            d => d,
        };
        sets.push(GeneSet {
            id: id.to_string(),
            name: name.to_string(),
            genes: unique(
                fields[2..]
                    .iter()
                    .map(|g| g.trim())
                    .filter(|g| !g.is_empty()),
            ),
        });
    }
    Ok(sets)
}

fn unique<'a>(genes: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = HashSet::new();
    genes
        .filter(|g| seen.insert(*g))
        .map(str::to_string)
        .collect()
}

/// Reads a two-column table `set,gene` (comma or tab separated, header optional when its first
/// field is `set`, `gene_set` or `term`). Sets keep their first-appearance order.
pub fn read_gene_set_table(path: impl AsRef<Path>) -> Result<Vec<GeneSet>> {
    let path = path.as_ref();
    let reader = crate::io::open_text(path)?;
    let mut order: Vec<String> = Vec::new();
    let mut members: HashMap<String, Vec<String>> = HashMap::new();
    for (i, line) in reader.lines().enumerate() {
        let line_no = i as u64 + 1;
        let line = line.map_err(|e| Error::parse(path, line_no, e.to_string()))?;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let sep = if line.contains('\t') { '\t' } else { ',' };
        let f: Vec<&str> = line.split(sep).map(str::trim).collect();
        if f.len() < 2 || f[0].is_empty() || f[1].is_empty() {
            return Err(Error::parse(
                path,
                line_no,
                "expected two non-empty columns: set, gene",
            ));
        }
        if line_no == 1 && matches!(f[0].to_lowercase().as_str(), "set" | "gene_set" | "term") {
            continue;
        }
        if !members.contains_key(f[0]) {
            order.push(f[0].to_string());
        }
        members
            .entry(f[0].to_string())
            .or_default()
            .push(f[1].to_string());
    }
    Ok(order
        .into_iter()
        .map(|id| {
            let genes = unique(members[&id].iter().map(String::as_str));
            GeneSet {
                name: id.clone(),
                id,
                genes,
            }
        })
        .collect())
}

/// Options of [`enrich`].
#[derive(Debug, Clone, PartialEq)]
pub struct EnrichOptions {
    /// Sets with fewer genes in the universe are skipped. Default 5.
    pub min_set_size: usize,
    /// Sets with more genes in the universe are skipped. Default 1,000.
    pub max_set_size: usize,
    /// Only terms with at least this many overlapping genes are reported. Default 1.
    pub min_overlap: usize,
}

impl Default for EnrichOptions {
    fn default() -> Self {
        EnrichOptions {
            min_set_size: 5,
            max_set_size: 1000,
            min_overlap: 1,
        }
    }
}

/// One over-represented term.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrichmentRow {
    /// Set id.
    pub id: String,
    /// Set name.
    pub name: String,
    /// Query genes in the set.
    pub overlap: usize,
    /// Set genes in the universe.
    pub set_size: usize,
    /// Query genes in the universe.
    pub query_size: usize,
    /// Universe size.
    pub universe_size: usize,
    /// Hypergeometric P(overlap >= observed).
    pub p: f64,
    /// Benjamini-Hochberg adjusted `p` over the tested sets.
    pub p_adj: f64,
    /// The overlapping genes, in query order.
    pub genes: Vec<String>,
}

/// Over-representation of `query` genes in each set (hypergeometric test, as
/// `scipy.stats.hypergeom.sf(k - 1, N, K, n)`): universe = `universe` (e.g. the genes detected
/// in the data); sets and query are restricted to it; BH over the sets tested. Rows are
/// sorted by p, then id.
pub fn enrich(
    query: &[String],
    universe: &[String],
    sets: &[GeneSet],
    opts: &EnrichOptions,
) -> Result<Vec<EnrichmentRow>> {
    if opts.min_set_size > opts.max_set_size {
        return Err(Error::option(
            "min_set_size",
            "must not exceed max_set_size",
        ));
    }
    let uni: HashSet<&str> = universe.iter().map(String::as_str).collect();
    let q: Vec<&str> = {
        let mut seen = HashSet::new();
        query
            .iter()
            .map(String::as_str)
            .filter(|g| uni.contains(g) && seen.insert(*g))
            .collect()
    };
    let qset: HashSet<&str> = q.iter().copied().collect();
    let n_uni = uni.len();
    let mut rows = Vec::new();
    for s in sets {
        let in_uni: Vec<&str> = s
            .genes
            .iter()
            .map(String::as_str)
            .filter(|g| uni.contains(g))
            .collect();
        if in_uni.len() < opts.min_set_size || in_uni.len() > opts.max_set_size {
            continue;
        }
        let members: HashSet<&str> = in_uni.iter().copied().collect();
        let genes: Vec<String> = q
            .iter()
            .filter(|g| members.contains(*g))
            .map(|g| g.to_string())
            .collect();
        rows.push(EnrichmentRow {
            id: s.id.clone(),
            name: s.name.clone(),
            overlap: genes.len(),
            set_size: in_uni.len(),
            query_size: q.len(),
            universe_size: n_uni,
            p: hypergeom_sf(genes.len(), n_uni, in_uni.len(), qset.len()),
            p_adj: f64::NAN,
            genes,
        });
    }
    let p: Vec<f64> = rows.iter().map(|r| r.p).collect();
    for (r, a) in rows.iter_mut().zip(benjamini_hochberg(&p)) {
        r.p_adj = a;
    }
    rows.retain(|r| r.overlap >= opts.min_overlap);
    rows.sort_by(|a, b| a.p.total_cmp(&b.p).then_with(|| a.id.cmp(&b.id)));
    Ok(rows)
}

/// Options of [`score_genes`].
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreOptions {
    /// Control genes drawn per expression bin of a set gene. Default 50.
    pub ctrl_size: usize,
    /// Number of expression bins. Default 25.
    pub n_bins: usize,
    /// Seed of the control-gene draw. Default 0.
    pub seed: u64,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        ScoreOptions {
            ctrl_size: 50,
            n_bins: 25,
            seed: 0,
        }
    }
}

/// Per-cell gene-set scores.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneSetScore {
    /// Score of each cell: mean of the set's genes minus mean of the control genes.
    pub scores: Vec<f64>,
    /// Set genes found in the data (column indices).
    pub genes: Vec<usize>,
    /// Control genes (column indices).
    pub control: Vec<usize>,
}

/// [`score_genes`] with the default options and `seed`; `None` when the set cannot be scored
/// for its data (an `InvalidData` error, e.g. no gene of the set in the data), so callers
/// skip it.
pub(crate) fn score_set_or_skip(
    x: &CsrMatrix,
    gene_names: &[String],
    set: &[String],
    seed: u64,
) -> Result<Option<GeneSetScore>> {
    match score_genes(
        x,
        gene_names,
        set,
        &ScoreOptions {
            seed,
            ..Default::default()
        },
    ) {
        Ok(sc) => Ok(Some(sc)),
        Err(Error::InvalidData { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Scanpy's `score_genes` (Satija et al. 2015, Seurat's `AddModuleScore`): genes are binned by
/// mean expression into `n_bins` bins of equal size (rank // round(n_genes / (n_bins - 1)));
/// for every bin that holds a set gene, `ctrl_size` genes of that bin not in the set are drawn
/// as controls; the score of a cell is the mean expression of the set genes minus the mean of
/// the controls. `x` is log-normalized, cells x genes; `gene_names` names its columns.
/// The control draw uses this crate's seeded generator, so scores follow Scanpy's definition
/// but not its random draw.
pub fn score_genes(
    x: &CsrMatrix,
    gene_names: &[String],
    set: &[String],
    opts: &ScoreOptions,
) -> Result<GeneSetScore> {
    if gene_names.len() != x.n_cols() {
        return Err(Error::data(
            "score genes",
            format!("{} names for {} genes", gene_names.len(), x.n_cols()),
        ));
    }
    if opts.n_bins < 2 || opts.ctrl_size == 0 {
        return Err(Error::option(
            "n_bins/ctrl_size",
            "need n_bins >= 2 and ctrl_size >= 1",
        ));
    }
    let pos: HashMap<&str, usize> = gene_names
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i))
        .collect();
    let mut genes: Vec<usize> = set
        .iter()
        .filter_map(|g| pos.get(g.as_str()).copied())
        .collect();
    genes.sort_unstable();
    genes.dedup();
    if genes.is_empty() {
        return Err(Error::data(
            "score genes",
            "none of the set's genes is in the data",
        ));
    }
    let n = x.n_rows().max(1) as f64;
    let means: Vec<f64> = x.col_sums().iter().map(|s| s / n).collect();
    // Bins by rank (method "min"), as Scanpy.
    let mut order: Vec<usize> = (0..means.len()).collect();
    order.sort_by(|&a, &b| means[a].total_cmp(&means[b]).then(a.cmp(&b)));
    let n_items = ((means.len() as f64) / (opts.n_bins as f64 - 1.0))
        .round()
        .max(1.0) as usize;
    let mut bin = vec![0usize; means.len()];
    let mut rank_min = 0usize;
    for (r, &g) in order.iter().enumerate() {
        if r == 0 || means[g] != means[order[r - 1]] {
            rank_min = r + 1;
        }
        bin[g] = rank_min / n_items;
    }
    let in_set: HashSet<usize> = genes.iter().copied().collect();
    let mut by_bin: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (g, &b) in bin.iter().enumerate() {
        if !in_set.contains(&g) {
            by_bin.entry(b).or_default().push(g);
        }
    }
    let bins: std::collections::BTreeSet<usize> = genes.iter().map(|&g| bin[g]).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut control = Vec::new();
    for b in bins {
        if let Some(pool) = by_bin.get(&b) {
            let k = opts.ctrl_size.min(pool.len());
            control.extend(pool.choose_multiple(&mut rng, k).copied());
        }
    }
    control.sort_unstable();
    control.dedup();
    if control.is_empty() {
        return Err(Error::data(
            "score genes",
            "no control genes available (all genes are in the set)",
        ));
    }
    let mut w = vec![0f64; x.n_cols()];
    for &g in &genes {
        w[g] += 1.0 / genes.len() as f64;
    }
    for &g in &control {
        w[g] -= 1.0 / control.len() as f64;
    }
    let scores = (0..x.n_rows())
        .map(|r| {
            let (idx, val) = x.row(r);
            idx.iter()
                .zip(val)
                .map(|(&c, &v)| w[c as usize] * v as f64)
                .sum()
        })
        .collect();
    Ok(GeneSetScore {
        scores,
        genes,
        control,
    })
}
