//! The streamed analysis itself: the passes of [`super::passes`] run by [`Workers`], the
//! leader's in-memory steps, the markers of [`super::markers`], in the order the module docs
//! of [`super`] give.

use super::markers;
use super::passes::{self, HvgInputs, HvgPart, LoadPart, QcPart, RowsCollector, RowsPart};
use super::prepare::{check_options, on_leader, open, share_from_leader, Steps};
use super::spill;
use super::workers::{gather_embedding, Local, PcaSums, Workers};
use super::{
    plan_cell_blocks, qc_hvg_passes, MemoryPlan, StreamAnalysis, StreamOptions, COL_BLOCKS,
    READ_BYTES_PER_VALUE, RESIDENT_BYTES_PER_CELL, STEPS,
};
use crate::cluster::leiden;
use crate::embed::{umap, Init};
use crate::error::{Error, Result};
use crate::graph::umap_connectivities;
use crate::hvg::{highly_variable_from_moments, mean_var_from_sums, Flavor};
use crate::lognorm::LogTable;
use crate::markers::RankGenes;
use crate::neighbors::knn;
use crate::normalize::LogMoments;
use crate::pca::{pca_on_blocks, RowBlocks, Solver};
use crate::pipeline::runner::StepRunner;
use crate::pipeline::Progress;
use crate::qc::filter_cells_by_metrics;
use ndarray::Array2;
use std::path::Path;

/// Runs the streamed analysis on the 10x HDF5 file at `path`, or the `.h5ad` file (by its
/// extension; `X` or [`StreamOptions::layer`], stored as CSR) (see the module docs).
pub fn run(path: &Path, opts: &StreamOptions) -> Result<StreamAnalysis> {
    run_with_progress(path, opts, &mut |_| {})
}

