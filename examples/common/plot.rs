//! Line charts as PNG files (plotters), shared by the examples that plot
//! training curves. Include with `#[path = "common/plot.rs"] mod plot;`.

use plotters::prelude::*;
use std::path::Path;

/// One named curve of `(x, y)` points.
pub struct Series {
    /// The legend label.
    pub label: String,
    /// The points, in x order.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A curve named `label` through `points`.
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            label: label.into(),
            points,
        }
    }
}

/// One panel of a figure: a title, axis labels, curves, and whether the y
/// axis is logarithmic (for losses spanning decades).
pub struct Panel {
    /// Shown above the panel.
    pub title: String,
    /// The x axis label.
    pub x_label: String,
    /// The y axis label.
    pub y_label: String,
    /// The curves.
    pub series: Vec<Series>,
    /// Log-scale y axis (every y must then be positive).
    pub log_y: bool,
    /// Bounds the y axis never goes past (an accuracy: `Some((0.0, 100.0))`),
    /// whatever the padding around the data.
    pub y_limits: Option<(f64, f64)>,
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Writes `panels` side by side into a PNG at `path` (`width` × `height`
/// pixels in all).
pub fn write_png(
    path: &Path,
    width: u32,
    height: u32,
    panels: &[Panel],
) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, panel) in areas.iter().zip(panels) {
        draw_panel(area, panel)?;
    }
    root.present()?;
    Ok(())
}

fn bounds(panel: &Panel) -> (f64, f64, f64, f64) {
    let pts = panel.series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts.filter(|p| p.0.is_finite() && p.1.is_finite()) {
        if panel.log_y && y <= 0.0 {
            continue;
        }
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        return (0.0, 1.0, if panel.log_y { 0.1 } else { 0.0 }, 1.0);
    }
    if x0 == x1 {
        // One x (a one-epoch run): centre it.
        (x0, x1) = (x0 - 0.5, x1 + 0.5);
    }
    let (y0, y1) = if panel.log_y {
        if y0 == y1 {
            (y0 / 2.0, y1 * 2.0)
        } else {
            (y0 * 0.9, y1 * 1.1)
        }
    } else {
        // Pad by 5 % of the span, or of the value when there is one value.
        let span = if y0 == y1 {
            y0.abs().max(1e-3)
        } else {
            y1 - y0
        };
        (y0 - 0.05 * span, y1 + 0.05 * span)
    };
    let (y0, y1) = match panel.y_limits {
        Some((lo, hi)) => (y0.max(lo), y1.min(hi)),
        None => (y0, y1),
    };
    (x0, x1, y0, y1)
}

/// A log axis label: only at 1, 2 and 5 times a power of ten, so that the
/// labels do not crowd where a log axis packs its ticks.
fn log_tick(v: f64) -> String {
    if v <= 0.0 || !v.is_finite() {
        return String::new();
    }
    let m = v / 10f64.powf(v.log10().floor());
    if [1.0, 2.0, 5.0, 10.0]
        .iter()
        .any(|k| (m - k).abs() < 1e-6 * k)
    {
        tick(v)
    } else {
        String::new()
    }
}

/// A tick label with three significant digits and no float noise
/// (`0.7`, not `0.7000000001`).
fn tick(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let (x0, x1, y0, y1) = bounds(panel);
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(&panel.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            let mut mesh = chart.configure_mesh();
            if panel.log_y {
                // plotters packs a log axis's ticks near 1; keep the bold
                // lines only (labels are thinned by `log_tick`).
                mesh.y_max_light_lines(0);
            }
            mesh.x_desc(panel.x_label.as_str())
                .y_desc(panel.y_label.as_str())
                .x_label_formatter(&|v| tick(*v))
                .y_label_formatter(&|v| if panel.log_y { log_tick(*v) } else { tick(*v) })
                .draw()?;
            for (i, s) in panel.series.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                let pts = s
                    .points
                    .iter()
                    .copied()
                    .filter(|p| p.1.is_finite() && (!panel.log_y || p.1 > 0.0));
                if s.points.len() <= 20 {
                    // Few points (per-epoch values): mark each one, so a
                    // single epoch still shows.
                    let marks = pts.clone().map(|p| Circle::new(p, 3, color.filled()));
                    chart.draw_series(marks)?;
                }
                chart
                    .draw_series(LineSeries::new(pts, color.stroke_width(2)))?
                    .label(s.label.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()?;
        }};
    }
    if panel.log_y {
        draw!(builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale())?);
    } else {
        draw!(builder.build_cartesian_2d(x0..x1, y0..y1)?);
    }
    Ok(())
}

#[cfg(test)]
mod plot_tests {
    use super::*;

    fn panel(points: Vec<(f64, f64)>, log_y: bool, y_limits: Option<(f64, f64)>) -> Panel {
        Panel {
            title: "t".into(),
            x_label: "epoch".into(),
            y_label: "y".into(),
            series: vec![Series::new("s", points)],
            log_y,
            y_limits,
        }
    }

    #[test]
    fn one_epoch_accuracy_gets_a_sane_axis() {
        let (x0, x1, y0, y1) = bounds(&panel(vec![(1.0, 98.5)], false, Some((0.0, 100.0))));
        assert_eq!((x0, x1), (0.5, 1.5));
        assert!(y0 > 90.0 && y0 < 98.5 && y1 == 100.0, "{y0}..{y1}");
        // Without limits the single value sits in the middle, padded by 5 %.
        let (_, _, y0, y1) = bounds(&panel(vec![(1.0, 0.2)], false, None));
        assert!((y0 - 0.19).abs() < 1e-12 && (y1 - 0.21).abs() < 1e-12);
        let (_, _, y0, y1) = bounds(&panel(vec![(1.0, 0.2)], true, None));
        assert_eq!((y0, y1), (0.1, 0.4));
    }

    #[test]
    fn log_axis_labels_only_at_1_2_5() {
        let shown: Vec<String> = [0.05, 0.06, 0.1, 0.3, 0.5, 0.9, 1.0, 2.0, 3.0]
            .iter()
            .map(|&v| log_tick(v))
            .collect();
        assert_eq!(shown, ["0.05", "", "0.1", "", "0.5", "", "1", "2", ""]);
    }
}
