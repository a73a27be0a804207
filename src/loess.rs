//! One-dimensional loess (local polynomial regression), as the netlib `dloess` code of
//! Cleveland, Grosse and Shyu that scikit-misc's `skmisc.loess` wraps; used by the `seurat_v3`
//! highly-variable-gene flavor (Scanpy calls `loess(x, y, span=0.3, degree=2)` with the
//! default `surface="interpolate"`, `family="gaussian"`, `cell=0.2`).
//!
//! Local fit at a point `q` (netlib `ehg127`): the `nf = floor(n * span)` points nearest to
//! `q` are used; with `rho` the largest of their squared distances, point `i` gets weight
//! `(1 - (|x_i - q| / sqrt(rho))^3)^3` (tricube), and a weighted least-squares polynomial
//! of degree `degree` in `(x - q)` is fitted; its constant term is the value at `q` and its
//! linear term the slope.
//!
//! `surface = Interpolate` (netlib `ehg124` / `ehg128`): the sorted `x` range, widened by 0.5 %
//! each side, is split recursively at the median data value (moved to the nearest place
//! between two distinct values) until a cell holds at most `floor(n * span * cell)` points;
//! the local fit (value and slope) is computed at every cell boundary (vertex), and the
//! fitted value at `x` is the cubic Hermite interpolation of the two vertices of its cell.
//! `surface = Direct` fits at every `x` directly.
//!
//! Not implemented: more than one predictor, robust (`symmetric`) iterations, prediction
//! intervals.

use crate::error::{Error, Result};
use rayon::prelude::*;

/// How fitted values are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Fit at k-d tree vertices and interpolate (netlib and skmisc default).
    Interpolate,
    /// Fit at every point.
    Direct,
}

/// Options of [`loess`].
#[derive(Debug, Clone, PartialEq)]
pub struct LoessOptions {
    /// Fraction of points in each local fit. Default `0.3` (Scanpy's `seurat_v3` span).
    pub span: f64,
    /// Degree of the local polynomial, 0, 1 or 2. Default `2`.
    pub degree: usize,
    /// Cells of the interpolation tree hold at most `floor(n * span * cell)` points.
    /// Default `0.2` (netlib).
    pub cell: f64,
    /// Default [`Surface::Interpolate`].
    pub surface: Surface,
}

impl Default for LoessOptions {
    fn default() -> Self {
        LoessOptions {
            span: 0.3,
            degree: 2,
            cell: 0.2,
            surface: Surface::Interpolate,
        }
    }
}

/// Sorted data with the local-fit machinery.
struct Local<'a> {
    xs: &'a [f64],
    ys: &'a [f64],
    nf: usize,
    span: f64,
    degree: usize,
}

impl Local<'_> {
    /// `(value, slope)` of the local fit at `q`.
    fn fit(&self, q: f64) -> (f64, f64) {
        let xs = self.xs;
        let n = xs.len();
        let nf = self.nf;
        // The nf nearest points form a contiguous window of the sorted x.
        let mut lo = xs.partition_point(|&v| v < q);
        let mut hi = lo; // window [lo, hi)
        while hi - lo < nf {
            let take_left = lo > 0 && (hi == n || q - xs[lo - 1] <= xs[hi] - q);
            if take_left {
                lo -= 1;
            } else {
                hi += 1;
            }
        }
        let d_lo = (xs[lo] - q) * (xs[lo] - q);
        let d_hi = (xs[hi - 1] - q) * (xs[hi - 1] - q);
        let rho = d_lo.max(d_hi) * self.span.max(1.0);
        let k = self.degree + 1;
        // Weighted design, rows sqrt(w) * [1, (x-q), (x-q)^2], response sqrt(w) * y.
        let m = hi - lo;
        let mut a = vec![[0f64; 3]; m];
        let mut b = vec![0f64; m];
        for (r, i) in (lo..hi).enumerate() {
            let dx = xs[i] - q;
            let t = ((dx * dx) / rho).sqrt();
            let w = if t < 1.0 {
                let u = 1.0 - t * t * t;
                (u * u * u).sqrt()
            } else {
                0.0
            };
            let mut p = w;
            for cell in a[r].iter_mut().take(k) {
                *cell = p;
                p *= dx;
            }
            b[r] = w * self.ys[i];
        }
        let coef = lstsq(&mut a, &mut b, k);
        (coef[0], if k > 1 { coef[1] } else { 0.0 })
    }
}

