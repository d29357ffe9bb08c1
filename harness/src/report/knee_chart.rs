//! The chart of a knee search (knee.svg): end-to-end p50 and p99 against the offered rate above, with the p99 target; written against offered rate below, with the line where they are equal; the knee marked on both.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::charts::{
    Chart, Drawn, INK, MAX, P50, P99, PRODUCED, WRITTEN, draw_legend, draw_runs, fail, no_data,
    svg, xy_chart,
};

/// One step of a knee search, as the chart draws it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KneePoint {
    /// Offered, events/s.
    pub rate: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub written_per_s: f64,
    pub sustained: bool,
}

const WIDTH: u32 = 960;

/// The SVG of a knee search's `points` (any order), the p99 target and the knee found.
pub fn knee_svg(
    points: &[KneePoint],
    p99_target_ms: f64,
    knee: Option<f64>,
) -> Result<String, String> {
    let mut points = points.to_vec();
    points.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    svg((WIDTH, 720), |root| {
        if points.is_empty() {
            return no_data(root, "no step ran");
        }
        let x_max = points.iter().map(|p| p.rate).fold(1.0, f64::max) * 1.08;
        let (top, bottom) = root.split_vertically(360);
        draw_latency(&top, &points, x_max, p99_target_ms, knee)?;
        draw_written(&bottom, &points, x_max, knee)
    })
}

/// The x axis of both panels, drawn from 0 to the highest step plus a margin.
const RATE_AXIS: &str = "offered rate (events per second)";

fn draw_latency<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    points: &[KneePoint],
    x_max: f64,
    target_ms: f64,
    knee: Option<f64>,
) -> Drawn {
    let highest = points
        .iter()
        .filter_map(|p| p.p99_ms)
        .fold(target_ms, f64::max);
    let y_max = highest.min(target_ms * 4.0) * 1.1;
    let caption = Some("latency against offered rate");
    let mut chart = xy_chart(
        root,
        caption,
        (x_max, RATE_AXIS),
        (y_max, "e2e latency (ms)"),
    )?;
    let capped = |value: f64| value.min(y_max);
    for (name, color, pick) in [
        (
            "p50",
            P50,
            (|p: &KneePoint| p.p50_ms) as fn(&KneePoint) -> Option<f64>,
        ),
        ("p99", P99, |p: &KneePoint| p.p99_ms),
    ] {
        let line: Vec<(f64, f64)> = points
            .iter()
            .filter_map(|p| pick(p).map(|ms| (p.rate, capped(ms))))
            .collect();
        draw_runs(&mut chart, vec![line], name, color, 2)?;
    }
    chart
        .draw_series(LineSeries::new(
            [(0.0, target_ms), (x_max, target_ms)],
            MAX.stroke_width(1),
        ))
        .map_err(fail)?
        .label(format!("p99 target {target_ms} ms"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], MAX.stroke_width(2)));
    draw_verdicts(&mut chart, points, |p| p.p99_ms.map(capped))?;
    draw_knee(&mut chart, knee, y_max)?;
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

fn draw_written<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    points: &[KneePoint],
    x_max: f64,
    knee: Option<f64>,
) -> Drawn {
    let highest = points
        .iter()
        .map(|p| p.rate.max(p.written_per_s))
        .fold(1.0, f64::max);
    let y_max = highest * 1.1;
    let caption = Some("throughput against offered rate");
    let mut chart = xy_chart(
        root,
        caption,
        (x_max, RATE_AXIS),
        (y_max, "written (events/s)"),
    )?;
    chart
        .draw_series(LineSeries::new(
            [(0.0, 0.0), (x_max, x_max)],
            PRODUCED.stroke_width(1),
        ))
        .map_err(fail)?
        .label("written = offered")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], PRODUCED.stroke_width(2)));
    let line: Vec<(f64, f64)> = points.iter().map(|p| (p.rate, p.written_per_s)).collect();
    draw_runs(&mut chart, vec![line], "written", WRITTEN, 2)?;
    draw_verdicts(&mut chart, points, |p| Some(p.written_per_s))?;
    draw_knee(&mut chart, knee, y_max)?;
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

/// A filled dot at each sustained step, a hollow one at each step that was not.
fn draw_verdicts<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    points: &[KneePoint],
    y: impl Fn(&KneePoint) -> Option<f64>,
) -> Drawn {
    let dots = points.iter().filter_map(|p| {
        let style = match p.sustained {
            true => INK.filled(),
            false => INK.stroke_width(2),
        };
        y(p).map(|y| Circle::new((p.rate, y), 5, style))
    });
    chart.draw_series(dots).map_err(fail)?;
    Ok(())
}

/// A vertical line at the knee.
fn draw_knee<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    knee: Option<f64>,
    y_max: f64,
) -> Drawn {
    let Some(knee) = knee else {
        return Ok(());
    };
    chart
        .draw_series(LineSeries::new(
            [(knee, 0.0), (knee, y_max)],
            INK.stroke_width(1),
        ))
        .map_err(fail)?
        .label(format!("knee {knee:.0}/s"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], INK.stroke_width(2)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_has_both_panels_the_target_and_the_knee() {
        let points: Vec<KneePoint> = [(500.0, true), (1_000.0, true), (2_000.0, false)]
            .map(|(rate, sustained)| KneePoint {
                rate,
                p50_ms: Some(rate / 100.0),
                p99_ms: Some(rate / 10.0),
                written_per_s: rate.min(1_200.0),
                sustained,
            })
            .to_vec();
        let svg = knee_svg(&points, 150.0, Some(1_000.0)).expect("draws");
        for text in [
            "latency against offered rate",
            "throughput against offered rate",
            "p99 target 150 ms",
            "knee 1000/s",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        assert!(
            knee_svg(&[], 150.0, None)
                .expect("draws")
                .contains("no step ran")
        );
    }
}
