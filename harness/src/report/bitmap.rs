//! Bitmap charts: a plotters backend whose text is drawn with ab_glyph from a font file found at
//! run time (none is vendored), and PNG encoding of the pixels.
//!
//! plotters' own bitmap text needs its `ttf` (fontconfig) or `ab_glyph` (a global font registry,
//! which also changes how every other plotters user in the build lays out text) features. This
//! wrapper keeps both off: [`GlyphBackend`] passes shapes to plotters' `BitMapBackend` and draws
//! text itself, or leaves text out when no font was found.

use std::io::Write;
use std::path::{Path, PathBuf};

use ab_glyph::{Font, FontVec, PxScale, ScaleFont, point};
use plotters::backend::BitMapBackend;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};

/// Environment variable naming a TrueType/OpenType font file for PNG text; tried first.
pub const FONT_ENV: &str = "ROADTEST_FONT";

/// Font files tried in order when [`FONT_ENV`] is unset: DejaVu Sans (Debian/Ubuntu
/// `fonts-dejavu-core`, Fedora, Arch, Alpine), then Liberation Sans and Noto Sans.
const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/ttf-dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/noto/NotoSans-Regular.ttf",
];

/// plotters' text sizes are 1.24 x the em size (its SVG backend divides by 1.24 too).
const SIZE_PER_EM: f64 = 1.24;

/// A font for bitmap text and the file it came from.
#[derive(Debug)]
pub struct LoadedFont {
    /// The file the font was read from.
    pub path: PathBuf,
    font: FontVec,
}

/// The first readable font of `$ROADTEST_FONT` and [`FONT_CANDIDATES`]; `None` when there is none.
pub fn find_font() -> Option<LoadedFont> {
    let from_env = std::env::var_os(FONT_ENV).map(PathBuf::from);
    from_env
        .into_iter()
        .chain(FONT_CANDIDATES.iter().map(PathBuf::from))
        .find_map(|path| load_font(&path))
}

/// Reads a font file; `None` when it is missing or not a font.
pub fn load_font(path: &Path) -> Option<LoadedFont> {
    let bytes = std::fs::read(path).ok()?;
    let font = FontVec::try_from_vec(bytes).ok()?;
    Some(LoadedFont {
        path: path.to_path_buf(),
        font,
    })
}

/// plotters' bitmap backend, with text drawn by ab_glyph (or left out without a font).
pub struct GlyphBackend<'a> {
    inner: BitMapBackend<'a>,
    font: Option<&'a LoadedFont>,
}

impl std::fmt::Debug for GlyphBackend<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlyphBackend")
            .field("size", &self.inner.get_size())
            .field("font", &self.font.map(|font| &font.path))
            .finish()
    }
}

impl<'a> GlyphBackend<'a> {
    /// Draws into `rgb` (3 bytes a pixel, row by row, `size.0 * size.1 * 3` bytes).
    pub fn new(rgb: &'a mut [u8], size: (u32, u32), font: Option<&'a LoadedFont>) -> Self {
        GlyphBackend {
            inner: BitMapBackend::with_buffer(rgb, size),
            font,
        }
    }
}

/// Glyphs of one line of text, positioned from (0, 0) at the top left of the line.
struct Line {
    glyphs: Vec<ab_glyph::Glyph>,
    width: f32,
    height: f32,
}

fn lay_out(font: &FontVec, size: f64, text: &str) -> Line {
    let scale = PxScale::from((size / SIZE_PER_EM * 1.25) as f32);
    let scaled = font.as_scaled(scale);
    let mut x = 0.0f32;
    let mut previous = None;
    let mut glyphs = Vec::with_capacity(text.len());
    for character in text.chars() {
        let id = scaled.glyph_id(character);
        if let Some(previous) = previous {
            x += scaled.kern(previous, id);
        }
        glyphs.push(id.with_scale_and_position(scale, point(x, scaled.ascent())));
        x += scaled.h_advance(id);
        previous = Some(id);
    }
    Line {
        glyphs,
        width: x,
        height: scaled.ascent() - scaled.descent(),
    }
}

type BackendResult<E> = Result<(), DrawingErrorKind<E>>;