/// Least squares `min ||A c - b||` for `k <= 3` columns by Householder QR with column
/// equilibration (as netlib); a (numerically) rank-deficient column gets coefficient 0.
fn lstsq(a: &mut [[f64; 3]], b: &mut [f64], k: usize) -> [f64; 3] {
    let m = a.len();
    let mut scale = [1f64; 3];
    for (c, s) in scale.iter_mut().enumerate().take(k) {
        let nrm = a.iter().map(|r| r[c] * r[c]).sum::<f64>().sqrt();
        if nrm > 0.0 {
            *s = nrm;
            for r in a.iter_mut() {
                r[c] /= nrm;
            }
        }
    }
    let mut diag = [0f64; 3];
    for c in 0..k.min(m) {
        let nrm = a[c..].iter().map(|r| r[c] * r[c]).sum::<f64>().sqrt();
        if nrm == 0.0 {
            continue;
        }
        let alpha = if a[c][c] > 0.0 { -nrm } else { nrm };
        // v = x - alpha e1, stored in a[c..][c]
        a[c][c] -= alpha;
        let vnorm2: f64 = a[c..].iter().map(|r| r[c] * r[c]).sum();
        if vnorm2 > 0.0 {
            for cc in c + 1..k {
                let d: f64 = a[c..].iter().map(|r| r[c] * r[cc]).sum::<f64>() * 2.0 / vnorm2;
                for r in a[c..].iter_mut() {
                    r[cc] -= d * r[c];
                }
            }
            let d: f64 = a[c..]
                .iter()
                .zip(&b[c..])
                .map(|(r, y)| r[c] * y)
                .sum::<f64>()
                * 2.0
                / vnorm2;
            for (r, y) in a[c..].iter().zip(b[c..].iter_mut()) {
                *y -= d * r[c];
            }
        }
        diag[c] = alpha;
    }
    let tol = diag[..k].iter().fold(0f64, |m, d| m.max(d.abs())) * 100.0 * f64::EPSILON;
    let mut coef = [0f64; 3];
    for c in (0..k.min(m)).rev() {
        if diag[c].abs() <= tol {
            coef[c] = 0.0;
            continue;
        }
        let mut s = b[c];
        for cc in c + 1..k {
            s -= a[c][cc] * coef[cc];
        }
        coef[c] = s / diag[c];
    }
    for c in 0..k {
        coef[c] /= scale[c];
    }
    coef
}

