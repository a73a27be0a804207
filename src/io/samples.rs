//! Many samples: read several 10x inputs, each with a sample name and a condition, and
//! concatenate them into one [`Dataset`].
//!
//! Barcodes are made unique by appending `-<sample>` to every barcode, as Scanpy's
//! `anndata.concat(adatas, label="sample", keys=names, index_unique="-")` does (e.g.
//! `AAACCCAAGGAGAGTA-1-parental`). Genes are aligned by gene id, never by symbol.

use super::{read_10x_with, ReadOptions};
use crate::dataset::{CellTable, Dataset, GeneTable};
use crate::error::{Error, Result};
use crate::sparse::{ColIndex, Counts, CsrMatrix};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One input of [`read_samples`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleSpec {
    /// Sample name; unique among the samples; appended to the barcodes.
    pub name: String,
    /// Condition of the sample (e.g. `parental`, `resistant`).
    pub condition: String,
    /// A 10x Matrix Market folder or a 10x HDF5 file (format detected by [`read_10x_with`]).
    pub path: PathBuf,
}

/// How genes of several samples are aligned (`--join strict|intersection|union`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Join {
    /// Every sample has the same gene ids (in any order; columns are put in the first
    /// sample's order). A gene missing from a sample is an error naming it. The default
    /// (`strict` on the command line).
    #[default]
    Exact,
    /// Keep the genes present in every sample, in the first sample's order (anndata's
    /// `join="inner"`).
    Intersection,
    /// Keep the genes present in any sample: the first sample's in its order, then those
    /// of the next samples in theirs; a gene absent from a sample counts 0 there (anndata's
    /// `join="outer"` with `fill_value=0`). A gene a reference lacks is not measured, not
    /// absent: use it only for references that differ in a few genes.
    Union,
}

impl Join {
    /// The command-line name: `strict`, `intersection`, `union`.
    pub fn name(self) -> &'static str {
        match self {
            Join::Exact => "strict",
            Join::Intersection => "intersection",
            Join::Union => "union",
        }
    }
}

impl std::str::FromStr for Join {
    type Err = Error;
    /// `strict` (or `exact`), `intersection` (or `inner`), `union` (or `outer`).
    fn from_str(s: &str) -> Result<Join> {
        match s.to_ascii_lowercase().as_str() {
            "strict" | "exact" => Ok(Join::Exact),
            "intersection" | "inner" => Ok(Join::Intersection),
            "union" | "outer" => Ok(Join::Union),
            _ => Err(Error::option(
                "join",
                format!("{s:?} is not one of strict, intersection, union"),
            )),
        }
    }
}

/// What [`concat_report`] did to the genes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinReport {
    /// The alignment used.
    pub join: Join,
    /// Genes of the result.
    pub n_genes: usize,
    /// Per sample (in order): its genes left out of the result.
    pub dropped: Vec<usize>,
    /// Per sample (in order): genes of the result it lacks, filled with zeros.
    pub filled: Vec<usize>,
}

impl JoinReport {
    /// One line per sample that lost or gained genes, e.g. `sample "b": 120 genes dropped
    /// (join intersection)`.
    pub fn lines(&self, names: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for (k, n) in names.iter().enumerate() {
            let d = self.dropped.get(k).copied().unwrap_or(0);
            let f = self.filled.get(k).copied().unwrap_or(0);
            if d > 0 {
                out.push(format!(
                    "sample {n:?}: {d} genes not in every sample dropped (join {})",
                    self.join.name()
                ));
            }
            if f > 0 {
                out.push(format!(
                    "sample {n:?}: {f} genes it lacks filled with zeros (join {})",
                    self.join.name()
                ));
            }
        }
        out
    }
}

/// Options of [`read_samples`] and [`concat`](fn@concat).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConcatOptions {
    /// Gene alignment. Default: [`Join::Exact`].
    pub join: Join,
}

