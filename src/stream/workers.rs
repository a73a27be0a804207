//! Who runs the passes of a streamed analysis, and how their partial results meet.
//!
//! Every pass over the file is a list of *units* (blocks of cells, or gene ranges) numbered
//! `0..n`. A worker computes the units it owns (unit `u` belongs to worker `u mod peers`, or
//! to the worker a pass names for it: [`Workers::pass_owned`]) and
//! returns, per unit, one part for the leader (worker 0) and any number of parts addressed to
//! given workers. The leader folds the leader parts **in unit order**, whoever computed them,
//! so every sum is taken in the same order as by one worker reading the file front to back:
//! the results are identical for any number of workers. The addressed parts (encoded spill
//! segments for the worker that owns a range of genes) are taken in any order.
//!
//! [`Local`] is one worker that owns every unit and hands the values over without encoding:
//! [`super::run`]. `crate::distributed` (feature `distributed`) runs the same passes, the
//! same code, on timely-dataflow workers in several threads and processes.
//!
//! [`PcaSums`] is how the column sums of the PCA meet when each worker holds its own rows of
//! the HVG matrix ([`crate::pca::pca_on_blocks`]): the subtree sums go to the leader, which
//! completes the fixed tree and shares the root with every worker.

use super::wire::Wire;
use crate::error::{Error, Result};
use crate::pca::{Combine, NodeSum, Pca, RowBlocks};
use ndarray::Array2;
use std::cell::RefCell;

/// Bytes sent between workers by one pass (or shared table), summed over all workers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExchangeReport {
    /// The pass (`qc`, `hvg`, `load`, `markers`, ...) or the shared table.
    pub pass: String,
    /// Messages sent to another worker.
    pub messages: u64,
    /// Bytes of those messages (their encoding).
    pub bytes: u64,
    /// Bytes of the messages sent to a worker of another process (over the network).
    pub network_bytes: u64,
    /// Wall time of the pass on the leader, in seconds (reading and computing included).
    pub seconds: f64,
}

/// A unit's part for the leader and its parts addressed to given workers.
pub type UnitParts<P, R> = (P, Vec<(usize, R)>);

/// The workers of one streamed analysis (see the module docs).
pub trait Workers {
    /// This worker's index, `0..peers()`.
    fn index(&self) -> usize;
    /// Number of workers.
    fn peers(&self) -> usize;
    /// Whether this is the leader (worker 0), which folds the parts and runs the in-memory
    /// steps.
    fn is_leader(&self) -> bool {
        self.index() == 0
    }
    /// Whether this worker computes unit `u` of a [`Workers::pass`].
    fn owns(&self, u: usize) -> bool {
        u % self.peers() == self.index()
    }

    /// One pass over `n_units` units: `compute` for each owned unit (`u mod peers` is this
    /// worker) in increasing order; on the leader `fold` for every unit's leader part in unit
    /// order; on the addressed worker `take` for every addressed part. An error anywhere ends
    /// the pass with an error on every worker.
    fn pass<P, R>(
        &mut self,
        name: &'static str,
        n_units: usize,
        compute: &mut dyn FnMut(usize) -> Result<UnitParts<P, R>>,
        fold: &mut dyn FnMut(usize, P) -> Result<()>,
        take: &mut dyn FnMut(usize, R) -> Result<()>,
    ) -> Result<()>
    where
        P: Wire + Send + 'static,
        R: Wire + Send + 'static,
    {
        let peers = self.peers();
        self.pass_owned(name, n_units, &|u| u % peers, compute, fold, take)
    }

    /// [`Workers::pass`] with unit `u` computed by worker `owner(u) mod peers` (the same
    /// function on every worker), for passes whose units belong with data a worker holds.
    fn pass_owned<P, R>(
        &mut self,
        name: &'static str,
        n_units: usize,
        owner: &dyn Fn(usize) -> usize,
        compute: &mut dyn FnMut(usize) -> Result<UnitParts<P, R>>,
        fold: &mut dyn FnMut(usize, P) -> Result<()>,
        take: &mut dyn FnMut(usize, R) -> Result<()>,
    ) -> Result<()>
    where
        P: Wire + Send + 'static,
        R: Wire + Send + 'static;

    /// The leader's `value` (`Some` on the leader, ignored elsewhere) on every worker; the
    /// leader's error becomes an error on every worker.
    fn share<T: Wire + Clone + Send + 'static>(
        &mut self,
        name: &'static str,
        value: Option<Result<T>>,
    ) -> Result<T>;

    /// Every worker learns whether another worker failed (`error`: this worker's failure,
    /// described): an error naming the first failed other worker, else `Ok`. Each worker then
    /// returns its own error first, so the leader's typed error is the one reported.
    fn agree(&mut self, name: &'static str, error: Option<String>) -> Result<()>;

    /// Bytes exchanged since the last call, per pass, summed over all workers (on the leader;
    /// empty elsewhere and for [`Local`]).
    fn exchange_reports(&mut self) -> Result<Vec<ExchangeReport>>;
}

