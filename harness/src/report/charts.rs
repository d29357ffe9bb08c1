//! The charts of a report, drawn with plotters from `report.json` alone: inline SVG for
//! report.html (SVG text needs no fonts), and `latency.png`, the latency-over-time chart as a
//! bitmap for pasting into an issue (its text needs a font found at run time, see [`super::bitmap`]).

use std::fmt::Display;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::bitmap::{GlyphBackend, find_font, write_png};
use super::{
    IntervalSummary, Report, ReportError, STAGE_CONSUME_MS, STAGE_PRODUCE_ACK_MS,
    STAGE_WRITE_ACK_MS,
};
use crate::measure::gc::GcSection;

/// The file name of the latency-over-time PNG inside a run directory.
pub const LATENCY_PNG_FILE_NAME: &str = "latency.png";

/// Size of latency.png in pixels.
const PNG_SIZE: (u32, u32) = (1200, 520);

/// Width of every SVG chart in pixels (the page scales them to its width).
const SVG_WIDTH: u32 = 1000;

pub(super) const P50: RGBColor = RGBColor(31, 119, 180);
pub(super) const P99: RGBColor = RGBColor(255, 127, 14);
pub(super) const MAX: RGBColor = RGBColor(214, 39, 40);
pub(super) const PRODUCED: RGBColor = RGBColor(31, 119, 180);
const CONSUMED: RGBColor = RGBColor(44, 160, 44);
pub(super) const WRITTEN: RGBColor = RGBColor(255, 127, 14);
const MEMORY: RGBColor = RGBColor(23, 190, 207);
const FAULT: RGBColor = RGBColor(148, 103, 189);
pub(super) const GRID: RGBColor = RGBColor(234, 234, 234);
pub(super) const INK: RGBColor = RGBColor(51, 51, 51);

pub(super) type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;
pub(super) type Drawn = Result<(), String>;

pub(super) fn fail(error: impl Display) -> String {
    error.to_string()
}

/// latency.png as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyPng {
    /// Where it was written.
    pub path: PathBuf,
    /// The font its text was drawn with; `None` when no font was found and the chart has no text.
    pub font: Option<PathBuf>,
}

/// Writes `dir/latency.png`: end-to-end latency p50/p99/max per second with fault markers, titled
/// with the scenario and seed. Text needs a font file (see [`super::bitmap::find_font`]); without
/// one the chart is drawn without text and [`LatencyPng::font`] is `None`.
pub fn write_latency_png(report: &Report, dir: &Path) -> Result<LatencyPng, ReportError> {
    let file = dir.join(LATENCY_PNG_FILE_NAME);
    let font = find_font();
    let mut rgb = vec![255u8; PNG_SIZE.0 as usize * PNG_SIZE.1 as usize * 3];
    let caption = format!(
        "roadtest {} (seed {}): end-to-end latency per second",
        report.scenario.name, report.seed
    );
    let drawn: Drawn = (|| {
        let root = GlyphBackend::new(&mut rgb, PNG_SIZE, font.as_ref()).into_drawing_area();
        root.fill(&WHITE).map_err(fail)?;
        draw_latency_over_time(&root, report, Some(&caption))?;
        root.present().map_err(fail)
    })();
    let write_error = |source: std::io::Error| ReportError::Write {
        file: file.clone(),
        source,
    };
    drawn.map_err(|message| write_error(std::io::Error::other(message)))?;
    std::fs::create_dir_all(dir).map_err(write_error)?;
    let out = std::fs::File::create(&file).map_err(write_error)?;
    write_png(std::io::BufWriter::new(out), &rgb, PNG_SIZE).map_err(write_error)?;
    Ok(LatencyPng {
        path: file,
        font: font.map(|font| font.path),
    })
}

/// An SVG document of `size` drawn by `draw` on a white canvas.
pub(super) fn svg(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Drawn,
) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE).map_err(fail)?;
        draw(&root)?;
        root.present().map_err(fail)?;
    }
    Ok(out)
}

/// End-to-end latency p50/p99/max per second, with fault markers.
pub(crate) fn latency_over_time_svg(report: &Report) -> Result<String, String> {
    svg((SVG_WIDTH, 380), |root| {
        draw_latency_over_time(root, report, None)
    })
}