impl<'a> DrawingBackend for GlyphBackend<'a> {
    type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> BackendResult<Self::ErrorType> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> BackendResult<Self::ErrorType> {
        self.inner.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> BackendResult<Self::ErrorType> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> BackendResult<Self::ErrorType> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> BackendResult<Self::ErrorType> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> BackendResult<Self::ErrorType> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> BackendResult<Self::ErrorType> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vertices: I,
        style: &S,
    ) -> BackendResult<Self::ErrorType> {
        self.inner.fill_polygon(vertices, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        (width, height): (u32, u32),
        source: &[u8],
    ) -> BackendResult<Self::ErrorType> {
        self.inner.blit_bitmap(pos, (width, height), source)
    }

    fn estimate_text_size<TStyle: BackendTextStyle>(
        &self,
        text: &str,
        style: &TStyle,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        Ok(match self.font {
            Some(font) => {
                let line = lay_out(&font.font, style.size(), text);
                (line.width.ceil() as u32, line.height.ceil() as u32)
            }
            // What plotters' own estimate would say, so the layout stays the same without a font.
            None => {
                let em = style.size() / SIZE_PER_EM;
                (
                    (em * 0.6 * text.chars().count() as f64).round() as u32,
                    em.round() as u32,
                )
            }
        })
    }

    fn draw_text<TStyle: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &TStyle,
        pos: BackendCoord,
    ) -> BackendResult<Self::ErrorType> {
        let color = style.color();
        let Some(font) = self.font else {
            return Ok(());
        };
        if color.alpha == 0.0 {
            return Ok(());
        }
        let line = lay_out(&font.font, style.size(), text);
        let (width, height) = (line.width.round() as i32, line.height.round() as i32);
        let anchor = style.anchor();
        let dx = match anchor.h_pos {
            HPos::Left => 0,
            HPos::Center => -width / 2,
            HPos::Right => -width,
        };
        let dy = match anchor.v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let transform = style.transform();
        let scaled = font.font.as_scaled(
            line.glyphs
                .first()
                .map_or(PxScale::from(1.0), |glyph| glyph.scale),
        );
        let mut result = Ok(());
        for glyph in line.glyphs {
            let Some(outlined) = scaled.outline_glyph(glyph) else {
                continue; // a space
            };
            let bounds = outlined.px_bounds();
            outlined.draw(|x, y, coverage| {
                if result.is_err() || coverage <= 0.0 {
                    return;
                }
                let local_x = bounds.min.x as i32 + x as i32 + dx;
                let local_y = bounds.min.y as i32 + y as i32 + dy;
                let (x, y) = transform.transform(local_x, local_y);
                let pixel = BackendColor {
                    alpha: color.alpha * f64::from(coverage.min(1.0)),
                    rgb: color.rgb,
                };
                result = self.inner.draw_pixel((pos.0 + x, pos.1 + y), pixel);
            });
        }
        result
    }
}

/// Encodes `rgb` (3 bytes a pixel) as an 8-bit RGB PNG into `out`.
pub fn write_png(out: impl Write, rgb: &[u8], (width, height): (u32, u32)) -> std::io::Result<()> {
    let mut encoder = png::Encoder::new(out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
    writer
        .write_image_data(rgb)
        .map_err(std::io::Error::other)?;
    writer.finish().map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::prelude::*;

    #[test]
    fn text_is_drawn_with_a_font_and_left_out_without() {
        let size = (120u32, 40u32);
        let draw = |font: Option<&LoadedFont>| {
            let mut rgb = vec![255u8; (size.0 * size.1 * 3) as usize];
            {
                let root = GlyphBackend::new(&mut rgb, size, font).into_drawing_area();
                root.draw(&Text::new(
                    "p99 463 ms",
                    (5, 5),
                    ("sans-serif", 20).into_font().color(&BLACK),
                ))
                .unwrap();
                root.present().unwrap();
            }
            rgb.iter().filter(|&&byte| byte < 128).count()
        };
        assert_eq!(draw(None), 0, "no font: no text, no panic");
        // CI installs DejaVu (ci/test), so there the text half is never skipped.
        let font = find_font();
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            assert!(
                font.is_some(),
                "CI=true but no font found: run ci/test, or set ROADTEST_FONT"
            );
        }
        if let Some(font) = font {
            assert!(draw(Some(&font)) > 50, "text from {}", font.path.display());
        }
        assert!(load_font(Path::new("/nonexistent/font.ttf")).is_none());
    }

    #[test]
    fn png_round_trips() {
        let size = (3u32, 2u32);
        let rgb: Vec<u8> = (0..18).collect();
        let mut bytes = Vec::new();
        write_png(&mut bytes, &rgb, size).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut back = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut back).unwrap();
        assert_eq!((info.width, info.height), size);
        assert_eq!(&back[..info.buffer_size()], &rgb[..]);
    }
}
