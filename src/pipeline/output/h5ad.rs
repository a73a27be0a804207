//! `analysis.h5ad`: the AnnData file of the analysis and its `uns["rank_genes_groups"]`.

use super::super::{Analysis, PipelineOptions};
use crate::error::Result;
use crate::io::h5ad::{
    write_h5ad, write_h5ad_pending, H5adOutput, PendingH5ad, RecField, UnsValue,
};
use std::path::Path;

/// Scanpy's `uns["rank_genes_groups"]` for the analysis' markers (all genes, ranked).
pub fn rank_genes_groups_uns(a: &Analysis, opts: &PipelineOptions) -> UnsValue {
    let names = &a.dataset().genes.symbols;
    let m = &a.markers;
    let field = |f: &dyn Fn(&crate::markers::GroupMarkers, usize) -> RecField| {
        UnsValue::RecArray(
            m.groups
                .iter()
                .map(|g| (g.group.to_string(), f(g, 0)))
                .collect(),
        )
    };
    let ordered = |g: &crate::markers::GroupMarkers, v: &[f64]| -> Vec<f64> {
        g.order.iter().map(|&i| v[i as usize]).collect()
    };
    let method = match opts.markers.method {
        crate::markers::Method::Wilcoxon => "wilcoxon",
        crate::markers::Method::TTest => "t-test",
        crate::markers::Method::TTestOverestimVar => "t-test_overestim_var",
    };
    let corr = match opts.markers.corr_method {
        crate::markers::Correction::BenjaminiHochberg => "benjamini-hochberg",
        crate::markers::Correction::Bonferroni => "bonferroni",
    };
    UnsValue::Dict(vec![
        (
            "params".to_string(),
            UnsValue::Dict(vec![
                ("groupby".to_string(), UnsValue::Str("leiden".to_string())),
                ("reference".to_string(), UnsValue::Str("rest".to_string())),
                ("method".to_string(), UnsValue::Str(method.to_string())),
                ("use_raw".to_string(), UnsValue::Bool(false)),
                ("corr_method".to_string(), UnsValue::Str(corr.to_string())),
            ]),
        ),
        (
            "names".to_string(),
            field(&|g, _| {
                RecField::Str(g.order.iter().map(|&i| names[i as usize].clone()).collect())
            }),
        ),
        (
            "scores".to_string(),
            field(&|g, _| RecField::F32(ordered(g, &g.scores).iter().map(|&x| x as f32).collect())),
        ),
        (
            "logfoldchanges".to_string(),
            field(&|g, _| {
                RecField::F32(
                    ordered(g, &g.logfoldchanges)
                        .iter()
                        .map(|&x| x as f32)
                        .collect(),
                )
            }),
        ),
        (
            "pvals".to_string(),
            field(&|g, _| RecField::F64(ordered(g, &g.pvals))),
        ),
        (
            "pvals_adj".to_string(),
            field(&|g, _| RecField::F64(ordered(g, &g.pvals_adj))),
        ),
    ])
}

/// Writes `analysis.h5ad`: `X` (log-normalized), `layers["counts"]`, obs (QC, `leiden`), var
/// (HVG columns), `obsm["X_pca"]`, `obsm["X_umap"]`, `varm["PCs"]` (zero outside the highly
/// variable genes, as Scanpy), `obsp["connectivities"]`, `obsp["distances"]` and
/// `uns["rank_genes_groups"]` (left out when no cluster could be tested, see
/// [`crate::markers::RankGenes::warnings`]).
pub fn write_h5ad_file(a: &Analysis, opts: &PipelineOptions, path: &Path) -> Result<()> {
    let umap = (a.umap.nrows() == a.dataset().n_cells()).then_some(&a.umap);
    with_output(a, opts, umap, |out| write_h5ad(out, path))
}

/// [`write_h5ad_file`] of an analysis whose UMAP layout is still being computed (`a.umap`
/// not yet set): `obsm["X_umap"]` is left for [`PendingH5ad::finish`], the rest written now.
pub(crate) fn write_h5ad_file_pending(
    a: &Analysis,
    opts: &PipelineOptions,
    path: &Path,
) -> Result<PendingH5ad> {
    let zeros = ndarray::Array2::<f32>::zeros((a.dataset().n_cells(), 2));
    with_output(a, opts, Some(&zeros), |out| {
        write_h5ad_pending(out, path, &["X_umap"])
    })
}

/// The AnnData content of the analysis (see [`write_h5ad_file`]) with `umap` as
/// `obsm["X_umap"]`, given to `f`.
fn with_output<T>(
    a: &Analysis,
    opts: &PipelineOptions,
    umap: Option<&ndarray::Array2<f32>>,
    f: impl FnOnce(&H5adOutput) -> Result<T>,
) -> Result<T> {
    let d = a.dataset();
    let x = a.log_normalized()?;
    let mut out = H5adOutput::new(&x, &d.cells, &d.genes);
    out.layers.push(("counts".to_string(), &d.counts));
    out.obsm.push(("X_pca".to_string(), a.pca.embedding.view()));
    if let Some(i) = &a.integration {
        out.obsm
            .push(("X_pca_harmony".to_string(), i.harmony.embedding.view()));
    }
    if let Some(u) = umap {
        out.obsm.push(("X_umap".to_string(), u.view()));
    }
    let k = a.pca.loadings.ncols();
    let mut pcs = ndarray::Array2::<f32>::zeros((d.n_genes(), k));
    for (row, &g) in a.hvg_genes.iter().enumerate() {
        pcs.row_mut(g).assign(&a.pca.loadings.row(row));
    }
    out.varm.push(("PCs".to_string(), pcs.view()));
    out.obsp
        .push(("connectivities".to_string(), &a.connectivities));
    out.obsp.push(("distances".to_string(), &a.distances));
    // No cluster could be tested (e.g. a single cluster): no table to store.
    if !a.markers.groups.is_empty() {
        out.uns.push((
            "rank_genes_groups".to_string(),
            rank_genes_groups_uns(a, opts),
        ));
    }
    out.compression = opts.h5ad_compression;
    f(&out)
}