/// The end-to-end percentile distribution, HdrHistogram style.
pub(crate) fn percentiles_svg(report: &Report) -> Result<String, String> {
    svg((SVG_WIDTH, 380), |root| draw_percentiles(root, report))
}

/// Events produced, consumed and written per second, with fault markers.
pub(crate) fn throughput_svg(report: &Report) -> Result<String, String> {
    svg((SVG_WIDTH, 340), |root| draw_throughput(root, report))
}

/// Resident memory over time, one small chart per process, with fault markers.
pub(crate) fn memory_svg(report: &Report) -> Result<String, String> {
    let panels = (report.memory.timelines.len() + report.memory.gc.len()).max(1);
    let rows = panels.div_ceil(MEMORY_COLUMNS.min(panels)) as u32;
    svg((SVG_WIDTH, 40 + 230 * rows), |root| {
        draw_memory(root, report)
    })
}

/// p50 and p99 of each stage and end to end, as bars.
pub(crate) fn stages_svg(report: &Report) -> Result<String, String> {
    svg((SVG_WIDTH, 320), |root| draw_stages(root, report))
}

/// A fault as drawn on the time charts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FaultMark {
    /// When it was injected, seconds since the run start.
    pub at_s: f64,
    /// When the service was back (restart or resume begun, plus readiness when known).
    pub until_s: Option<f64>,
    /// Like `kill consumer`.
    pub label: String,
}

/// One mark per fault that fired (`at_s`); faults that never fired are skipped.
pub(crate) fn fault_marks(report: &Report) -> Vec<FaultMark> {
    let finite = |value: Option<f64>| value.filter(|value| value.is_finite());
    report
        .faults
        .iter()
        .filter_map(|fault| {
            let at_s = finite(fault.at_s)?.max(0.0);
            let until_s = finite(fault.recovery_started_at_s)
                .map(|started| started + finite(fault.ready_after_s).unwrap_or(0.0))
                .filter(|until| *until > at_s);
            Some(FaultMark {
                at_s,
                until_s,
                label: fault.label(),
            })
        })
        .collect()
}

/// Seconds the time charts span: every series and fault fits, at least 1.
fn time_span_s(report: &Report) -> f64 {
    let throughput = &report.throughput;
    let seconds = [
        report.latency.e2e_intervals.len(),
        throughput.produced.len(),
        throughput.consumed.len(),
        throughput.written.len(),
    ]
    .into_iter()
    .max()
    .unwrap_or(0) as f64;
    let memory_s = report
        .memory
        .timelines
        .values()
        .filter_map(|points| points.last())
        .map(|point| point.at_ms as f64 / 1_000.0)
        .fold(0.0, f64::max);
    let faults_s = fault_marks(report)
        .iter()
        .map(|mark| mark.until_s.unwrap_or(mark.at_s) + 1.0)
        .fold(0.0, f64::max);
    seconds.max(memory_s).max(faults_s).max(1.0)
}

/// An axis tick without trailing zeros: 800, 2.5, 0.25.
pub(super) fn tick(value: &f64) -> String {
    if (value - value.round()).abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.2}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

pub(super) fn font(size: u32) -> TextStyle<'static> {
    ("sans-serif", size).into_font().color(&INK)
}

pub(super) fn no_data<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, message: &str) -> Drawn {
    let (width, height) = root.dim_in_pixel();
    let style = font(20).pos(Pos::new(HPos::Center, VPos::Center));
    root.draw(&Text::new(
        message.to_string(),
        (width as i32 / 2, height as i32 / 2),
        style,
    ))
    .map_err(fail)
}

/// Shaded outage spans, dashed lines at each injection and (with `labels`) the fault's name.
fn draw_faults<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    marks: &[FaultMark],
    y_max: f64,
    labels: bool,
) -> Drawn {
    for (index, mark) in marks.iter().enumerate() {
        if let Some(until_s) = mark.until_s {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(mark.at_s, 0.0), (until_s, y_max)],
                    FAULT.mix(0.12).filled(),
                )))
                .map_err(fail)?;
        }
        let line = chart
            .draw_series(DashedLineSeries::new(
                vec![(mark.at_s, 0.0), (mark.at_s, y_max)],
                6,
                4,
                FAULT.stroke_width(2),
            ))
            .map_err(fail)?;
        if index == 0 {
            line.label("fault").legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], FAULT.stroke_width(2))
            });
        }
        if labels {
            let style = ("sans-serif", 16)
                .into_font()
                .color(&FAULT)
                .pos(Pos::new(HPos::Left, VPos::Top));
            let label = EmptyElement::at((mark.at_s, y_max))
                + Text::new(mark.label.clone(), (4, 2 + 18 * (index as i32 % 3)), style);
            chart.draw_series(std::iter::once(label)).map_err(fail)?;
        }
    }
    Ok(())
}