/// One worker, in this thread (the default streamed analysis).
#[derive(Debug, Default, Clone, Copy)]
pub struct Local;

impl Workers for Local {
    fn index(&self) -> usize {
        0
    }
    fn peers(&self) -> usize {
        1
    }
    fn pass_owned<P, R>(
        &mut self,
        _name: &'static str,
        n_units: usize,
        _owner: &dyn Fn(usize) -> usize,
        compute: &mut dyn FnMut(usize) -> Result<UnitParts<P, R>>,
        fold: &mut dyn FnMut(usize, P) -> Result<()>,
        take: &mut dyn FnMut(usize, R) -> Result<()>,
    ) -> Result<()>
    where
        P: Wire + Send + 'static,
        R: Wire + Send + 'static,
    {
        for u in 0..n_units {
            let (p, routed) = compute(u)?;
            fold(u, p)?;
            for (_, r) in routed {
                take(u, r)?;
            }
        }
        Ok(())
    }
    fn share<T: Wire + Clone + Send + 'static>(
        &mut self,
        name: &'static str,
        value: Option<Result<T>>,
    ) -> Result<T> {
        value.unwrap_or_else(|| {
            Err(Error::data(
                "streamed analysis",
                format!("no value to share for {name}"),
            ))
        })
    }
    fn agree(&mut self, _name: &'static str, _error: Option<String>) -> Result<()> {
        Ok(())
    }
    fn exchange_reports(&mut self) -> Result<Vec<ExchangeReport>> {
        Ok(Vec::new())
    }
}

/// The column sums of [`crate::pca::pca_on_blocks`] over workers that each hold their own
/// rows: every worker sends its subtree sums to the leader (a pass of one unit per worker,
/// reported as `pass`), the leader completes the fixed tree ([`RowBlocks::complete`]) and
/// shares the root with every worker. With [`Local`] nothing is encoded and the one subtree
/// is the root itself.
pub struct PcaSums<'w, W: Workers> {
    w: RefCell<&'w mut W>,
    pass: &'static str,
}

impl<'w, W: Workers> PcaSums<'w, W> {
    /// The sums of the workers `w`, exchanged under the name `pass`.
    pub fn new(w: &'w mut W, pass: &'static str) -> Self {
        PcaSums {
            w: RefCell::new(w),
            pass,
        }
    }
}

impl<W: Workers> Combine for PcaSums<'_, W> {
    fn combine(&self, blocks: &RowBlocks, nodes: Vec<NodeSum>) -> Result<Vec<f64>> {
        let mut w = self
            .w
            .try_borrow_mut()
            .map_err(|_| Error::data("pca", "a sum over the workers inside another"))?;
        let (peers, name) = (w.peers(), self.pass);
        let mut mine = Some(nodes);
        let mut all: Vec<NodeSum> = Vec::new();
        w.pass_owned(
            name,
            peers,
            &|u| u,
            &mut |_| {
                let nodes: Vec<(usize, usize, Vec<f64>)> = mine
                    .take()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|n| (n.lo, n.hi, n.sum))
                    .collect();
                Ok((nodes, Vec::<(usize, ())>::new()))
            },
            &mut |_, nodes| {
                all.extend(
                    nodes
                        .into_iter()
                        .map(|(lo, hi, sum)| NodeSum { lo, hi, sum }),
                );
                Ok(())
            },
            &mut |_, ()| Ok(()),
        )?;
        let root = w.is_leader().then(|| blocks.complete(all));
        w.share(name, root)
    }
}

/// The leader's PCA with every worker's rows of the embedding, gathered in row order (a pass of
/// one unit per worker, `pca embedding`); `None` on the other workers.
pub(super) fn gather_embedding<W: Workers>(
    w: &mut W,
    mine: Pca,
    blocks: &RowBlocks,
    n_kept: usize,
) -> Result<Option<Pca>> {
    let k = mine.embedding.ncols();
    let mut rows: Vec<f32> = Vec::with_capacity(if w.is_leader() { n_kept * k } else { 0 });
    let mut own = Some(mine.embedding.iter().copied().collect::<Vec<f32>>());
    let first = blocks.rows().start;
    w.pass_owned(
        "pca embedding",
        w.peers(),
        &|u| u,
        &mut |_| {
            Ok((
                (first, own.take().unwrap_or_default()),
                Vec::<(usize, ())>::new(),
            ))
        },
        &mut |_, (at, part): (usize, Vec<f32>)| {
            if at * k != rows.len() || part.len() % k.max(1) != 0 {
                return Err(Error::data(
                    "message between workers",
                    format!(
                        "embedding rows from {at} where row {} is next",
                        rows.len() / k
                    ),
                ));
            }
            rows.extend(part);
            Ok(())
        },
        &mut |_, ()| Ok(()),
    )?;
    if !w.is_leader() {
        return Ok(None);
    }
    let embedding = Array2::from_shape_vec((n_kept, k), rows)
        .map_err(|e| Error::data("pca embedding", e.to_string()))?;
    Ok(Some(Pca { embedding, ..mine }))
}
