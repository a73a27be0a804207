//! Figures: UMAP by cluster and by category, QC violins, marker dot plot, PCA elbow.
//!
//! Every function writes the same figure twice, as `<stem>.png` and `<stem>.svg`, and returns
//! both paths. Drawing uses `plotters` (pure Rust) with the bundled DejaVu Sans font
//! (`assets/fonts/`, Bitstream Vera / DejaVu license), so no system font or C library is
//! needed. Inputs are plain slices and arrays. Colours follow Scanpy: its 20-colour default
//! categorical palette (`scanpy.plotting.palettes.default_20`) for up to 20 categories, its
//! 28-colour one for up to 28, its 102-colour one beyond; the dot plot uses the `Reds` colour
//! map as `sc.pl.dotplot` does.
//!
//! One module per kind of figure: `scatter` ([`umap_clusters`], [`umap_categorical`]),
//! `violin` ([`qc_violins`]), `dots` ([`dot_plot`]), `elbow` ([`pca_elbow`]), `bars`
//! ([`stacked_bars`], [`bar_chart`]) and [`interactions`] (the condition comparison's
//! figures); `colors` holds the palettes, `render` writes a figure as PNG and SVG, `raster`
//! draws many points into a pixel buffer.

#[macro_use]
mod render;

mod bars;
mod colors;
mod dots;
mod elbow;
mod raster;
mod scatter;
mod violin;

pub mod interactions;

pub use bars::{bar_chart, stacked_bars};
pub use colors::palette;
pub use dots::dot_plot;
pub use elbow::pca_elbow;
pub use scatter::{umap_categorical, umap_clusters};
pub use violin::qc_violins;

use crate::error::{Error, Result};
use colors::reds;
use plotters::prelude::*;
use render::{draw_err, font, s, temporary_keeping_ext, with_ext, Area, DResult, RemoveOnDrop};
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
/// The font family the bundled font is registered under.
pub(crate) const FAMILY: &str = "sans-serif";

/// Registers the bundled font (once per process) for every figure of the crate.
pub(crate) fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [
            FontStyle::Normal,
            FontStyle::Bold,
            FontStyle::Italic,
            FontStyle::Oblique,
        ] {
            // the bundled file is a valid TrueType font; a failure would show as a drawing error
            let _ = plotters::style::register_font(FAMILY, style, FONT);
        }
    });
}

/// Options shared by the figures.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotOptions {
    /// Figure width in pixels (UMAP, QC, elbow; the dot plot sizes itself from its content).
    /// Default 1000.
    pub width: u32,
    /// Figure height in pixels. Default 800.
    pub height: u32,
    /// Point radius in pixels for scatter plots; `None` = `clamp(90 / sqrt(n), 1, 5)`.
    /// Default `None`.
    pub point_radius: Option<f32>,
    /// Figure title; `None` = a title naming the content. Default `None`.
    pub title: Option<String>,
    /// Seed of the drawing order of points (shuffled so no group is always on top) and of the
    /// jitter in the QC panel. Default 0.
    pub seed: u64,
    /// Scatter plots of more points than this embed the points in their SVG as one PNG
    /// image (under the vector title, axes, labels and legend) instead of one circle element
    /// per point; the PNG figure always draws its points straight into its pixel buffer.
    /// Default 20,000 (a 50,000-point UMAP was a 4.7 MB SVG of circles).
    pub raster_points_above: usize,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions {
            width: 1000,
            height: 800,
            point_radius: None,
            title: None,
            seed: 0,
            raster_points_above: 20_000,
        }
    }
}

impl PlotOptions {
    fn check(&self) -> Result<()> {
        if !(200..=20_000).contains(&self.width) {
            return Err(Error::option("width", "must be 200 to 20,000 pixels"));
        }
        if !(200..=20_000).contains(&self.height) {
            return Err(Error::option("height", "must be 200 to 20,000 pixels"));
        }
        if let Some(r) = self.point_radius {
            if !(r.is_finite() && r > 0.0) {
                return Err(Error::option("point_radius", "must be a positive number"));
            }
        }
        Ok(())
    }
}

fn median(v: &mut [f32]) -> f32 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