/// Runs of consecutive points, split where `value` is `None` (nothing measured that second).
fn segments<T>(items: &[T], point: impl Fn(&T) -> Option<(f64, f64)>) -> Vec<Vec<(f64, f64)>> {
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current = Vec::new();
    for item in items {
        match point(item) {
            Some(xy) => current.push(xy),
            None if !current.is_empty() => runs.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

/// Draws `runs` as one logical series named `name`: lines, and dots for lone points.
pub(super) fn draw_runs<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    runs: Vec<Vec<(f64, f64)>>,
    name: &str,
    color: RGBColor,
    width: u32,
) -> Drawn {
    for (index, run) in runs.into_iter().enumerate() {
        let annotation = if run.len() == 1 {
            chart
                .draw_series(std::iter::once(Circle::new(run[0], 3, color.filled())))
                .map_err(fail)?
        } else {
            chart
                .draw_series(LineSeries::new(run, color.stroke_width(width)))
                .map_err(fail)?
        };
        if index == 0 {
            annotation.label(name.to_string()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
            });
        }
    }
    Ok(())
}

pub(super) fn draw_legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    position: SeriesLabelPosition,
) -> Drawn {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font(font(17))
        .draw()
        .map_err(fail)
}

/// A chart over the run's seconds (x) from 0 to `y_max` (y), with its grid and axis labels drawn.
fn time_chart<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    report: &Report,
    caption: Option<&str>,
    y_max: f64,
    y_desc: &str,
) -> Result<Chart<'a, DB>, String> {
    let x = (time_span_s(report), "seconds since the run started");
    xy_chart(root, caption, x, (y_max, y_desc))
}

/// A chart from 0 to `x.0` and 0 to `y.0`, each axis described by its `.1`, with the house's
/// mesh, labels and margins.
pub(super) fn xy_chart<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    caption: Option<&str>,
    (x_max, x_desc): (f64, &str),
    (y_max, y_desc): (f64, &str),
) -> Result<Chart<'a, DB>, String> {
    let mut builder = ChartBuilder::on(root);
    if let Some(caption) = caption {
        builder.caption(caption, font(22));
    }
    let mut chart = builder
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .bold_line_style(GRID)
        .label_style(font(17))
        .axis_desc_style(font(18))
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(fail)?;
    Ok(chart)
}

