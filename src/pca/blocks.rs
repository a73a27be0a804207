//! The rows of the matrix decomposed, cut into fixed blocks of [`BLOCK_ROWS`] rows, and the
//! column sums over them: every sum over the rows (column moments, `A^T Y`, Gram matrices) is
//! a sum of per-block vectors added along one binary tree fixed by the number of blocks (split
//! at `mid = lo + (hi - lo) / 2`), so the result does not depend on the thread count.
//!
//! The rows may be spread over several workers ([`RowBlocks::split`]: contiguous ranges of
//! blocks). Each worker adds up the largest subtrees lying wholly inside its range
//! ([`RowBlocks::subtrees`]); the tree is completed in its fixed shape from every worker's
//! subtree sums ([`RowBlocks::complete`]), which gives the same bits as one worker holding
//! every row. How the subtree sums of the workers meet is a [`Combine`]: [`Alone`] for one
//! worker, the streamed analysis's workers for several (`crate::stream`).

use std::collections::BTreeMap;
use std::ops::Range;

use super::BLOCK_ROWS;
use crate::error::{Error, Result};

/// The blocks of [`BLOCK_ROWS`] rows of a matrix of `n_rows` rows that one worker holds: a
/// contiguous range of them (blocks `0..n_blocks()` in row order; the last may be short).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowBlocks {
    n_rows: usize,
    blocks: Range<usize>,
}

/// The sum of the leaf vectors of the blocks `lo..hi`, one node of the fixed tree.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSum {
    /// First block of the node.
    pub lo: usize,
    /// One past its last block.
    pub hi: usize,
    /// The element-wise sum, added up along the fixed tree.
    pub sum: Vec<f64>,
}

/// How the subtree sums of the workers holding the rows meet: every worker calls
/// [`Combine::combine`] with its [`RowBlocks`] and its subtree sums, in the same order of
/// calls on every worker, and gets the completed tree's root
/// ([`RowBlocks::complete`] of every worker's sums). An error on one worker must be an error
/// on every worker.
pub trait Combine {
    /// The root of the tree from every worker's subtree sums (this worker's are `nodes`).
    fn combine(&self, blocks: &RowBlocks, nodes: Vec<NodeSum>) -> Result<Vec<f64>>;
}

/// One worker holding every row: the tree is completed from its own sums.
#[derive(Debug, Clone, Copy, Default)]
pub struct Alone;

impl Combine for Alone {
    fn combine(&self, blocks: &RowBlocks, nodes: Vec<NodeSum>) -> Result<Vec<f64>> {
        blocks.complete(nodes)
    }
}

impl RowBlocks {
    /// Every block of a matrix of `n_rows` rows.
    pub fn all(n_rows: usize) -> RowBlocks {
        RowBlocks {
            n_rows,
            blocks: 0..n_blocks(n_rows),
        }
    }

    /// Worker `worker`'s share of `workers`: the blocks
    /// `worker * B / workers .. (worker + 1) * B / workers` of the `B` blocks (empty when there
    /// are more workers than blocks).
    pub fn split(n_rows: usize, worker: usize, workers: usize) -> Result<RowBlocks> {
        if worker >= workers {
            return Err(Error::data(
                "row blocks",
                format!("worker {worker} of {workers}"),
            ));
        }
        let b = n_blocks(n_rows);
        Ok(RowBlocks {
            n_rows,
            blocks: worker * b / workers..(worker + 1) * b / workers,
        })
    }

    /// Rows of the whole matrix.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Blocks of the whole matrix (at least one).
    pub fn n_blocks(&self) -> usize {
        n_blocks(self.n_rows)
    }

    /// The blocks held.
    pub fn blocks(&self) -> Range<usize> {
        self.blocks.clone()
    }

    /// The rows held (of the whole matrix's rows).
    pub fn rows(&self) -> Range<usize> {
        let start = (self.blocks.start * BLOCK_ROWS).min(self.n_rows);
        start..(self.blocks.end * BLOCK_ROWS).min(self.n_rows)
    }

    /// Whether every row is held here.
    pub fn holds_all(&self) -> bool {
        self.blocks == (0..self.n_blocks())
    }

    /// The sums of the largest subtrees of the fixed tree lying wholly in the blocks held, in
    /// block order. `leaf` maps rows (numbered from the first row held) to a vector; inside a
    /// subtree, halves are computed in parallel and added in the tree's order.
    pub fn subtrees<F>(&self, leaf: F) -> Vec<NodeSum>
    where
        F: Fn(Range<usize>) -> Vec<f64> + Sync,
    {
        let mut out = Vec::new();
        self.walk(0, self.n_blocks(), &leaf, &mut out);
        out
    }

    fn walk<F>(&self, lo: usize, hi: usize, leaf: &F, out: &mut Vec<NodeSum>)
    where
        F: Fn(Range<usize>) -> Vec<f64> + Sync,
    {
        let mine = &self.blocks;
        if hi <= mine.start || lo >= mine.end {
            return;
        }
        if mine.start <= lo && hi <= mine.end {
            let offset = mine.start * BLOCK_ROWS;
            let sum = tree(lo, hi, self.n_rows, offset, leaf);
            out.push(NodeSum { lo, hi, sum });
            return;
        }
        let mid = lo + (hi - lo) / 2;
        self.walk(lo, mid, leaf, out);
        self.walk(mid, hi, leaf, out);
    }

