//! Writing a figure: the `render!` macro draws it into `<stem>.png` and `<stem>.svg` under
//! temporary names renamed into place; with the drawing-area types and the text style the
//! figures share.

use super::FAMILY;
use crate::error::Error;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

pub(super) fn with_ext(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_os_string();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

pub(super) fn draw_err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> Error + '_ {
    move |e| Error::data(format!("plot {}", path.display()), e.to_string())
}

/// A temporary name for `path` that keeps its extension (the bitmap backend picks the image
/// format from it): `.name.png.partial-<pid>.png`.
pub(super) fn temporary_keeping_ext(path: &Path) -> PathBuf {
    let tmp = crate::report::temporary_path(path);
    match path.extension() {
        Some(e) => with_ext(&tmp, &e.to_string_lossy()),
        None => tmp,
    }
}

/// Removes a temporary file when dropped (a no-op once it has been renamed into place).
pub(super) struct RemoveOnDrop(pub(super) PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Draws a figure with a generic `draw(&root) -> Result<(), String>` into PNG and SVG.
macro_rules! render {
    ($stem:expr, $size:expr, |$root:ident| $body:expr) => {{
        register_fonts();
        let stem: &Path = $stem;
        let size: (u32, u32) = $size;
        if let Some(dir) = stem.parent() {
            if !dir.as_os_str().is_empty() && !dir.is_dir() {
                return Err(Error::io(
                    dir,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "folder does not exist"),
                ));
            }
        }
        let png = with_ext(stem, "png");
        let svg = with_ext(stem, "svg");
        // Each image is drawn under a temporary name and renamed when complete: a failed
        // write (a full disk) never leaves a cut image under the final name.
        let png_tmp = RemoveOnDrop(temporary_keeping_ext(&png));
        {
            let $root = BitMapBackend::new(&png_tmp.0, size).into_drawing_area();
            $root.fill(&WHITE).map_err(draw_err(&png))?;
            $body.map_err(draw_err(&png))?;
            $root.present().map_err(draw_err(&png))?;
        }
        crate::report::commit_temporary(&png_tmp.0, &png)?;
        let svg_tmp = RemoveOnDrop(temporary_keeping_ext(&svg));
        {
            let $root = SVGBackend::new(&svg_tmp.0, size).into_drawing_area();
            $root.fill(&WHITE).map_err(draw_err(&svg))?;
            $body.map_err(draw_err(&svg))?;
            $root.present().map_err(draw_err(&svg))?;
        }
        crate::report::commit_temporary(&svg_tmp.0, &svg)?;
        Ok(vec![png, svg])
    }};
}

pub(super) type Area<DB> = DrawingArea<DB, Shift>;
pub(super) type DResult = std::result::Result<(), String>;

pub(super) fn s<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

pub(super) fn font(size: f64) -> TextStyle<'static> {
    TextStyle::from((FAMILY, size).into_font())
}