/// Fitted values of a loess regression of `y` on `x` at the points `x` (see the module docs).
///
/// Errors: lengths differ, non-finite values, bad options, or fewer than `degree + 1` points
/// in a local fit.
pub fn loess(x: &[f64], y: &[f64], opts: &LoessOptions) -> Result<Vec<f64>> {
    if x.len() != y.len() {
        return Err(Error::data(
            "loess",
            format!("{} x values but {} y values", x.len(), y.len()),
        ));
    }
    if !(opts.span > 0.0 && opts.span.is_finite()) {
        return Err(Error::option(
            "span",
            format!("must be positive, got {}", opts.span),
        ));
    }
    if opts.degree > 2 {
        return Err(Error::option(
            "degree",
            format!("must be 0, 1 or 2, got {}", opts.degree),
        ));
    }
    if !(opts.cell > 0.0 && opts.cell.is_finite()) {
        return Err(Error::option(
            "cell",
            format!("must be positive, got {}", opts.cell),
        ));
    }
    if x.iter().chain(y).any(|v| !v.is_finite()) {
        return Err(Error::data("loess", "x and y must be finite"));
    }
    let n = x.len();
    let nf = ((n as f64 * opts.span).floor() as usize).min(n);
    if nf < opts.degree + 1 {
        return Err(Error::data(
            "loess",
            format!(
                "span {} of {n} points leaves {nf} points per local fit",
                opts.span
            ),
        ));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let xs: Vec<f64> = order.iter().map(|&i| x[i]).collect();
    let ys: Vec<f64> = order.iter().map(|&i| y[i]).collect();
    let local = Local {
        xs: &xs,
        ys: &ys,
        nf,
        span: opts.span,
        degree: opts.degree,
    };
    let fitted_sorted: Vec<f64> = match opts.surface {
        Surface::Direct => xs.par_iter().map(|&q| local.fit(q).0).collect(),
        Surface::Interpolate => {
            let tree = KdTree::build(&xs, (n as f64 * (opts.span * opts.cell)).floor() as usize);
            let vals: Vec<(f64, f64)> = tree.vertices.par_iter().map(|&v| local.fit(v)).collect();
            xs.iter().map(|&z| tree.eval(z, &vals)).collect()
        }
    };
    let mut out = vec![0f64; n];
    for (k, &i) in order.iter().enumerate() {
        out[i] = fitted_sorted[k];
    }
    Ok(out)
}

/// The 1-D k-d tree of netlib's `ehg126` / `ehg124`.
struct KdTree {
    vertices: Vec<f64>,
    /// Per cell: split value (`None` for a leaf), children, lower and upper vertex index.
    cells: Vec<Cell>,
}

struct Cell {
    split: Option<f64>,
    lo: usize,
    hi: usize,
    v_lo: usize,
    v_hi: usize,
}

impl KdTree {
    fn build(xs: &[f64], fc: usize) -> KdTree {
        let n = xs.len();
        let (alpha, beta) = (xs[0], xs[n - 1]);
        let mu = 0.005 * (beta - alpha).max(1e-10 * alpha.abs().max(beta.abs()) + 1e-30);
        let mut vertices = vec![alpha - mu, beta + mu];
        let nvmax = n.max(200);
        let ncmax = nvmax;
        let mut cells = vec![Cell {
            split: None,
            lo: 0,
            hi: 0,
            v_lo: 0,
            v_hi: 1,
        }];
        // point ranges per cell, 1-based inclusive as netlib
        let mut ranges = vec![(1usize, n)];
        let mut p = 0;
        while p < cells.len() {
            let (l, u) = ranges[p];
            let (vl, vu) = (vertices[cells[p].v_lo], vertices[cells[p].v_hi]);
            let diam = vu - vl;
            let mut leaf = u + 1 - l <= fc || diam <= 0.0;
            if !leaf {
                leaf = ncmax < cells.len() + 2 || (nvmax as f64) < vertices.len() as f64 + 1.0;
            }
            let mut m = (l + u) / 2;
            if !leaf {
                let x = |i: usize| xs[i - 1];
                // nearest m + offset (offsets 0, 1, -1, 2, -2, ...) between distinct values
                let mut offset: i64 = 0;
                loop {
                    let mo = m as i64 + offset;
                    if mo >= u as i64 || mo < l as i64 {
                        break;
                    }
                    let mo = mo as usize;
                    if x(mo) == x(mo + 1) {
                        offset = -offset;
                        if offset >= 0 {
                            offset += 1;
                        }
                    } else {
                        m = mo;
                        break;
                    }
                }
                leaf = vl == x(m) || vu == x(m);
            }
            if !leaf {
                let t = xs[m - 1];
                vertices.push(t);
                let vnew = vertices.len() - 1;
                let (c_lo, c_hi) = (cells.len(), cells.len() + 1);
                let v_lo = cells[p].v_lo;
                let v_hi = cells[p].v_hi;
                cells.push(Cell {
                    split: None,
                    lo: 0,
                    hi: 0,
                    v_lo,
                    v_hi: vnew,
                });
                cells.push(Cell {
                    split: None,
                    lo: 0,
                    hi: 0,
                    v_lo: vnew,
                    v_hi,
                });
                ranges.push((l, m));
                ranges.push((m + 1, u));
                let c = &mut cells[p];
                c.split = Some(t);
                c.lo = c_lo;
                c.hi = c_hi;
            }
            p += 1;
        }
        KdTree { vertices, cells }
    }

    /// Cubic Hermite interpolation in the leaf cell holding `z` (netlib `ehg128`, d = 1).
    fn eval(&self, z: f64, vals: &[(f64, f64)]) -> f64 {
        let mut j = 0;
        while let Some(t) = self.cells[j].split {
            j = if z <= t {
                self.cells[j].lo
            } else {
                self.cells[j].hi
            };
        }
        let c = &self.cells[j];
        let (v0, v1) = (self.vertices[c.v_lo], self.vertices[c.v_hi]);
        let (g0, s0) = vals[c.v_lo];
        let (g1, s1) = vals[c.v_hi];
        let h = (z - v0) / (v1 - v0);
        let phi0 = (1.0 - h) * (1.0 - h) * (1.0 + 2.0 * h);
        let phi1 = h * h * (3.0 - 2.0 * h);
        let psi0 = h * (1.0 - h) * (1.0 - h);
        let psi1 = h * h * (h - 1.0);
        phi0 * g0 + phi1 * g1 + (psi0 * s0 + psi1 * s1) * (v1 - v0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_a_quadratic_exactly() {
        // A degree-2 local fit of a parabola is exact, and so is the cubic Hermite
        // interpolation between exact values and slopes.
        let x: Vec<f64> = (0..200).map(|i| i as f64 * 0.05 - 3.0).collect();
        let y: Vec<f64> = x.iter().map(|v| 1.0 + 2.0 * v - 0.5 * v * v).collect();
        let d = loess(
            &x,
            &y,
            &LoessOptions {
                surface: Surface::Direct,
                ..Default::default()
            },
        )
        .unwrap();
        for (a, b) in d.iter().zip(&y) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
        let i = loess(&x, &y, &LoessOptions::default()).unwrap();
        for (a, b) in i.iter().zip(&y) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert!(loess(&[1.0, 2.0], &[1.0], &LoessOptions::default()).is_err());
        assert!(loess(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], &LoessOptions::default()).is_err());
        let x: Vec<f64> = (0..50).map(|i| i as f64).collect();
        assert!(loess(
            &x,
            &x,
            &LoessOptions {
                span: 0.0,
                ..Default::default()
            }
        )
        .is_err());
        assert!(loess(
            &x,
            &x,
            &LoessOptions {
                degree: 3,
                ..Default::default()
            }
        )
        .is_err());
    }
}
