//! Small static SVG figures drawn on the Rust side (box plots, stacked bars, the dot plot,
//! diverging bars): text in them goes through [`super::escape::html`], and each mark carries
//! a `<title>` so the browser shows its value on hover.

use super::escape::html;
use std::fmt::Write;

/// Colour of category `i`: Scanpy's 20-colour default palette (`vega_20_scanpy`), then
/// evenly spread hues (golden angle) past 20.
pub fn palette(i: usize) -> String {
    const P: [&str; 20] = [
        "#1f77b4", "#ff7f0e", "#279e68", "#d62728", "#aa40fc", "#8c564b", "#e377c2", "#b5bd61",
        "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2",
        "#dbdb8d", "#9edae5", "#ad494a", "#8c6d31",
    ];
    match P.get(i) {
        Some(c) => (*c).to_string(),
        None => {
            let h = (i as f64 * 137.508) % 360.0;
            let (r, g, b) = hsl_to_rgb(h, 0.55, 0.5);
            format!("#{r:02x}{g:02x}{b:02x}")
        }
    }
}

fn hsl_to_rgb(h: f64, s: f64, l: f64) -> (u8, u8, u8) {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let to = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    (to(r), to(g), to(b))
}

/// Five-number summary used by the box plots: 5th, 25th, 50th, 75th and 95th percentiles
/// (linear interpolation between order statistics, numpy's default); `None` when empty.
pub fn box_stats(values: impl Iterator<Item = f64>) -> Option<[f64; 5]> {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let h = p * (v.len() - 1) as f64;
        let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
        v[lo] + (h - lo as f64) * (v[hi] - v[lo])
    };
    Some([q(0.05), q(0.25), q(0.5), q(0.75), q(0.95)])
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// Horizontal box plots, one row per group: the box spans the quartiles, the whiskers the
/// 5th and 95th percentiles; `log` draws the axis in log10 (values must then be positive).
pub fn box_plot(title: &str, groups: &[(String, [f64; 5])], log: bool) -> String {
    let (w, row, left, top) = (420.0, 22.0, 140.0, 28.0);
    let h = top + row * groups.len() as f64 + 30.0;
    let tr = |v: f64| if log { v.max(1e-9).log10() } else { v };
    let lo = groups
        .iter()
        .map(|g| tr(g.1[0]))
        .fold(f64::INFINITY, f64::min);
    let hi = groups
        .iter()
        .map(|g| tr(g.1[4]))
        .fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (lo.min(0.0), lo.max(0.0) + 1.0)
    };
    let x = |v: f64| left + (tr(v) - lo) / (hi - lo) * (w - left - 20.0);
    let mut s = format!(
        "<svg class=\"fig\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\">\
         <text x=\"{left}\" y=\"16\" class=\"ttl\">{}</text>",
        html(title)
    );
    for (i, (name, q)) in groups.iter().enumerate() {
        let y = top + row * i as f64;
        let _ = write!(
            s,
            "<g><title>{}: 5% {} · 25% {} · median {} · 75% {} · 95% {}</title>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\" class=\"lbl\">{}</text>\
             <line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{y2:.1}\" y2=\"{y2:.1}\" class=\"whisker\"/>\
             <rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" class=\"box\"/>\
             <line x1=\"{m:.1}\" x2=\"{m:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" class=\"median\"/></g>",
            html(name),
            fmt(q[0]),
            fmt(q[1]),
            fmt(q[2]),
            fmt(q[3]),
            fmt(q[4]),
            left - 6.0,
            y + 14.0,
            html(name),
            x(q[0]),
            x(q[4]),
            x(q[1]),
            y + 4.0,
            (x(q[3]) - x(q[1])).max(1.0),
            row - 8.0,
            y + 4.0,
            y + row - 4.0,
            y2 = y + row / 2.0,
            m = x(q[2]),
        );
    }
    let ya = top + row * groups.len() as f64 + 14.0;
    let lab = |v: f64| if log { fmt(10f64.powf(v)) } else { fmt(v) };
    let _ = write!(
        s,
        "<text x=\"{left}\" y=\"{ya}\" class=\"axis\">{}</text>\
         <text x=\"{}\" y=\"{ya}\" text-anchor=\"end\" class=\"axis\">{}{}</text></svg>",
        lab(lo),
        w - 20.0,
        lab(hi),
        if log { " (log scale)" } else { "" }
    );
    s
}

/// One horizontal bar per row, split by the shares in `parts` (which sum to 1), each part
/// coloured by [`palette`] of its index; `part_names` name the parts in the hover titles.
pub fn stacked_bars(rows: &[(String, Vec<f64>)], part_names: &[String]) -> String {
    let (w, row, left, top) = (560.0, 22.0, 140.0, 8.0);
    let h = top + row * rows.len() as f64 + 8.0;
    let mut s = format!(
        "<svg class=\"fig\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\">"
    );
    for (i, (name, parts)) in rows.iter().enumerate() {
        let y = top + row * i as f64;
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" class=\"lbl\">{}</text>",
            left - 6.0,
            y + 15.0,
            html(name)
        );
        let mut x = left;
        for (k, &p) in parts.iter().enumerate() {
            let bw = p * (w - left - 10.0);
            if bw > 0.0 {
                let part = part_names.get(k).map_or("", String::as_str);
                let _ = write!(
                    s,
                    "<rect x=\"{x:.2}\" y=\"{:.1}\" width=\"{bw:.2}\" height=\"{:.1}\" fill=\"{}\">\
                     <title>{}: {} {:.1}%</title></rect>",
                    y + 3.0,
                    row - 6.0,
                    palette(k),
                    html(name),
                    html(part),
                    100.0 * p
                );
            }
            x += bw;
        }
    }
    s.push_str("</svg>");
    s
}

