//! A small anti-aliased drawing surface for the generated charts and text images: shapes via
//! tiny-skia, text via ab_glyph with the bundled DejaVu Sans. Output is deterministic.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use tiny_skia::{FillRule, Paint, PathBuilder, Pixmap, PremultipliedColorU8, Rect, Stroke, Transform};

/// DejaVu Sans (Bitstream Vera licence, `assets/fonts/LICENSE-DejaVu.txt`).
const FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

pub type Rgb = [u8; 3];

/// Horizontal placement of text relative to its x.
#[derive(Clone, Copy)]
pub enum Align {
    Left,
    Center,
    Right,
}

/// An opaque RGB canvas.
pub struct Canvas {
    pixmap: Pixmap,
    font: FontRef<'static>,
}

fn paint(color: Rgb) -> Paint<'static> {
    let mut p = Paint::default();
    p.set_color_rgba8(color[0], color[1], color[2], 255);
    p.anti_alias = true;
    p
}

/// A path through `points`, closed or not; `None` for fewer than two.
fn through(points: &[(f32, f32)], close: bool) -> Option<tiny_skia::Path> {
    let mut pb = PathBuilder::new();
    for (i, &(x, y)) in points.iter().enumerate() {
        if i == 0 {
            pb.move_to(x, y)
        } else {
            pb.line_to(x, y)
        }
    }
    if close {
        pb.close();
    }
    pb.finish()
}

impl Canvas {
    /// A `width`×`height` canvas filled with `background`.
    pub fn new(width: u32, height: u32, background: Rgb) -> Self {
        let mut pixmap = Pixmap::new(width, height).expect("non-zero canvas size");
        pixmap.fill(tiny_skia::Color::from_rgba8(background[0], background[1], background[2], 255));
        let font = FontRef::try_from_slice(FONT).expect("the bundled font parses");
        Self { pixmap, font }
    }

    pub fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, color: Rgb) {
        if let Some(r) = Rect::from_xywh(x, y, w, h) {
            self.pixmap.fill_rect(r, &paint(color), Transform::identity(), None);
        }
    }

    /// A polyline of the given width.
    pub fn line(&mut self, points: &[(f32, f32)], width: f32, color: Rgb) {
        if let Some(path) = through(points, false) {
            let stroke = Stroke { width, ..Default::default() };
            self.pixmap.stroke_path(&path, &paint(color), &stroke, Transform::identity(), None);
        }
    }

    pub fn circle(&mut self, x: f32, y: f32, r: f32, color: Rgb) {
        if let Some(path) = PathBuilder::from_circle(x, y, r) {
            self.pixmap.fill_path(&path, &paint(color), FillRule::Winding, Transform::identity(), None);
        }
    }

    /// A filled polygon.
    pub fn polygon(&mut self, points: &[(f32, f32)], color: Rgb) {
        if let Some(path) = through(points, true) {
            self.pixmap.fill_path(&path, &paint(color), FillRule::Winding, Transform::identity(), None);
        }
    }

    /// A pie slice from angle `a0` to `a1` (radians, clockwise from 12 o'clock).
    pub fn wedge(&mut self, cx: f32, cy: f32, r: f32, a0: f32, a1: f32, color: Rgb) {
        let mut pb = PathBuilder::new();
        pb.move_to(cx, cy);
        let steps = ((a1 - a0) / 0.02).ceil().max(1.0) as usize;
        for i in 0..=steps {
            let a = a0 + (a1 - a0) * i as f32 / steps as f32;
            pb.line_to(cx + r * a.sin(), cy - r * a.cos());
        }
        pb.close();
        if let Some(path) = pb.finish() {
            self.pixmap.fill_path(&path, &paint(color), FillRule::Winding, Transform::identity(), None);
        }
    }

    /// Advance width of `text` at `size` px.
    pub fn text_width(&self, text: &str, size: f32) -> f32 {
        let font = self.font.as_scaled(PxScale::from(size));
        let mut width = 0.0;
        let mut prev = None;
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(p) = prev {
                width += font.kern(p, id);
            }
            width += font.h_advance(id);
            prev = Some(id);
        }
        width
    }

    /// Draws `text` with its vertical middle (cap height) at `y`.
    pub fn text(&mut self, text: &str, x: f32, y: f32, size: f32, color: Rgb, align: Align) {
        let width = self.text_width(text, size);
        let mut pen = match align {
            Align::Left => x,
            Align::Center => x - width / 2.0,
            Align::Right => x - width,
        };
        let font = self.font.as_scaled(PxScale::from(size));
        let baseline = y + 0.36 * size;
        let (w, h) = (self.pixmap.width() as i32, self.pixmap.height() as i32);
        let mut prev = None;
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(p) = prev {
                pen += font.kern(p, id);
            }
            let glyph = id.with_scale_and_position(PxScale::from(size), ab_glyph::point(pen, baseline));
            pen += font.h_advance(id);
            prev = Some(id);
            let Some(outline) = self.font.outline_glyph(glyph) else { continue };
            let b = outline.px_bounds();
            let pixels = self.pixmap.pixels_mut();
            outline.draw(|gx, gy, coverage| {
                let (px, py) = (b.min.x as i32 + gx as i32, b.min.y as i32 + gy as i32);
                if px < 0 || py < 0 || px >= w || py >= h {
                    return;
                }
                let p = &mut pixels[(py * w + px) as usize];
                let a = coverage.clamp(0.0, 1.0);
                let mix = |bg: u8, fg: u8| (bg as f32 * (1.0 - a) + fg as f32 * a).round() as u8;
                let blended = PremultipliedColorU8::from_rgba(mix(p.red(), color[0]), mix(p.green(), color[1]), mix(p.blue(), color[2]), 255);
                *p = blended.expect("opaque colours are valid");
            });
        }
    }

    /// The canvas as an RGB image (it is opaque, so premultiplied = straight colour).
    pub fn into_rgb(self) -> image::RgbImage {
        let (w, h) = (self.pixmap.width(), self.pixmap.height());
        let rgb: Vec<u8> = self.pixmap.pixels().iter().flat_map(|p| [p.red(), p.green(), p.blue()]).collect();
        image::RgbImage::from_raw(w, h, rgb).expect("w×h×3 bytes")
    }
}
