//! The data model: a [`Dataset`] holds counts (cells x genes, CSR), a cell table and a gene table.
//!
//! Tables have fixed columns that every dataset has (barcode, sample, condition for cells; gene
//! id, symbol, feature type for genes) and any number of extra named [`Column`]s (QC metrics,
//! cluster labels, HVG statistics), in the spirit of AnnData's `obs` and `var`.

use crate::error::{Error, Result};
use crate::sparse::Counts;
#[cfg(doc)]
use crate::sparse::CsrMatrix;
use std::collections::{HashMap, HashSet};

/// A column of a cell or gene table.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// Floating-point values.
    F64(Vec<f64>),
    /// Integers.
    I64(Vec<i64>),
    /// Booleans (e.g. `highly_variable`).
    Bool(Vec<bool>),
    /// Free text.
    Str(Vec<String>),
    /// Categories (e.g. cluster labels): `codes[i]` indexes `categories`.
    Categorical {
        /// Per-row category index.
        codes: Vec<u32>,
        /// Category names, in order.
        categories: Vec<String>,
    },
}

impl Column {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Column::F64(v) => v.len(),
            Column::I64(v) => v.len(),
            Column::Bool(v) => v.len(),
            Column::Str(v) => v.len(),
            Column::Categorical { codes, .. } => codes.len(),
        }
    }
    /// True when the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The rows `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Column {
        fn pick<T: Clone>(v: &[T], idx: &[usize]) -> Vec<T> {
            idx.iter().map(|&i| v[i].clone()).collect()
        }
        match self {
            Column::F64(v) => Column::F64(pick(v, idx)),
            Column::I64(v) => Column::I64(pick(v, idx)),
            Column::Bool(v) => Column::Bool(pick(v, idx)),
            Column::Str(v) => Column::Str(pick(v, idx)),
            Column::Categorical { codes, categories } => Column::Categorical {
                codes: pick(codes, idx),
                categories: categories.clone(),
            },
        }
    }
    /// Row `i` as text (for CSV output).
    pub fn format(&self, i: usize) -> String {
        match self {
            Column::F64(v) => format!("{}", v[i]),
            Column::I64(v) => v[i].to_string(),
            Column::Bool(v) => v[i].to_string(),
            Column::Str(v) => v[i].clone(),
            Column::Categorical { codes, categories } => categories[codes[i] as usize].clone(),
        }
    }
    /// Builds a categorical column from labels; categories sorted by first appearance.
    pub fn categorical_from(labels: &[String]) -> Column {
        let mut map: HashMap<&str, u32> = HashMap::new();
        let mut categories = Vec::new();
        let codes = labels
            .iter()
            .map(|l| {
                *map.entry(l.as_str()).or_insert_with(|| {
                    categories.push(l.clone());
                    (categories.len() - 1) as u32
                })
            })
            .collect();
        Column::Categorical { codes, categories }
    }
}

/// Extra named columns shared by both tables, kept in insertion order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Columns {
    entries: Vec<(String, Column)>,
}

impl Columns {
    /// Adds or replaces column `name`. The length is checked against `n_rows`.
    pub fn insert(&mut self, name: &str, n_rows: usize, col: Column) -> Result<()> {
        if col.len() != n_rows {
            return Err(Error::data(
                format!("column \"{name}\""),
                format!("has {} rows, table has {n_rows}", col.len()),
            ));
        }
        match self.entries.iter_mut().find(|(n, _)| n == name) {
            Some(e) => e.1 = col,
            None => self.entries.push((name.to_string(), col)),
        }
        Ok(())
    }
    /// Column `name`, if present.
    pub fn get(&self, name: &str) -> Option<&Column> {
        self.entries.iter().find(|(n, _)| n == name).map(|e| &e.1)
    }
    /// Removes column `name` and returns it.
    pub fn remove(&mut self, name: &str) -> Option<Column> {
        let pos = self.entries.iter().position(|(n, _)| n == name)?;
        Some(self.entries.remove(pos).1)
    }
    /// All columns in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Column)> {
        self.entries.iter().map(|(n, c)| (n.as_str(), c))
    }
    /// Number of columns.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// True when there are no extra columns.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    fn select(&self, idx: &[usize]) -> Columns {
        Columns {
            entries: self
                .entries
                .iter()
                .map(|(n, c)| (n.clone(), c.select(idx)))
                .collect(),
        }
    }
}

/// The cell table (AnnData's `obs`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CellTable {
    /// Cell barcodes, unique within a dataset.
    pub barcodes: Vec<String>,
    /// Sample name of each cell.
    pub sample: Vec<String>,
    /// Condition of each cell (e.g. `parental`, `resistant`).
    pub condition: Vec<String>,
    /// Extra columns (QC metrics, cluster labels, ...).
    pub columns: Columns,
}

