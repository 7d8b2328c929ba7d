//! Writing the output image: clearing the render window and copying a real
//! frame through.

use crate::actions::Ctx;
use crate::geometry::RectI;
use crate::ofx::{threads, Image, OfxError};
use crate::pixels::{read_row, write_row};
use crate::problem::Problem;
use ofx_sys as sys;
use parking_lot::Mutex;

pub(crate) fn clear(ctx: &Ctx, output: &mut Image, window: RectI) {
    let bounds = output.bounds;
    let bpp = output.layout.bytes_per_pixel();
    let rows = output.rows_mut();
    let area = window.intersect(&bounds);
    let cells: Vec<Mutex<&mut [u8]>> = rows.into_iter().map(Mutex::new).collect();
    threads::for_each(&ctx.effect.host, area.height(), &|i| {
        let y = (area.y1 - bounds.y1) as usize + i;
        let mut row = cells[y].lock();
        let from = (area.x1 - bounds.x1) as usize * bpp;
        row[from..from + area.width() * bpp].fill(0);
    });
}

/// Copies a real frame. Same layout: the bytes, untouched. Otherwise
/// converted through straight RGBA.
pub(crate) fn pass_through(
    ctx: &Ctx,
    source: &Image,
    output: &mut Image,
    window: RectI,
) -> Result<(), Problem> {
    if !source.layout.supported() {
        return Err(OfxError::ImageFormat(format!("input of {:?}", source.layout)).into());
    }
    clear(ctx, output, window);
    let out_bounds = output.bounds;
    let area = window.intersect(&out_bounds).intersect(&source.bounds);
    let (out_layout, out_premult) = (output.layout, output.premult);
    let same = source.layout == out_layout
        && (source.premult == out_premult
            || source.layout.components != crate::pixels::Components::Rgba);
    let cells: Vec<Mutex<&mut [u8]>> = output.rows_mut().into_iter().map(Mutex::new).collect();
    let ok = threads::for_each(&ctx.effect.host, area.height(), &|i| {
        let y = area.y1 + i as i32;
        let Some(src) = source.row(y) else { return };
        let mut dst = cells[(y - out_bounds.y1) as usize].lock();
        if same {
            let bpp = out_layout.bytes_per_pixel();
            let s = (area.x1 - source.bounds.x1) as usize * bpp;
            let d = (area.x1 - out_bounds.x1) as usize * bpp;
            let n = area.width() * bpp;
            dst[d..d + n].copy_from_slice(&src[s..s + n]);
        } else {
            let mut rgba = vec![0.0f32; source.bounds.width() * 4];
            read_row(src, source.layout, source.premult, &mut rgba);
            let s = (area.x1 - source.bounds.x1) as usize * 4;
            let d = (area.x1 - out_bounds.x1) as usize * out_layout.bytes_per_pixel();
            write_row(
                &rgba[s..s + area.width() * 4],
                out_layout,
                out_premult,
                &mut dst[d..],
            );
        }
    });
    if !ok {
        return Err(Problem::Quiet(
            "copying a frame panicked".into(),
            sys::kOfxStatFailed,
        ));
    }
    Ok(())
}