/// Scanpy's dot plot: a dot per (group, gene) whose area is the fraction of the group's cells
/// expressing the gene and whose colour is the group's mean log expression scaled to the
/// gene's largest group mean (`standard_scale="var"`).
pub fn dot_plot(
    groups: &[String],
    genes: &[String],
    frac: &[Vec<f64>],
    mean: &[Vec<f64>],
) -> String {
    let (cell, left, top) = (18.0, 60.0, 70.0);
    let w = left + cell * genes.len() as f64 + 20.0;
    let h = top + cell * groups.len() as f64 + 10.0;
    let mut s = format!(
        "<svg class=\"fig\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\">"
    );
    for (j, g) in genes.iter().enumerate() {
        let x = left + cell * (j as f64 + 0.5);
        let _ = write!(
            s,
            "<text transform=\"translate({x:.1},{:.1}) rotate(-60)\" class=\"lbl\">{}</text>",
            top - 6.0,
            html(g)
        );
    }
    for (i, grp) in groups.iter().enumerate() {
        let y = top + cell * (i as f64 + 0.5);
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" class=\"lbl\">{}</text>",
            left - 6.0,
            y + 4.0,
            html(grp)
        );
        for (j, gene) in genes.iter().enumerate() {
            let f = frac.get(i).and_then(|r| r.get(j)).copied().unwrap_or(0.0);
            let m = mean.get(i).and_then(|r| r.get(j)).copied().unwrap_or(0.0);
            let top_mean = mean
                .iter()
                .filter_map(|r| r.get(j))
                .fold(0f64, |a, &b| a.max(b));
            let t = if top_mean > 0.0 { m / top_mean } else { 0.0 };
            let shade = (235.0 - 200.0 * t).round().clamp(0.0, 255.0) as u8;
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"{:.2}\" fill=\"rgb({shade},{shade},255)\" \
                 stroke=\"#555\" stroke-width=\"0.4\"><title>{} in {}: {:.0}% expressing, mean {:.3}</title></circle>",
                left + cell * (j as f64 + 0.5),
                (cell / 2.0 - 1.0) * f.sqrt(),
                html(gene),
                html(grp),
                100.0 * f,
                m
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// Diverging bars, one row per group: `up` to the right (red), `down` to the left (blue),
/// both shares in [0, 1].
pub fn diverging_bars(rows: &[(String, f64, f64)], up_label: &str, down_label: &str) -> String {
    let (w, row, left, top) = (460.0, 20.0, 120.0, 24.0);
    let h = top + row * rows.len() as f64 + 6.0;
    let mid = left + (w - left - 10.0) / 2.0;
    let half = (w - left - 10.0) / 2.0;
    let mut s = format!(
        "<svg class=\"fig\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\">\
         <text x=\"{}\" y=\"14\" text-anchor=\"end\" class=\"axis\">← {}</text>\
         <text x=\"{}\" y=\"14\" class=\"axis\">{} →</text>\
         <line x1=\"{mid}\" x2=\"{mid}\" y1=\"{}\" y2=\"{}\" class=\"whisker\"/>",
        mid - 4.0,
        html(down_label),
        mid + 4.0,
        html(up_label),
        top,
        h - 4.0
    );
    for (i, (name, up, down)) in rows.iter().enumerate() {
        let y = top + row * i as f64;
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" class=\"lbl\">{}</text>\
             <rect x=\"{mid}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{:.1}\" fill=\"#d62728\"><title>{}: {:.0}% {}</title></rect>\
             <rect x=\"{:.2}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{:.1}\" fill=\"#1f77b4\"><title>{}: {:.0}% {}</title></rect>",
            left - 6.0,
            y + 14.0,
            html(name),
            y + 3.0,
            up * half,
            row - 6.0,
            html(name),
            100.0 * up,
            html(up_label),
            mid - down * half,
            y + 3.0,
            down * half,
            row - 6.0,
            html(name),
            100.0 * down,
            html(down_label),
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_stats_are_numpy_percentiles() {
        // numpy.percentile(range(1, 11), [5, 25, 50, 75, 95]) = 1.45, 3.25, 5.5, 7.75, 9.55
        let q = box_stats((1..=10).map(f64::from).chain([f64::NAN])).unwrap();
        for (a, b) in q.iter().zip([1.45, 3.25, 5.5, 7.75, 9.55]) {
            assert!((a - b).abs() < 1e-12, "{a} {b}");
        }
        assert!(box_stats(std::iter::empty()).is_none());
    }

    #[test]
    fn figures_escape_names() {
        let s = stacked_bars(&[("<s>".into(), vec![1.0])], &["a&b".into()]);
        assert!(s.contains("&lt;s&gt;") && s.contains("a&amp;b") && !s.contains("<s>"));
        assert_eq!(palette(0), "#1f77b4");
        assert_eq!(palette(25).len(), 7);
    }
}