fn draw_latency_over_time<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    report: &Report,
    caption: Option<&str>,
) -> Drawn {
    let intervals = &report.latency.e2e_intervals;
    if intervals.iter().all(|interval| interval.count == 0) {
        return no_data(root, "no end-to-end latency was recorded");
    }
    let y_max = intervals
        .iter()
        .map(|interval| interval.max_ms)
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.12;
    let mut chart = time_chart(root, report, caption, y_max, "end-to-end latency (ms)")?;
    draw_faults(&mut chart, &fault_marks(report), y_max, true)?;
    type Pick = fn(&IntervalSummary) -> f64;
    // Name, color, line width, value.
    let lines: [(&str, RGBColor, u32, Pick); 3] = [
        ("max", MAX, 1, |interval| interval.max_ms),
        ("p99", P99, 2, |interval| interval.p99_ms),
        ("p50", P50, 2, |interval| interval.p50_ms),
    ];
    for (name, color, width, value) in lines {
        let runs = segments(intervals, |interval| {
            (interval.count > 0).then(|| (interval.start_s as f64 + 0.5, value(interval)))
        });
        draw_runs(&mut chart, runs, name, color, width)?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
}

/// `(percentile, ms)` of the whole run: `latency.e2e_percentiles`, or for older reports the
/// summary's min, p50, p90, p99, p99.9 and max.
fn percentile_points(report: &Report) -> Vec<(f64, f64)> {
    if !report.latency.e2e_percentiles.is_empty() {
        return report
            .latency
            .e2e_percentiles
            .iter()
            .map(|point| (point.percentile, point.value_ms))
            .collect();
    }
    let e2e = &report.latency.e2e_ms;
    if e2e.count == 0 {
        return Vec::new();
    }
    vec![
        (0.0, e2e.min_ms),
        (50.0, e2e.p50_ms),
        (90.0, e2e.p90_ms),
        (99.0, e2e.p99_ms),
        (99.9, e2e.p999_ms),
        (100.0, e2e.max_ms),
    ]
}

/// Position of a percentile on the x axis: log10(1 / (1 - p)); 50% -> 0.3, 99% -> 2.
fn percentile_x(percentile: f64) -> f64 {
    (100.0 / (100.0 - percentile)).log10()
}

/// The percentile at an x position, like `99.9%`.
pub(crate) fn percent_label(x: f64) -> String {
    let percentile = 100.0 - 100.0 / 10f64.powf(x);
    let decimals = (x.ceil().max(1.0) as usize).min(8);
    let text = format!("{percentile:.decimals$}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

fn draw_percentiles<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, report: &Report) -> Drawn {
    let points = percentile_points(report);
    let Some(&(_, max_ms)) = points.last() else {
        return no_data(root, "no end-to-end latency was recorded");
    };
    let finite: Vec<(f64, f64)> = points
        .iter()
        .filter(|(percentile, _)| *percentile < 100.0)
        .map(|&(percentile, ms)| (percentile_x(percentile), ms))
        .collect();
    // Rounded up to a whole step (99.9% is x = 3 give or take a rounding error).
    let x_end = finite
        .last()
        .map_or(1.0, |&(x, _)| (x - 1e-9).ceil())
        .max(1.0);
    let y_max = max_ms.max(1.0) * 1.12;
    let mut chart = ChartBuilder::on(root)
        .margin(14)
        .margin_right(36)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_end, 0.0..y_max)
        .map_err(fail)?;
    let label = |x: &f64| percent_label(*x);
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .bold_line_style(GRID)
        .label_style(font(17))
        .axis_desc_style(font(18))
        .x_labels(x_end as usize + 1)
        .x_label_formatter(&label)
        .y_label_formatter(&tick)
        .x_desc("percentile (log scale: each step right is 10x rarer)")
        .y_desc("end-to-end latency (ms)")
        .draw()
        .map_err(fail)?;
    chart
        .draw_series(DashedLineSeries::new(
            vec![(0.0, max_ms), (x_end, max_ms)],
            8,
            5,
            MAX.stroke_width(1),
        ))
        .map_err(fail)?
        .label(format!("max {max_ms:.1} ms"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], MAX.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(finite.clone(), P50.stroke_width(2)))
        .map_err(fail)?
        .label("latency at percentile")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], P50.stroke_width(3)));
    mark_percentiles(&mut chart, &report.latency.e2e_ms, x_end)?;
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

/// A labelled dot at p50, p90, p99 and p99.9 of the curve (those within the chart).
fn mark_percentiles<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    e2e: &crate::measure::LatencySummary,
    x_end: f64,
) -> Drawn {
    for (name, percentile, ms) in [
        ("p50", 50.0, e2e.p50_ms),
        ("p90", 90.0, e2e.p90_ms),
        ("p99", 99.0, e2e.p99_ms),
        ("p99.9", 99.9, e2e.p999_ms),
    ] {
        let x = percentile_x(percentile);
        if x > x_end || e2e.count == 0 {
            continue;
        }
        // Right of and below the point: under a rising curve there is room.
        let style = font(16).pos(Pos::new(HPos::Left, VPos::Top));
        let marker = EmptyElement::at((x, ms))
            + Circle::new((0, 0), 4, P99.filled())
            + Text::new(format!("{name} {ms:.1} ms"), (7, 4), style);
        chart.draw_series(std::iter::once(marker)).map_err(fail)?;
    }
    Ok(())
}