/// The samples of a run from a sample sheet and plain input paths, in that order: sheet rows
/// keep their names and conditions; a plain path is named `sample` when it is the only input,
/// `sample1`, `sample2`, ... otherwise, with condition `none`. `default` is used when there is
/// neither (the bundled data of an example). Cell Ranger folders are resolved to their
/// filtered matrix ([`super::cellranger::resolve`]; an ambiguous folder is an error).
pub fn resolve_inputs(
    inputs: &[PathBuf],
    sample_sheet: Option<&Path>,
    default: Option<&Path>,
) -> Result<Vec<SampleSpec>> {
    let mut specs = match sample_sheet {
        Some(sheet) => read_sample_sheet(sheet)?,
        None => Vec::new(),
    };
    let fallback: Vec<PathBuf> = default.map(Path::to_path_buf).into_iter().collect();
    let paths = if inputs.is_empty() && specs.is_empty() {
        fallback.as_slice()
    } else {
        inputs
    };
    let single = paths.len() == 1 && specs.is_empty();
    for (k, p) in paths.iter().enumerate() {
        specs.push(SampleSpec {
            name: if single {
                "sample".to_string()
            } else {
                format!("sample{}", k + 1)
            },
            condition: "none".to_string(),
            path: super::cellranger::resolve(p)?.path,
        });
    }
    if specs.is_empty() {
        return Err(Error::option("inputs", "no input given"));
    }
    Ok(specs)
}

/// Reads the samples of [`resolve_inputs`]: one sample keeps its barcodes as they are (read
/// with [`read_10x_with`]); several are read and concatenated by [`read_samples`], their
/// barcodes suffixed with `-<sample>`.
pub fn read_specs(specs: &[SampleSpec], concat_opts: &ConcatOptions) -> Result<Dataset> {
    match specs {
        [one] => read_10x_with(
            &one.path,
            &ReadOptions {
                sample: one.name.clone(),
                condition: one.condition.clone(),
                ..Default::default()
            },
        ),
        _ => read_samples(specs, &Default::default(), concat_opts),
    }
}

/// Reads every sample with [`read_10x_with`] (`opts.sample` and `opts.condition` are replaced by
/// each spec's), then concatenates them with [`concat`](fn@concat).
pub fn read_samples(
    specs: &[SampleSpec],
    opts: &ReadOptions,
    concat_opts: &ConcatOptions,
) -> Result<Dataset> {
    check_names(specs.iter().map(|s| s.name.as_str()))?;
    let mut parts = Vec::with_capacity(specs.len());
    for s in specs {
        let o = ReadOptions {
            sample: s.name.clone(),
            condition: s.condition.clone(),
            ..opts.clone()
        };
        parts.push(read_10x_with(&s.path, &o)?);
    }
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    concat(&parts, &names, concat_opts)
}

pub(crate) fn check_names<'a>(names: impl Iterator<Item = &'a str>) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    let mut any = false;
    for n in names {
        any = true;
        if n.is_empty() {
            return Err(Error::option("samples", "a sample name is empty"));
        }
        if !seen.insert(n) {
            return Err(Error::option(
                "samples",
                format!("sample name {n:?} is used twice"),
            ));
        }
    }
    if !any {
        return Err(Error::option("samples", "no samples given"));
    }
    Ok(())
}

/// Concatenates datasets (cells of `parts[0]` first), as [`concat_report`].
pub fn concat(parts: &[Dataset], names: &[&str], opts: &ConcatOptions) -> Result<Dataset> {
    concat_report(parts, names, opts).map(|(d, _)| d)
}

