//! The heat maps of [`super::significance_heatmap`]: per condition a sender x receiver grid
//! of the number of significant interactions (`Reds`, one scale shared by the conditions), a
//! panel of the numerator's count minus the reference's (blue - white - red), each with its
//! colour bar; cells from 36 down to 6 pixels as the clusters grow in number, every cluster
//! label while they fit, counts written in cells of 24 pixels or more.

use super::{clip, colour_bar, fmt_tick, longest, text_lines, text_w, FS};
use crate::comparison::diverging;
use crate::interactions::figures::SignificanceGrid;
use crate::plot::{font, reds, s, Area, DResult};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub(super) struct HeatLayout {
    pub size: (u32, u32),
    title: Vec<String>,
    panels: Vec<String>,
    cell: i32,
    /// Left edge of each panel's grid.
    xs: Vec<i32>,
    y0: i32,
    label_fs: f64,
    label_step: usize,
    max_count: u32,
    max_diff: i64,
}

pub(super) fn heat_layout(g: &SignificanceGrid) -> HeatLayout {
    let k = g.n_clusters;
    let mut title = vec![
        format!(
            "Significant interactions per cluster pair (CellPhoneDB p < {}, fraction filter passed)",
            g.significance
        ),
        "rows: sender cluster, columns: receiver cluster".to_string(),
    ];
    if g.counts.iter().all(|(_, v)| v.iter().all(|&n| n == 0)) {
        title.push("No interactions are significant in any condition".to_string());
    }
    let mut panels: Vec<String> = g.counts.iter().map(|(c, _)| clip(c)).collect();
    panels.push(format!(
        "{} minus {}",
        clip(&g.numerator),
        clip(&g.reference)
    ));
    let cell = (360 / k.max(1) as i32).clamp(6, 36);
    let label_fs = (cell as f64 * 0.75).min(FS);
    let label_step = (12.0 / cell as f64).ceil().max(1.0) as usize;
    let label_w = text_w(k.saturating_sub(1).to_string().len(), label_fs) + 10;
    let grid_w = cell * k as i32;
    let panel_w = (label_w + grid_w + 40)
        .max(200)
        .max(text_w(longest(&panels), FS * 1.1) + 20);
    let title_h = (FS * 1.3 * 1.6) as i32 * title.len() as i32 + 20;
    let y0 = title_h + (FS * 2.2) as i32 + (label_fs * 1.6) as i32;
    let xs: Vec<i32> = (0..panels.len() as i32)
        .map(|p| 20 + p * panel_w + label_w)
        .collect();
    let width = (20 + panel_w * panels.len() as i32).max(text_w(longest(&title), FS * 1.3) + 40);
    let height = y0 + cell * k as i32 + 20 + 70;
    let max_count = g
        .counts
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let max_diff = g
        .difference
        .iter()
        .map(|d| d.abs())
        .max()
        .unwrap_or(0)
        .max(1);
    HeatLayout {
        size: (width as u32, height as u32),
        title,
        panels,
        cell,
        xs,
        y0,
        label_fs,
        label_step,
        max_count,
        max_diff,
    }
}

pub(super) fn draw_heatmap<DB: DrawingBackend>(
    root: &Area<DB>,
    g: &SignificanceGrid,
    l: &HeatLayout,
) -> DResult {
    text_lines(root, &l.title, (20, 14), FS * 1.3, (FS * 1.3 * 1.6) as i32)?;
    let k = g.n_clusters;
    let c = l.cell;
    let y0 = l.y0;
    let n_cond = g.counts.len();
    for (p, name) in l.panels.iter().enumerate() {
        let x0 = l.xs[p];
        root.draw(&Text::new(
            name.as_str(),
            (x0, y0 - (l.label_fs * 1.6) as i32 - 6),
            font(FS * 1.1).pos(Pos::new(HPos::Left, VPos::Bottom)),
        ))
        .map_err(s)?;
        let value = |a: usize, b: usize| -> (RGBColor, String) {
            match g.counts.get(p) {
                Some((_, v)) => {
                    let n = v.get(a * k + b).copied().unwrap_or(0);
                    (reds(n as f32 / l.max_count as f32), n.to_string())
                }
                None => {
                    let d = g.difference.get(a * k + b).copied().unwrap_or(0);
                    (diverging(d as f64 / l.max_diff as f64), d.to_string())
                }
            }
        };
        for a in 0..k {
            for b in 0..k {
                let (x, y) = (x0 + c * b as i32, y0 + c * a as i32);
                let (col, txt) = value(a, b);
                root.draw(&Rectangle::new([(x, y), (x + c, y + c)], col.filled()))
                    .map_err(s)?;
                if c >= 24 {
                    // White on dark cells (luma below 0.5).
                    let luma = 0.299 * f64::from(col.0)
                        + 0.587 * f64::from(col.1)
                        + 0.114 * f64::from(col.2);
                    let ink = if luma < 128.0 { WHITE } else { BLACK };
                    root.draw(&Text::new(
                        txt,
                        (x + c / 2, y + c / 2),
                        font(FS * 0.8)
                            .color(&ink)
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                    ))
                    .map_err(s)?;
                }
            }
        }
        let side = c * k as i32;
        root.draw(&Rectangle::new(
            [(x0, y0), (x0 + side, y0 + side)],
            BLACK.stroke_width(1),
        ))
        .map_err(s)?;
        for i in (0..k).step_by(l.label_step) {
            let mid = c * i as i32 + c / 2;
            root.draw(&Text::new(
                i.to_string(),
                (x0 - 4, y0 + mid),
                font(l.label_fs).pos(Pos::new(HPos::Right, VPos::Center)),
            ))
            .map_err(s)?;
            root.draw(&Text::new(
                i.to_string(),
                (x0 + mid, y0 - 3),
                font(l.label_fs).pos(Pos::new(HPos::Center, VPos::Bottom)),
            ))
            .map_err(s)?;
        }
        let at = (x0, y0 + side + 14);
        if p < n_cond {
            let m = f64::from(l.max_count);
            colour_bar(
                root,
                at,
                160,
                "significant interactions",
                ["0".to_string(), fmt_tick(m / 2.0), fmt_tick(m)],
                |x| reds(x as f32),
            )?;
        } else {
            let m = l.max_diff as f64;
            colour_bar(
                root,
                at,
                160,
                "difference",
                [fmt_tick(-m), "0".to_string(), fmt_tick(m)],
                |x| diverging(2.0 * x - 1.0),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heat_map_cells_shrink_with_many_clusters() {
        let grid = |k: usize| SignificanceGrid {
            n_clusters: k,
            counts: vec![("a".into(), vec![1; k * k]), ("b".into(), vec![0; k * k])],
            numerator: "b".into(),
            reference: "a".into(),
            difference: vec![-1; k * k],
            significance: 0.05,
        };
        let (ls, lb) = (heat_layout(&grid(4)), heat_layout(&grid(120)));
        assert_eq!(ls.cell, 36);
        assert_eq!(lb.cell, 6);
        assert!(lb.label_step > 1);
        assert!(lb.size.0 > ls.size.0 && lb.size.1 > ls.size.1);
        let svg = super::super::significance_heatmap_svg(&grid(120)).unwrap();
        assert!(svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }
}