fn draw_throughput<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, report: &Report) -> Drawn {
    let throughput = &report.throughput;
    let streams = [
        ("produced", PRODUCED, &throughput.produced),
        ("consumed", CONSUMED, &throughput.consumed),
        ("written", WRITTEN, &throughput.written),
    ];
    let peak = streams
        .iter()
        .flat_map(|(_, _, counts)| counts.iter())
        .copied()
        .max()
        .unwrap_or(0);
    if peak == 0 {
        return no_data(root, "no events were counted");
    }
    let y_max = peak as f64 * 1.12;
    let mut chart = time_chart(root, report, None, y_max, "events per second")?;
    draw_faults(&mut chart, &fault_marks(report), y_max, true)?;
    for (name, color, counts) in streams {
        let points: Vec<(f64, f64)> = counts
            .iter()
            .enumerate()
            .map(|(second, &count)| (second as f64 + 0.5, count as f64))
            .collect();
        draw_runs(
            &mut chart,
            vec![points]
                .into_iter()
                .filter(|run| !run.is_empty())
                .collect(),
            name,
            color,
            2,
        )?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight)
}

/// Small memory charts per row.
const MEMORY_COLUMNS: usize = 3;

fn draw_memory<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, report: &Report) -> Drawn {
    let timelines = &report.memory.timelines;
    if timelines.is_empty() {
        return no_data(root, "no process was sampled");
    }
    let count = timelines.len() + report.memory.gc.len();
    let columns = MEMORY_COLUMNS.min(count);
    let rows = count.div_ceil(columns);
    let span_s = time_span_s(report);
    let marks = fault_marks(report);
    let panels = root.split_evenly((rows, columns));
    let gc_panels = panels.iter().skip(timelines.len());
    for ((service, gc), panel) in report.memory.gc.iter().zip(gc_panels) {
        draw_heap(panel, service, gc, span_s, &marks)?;
    }
    for ((process, points), panel) in timelines.iter().zip(panels.iter()) {
        let peak_mb = report
            .memory
            .peak_rss_mb
            .get(process)
            .copied()
            .unwrap_or_else(|| {
                points
                    .iter()
                    .filter_map(|point| point.rss_mb)
                    .fold(0.0, f64::max)
            });
        let first_mb = points.iter().find_map(|point| point.rss_mb);
        let caption = match first_mb {
            Some(first_mb) => format!("{process}: {first_mb:.0} -> peak {peak_mb:.0} MB"),
            None => format!("{process}: not sampled"),
        };
        let y_max = peak_mb.max(1.0) * 1.15;
        let mut chart = memory_panel(panel, caption, span_s, y_max, "RSS (MB)")?;
        draw_faults(&mut chart, &marks, y_max, false)?;
        let runs = segments(points, |point| {
            point.rss_mb.map(|mb| (point.at_ms as f64 / 1_000.0, mb))
        });
        draw_runs(&mut chart, runs, process, MEMORY, 2)?;
    }
    Ok(())
}

/// One small panel of the memory chart: the run's seconds (x) against 0..`y_max` MB (y).
fn memory_panel<'a, DB: DrawingBackend>(
    panel: &'a DrawingArea<DB, Shift>,
    caption: String,
    span_s: f64,
    y_max: f64,
    y_desc: &str,
) -> Result<Chart<'a, DB>, String> {
    let mut chart = ChartBuilder::on(panel)
        .caption(caption, font(18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(54)
        .build_cartesian_2d(0.0..span_s, 0.0..y_max)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .bold_line_style(GRID)
        .label_style(font(15))
        .x_labels(5)
        .y_labels(5)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .y_desc(y_desc)
        .axis_desc_style(font(15))
        .draw()
        .map_err(fail)?;
    Ok(chart)
}

/// A JVM's heap from its GC log: used before each collection (the peaks) and after it (what
/// survived), under the heap's limit.
fn draw_heap<DB: DrawingBackend>(
    panel: &DrawingArea<DB, Shift>,
    service: &str,
    gc: &GcSection,
    span_s: f64,
    marks: &[FaultMark],
) -> Drawn {
    let caption = format!(
        "{service} heap (GC log): max {:.0} MB, {} collections",
        gc.heap_max_mb, gc.collections
    );
    let y_max = gc.heap_max_mb.max(1.0) * 1.15;
    let mut chart = memory_panel(panel, caption, span_s, y_max, "heap (MB)")?;
    draw_faults(&mut chart, marks, y_max, false)?;
    let limit = vec![(0.0, gc.heap_max_mb), (span_s, gc.heap_max_mb)];
    draw_runs(&mut chart, vec![limit], "heap max", MAX, 1)?;
    let before = gc.heap_used_mb.iter().map(|p| (p.at_s, p.before)).collect();
    draw_runs(&mut chart, vec![before], "before GC", P99, 1)?;
    let after = gc.heap_used_mb.iter().map(|p| (p.at_s, p.after)).collect();
    draw_runs(&mut chart, vec![after], "after GC", MEMORY, 2)?;
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight)
}