/// Concatenates datasets (cells of `parts[0]` first) and counts the genes dropped or filled.
/// `names[k]` is appended to the barcodes of `parts[k]` (`<barcode>-<name>`); each cell keeps
/// the sample and condition of its part. Genes are aligned by id according to `opts.join`;
/// the gene table is the first part's, restricted and ordered accordingly (with
/// [`Join::Union`], followed by the genes only later parts have; extra gene columns are then
/// dropped). Extra cell columns are not carried over.
pub fn concat_report(
    parts: &[Dataset],
    names: &[&str],
    opts: &ConcatOptions,
) -> Result<(Dataset, JoinReport)> {
    if parts.len() != names.len() {
        return Err(Error::option(
            "names",
            format!("{} names for {} datasets", names.len(), parts.len()),
        ));
    }
    check_names(names.iter().copied())?;
    let first = &parts[0];
    let index: Vec<HashMap<&str, usize>> = parts
        .iter()
        .zip(names)
        .map(|(p, n)| id_index(&p.genes, n))
        .collect::<Result<_>>()?;
    let in_all = |id: &str| index.iter().all(|ix| ix.contains_key(id));

    // Genes of the result: (part, gene of that part).
    let chosen: Vec<(usize, usize)> = match opts.join {
        Join::Exact => {
            let shared = first.genes.ids.iter().filter(|id| in_all(id)).count();
            for (k, p) in parts.iter().enumerate().skip(1) {
                let pairs = [(first, 0, k), (p, k, 0)];
                for (has, a, b) in pairs {
                    if let Some(id) = has
                        .genes
                        .ids
                        .iter()
                        .find(|id| !index[b].contains_key(id.as_str()))
                    {
                        return Err(mismatch(id, names[a], names[b], shared));
                    }
                }
            }
            (0..first.n_genes()).map(|j| (0, j)).collect()
        }
        Join::Intersection => (0..first.n_genes())
            .filter(|&j| in_all(&first.genes.ids[j]))
            .map(|j| (0, j))
            .collect(),
        Join::Union => {
            let mut seen = std::collections::HashSet::new();
            let mut v = Vec::new();
            for (k, p) in parts.iter().enumerate() {
                for (j, id) in p.genes.ids.iter().enumerate() {
                    if seen.insert(id.as_str()) {
                        v.push((k, j));
                    }
                }
            }
            v
        }
    };
    if chosen.is_empty() {
        return Err(Error::data(
            "concat",
            "the samples have no gene id in common",
        ));
    }
    let id_of = |&(k, j): &(usize, usize)| parts[k].genes.ids[j].as_str();
    let position: HashMap<&str, u32> = chosen
        .iter()
        .enumerate()
        .map(|(new, g)| (id_of(g), new as u32))
        .collect();
    let genes: GeneTable = if chosen.iter().all(|&(k, _)| k == 0) {
        first
            .genes
            .select(&chosen.iter().map(|&(_, j)| j).collect::<Vec<_>>())
    } else {
        let pick = |f: &dyn Fn(&Dataset) -> &Vec<String>| -> Vec<String> {
            chosen
                .iter()
                .map(|&(k, j)| f(&parts[k])[j].clone())
                .collect()
        };
        GeneTable {
            ids: pick(&|p| &p.genes.ids),
            symbols: crate::dataset::make_unique(&pick(&|p| &p.genes.symbols)),
            feature_types: pick(&|p| &p.genes.feature_types),
            columns: Default::default(),
        }
    };
    let mut report = JoinReport {
        join: opts.join,
        n_genes: chosen.len(),
        dropped: Vec::with_capacity(parts.len()),
        filled: Vec::with_capacity(parts.len()),
    };
    let maps: Vec<Vec<Option<u32>>> = parts
        .iter()
        .map(|p| {
            let map: Vec<Option<u32>> = p
                .genes
                .ids
                .iter()
                .map(|id| position.get(id.as_str()).copied())
                .collect();
            let kept = map.iter().filter(|m| m.is_some()).count();
            report.dropped.push(p.n_genes() - kept);
            report.filled.push(chosen.len() - kept);
            map
        })
        .collect();
    // Compact samples stay compact when no two of a sample's genes land on one column (which
    // would sum their counts, possibly past 65,535): no `f32` copy of any sample is made.
    let injective = |map: &[Option<u32>]| {
        let mut seen = vec![false; chosen.len()];
        map.iter()
            .flatten()
            .all(|&c| !std::mem::replace(&mut seen[c as usize], true))
    };
    let compact: Option<Vec<&CsrMatrix<u16, u16>>> = parts
        .iter()
        .zip(&maps)
        .map(|(p, map)| match &p.counts {
            Counts::Compact(m) if chosen.len() <= u16::LIMIT && injective(map) => Some(m),
            _ => None,
        })
        .collect();
    let counts = match compact {
        Some(ms) => Counts::Compact(stack_remapped(&ms, &maps, chosen.len())?),
        None => {
            let matrices: Vec<CsrMatrix> = parts
                .par_iter()
                .zip(&maps)
                .map(|(p, map)| remap_cols(&p.counts.to_csr(), map, chosen.len()))
                .collect::<Result<_>>()?;
            let refs: Vec<&CsrMatrix> = matrices.iter().collect();
            Counts::new(CsrMatrix::vstack(&refs)?)
        }
    };

    let mut cells = CellTable::default();
    for (p, n) in parts.iter().zip(names) {
        cells
            .barcodes
            .extend(p.cells.barcodes.iter().map(|b| format!("{b}-{n}")));
        cells.sample.extend(p.cells.sample.iter().cloned());
        cells.condition.extend(p.cells.condition.iter().cloned());
    }
    Ok((Dataset::new(counts, cells, genes)?, report))
}