/// [`run`], calling `progress` at the start and end of each step and after every block read.
pub fn run_with_progress(
    path: &Path,
    opts: &StreamOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<StreamAnalysis> {
    run_on(&mut Local, path, opts, progress)?
        .ok_or_else(|| Error::data("streamed analysis", "the only worker is not the leader"))
}

/// The streamed analysis as worker `w.index()` of `w.peers()` ([`super::workers`]): every worker
/// reads its blocks, the leader adds the parts up in block order; every worker keeps the HVG
/// rows of its PCA blocks and runs the PCA on them ([`pca_on_blocks`], its column sums
/// completed in block order by the leader: [`PcaSums`]); the leader gathers the embedding,
/// runs neighbours, Leiden and UMAP, and returns the analysis; the other workers return
/// `None`. With [`Local`] this is [`run_with_progress`]. `progress` is called on the leader
/// only. With several workers, only the randomized PCA solver runs (`Error::InvalidOption`
/// for another, before the file is read).
pub fn run_on<W: Workers>(
    w: &mut W,
    path: &Path,
    opts: &StreamOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Option<StreamAnalysis>> {
    let po = &opts.pipeline;
    check_options(opts)?;
    if w.peers() > 1 && !matches!(po.pca.solver, Solver::Randomized { .. }) {
        return Err(Error::option(
            "solver",
            "with several workers the PCA runs on each worker's rows, which only the \
             randomized solver (the default) does",
        ));
    }
    let budget = opts.memory_budget_bytes;
    let reader = open(path, opts);
    let others = w.agree("open", reader.as_ref().err().map(|e| e.to_string()));
    let reader = reader?;
    others?;
    let (n_cells, n_genes) = (reader.n_cells(), reader.n_genes());
    let mut steps = Steps {
        runner: w
            .is_leader()
            .then(|| StepRunner::new(progress, STEPS.to_vec())),
    };
    let resident = n_cells as u64 * (RESIDENT_BYTES_PER_CELL + 4 * (po.pca.n_comps as u64 + 2));
    if resident + (1 << 20) > budget {
        return Err(Error::option(
            "memory_budget",
            format!(
                "{budget} bytes is too small: {n_cells} cells need about {} bytes of per-cell \
                 tables plus room for one block",
                resident + (1 << 20)
            ),
        ));
    }
    let cell_blocks = plan_cell_blocks(&reader, opts.chunk_cells, budget / 8);
    let read_block_bytes = cell_blocks
        .iter()
        .map(|&(a, b)| reader.nnz_of(a, b) as u64 * READ_BYTES_PER_VALUE)
        .max()
        .unwrap_or(0);
    // Fraction of the stored values read once block `u` is folded.
    let total_nnz = reader.nnz().max(1) as f64;
    let mut read_so_far = Vec::with_capacity(cell_blocks.len());
    let mut acc = 0usize;
    for &(a, b) in &cell_blocks {
        acc += reader.nnz_of(a, b);
        read_so_far.push(acc as f64 / total_nnz);
    }
    let n_blocks = cell_blocks.len();
    let mut passes = 0;

    // ---- 1. QC ----
    let qc_opts = &po.filter.qc;
    let symbols = &reader.genes().symbols;
    let has = |s: &str, p: &[String]| p.iter().any(|x| s.starts_with(x.as_str()));
    let mt: Vec<bool> = symbols
        .iter()
        .map(|s| has(s, &qc_opts.mito_prefixes))
        .collect();
    let ribo: Vec<bool> = symbols
        .iter()
        .map(|s| has(s, &qc_opts.ribo_prefixes))
        .collect();
    let flags = crate::qc::gene_flags(&mt, &ribo);
    let fo = &po.filter;
    let local_only = fo.mad.is_none();
    let (leader_qc, keep) = steps.step("qc", |rep| {
        let mut sums = QcPart::empty(n_genes);
        w.pass(
            "qc",
            n_blocks,
            &mut |u| {
                let (a, b) = cell_blocks[u];
                let x = reader.read(a, b)?;
                let p = QcPart::of_block(&x, &flags, fo, local_only);
                reader.recycle(x);
                Ok((p, Vec::<(usize, ())>::new()))
            },
            &mut |u, p| {
                sums.add(p)?;
                rep(read_so_far[u]);
                Ok(())
            },
            &mut |_, ()| Ok(()),
        )?;
        let leader = w.is_leader().then(|| {
            let qc = sums.sums.finish(mt.clone(), ribo.clone());
            let samples = reader.samples(&opts.read.sample);
            let cells = filter_cells_by_metrics(&qc, &samples, fo)?;
            let n_kept = cells.keep_cells.len();
            if n_kept < 3 {
                return Err(Error::data(
                    "streamed pipeline",
                    format!("only {n_kept} cells pass the QC filters; at least 3 are needed"),
                ));
            }
            Ok((qc, cells, std::mem::take(&mut sums.kept)))
        });
        share_from_leader(w, "kept cells", leader, |(_, c, _)| c.keep_cells.clone())
    })?;
    passes += 1;
    let n_kept = keep.len();
    // Kept-cell position of every input cell (u32::MAX: removed).
    let mut kept_pos = vec![u32::MAX; n_cells];
    for (k, &i) in keep.iter().enumerate() {
        kept_pos[i] = k as u32;
    }
    let (qc, cells, mut gene_ncells) = match leader_qc {
        Some((q, c, g)) => (Some(q), Some(c), Some(g)),
        None => (None, None, None),
    };
    if !local_only {
        // The MAD thresholds needed every cell: count the genes over the kept cells now.
        gene_ncells = steps.step("qc", |rep| {
            let mut g = vec![0u32; n_genes];
            w.pass(
                "qc (kept cells)",
                n_blocks,
                &mut |u| {
                    let (a, b) = cell_blocks[u];
                    let x = reader.read(a, b)?;
                    let p = passes::kept_detection(a, &x, &kept_pos);
                    reader.recycle(x);
                    Ok((p, Vec::<(usize, ())>::new()))
                },
                &mut |u, p: Vec<u32>| {
                    if p.len() != n_genes {
                        return Err(Error::data("streamed pipeline", "a malformed gene count"));
                    }
                    for (a, b) in g.iter_mut().zip(p) {
                        *a += b;
                    }
                    rep(read_so_far[u]);
                    Ok(())
                },
                &mut |_, ()| Ok(()),
            )?;
            Ok(w.is_leader().then_some(g))
        })?;
        passes += 1;
    }
    let leader_genes = gene_ncells.map(|g| {
        let kept: Vec<usize> = match fo.min_cells {
            Some(mc) => (0..n_genes).filter(|&i| g[i] >= mc).collect(),
            None => (0..n_genes).collect(),
        };
        if kept.len() < 2 {
            return Err(Error::data(
                "streamed pipeline",
                format!("only {} genes pass the QC filters", kept.len()),
            ));
        }
        Ok(kept)
    });
    let (_, kept_genes) = share_from_leader(w, "kept genes", leader_genes, |k| k.clone())?;
    let genes_removed_min_cells = n_genes - kept_genes.len();
    let n_kg = kept_genes.len();
    // Kept-gene position of every input gene (u32::MAX: removed).
    let mut gene_pos = vec![u32::MAX; n_genes];
    for (k, &g) in kept_genes.iter().enumerate() {
        gene_pos[g] = k as u32;
    }

    // ---- 2. Normalization factors and HVG ----
    let seurat = po.hvg.flavor == Flavor::Seurat;
    let peers = w.peers();
    let k_nn = po.knn.n_neighbors.min(n_kept) as u64;
    let (leader_hvg, (size_factors, stored_per_gene, hvg_genes, kept_totals)) =
        steps.step("hvg", |rep| {
            let mut inputs = HvgInputs {
                kept_pos: &kept_pos,
                kept_genes: &kept_genes,
                target: 1.0,
                seurat,
            };
            inputs.target = match po.normalize.target_sum {
                Some(t) => t as f32,
                None => {
                    let mut totals = Vec::with_capacity(n_kept);
                    w.pass(
                        "median total",
                        n_blocks,
                        &mut |u| {
                            let (a, b) = cell_blocks[u];
                            let x = reader.read(a, b)?;
                            let t = inputs.kept_totals(a, &x);
                            reader.recycle(x);
                            Ok((t, Vec::<(usize, ())>::new()))
                        },
                        &mut |u, t: Vec<f32>| {
                            totals.extend(t);
                            rep(read_so_far[u]);
                            Ok(())
                        },
                        &mut |_, ()| Ok(()),
                    )?;
                    passes += 1;
                    let median = w
                        .is_leader()
                        .then(|| Ok(crate::normalize::median_f32(&totals)));
                    share_from_leader(w, "median total", median, |t| *t)?.1
                }
            };
            if !(inputs.target.is_finite() && inputs.target > 0.0) {
                return Err(Error::data(
                    "normalize_total",
                    "the median total is zero: set target_sum",
                ));
            }
            // Same blocking as `qc::col_reduce` over the kept cells: block sums added in order.
            let block = n_kept.div_ceil(COL_BLOCKS).max(1);
            let n_units = n_kept.div_ceil(block);
            let mut total = LogMoments::new(n_kg);
            let mut stored = vec![0u64; n_kg];
            let mut size_factors: Vec<f32> = Vec::with_capacity(n_kept);
            w.pass(
                "hvg",
                n_units,
                &mut |u| {
                    let (lo, hi) = (u * block, ((u + 1) * block).min(n_kept));
                    let cells = (keep[lo], keep[hi - 1] + 1);
                    let p = HvgPart::of_cells(&reader, &cell_blocks, cells, &inputs)?;
                    Ok((p, Vec::<(usize, ())>::new()))
                },
                &mut |u, p| {
                    if p.stored.len() != n_kg {
                        return Err(Error::data("streamed pipeline", "a malformed HVG part"));
                    }
                    total.add(&p.moments)?;
                    for (s, c) in stored.iter_mut().zip(&p.stored) {
                        *s += c;
                    }
                    size_factors.extend_from_slice(&p.size_factors);
                    rep((u + 1) as f64 / n_units as f64);
                    Ok(())
                },
                &mut |_, ()| Ok(()),
            )?;
            passes += 1;
            let leader = w.is_leader().then(|| {
                if size_factors.len() != n_kept {
                    return Err(Error::data("streamed pipeline", "size factors lost"));
                }
                // The in-memory moments' arithmetic; see the module docs of `super::passes` for
                // the genes with the same value in every kept cell.
                let (means, vars, _) = mean_var_from_sums(&total.finish(), n_kept, |_| false);
                let hvg = highly_variable_from_moments(means, &vars, &po.hvg)?;
                let hvg_genes = hvg.selected();
                if hvg_genes.len() < 2 {
                    return Err(Error::data(
                        "highly variable genes",
                        format!("{} genes selected; at least 2 are needed", hvg_genes.len()),
                    ));
                }
                let (hvg_nnz, downstream) =
                    downstream_bytes(&hvg_genes, &stored, n_kept, k_nn, po.pca.n_comps, peers);
                if resident + downstream > budget {
                    return Err(Error::option(
                        "memory_budget",
                        format!(
                            "{budget} bytes is too small for the in-memory steps on {n_kept} \
                             cells: the highly variable genes ({hvg_nnz} values), PCA, kNN \
                             graph and UMAP need about {} bytes",
                            resident + downstream
                        ),
                    ));
                }
                let qc = on_leader(qc.as_ref(), "QC metrics")?;
                let kept_totals: Vec<f64> = kept_genes
                    .iter()
                    .map(|&g| qc.gene_total_counts[g])
                    .collect();
                Ok((hvg, size_factors, stored, hvg_genes, kept_totals))
            });
            share_from_leader(w, "hvg", leader, |(_, sf, st, hg, kt)| {
                (sf.clone(), st.clone(), hg.clone(), kt.clone())
            })
        })?;
    // The HVG pass held a block and its kept-cell copy; the load pass reads one block at a
    // time, and the memory plan counts one.
    reader.keep_spare(1);
    let hvg = leader_hvg.map(|(h, ..)| h);
    let (hvg_nnz, downstream) = downstream_bytes(
        &hvg_genes,
        &stored_per_gene,
        n_kept,
        k_nn,
        po.pca.n_comps,
        peers,
    );
    let n_comps = po.pca.n_comps.min(n_kept - 1).min(hvg_genes.len());

    // ---- 3. Load the HVG columns of the kept cells; spill the counts by gene ranges ----
    let mut col_of = vec![u32::MAX; n_genes];
    for (k, &g) in hvg_genes.iter().enumerate() {
        col_of[kept_genes[g]] = k as u32;
    }
    let spill_parent = match &opts.spill_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir(),
    };
    let ranges = passes::gene_ranges(&stored_per_gene, w.peers());
    let (g0, g1) = ranges[w.index()];
    // Kept-gene position within each worker's range of every input gene.
    let owners: Vec<(usize, usize, Vec<u32>)> = ranges
        .iter()
        .enumerate()
        .filter(|(_, (a, b))| a < b)
        .map(|(o, &(a, b))| {
            let pos = gene_pos
                .iter()
                .map(|&p| {
                    let p = p as usize;
                    if p >= a && p < b {
                        (p - a) as u32
                    } else {
                        u32::MAX
                    }
                })
                .collect();
            (o, b - a, pos)
        })
        .collect();
    let spill_needed = spill::estimate_bytes(
        &stored_per_gene[g0..g1],
        &kept_totals[g0..g1],
        n_kept,
        n_blocks,
        opts.read.assume_counts,
    );
    let spill = spill::Spill::create(&spill_parent, g1 - g0, spill_needed);
    let others = w.agree("spill", spill.as_ref().err().map(|e| e.to_string()));
    let mut spill = spill?;
    others?;
    // The PCA's fixed row blocks of the kept cells, in contiguous ranges, one per worker; a
    // block of cells is read by the worker holding the PCA row of its middle kept cell, so
    // only the rows of blocks that straddle two ranges move.
    let held: Vec<std::ops::Range<usize>> = (0..w.peers())
        .map(|v| RowBlocks::split(n_kept, v, w.peers()).map(|b| b.rows()))
        .collect::<Result<_>>()?;
    let blocks = RowBlocks::split(n_kept, w.index(), w.peers())?;
    let load_owner = passes::load_owners(&cell_blocks, &kept_pos, &held);
    let x_mine = steps.step("load", |rep| {
        let mine = blocks.rows();
        let nnz_guess = (hvg_nnz as u128 * mine.len() as u128 / n_kept.max(1) as u128) as usize;
        let mut rows = RowsCollector::new(mine, nnz_guess);
        w.pass_owned(
            "load",
            n_blocks,
            &|u| load_owner.get(u).copied().unwrap_or(u),
            &mut |u| {
                let (a, b) = cell_blocks[u];
                let x = reader.read(a, b)?;
                let r = RowsPart::of_block(a, &x, &kept_pos, &size_factors, &col_of);
                let first = kept_pos[a..b].iter().find(|&&k| k != u32::MAX);
                let mut parts: Vec<(usize, LoadPart)> = match first {
                    Some(&k) => r
                        .cut(k as usize, &held)
                        .into_iter()
                        .map(|(v, k0, p)| (v, LoadPart::Rows(k0, p)))
                        .collect(),
                    None => Vec::new(),
                };
                parts.extend(owners.iter().filter_map(|(o, n, pos)| {
                    spill::encode_segment(a, &x, &kept_pos, pos, *n)
                        .map(|s| (*o, LoadPart::Segment(s)))
                }));
                reader.recycle(x);
                Ok(((), parts))
            },
            &mut |u, ()| {
                rep(read_so_far[u]);
                Ok(())
            },
            &mut |_, part| match part {
                LoadPart::Rows(first, r) => rows.add(first, r),
                LoadPart::Segment(s) => spill.append_encoded(s),
            },
        )?;
        passes += 1;
        reader.release_spare();
        let x = spill.finish().and_then(|()| rows.finish(hvg_genes.len()));
        let others = w.agree("load", x.as_ref().err().map(|e| e.to_string()));
        let x = x?;
        others?;
        Ok(x)
    })?;

    // ---- 4. PCA on every worker's rows; neighbors, Leiden, UMAP (on the leader) ----
    let pca_result = steps.step("pca", |_| {
        let mut o = po.pca.clone();
        o.n_comps = n_comps;
        let mine = pca_on_blocks(&x_mine, &blocks, &PcaSums::new(w, "pca"), &o)?;
        gather_embedding(w, mine, &blocks, n_kept)
    })?;
    drop(x_mine);
    let leader_down = pca_result.map(|pca_result| -> Result<_> {
        let (knn_result, connectivities) = steps.step("neighbors", |_| {
            let mut o = po.knn.clone();
            o.n_neighbors = o.n_neighbors.min(n_kept);
            let k = knn(pca_result.embedding.view(), &o)?;
            let c = umap_connectivities(&k, n_kept, &po.graph)?;
            Ok((k, c))
        })?;
        let clustering = steps.step("leiden", |_| leiden(&connectivities, &po.leiden))?;
        let layout = if po.skip_umap {
            Array2::zeros((0, 2))
        } else {
            steps.step("umap", |_| umap(&connectivities, Init::Spectral, &po.umap))?
        };
        Ok((pca_result, knn_result, clustering, layout))
    });
    let (leader_down, (labels, n_groups)) =
        share_from_leader(w, "clusters", leader_down, |(_, _, c, _)| {
            (c.labels.clone(), c.n_clusters)
        })?;

    // ---- 5. Markers: each worker ranks its range of genes, block by block ----
    let held = resident + n_kept as u64 * (k_nn * 8 + 8 + LogTable::BYTES_PER_CELL);
    let avail = budget.saturating_sub(held + read_block_bytes);
    let marker_block_bytes = (avail / 2).max(1);
    let per_gene = 8 * (4 * n_groups as u64 + 1);
    let logs = LogTable::new(&size_factors);
    let leader_markers = steps.step("markers", |rep| {
        let (mut blocks, mut spill_bytes, mut parts) = (Vec::new(), 0u64, Vec::new());
        w.pass(
            "markers",
            w.peers(),
            &mut |u| {
                let (a, b) = ranges[u];
                let mine: Vec<(usize, usize)> = markers::plan_gene_blocks(
                    &stored_per_gene[a..b],
                    per_gene,
                    n_kept,
                    marker_block_bytes,
                )
                .into_iter()
                .map(|(x, y)| (x + a, y + a))
                .collect();
                let n = mine.len().max(1) as f64;
                let r = markers::rank_range(
                    &spill,
                    a,
                    &mine,
                    &logs,
                    &labels,
                    &po.markers,
                    &mut |done| rep(done as f64 / n),
                )?;
                Ok(((mine, spill.bytes(), r), Vec::<(usize, ())>::new()))
            },
            &mut |_, (b, s, r): MarkerPart| {
                blocks.extend(b);
                spill_bytes += s;
                parts.extend(r);
                Ok(())
            },
            &mut |_, ()| Ok(()),
        )?;
        Ok(w.is_leader().then_some((parts, blocks, spill_bytes)))
    })?;
    drop(spill);
    drop(logs);
    let exchange = w.exchange_reports()?;
    let Some((parts, marker_blocks, spill_bytes)) = leader_markers else {
        return Ok(None);
    };
    let ranked = markers::concat(parts)?
        .ok_or_else(|| Error::data("markers", "no gene block was ranked"))?;
    let markers = markers::finish(ranked, po.markers.corr_method);
    let (pca_result, knn_result, clustering, layout) = on_leader(leader_down, "clusters")?;
    let steps = on_leader(steps.runner, "steps")?.into_steps();
    let peak = steps.iter().filter_map(|s| s.peak_rss_bytes).max();
    Ok(Some(StreamAnalysis {
        input_shape: (n_cells, n_genes),
        input_nnz: reader.nnz(),
        barcodes: reader.barcodes().to_vec(),
        genes: reader.genes().clone(),
        qc: on_leader(qc, "QC metrics")?,
        cells: on_leader(cells, "cell filter")?,
        kept_genes,
        genes_removed_min_cells,
        size_factors,
        stored_per_gene,
        hvg: on_leader(hvg, "HVG statistics")?,
        hvg_genes,
        pca: pca_result,
        knn: knn_result,
        clustering,
        umap: layout,
        markers,
        passes,
        qc_hvg_passes: qc_hvg_passes(po),
        plan: MemoryPlan {
            budget_bytes: budget,
            resident_bytes: resident,
            read_block_bytes,
            downstream_bytes: downstream,
            marker_block_bytes,
            cell_blocks,
            marker_blocks,
            spill_bytes,
        },
        steps,
        peak_rss_bytes: peak,
        workers: w.peers(),
        exchange,
    }))
}

/// What a worker's range of genes gives the leader: its gene blocks, its spill's bytes and
/// its markers (`None` for an empty range).
type MarkerPart = (Vec<(usize, usize)>, u64, Option<RankGenes>);

/// Stored values of the HVG columns, and the estimate of the leader's share of the HVG matrix
/// (`1 / peers` of it: each worker holds the rows of its PCA blocks) plus PCA, kNN and UMAP
/// working space.
fn downstream_bytes(
    hvg_genes: &[usize],
    stored: &[u64],
    n_kept: usize,
    k_nn: u64,
    n_comps: usize,
    peers: usize,
) -> (u64, u64) {
    let n_comps = n_comps.min(n_kept - 1).min(hvg_genes.len()) as u64;
    let hvg_nnz: u64 = hvg_genes.iter().map(|&g| stored[g]).sum();
    let downstream = (hvg_nnz * 8).div_ceil(peers.max(1) as u64)
        + n_kept as u64 * (8 + (n_comps + 20) * 32 + k_nn * 64);
    (hvg_nnz, downstream)
}