/// The stages in pipeline order with their names for people, then end to end.
fn stage_bars(report: &Report) -> Vec<(&'static str, f64, f64)> {
    let mut bars: Vec<(&'static str, f64, f64)> = [
        (STAGE_PRODUCE_ACK_MS, "produce -> broker ack"),
        (STAGE_CONSUME_MS, "send -> consumer read"),
        (STAGE_WRITE_ACK_MS, "read -> database ack"),
    ]
    .into_iter()
    .filter_map(|(key, name)| {
        let stage = report.latency.stages.get(key)?;
        (stage.count > 0).then_some((name, stage.p50_ms, stage.p99_ms))
    })
    .collect();
    let e2e = &report.latency.e2e_ms;
    if e2e.count > 0 {
        bars.push(("end to end", e2e.p50_ms, e2e.p99_ms));
    }
    bars
}

fn draw_stages<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, report: &Report) -> Drawn {
    let bars = stage_bars(report);
    if bars.is_empty() {
        return no_data(root, "no stage latency was recorded");
    }
    let y_max = bars.iter().map(|bar| bar.2).fold(0.0, f64::max).max(1.0) * 1.2;
    let mut chart = ChartBuilder::on(root)
        .margin(14)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..bars.len() as f64, 0.0..y_max)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .bold_line_style(GRID)
        .label_style(font(17))
        .axis_desc_style(font(18))
        .x_labels(0)
        .y_label_formatter(&tick)
        .y_desc("latency (ms)")
        .draw()
        .map_err(fail)?;
    type Pick = fn(&(&'static str, f64, f64)) -> f64;
    let series: [(f64, RGBColor, &str, Pick); 2] = [
        (0.14, P50, "p50", |bar| bar.1),
        (0.52, P99, "p99", |bar| bar.2),
    ];
    for (offset, color, name, pick) in series {
        // Bars in data coordinates, their values just above them.
        chart
            .draw_series(bars.iter().enumerate().map(|(index, bar)| {
                let left = index as f64 + offset;
                Rectangle::new([(left, 0.0), (left + 0.34, pick(bar))], color.filled())
            }))
            .map_err(fail)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
        chart
            .draw_series(bars.iter().enumerate().map(|(index, bar)| {
                let ms = pick(bar);
                let center = index as f64 + offset + 0.17;
                let style = font(16).pos(Pos::new(HPos::Center, VPos::Bottom));
                EmptyElement::at((center, ms)) + Text::new(format!("{ms:.1} ms"), (0, -3), style)
            }))
            .map_err(fail)?;
    }
    // Category names under the axis, in pixels of the whole canvas.
    for (index, bar) in bars.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(index as f64 + 0.5, 0.0));
        let style = font(17).pos(Pos::new(HPos::Center, VPos::Top));
        root.draw(&Text::new(bar.0.to_string(), (x, y + 10), style))
            .map_err(fail)?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_labels_read_like_percentiles() {
        assert_eq!(percent_label(0.0), "0%");
        assert_eq!(percent_label(1.0), "90%");
        assert_eq!(percent_label(2.0), "99%");
        assert_eq!(percent_label(3.0), "99.9%");
        assert_eq!(percent_label(5.0), "99.999%");
        assert!((percentile_x(99.0) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn fault_marks_show_fired_faults_until_they_recovered() {
        let mut report = super::super::tests::sample_report();
        report.faults = super::super::tests::sample_faults();
        let marks = fault_marks(&report);
        assert_eq!(
            marks,
            [
                FaultMark {
                    at_s: 3.5,
                    until_s: Some(6.5),
                    label: "kill consumer".to_string()
                },
                FaultMark {
                    at_s: 7.0,
                    until_s: None,
                    label: "latency broker".to_string()
                },
            ]
        );
        assert!(time_span_s(&report) >= 10.0);
    }

    #[test]
    fn segments_split_at_gaps() {
        let values = [Some(1.0), Some(2.0), None, None, Some(5.0)];
        let runs = segments(&values, |v| v.map(|v| (v, v)));
        assert_eq!(runs, vec![vec![(1.0, 1.0), (2.0, 2.0)], vec![(5.0, 5.0)]]);
    }
}