fn mismatch(id: &str, has: &str, lacks: &str, shared: usize) -> Error {
    Error::data(
        "concat",
        format!(
            "gene id {id:?} is in sample {has:?} but not in sample {lacks:?}: the samples have \
             different gene lists (another reference?), which join strict (the default) \
             refuses; use --join intersection (Join::Intersection) to keep the {shared} genes \
             of the first sample that every sample has, or --join union (Join::Union) to fill \
             missing genes with zeros"
        ),
    )
}

fn id_index<'a>(genes: &'a GeneTable, name: &str) -> Result<HashMap<&'a str, usize>> {
    let mut m = HashMap::with_capacity(genes.len());
    for (j, id) in genes.ids.iter().enumerate() {
        if m.insert(id.as_str(), j).is_some() {
            return Err(Error::data(
                format!("sample {name:?}"),
                format!("gene id {id:?} occurs twice: genes cannot be aligned by id"),
            ));
        }
    }
    Ok(m)
}

/// The compact samples' matrices, each with its columns moved by its map, stacked.
fn stack_remapped(
    parts: &[&CsrMatrix<u16, u16>],
    maps: &[Vec<Option<u32>>],
    n_cols: usize,
) -> Result<CsrMatrix<u16, u16>> {
    let matrices: Vec<CsrMatrix<u16, u16>> = parts
        .par_iter()
        .zip(maps)
        .map(|(p, map)| remap_compact(p, map, n_cols))
        .collect::<Result<_>>()?;
    let refs: Vec<&CsrMatrix<u16, u16>> = matrices.iter().collect();
    CsrMatrix::vstack(&refs)
}

/// Whether `map` leaves every one of `n_cols` columns in its place.
fn is_identity(map: &[Option<u32>], n_cols: usize) -> bool {
    map.len() == n_cols && map.iter().enumerate().all(|(j, m)| *m == Some(j as u32))
}

/// [`remap_cols`] of compact counts, for a map that sends no two columns to one (checked by
/// the caller; the result's check refuses a repeated column) and at most 65,536 columns.
fn remap_compact(
    x: &CsrMatrix<u16, u16>,
    map: &[Option<u32>],
    n_cols: usize,
) -> Result<CsrMatrix<u16, u16>> {
    if is_identity(map, n_cols) {
        return Ok(x.clone());
    }
    let mut indptr = Vec::with_capacity(x.n_rows() + 1);
    indptr.push(0usize);
    let mut indices = Vec::with_capacity(x.nnz());
    let mut data = Vec::with_capacity(x.nnz());
    let mut row: Vec<(u16, u16)> = Vec::new();
    for r in 0..x.n_rows() {
        let (idx, val) = x.row(r);
        row.clear();
        for (&j, &v) in idx.iter().zip(val) {
            if let Some(new) = map.get(j as usize).copied().flatten() {
                row.push((new as u16, v));
            }
        }
        row.sort_unstable_by_key(|p| p.0);
        indices.extend(row.iter().map(|p| p.0));
        data.extend(row.iter().map(|p| p.1));
        indptr.push(indices.len());
    }
    CsrMatrix::try_from_parts(x.n_rows(), n_cols, indptr, indices, data)
}

/// Moves column `j` to `map[j]` (dropping it when `None`).
fn remap_cols(x: &CsrMatrix, map: &[Option<u32>], n_cols: usize) -> Result<CsrMatrix> {
    if is_identity(map, n_cols) {
        return Ok(x.clone());
    }
    let mut indptr = Vec::with_capacity(x.n_rows() + 1);
    indptr.push(0usize);
    let mut indices = Vec::with_capacity(x.nnz());
    let mut data = Vec::with_capacity(x.nnz());
    for r in 0..x.n_rows() {
        let (idx, val) = x.row(r);
        for (&j, &v) in idx.iter().zip(val) {
            if let Some(new) = map.get(j as usize).copied().flatten() {
                indices.push(new);
                data.push(v);
            }
        }
        indptr.push(indices.len());
    }
    CsrMatrix::from_unsorted_rows(x.n_rows(), n_cols, indptr, indices, data)
}