    /// The root of the fixed tree from the subtree sums of every worker (in any order): each
    /// node given is used as it is, the others are added from their halves. Errors on a block
    /// no node covers, a node given twice or outside the tree, or sums of different lengths.
    pub fn complete(&self, nodes: Vec<NodeSum>) -> Result<Vec<f64>> {
        let mut given: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
        for n in nodes {
            if given.insert((n.lo, n.hi), n.sum).is_some() {
                return Err(malformed(format!("blocks {}..{} summed twice", n.lo, n.hi)));
            }
        }
        let root = fill(0, self.n_blocks(), &mut given)?;
        if let Some(((lo, hi), _)) = given.first_key_value() {
            return Err(malformed(format!(
                "a sum of blocks {lo}..{hi}, not a node of the tree of {} blocks",
                self.n_blocks()
            )));
        }
        Ok(root)
    }
}

fn n_blocks(n_rows: usize) -> usize {
    n_rows.div_ceil(BLOCK_ROWS).max(1)
}

fn malformed(msg: String) -> Error {
    Error::data("pca: sums of row blocks", msg)
}

/// The sum of the leaves of blocks `lo..hi` along the fixed tree; leaves get their rows minus
/// `offset`.
fn tree<F>(lo: usize, hi: usize, n_rows: usize, offset: usize, leaf: &F) -> Vec<f64>
where
    F: Fn(Range<usize>) -> Vec<f64> + Sync,
{
    if hi - lo <= 1 {
        let start = lo * BLOCK_ROWS;
        let end = (start + BLOCK_ROWS).min(n_rows);
        return leaf(start - offset..end - offset);
    }
    let mid = lo + (hi - lo) / 2;
    let (mut a, b) = rayon::join(
        || tree(lo, mid, n_rows, offset, leaf),
        || tree(mid, hi, n_rows, offset, leaf),
    );
    for (x, y) in a.iter_mut().zip(&b) {
        *x += y;
    }
    a
}

/// Node `lo..hi` from the given nodes, or from its halves.
fn fill(lo: usize, hi: usize, given: &mut BTreeMap<(usize, usize), Vec<f64>>) -> Result<Vec<f64>> {
    if let Some(s) = given.remove(&(lo, hi)) {
        return Ok(s);
    }
    if hi - lo <= 1 {
        return Err(malformed(format!("no sum covers block {lo}")));
    }
    let mid = lo + (hi - lo) / 2;
    let mut a = fill(lo, mid, given)?;
    let b = fill(mid, hi, given)?;
    if a.len() != b.len() {
        return Err(malformed(format!(
            "sums of {} and {} values for blocks {lo}..{mid} and {mid}..{hi}",
            a.len(),
            b.len()
        )));
    }
    for (x, y) in a.iter_mut().zip(&b) {
        *x += y;
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One worker holding every row: the whole fixed tree.
    fn block_reduce(n: usize, leaf: impl Fn(Range<usize>) -> Vec<f64> + Sync) -> Vec<f64> {
        tree(0, n_blocks(n), n, 0, &leaf)
    }

    /// A leaf whose sums depend on the order of addition (values of very different sizes).
    fn leaf(rows: Range<usize>) -> Vec<f64> {
        let mut acc = vec![0.0f64; 3];
        for i in rows {
            let x = i as f64;
            acc[0] += (x * 0.37).sin() * 10f64.powi((i % 13) as i32 - 6);
            acc[1] += 1.0 / (x + 1.0);
            acc[2] += 0.1;
        }
        acc
    }

    #[test]
    fn a_tree_completed_from_several_workers_equals_one_worker_bit_for_bit() {
        for b in 1..=40usize {
            // a short last block
            let n = b * BLOCK_ROWS - (b * 97) % BLOCK_ROWS;
            let want = block_reduce(n, leaf);
            for workers in 1..=4 {
                let mut nodes = Vec::new();
                let mut covered = 0;
                for w in 0..workers {
                    let rb = RowBlocks::split(n, w, workers).unwrap();
                    let rows = rb.rows();
                    assert_eq!(rows.start, covered, "{b} blocks, worker {w} of {workers}");
                    covered = rows.end;
                    let off = rows.start;
                    nodes.extend(rb.subtrees(|r: Range<usize>| leaf(r.start + off..r.end + off)));
                }
                assert_eq!(covered, n);
                // the nodes arrive in any order
                nodes.reverse();
                let got = RowBlocks::split(n, 0, workers)
                    .unwrap()
                    .complete(nodes)
                    .unwrap();
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{b} blocks, {workers} workers");
            }
        }
    }

    #[test]
    fn missing_twice_given_or_foreign_nodes_are_errors() {
        let n = 5 * BLOCK_ROWS;
        let all = RowBlocks::all(n);
        assert!(all.holds_all());
        let first = RowBlocks::split(n, 0, 2).unwrap();
        assert!(!first.holds_all());
        let second = RowBlocks::split(n, 1, 2).unwrap();
        let mut nodes = first.subtrees(leaf);
        // the second half is missing
        assert!(all.complete(nodes.clone()).is_err());
        let mut rest = second.subtrees(leaf);
        nodes.append(&mut rest);
        assert!(all.complete(nodes.clone()).is_ok());
        let mut twice = nodes.clone();
        twice.push(nodes[0].clone());
        assert!(all.complete(twice).is_err());
        let mut foreign = nodes.clone();
        foreign.push(NodeSum {
            lo: 1,
            hi: 4,
            sum: vec![0.0; 3],
        });
        assert!(all.complete(foreign).is_err());
        let mut short = nodes;
        short[0].sum.pop();
        assert!(all.complete(short).is_err());
        assert!(RowBlocks::split(n, 2, 2).is_err());
        // more workers than blocks: some hold nothing and send nothing
        let empty = RowBlocks::split(BLOCK_ROWS, 0, 3).unwrap();
        assert_eq!(empty.rows().len(), 0);
        assert!(empty.subtrees(leaf).is_empty());
    }
}