impl CellTable {
    /// A table for `barcodes`, all in one sample and condition.
    pub fn new(barcodes: Vec<String>, sample: &str, condition: &str) -> Self {
        let n = barcodes.len();
        CellTable {
            barcodes,
            sample: vec![sample.to_string(); n],
            condition: vec![condition.to_string(); n],
            columns: Columns::default(),
        }
    }
    /// Number of cells.
    pub fn len(&self) -> usize {
        self.barcodes.len()
    }
    /// True when there are no cells.
    pub fn is_empty(&self) -> bool {
        self.barcodes.is_empty()
    }
    /// Adds or replaces an extra column.
    pub fn set(&mut self, name: &str, col: Column) -> Result<()> {
        let n = self.len();
        self.columns.insert(name, n, col)
    }
    /// The rows `idx`.
    pub fn select(&self, idx: &[usize]) -> CellTable {
        CellTable {
            barcodes: idx.iter().map(|&i| self.barcodes[i].clone()).collect(),
            sample: idx.iter().map(|&i| self.sample[i].clone()).collect(),
            condition: idx.iter().map(|&i| self.condition[i].clone()).collect(),
            columns: self.columns.select(idx),
        }
    }
}

/// The gene table (AnnData's `var`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GeneTable {
    /// Gene ids (e.g. Ensembl), as read.
    pub ids: Vec<String>,
    /// Gene symbols, made unique with [`make_unique`].
    pub symbols: Vec<String>,
    /// Feature type (`Gene Expression`, `Antibody Capture`, ...).
    pub feature_types: Vec<String>,
    /// Extra columns (gene QC, HVG statistics, ...).
    pub columns: Columns,
}

impl GeneTable {
    /// A table from ids and symbols (symbols are made unique); all `Gene Expression`.
    pub fn new(ids: Vec<String>, symbols: Vec<String>) -> Self {
        let n = ids.len();
        GeneTable {
            ids,
            symbols: make_unique(&symbols),
            feature_types: vec!["Gene Expression".to_string(); n],
            columns: Columns::default(),
        }
    }
    /// Number of genes.
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    /// True when there are no genes.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    /// Adds or replaces an extra column.
    pub fn set(&mut self, name: &str, col: Column) -> Result<()> {
        let n = self.len();
        self.columns.insert(name, n, col)
    }
    /// The rows `idx`.
    pub fn select(&self, idx: &[usize]) -> GeneTable {
        GeneTable {
            ids: idx.iter().map(|&i| self.ids[i].clone()).collect(),
            symbols: idx.iter().map(|&i| self.symbols[i].clone()).collect(),
            feature_types: idx.iter().map(|&i| self.feature_types[i].clone()).collect(),
            columns: self.columns.select(idx),
        }
    }
    /// Index of the gene with this symbol or id (symbols first).
    pub fn position(&self, name: &str) -> Option<usize> {
        self.symbols
            .iter()
            .position(|s| s == name)
            .or_else(|| self.ids.iter().position(|s| s == name))
    }
}

/// Makes names unique as Scanpy's `var_names_make_unique` (anndata `utils.make_index_unique`,
/// `join="-"`): the first occurrence keeps its name, later ones get `-1`, `-2`, ... skipping
/// suffixed names that already exist.
pub fn make_unique(names: &[String]) -> Vec<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for n in names {
        *counts.entry(n.as_str()).or_insert(0) += 1;
    }
    if counts.values().all(|&c| c == 1) {
        return names.to_vec();
    }
    let mut used: HashSet<String> = names.iter().cloned().collect();
    let mut next: HashMap<&str, usize> = HashMap::new();
    let mut seen: HashSet<&str> = HashSet::new();
    names
        .iter()
        .map(|n| {
            if counts[n.as_str()] == 1 || seen.insert(n.as_str()) {
                return n.clone();
            }
            let k = next.entry(n.as_str()).or_insert(1);
            loop {
                let cand = format!("{n}-{k}");
                *k += 1;
                if used.insert(cand.clone()) {
                    return cand;
                }
            }
        })
        .collect()
}

/// Counts and annotations of one or many samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    /// Raw counts, cells x genes, compact when they fit ([`Counts`]).
    pub counts: Counts,
    /// One row per cell.
    pub cells: CellTable,
    /// One row per gene.
    pub genes: GeneTable,
}