/// Reads a sample sheet: a CSV file with a header naming the columns `sample`, `condition`
/// and `path` (any order; other columns are ignored), then one line per sample. Fields may be
/// double-quoted (`""` is a quote inside). Relative paths are relative to the sheet's folder;
/// a Cell Ranger folder is resolved to its filtered matrix ([`super::cellranger::resolve`]).
/// Blank lines and lines starting with `#` are skipped.
///
/// Errors name the line and column: a missing column, a line with too few fields, an empty
/// field, a sample name used twice, an ambiguous Cell Ranger folder.
pub fn read_sample_sheet(path: impl AsRef<Path>) -> Result<Vec<SampleSpec>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let base = path.parent().unwrap_or(Path::new(""));
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    let (hline, header) = lines.next().ok_or_else(|| {
        Error::parse(
            path,
            1,
            "empty sample sheet: expected a header `sample,condition,path`",
        )
    })?;
    let header = split_csv(header).map_err(|m| Error::parse(path, hline, m))?;
    let col = |name: &str| -> Result<usize> {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                Error::parse(
                    path,
                    hline,
                    format!(
                        "missing column `{name}`: the header must name sample, condition and path"
                    ),
                )
            })
    };
    let (cs, cc, cp) = (col("sample")?, col("condition")?, col("path")?);
    let mut out: Vec<SampleSpec> = Vec::new();
    let mut first_line: HashMap<String, u64> = HashMap::new();
    for (ln, l) in lines {
        let f = split_csv(l).map_err(|m| Error::parse(path, ln, m))?;
        let field = |c: usize, name: &str| -> Result<String> {
            let v = f.get(c).ok_or_else(|| {
                Error::parse(
                    path,
                    ln,
                    format!("{} fields, column {} (`{name}`) is missing", f.len(), c + 1),
                )
            })?;
            let v = v.trim();
            if v.is_empty() {
                return Err(Error::parse(
                    path,
                    ln,
                    format!("empty `{name}` (column {})", c + 1),
                ));
            }
            Ok(v.to_string())
        };
        let name = field(cs, "sample")?;
        let condition = field(cc, "condition")?;
        let p = PathBuf::from(field(cp, "path")?);
        if let Some(prev) = first_line.get(&name) {
            return Err(Error::parse(
                path,
                ln,
                format!(
                    "duplicate sample name {name:?} (column {}, first on line {prev})",
                    cs + 1
                ),
            ));
        }
        first_line.insert(name.clone(), ln);
        let p = if p.is_absolute() { p } else { base.join(p) };
        let p = super::cellranger::resolve(&p)
            .map_err(|e| Error::parse(path, ln, format!("sample {name:?}: {e}")))?
            .path;
        out.push(SampleSpec {
            name,
            condition,
            path: p,
        });
    }
    if out.is_empty() {
        return Err(Error::parse(
            path,
            hline,
            "the sample sheet lists no samples",
        ));
    }
    Ok(out)
}

/// Splits one CSV line; fields may be double-quoted.
fn split_csv(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => cur.push(c),
            (false, '"') if cur.trim().is_empty() && !was_quoted => {
                cur.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                out.push(std::mem::take(&mut cur));
                was_quoted = false;
            }
            (false, c) => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field".to_string());
    }
    out.push(cur);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_remap_is_the_wide_remap() {
        // 3 cells x 5 genes; genes moved to reversed places among 6, gene 2 dropped
        let wide = CsrMatrix::try_new(
            3,
            5,
            vec![0, 3, 3, 7],
            vec![0, 2, 4, 0, 1, 3, 4],
            vec![1., 7., 65535., 2., 3., 4., 5.],
        )
        .unwrap();
        let map = [Some(5), Some(4), None, Some(1), Some(0)];
        let Counts::Compact(c) = Counts::new(wide.clone()) else {
            panic!("integer counts below 65,536 are compact")
        };
        let got = remap_compact(&c, &map, 6).unwrap();
        assert_eq!(got.to_wide(), remap_cols(&wide, &map, 6).unwrap());
        assert_eq!(got.row(0), (&[0u16, 5][..], &[65535u16, 1][..]));
        let stacked = stack_remapped(&[&c, &c], &[map.to_vec(), map.to_vec()], 6).unwrap();
        assert_eq!(stacked.n_rows(), 6);
        assert_eq!(stacked.row(5), got.row(2));
        // two genes on one column: refused (the caller takes the wide path then)
        assert!(remap_compact(&c, &[Some(0), Some(0), None, None, None], 6).is_err());
    }

    #[test]
    fn csv_fields() {
        assert_eq!(split_csv("a,b,c").unwrap(), ["a", "b", "c"]);
        assert_eq!(
            split_csv("a,\"b,c\",\"d\"\"e\"").unwrap(),
            ["a", "b,c", "d\"e"]
        );
        assert_eq!(split_csv("a,,").unwrap(), ["a", "", ""]);
        assert!(split_csv("a,\"b").is_err());
    }
}