impl Dataset {
    /// Builds a dataset, checking that the tables fit the matrix. A [`CsrMatrix`] of integer
    /// counts below 65,536 of at most 65,536 genes is stored compactly ([`Counts::new`]).
    pub fn new(counts: impl Into<Counts>, cells: CellTable, genes: GeneTable) -> Result<Self> {
        let counts = counts.into();
        if counts.n_rows() != cells.len() {
            return Err(Error::data(
                "dataset",
                format!(
                    "{} matrix rows but {} cells in the cell table",
                    counts.n_rows(),
                    cells.len()
                ),
            ));
        }
        if counts.n_cols() != genes.len() {
            return Err(Error::data(
                "dataset",
                format!(
                    "{} matrix columns but {} genes in the gene table",
                    counts.n_cols(),
                    genes.len()
                ),
            ));
        }
        Ok(Dataset {
            counts,
            cells,
            genes,
        })
    }
    /// Number of cells.
    pub fn n_cells(&self) -> usize {
        self.counts.n_rows()
    }
    /// Symbols of the genes with a non-zero count in at least one cell (the universe of the
    /// over-representation tests).
    pub fn detected_gene_symbols(&self) -> Vec<String> {
        self.counts
            .col_sums()
            .iter()
            .zip(&self.genes.symbols)
            .filter(|(s, _)| **s > 0.0)
            .map(|(_, g)| g.clone())
            .collect()
    }

    /// Number of genes.
    pub fn n_genes(&self) -> usize {
        self.counts.n_cols()
    }
    /// The cells `idx` (any order).
    pub fn select_cells(&self, idx: &[usize]) -> Result<Dataset> {
        Ok(Dataset {
            counts: self.counts.select_rows(idx)?,
            cells: self.cells.select(idx),
            genes: self.genes.clone(),
        })
    }
    /// The genes `idx` (strictly increasing).
    pub fn select_genes(&self, idx: &[usize]) -> Result<Dataset> {
        Ok(Dataset {
            counts: self.counts.select_cols(idx)?,
            cells: self.cells.clone(),
            genes: self.genes.select(idx),
        })
    }
    /// Keeps the cells where `mask` is true.
    pub fn filter_cells(&self, mask: &[bool]) -> Result<Dataset> {
        check_mask("filter cells", mask.len(), self.n_cells())?;
        let idx: Vec<usize> = (0..mask.len()).filter(|&i| mask[i]).collect();
        self.select_cells(&idx)
    }
    /// Keeps the genes where `mask` is true.
    pub fn filter_genes(&self, mask: &[bool]) -> Result<Dataset> {
        check_mask("filter genes", mask.len(), self.n_genes())?;
        let idx: Vec<usize> = (0..mask.len()).filter(|&i| mask[i]).collect();
        self.select_genes(&idx)
    }
    /// Sets the sample name and condition of every cell.
    pub fn set_sample(&mut self, sample: &str, condition: &str) {
        let n = self.n_cells();
        self.cells.sample = vec![sample.to_string(); n];
        self.cells.condition = vec![condition.to_string(); n];
    }
}

fn check_mask(ctx: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(Error::data(
            ctx,
            format!("mask has {got} entries, expected {want}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn make_unique_like_anndata() {
        assert_eq!(
            make_unique(&s(&["a", "b", "a", "a"])),
            s(&["a", "b", "a-1", "a-2"])
        );
        // an existing "a-1" is skipped
        assert_eq!(make_unique(&s(&["a", "a", "a-1"])), s(&["a", "a-2", "a-1"]));
        assert_eq!(make_unique(&s(&["x", "y"])), s(&["x", "y"]));
    }

    #[test]
    fn subset_keeps_tables_aligned() {
        use crate::sparse::CsrMatrix;
        let m = CsrMatrix::from_triplets(3, 2, &[0, 1, 2], &[0, 1, 1], &[1., 2., 3.]).unwrap();
        let mut d = Dataset::new(
            m,
            CellTable::new(s(&["c1", "c2", "c3"]), "s", "ctl"),
            GeneTable::new(s(&["g1", "g2"]), s(&["A", "A"])),
        )
        .unwrap();
        assert_eq!(d.genes.symbols, s(&["A", "A-1"]));
        d.cells
            .set("score", Column::F64(vec![0.1, 0.2, 0.3]))
            .unwrap();
        assert!(d.cells.set("bad", Column::F64(vec![0.1])).is_err());
        let sub = d.filter_cells(&[false, true, true]).unwrap();
        assert_eq!(sub.cells.barcodes, s(&["c2", "c3"]));
        assert_eq!(
            sub.cells.columns.get("score"),
            Some(&Column::F64(vec![0.2, 0.3]))
        );
        let g = sub.select_genes(&[1]).unwrap();
        assert_eq!(g.counts.row_sums(), vec![2., 3.]);
        assert_eq!(g.genes.ids, s(&["g2"]));
        assert!(d.filter_cells(&[true]).is_err());
    }
}
