//! Hand-written inline SVG charts: grouped bars with confidence intervals and a reference
//! mark per group, and category line charts. Pure string building, deterministic output.

/// Colours for series (Okabe–Ito, readable for colour-blind readers), in order.
pub const PALETTE: [&str; 8] = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#8C6D31", "#666666"];

/// Dash patterns for a second series dimension (e.g. the grade).
pub const DASHES: [&str; 5] = ["", "6 3", "2 2", "8 3 2 3", "1 4"];

/// Escapes text for XML/HTML content and attributes.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Formats a coordinate with one decimal (keeps the SVG small and deterministic).
fn c(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == r.trunc() { format!("{}", r as i64) } else { format!("{r:.1}") }
}

/// A value axis, linear or logarithmic.
#[derive(Debug, Clone)]
struct Scale {
    log: bool,
    lo: f64,
    hi: f64,
    bottom: f64,
    top: f64,
}

impl Scale {
    fn y(&self, v: f64) -> f64 {
        let t = if self.log {
            let v = v.max(self.lo);
            (v.ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        self.bottom - t.clamp(0.0, 1.0) * (self.bottom - self.top)
    }
}

/// A "nice" step (1, 2, 2.5, 5 × 10^k) near `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let n = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 2.5 {
        2.5
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    n * mag
}

/// Domain and ticks for the values (which must be finite; log needs positive values).
/// `binary` steps linear ticks in powers of 1024 (bytes).
fn axis(values: &[f64], log: bool, binary: bool, bottom: f64, top: f64) -> (Scale, Vec<f64>) {
    if log {
        let pos: Vec<f64> = values.iter().copied().filter(|v| *v > 0.0 && v.is_finite()).collect();
        let (mut min, mut max) = pos.iter().fold((f64::INFINITY, 0f64), |(a, b), v| (a.min(*v), b.max(*v)));
        if pos.is_empty() {
            (min, max) = (1.0, 10.0);
        }
        let decades = (max.log10().ceil() - min.log10().floor()).max(1.0);
        let mantissas: &[f64] = if decades > 3.0 { &[1.0] } else { &[1.0, 2.0, 5.0] };
        let mut cands = Vec::new();
        for k in (min.log10().floor() as i32 - 1)..=(max.log10().ceil() as i32 + 1) {
            for m in mantissas {
                cands.push(m * 10f64.powi(k));
            }
        }
        // Strictly below the smallest value, so that a bar exactly on a tick (EDR 1.00, the
        // most common value) still has a visible height.
        let lo = cands.iter().copied().filter(|c| *c < min * (1.0 - 1e-9)).fold(f64::NAN, f64::max);
        let mut hi = cands.iter().copied().filter(|c| *c >= max * (1.0 - 1e-9)).fold(f64::NAN, f64::min);
        if hi <= lo {
            hi = cands.iter().copied().find(|c| *c > lo).unwrap_or(lo * 10.0);
        }
        let ticks = cands.into_iter().filter(|c| *c >= lo * (1.0 - 1e-9) && *c <= hi * (1.0 + 1e-9)).collect();
        (Scale { log, lo, hi, bottom, top }, ticks)
    } else {
        let mut min = values.iter().copied().filter(|v| v.is_finite()).fold(0f64, f64::min);
        let max = values.iter().copied().filter(|v| v.is_finite()).fold(0f64, f64::max);
        // A negative sliver (rounding, a page) would spend a whole tick below zero: clip it.
        if min < 0.0 && -min < 0.02 * max {
            min = 0.0;
        }
        let unit = if binary {
            let mut u = 1.0;
            while (max - min) / (u * 1024.0) >= 1.0 {
                u *= 1024.0;
            }
            u
        } else {
            1.0
        };
        let step = nice_step((max - min) / unit / 5.0) * unit;
        let lo = (min / step).floor() * step;
        let mut hi = (max / step).ceil() * step;
        if hi <= lo {
            hi = lo + step;
        }
        let n = ((hi - lo) / step).round() as i64;
        let ticks = (0..=n).map(|i| lo + i as f64 * step).collect();
        (Scale { log, lo, hi, bottom, top }, ticks)
    }
}

/// One bar: the value, an interval, a tooltip; or a note (e.g. `invalid`) instead of a value.
#[derive(Debug, Clone, Default)]
pub struct Bar {
    pub value: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub tooltip: String,
    pub note: Option<String>,
}

#[derive(Debug, Clone)]
pub struct BarSeries {
    pub name: String,
    pub color: String,
    /// One bar per group.
    pub bars: Vec<Bar>,
}

/// A grouped bar chart.
#[derive(Debug, Clone)]
pub struct BarChart {
    pub title: String,
    pub y_label: String,
    pub log: bool,
    pub groups: Vec<String>,
    pub series: Vec<BarSeries>,
    /// A reference value per group (e.g. the ideal ratio), drawn as a dashed line across it.
    pub reference: Option<(String, Vec<Option<f64>>)>,
    /// Tick and reference-label number format.
    pub fmt: fn(f64) -> String,
    /// Byte values: ticks in steps of powers of 1024.
    pub binary: bool,
}

const TOP: f64 = 26.0;
const RIGHT: f64 = 10.0;
const PLOT_H: f64 = 170.0;
const BOTTOM: f64 = 30.0;

/// Room for the y axis: its rotated label and the widest tick label.
fn left_margin(ticks: &[f64], fmt: fn(f64) -> String) -> f64 {
    let widest = ticks.iter().map(|t| fmt(*t).chars().count()).max().unwrap_or(1) as f64;
    (widest * 6.4 + 28.0).max(44.0)
}

fn frame(o: &mut String, w: f64, h: f64, title: &str, kind: &str) {
    o.push_str(&format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart {kind}\" viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" \
         role=\"img\" aria-label=\"{}\">\n",
        c(w),
        c(h),
        c(w),
        c(h),
        esc(title)
    ));
    o.push_str(&format!(
        "<text class=\"title\" x=\"{}\" y=\"16\" text-anchor=\"middle\">{}</text>\n",
        c(w / 2.0),
        esc(title)
    ));
}

fn y_axis(o: &mut String, scale: &Scale, ticks: &[f64], x0: f64, x1: f64, fmt: fn(f64) -> String, label: &str) {
    for t in ticks {
        let y = scale.y(*t);
        o.push_str(&format!(
            "<line class=\"grid\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/><text class=\"tick\" x=\"{}\" y=\"{}\" \
             text-anchor=\"end\">{}</text>\n",
            c(x0),
            c(y),
            c(x1),
            c(y),
            c(x0 - 4.0),
            c(y + 3.5),
            esc(&fmt(*t))
        ));
    }
    let mid = (scale.top + scale.bottom) / 2.0;
    o.push_str(&format!(
        "<text class=\"axis-label\" x=\"12\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 12 {})\">{}</text>\n",
        c(mid),
        c(mid),
        esc(label)
    ));
    o.push_str(&format!(
        "<line class=\"axis\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\n",
        c(x0),
        c(scale.top),
        c(x0),
        c(scale.bottom)
    ));
}

/// Renders a grouped bar chart as an `<svg>` element.
pub fn bar_chart(ch: &BarChart) -> String {
    let n = ch.series.len().max(1) as f64;
    let bar_w = if n <= 3.0 { 15.0 } else { (45.0 / n).max(6.0) };
    let gap = 14.0;
    let group_w = n * bar_w + gap;
    let plot_w = (ch.groups.len().max(1) as f64 * group_w).max(150.0);
    let group_w = plot_w / ch.groups.len().max(1) as f64;
    let mut vals = Vec::new();
    let nonneg = ch.series.iter().flat_map(|s| s.bars.iter().flat_map(|b| b.value)).all(|v| v >= 0.0);
    for s in &ch.series {
        for b in &s.bars {
            vals.extend(b.value);
            vals.extend(b.high);
            // An interval reaching below zero for a quantity that is never negative is
            // clipped at the axis rather than stretching it.
            if !ch.log && !nonneg {
                vals.extend(b.low);
            }
        }
    }
    if let Some((_, r)) = &ch.reference {
        vals.extend(r.iter().flatten());
    }
    let (scale, ticks) = axis(&vals, ch.log, ch.binary, TOP + PLOT_H, TOP);
    let left = left_margin(&ticks, ch.fmt);
    let (w, h) = (left + plot_w + RIGHT, TOP + PLOT_H + BOTTOM);
    let mut o = String::new();
    frame(&mut o, w, h, &ch.title, "bars");
    y_axis(&mut o, &scale, &ticks, left, left + plot_w, ch.fmt, &ch.y_label);
    let base = if ch.log { scale.bottom } else { scale.y(0.0) };
    o.push_str(&format!(
        "<line class=\"axis\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\n",
        c(left),
        c(base),
        c(left + plot_w),
        c(base)
    ));
    for (gi, g) in ch.groups.iter().enumerate() {
        let gx = left + gi as f64 * group_w;
        let x_start = gx + (group_w - n * bar_w) / 2.0;
        o.push_str(&format!(
            "<text class=\"group\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            c(gx + group_w / 2.0),
            c(TOP + PLOT_H + 14.0),
            esc(g)
        ));
        for (si, s) in ch.series.iter().enumerate() {
            let Some(b) = s.bars.get(gi) else { continue };
            let x = x_start + si as f64 * bar_w;
            match b.value {
                Some(v) if v.is_finite() => {
                    let y = scale.y(v);
                    let (top, height) = if y <= base { (y, base - y) } else { (base, y - base) };
                    o.push_str(&format!(
                        "<rect class=\"bar\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"><title>{}</title></rect>\n",
                        c(x + 1.0),
                        c(top),
                        c(bar_w - 2.0),
                        c(height.max(0.5)),
                        s.color,
                        esc(&b.tooltip)
                    ));
                    if let (Some(lo), Some(hi)) = (b.low, b.high) {
                        let (y1, y2) = (scale.y(lo), scale.y(hi));
                        let cx = x + bar_w / 2.0;
                        o.push_str(&format!(
                            "<path class=\"ci\" d=\"M{} {}V{}M{} {}H{}M{} {}H{}\"/>\n",
                            c(cx),
                            c(y1),
                            c(y2),
                            c(cx - 3.0),
                            c(y1),
                            c(cx + 3.0),
                            c(cx - 3.0),
                            c(y2),
                            c(cx + 3.0)
                        ));
                    }
                }
                _ => {
                    if let Some(note) = &b.note {
                        let cx = x + bar_w / 2.0;
                        o.push_str(&format!(
                            "<text class=\"note\" x=\"{}\" y=\"{}\" transform=\"rotate(-90 {} {})\">{}<title>{}</title></text>\n",
                            c(cx + 3.0),
                            c(base - 3.0),
                            c(cx + 3.0),
                            c(base - 3.0),
                            esc(note),
                            esc(&b.tooltip)
                        ));
                    }
                }
            }
        }
        if let Some((name, refs)) = &ch.reference
            && let Some(Some(r)) = refs.get(gi)
        {
            let y = scale.y(*r);
            o.push_str(&format!(
                "<line class=\"ref\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"><title>{} {}</title></line>\n",
                c(x_start - 3.0),
                c(y),
                c(x_start + n * bar_w + 3.0),
                c(y),
                esc(name),
                esc(&(ch.fmt)(*r))
            ));
        }
    }
    o.push_str("</svg>\n");
    o
}

#[derive(Debug, Clone)]
pub struct LineSeries {
    pub name: String,
    pub color: String,
    pub dash: String,
    /// One point per category; `None` leaves a gap.
    pub points: Vec<Option<f64>>,
}

/// A line chart over categories (stages, percentiles).
#[derive(Debug, Clone)]
pub struct LineChart {
    pub title: String,
    pub y_label: String,
    pub log: bool,
    pub categories: Vec<String>,
    pub series: Vec<LineSeries>,
    /// Horizontal reference lines with a label (e.g. the logical bytes).
    pub references: Vec<(String, f64)>,
    pub fmt: fn(f64) -> String,
    pub binary: bool,
}

/// Renders a line chart as an `<svg>` element.
pub fn line_chart(ch: &LineChart) -> String {
    let k = ch.categories.len().max(1) as f64;
    let plot_w = (k * 62.0).max(220.0);
    let step = plot_w / k;
    let mut vals: Vec<f64> = ch.series.iter().flat_map(|s| s.points.iter().flatten().copied()).collect();
    vals.extend(ch.references.iter().map(|r| r.1));
    let (scale, ticks) = axis(&vals, ch.log, ch.binary, TOP + PLOT_H, TOP);
    let left = left_margin(&ticks, ch.fmt);
    let (w, h) = (left + plot_w + RIGHT, TOP + PLOT_H + BOTTOM);
    let mut o = String::new();
    frame(&mut o, w, h, &ch.title, "lines");
    y_axis(&mut o, &scale, &ticks, left, left + plot_w, ch.fmt, &ch.y_label);
    o.push_str(&format!(
        "<line class=\"axis\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\n",
        c(left),
        c(scale.bottom),
        c(left + plot_w),
        c(scale.bottom)
    ));
    let x_of = |i: usize| left + step * (i as f64 + 0.5);
    for (i, cat) in ch.categories.iter().enumerate() {
        o.push_str(&format!(
            "<text class=\"group\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            c(x_of(i)),
            c(TOP + PLOT_H + 14.0),
            esc(cat)
        ));
    }
    for (label, v) in &ch.references {
        let y = scale.y(*v);
        o.push_str(&format!(
            "<line class=\"ref\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"><title>{} {}</title></line>\n\
             <text class=\"ref-label\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n",
            c(left),
            c(y),
            c(left + plot_w),
            c(y),
            esc(label),
            esc(&(ch.fmt)(*v)),
            c(left + plot_w - 2.0),
            c(y - 3.0),
            esc(label)
        ));
    }
    for s in &ch.series {
        let mut d = String::new();
        let mut pen_down = false;
        for (i, p) in s.points.iter().enumerate() {
            match p {
                Some(v) if v.is_finite() => {
                    d.push_str(&format!("{}{} {}", if pen_down { "L" } else { "M" }, c(x_of(i)), c(scale.y(*v))));
                    pen_down = true;
                }
                _ => pen_down = false,
            }
        }
        let dash = if s.dash.is_empty() { String::new() } else { format!(" stroke-dasharray=\"{}\"", s.dash) };
        o.push_str(&format!(
            "<path class=\"line\" d=\"{d}\" stroke=\"{}\"{dash}><title>{}</title></path>\n",
            s.color,
            esc(&s.name)
        ));
        for (i, p) in s.points.iter().enumerate() {
            if let Some(v) = p.filter(|v| v.is_finite()) {
                o.push_str(&format!(
                    "<circle class=\"point\" cx=\"{}\" cy=\"{}\" r=\"2.5\" fill=\"{}\"><title>{} · {}: {}</title></circle>\n",
                    c(x_of(i)),
                    c(scale.y(v)),
                    s.color,
                    esc(&s.name),
                    esc(&ch.categories[i]),
                    esc(&(ch.fmt)(v))
                ));
            }
        }
    }
    o.push_str("</svg>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_are_nice() {
        let (s, t) = axis(&[0.0, 7.3], false, false, 100.0, 0.0);
        assert_eq!((s.lo, s.hi), (0.0, 8.0));
        assert_eq!(t, vec![0.0, 2.0, 4.0, 6.0, 8.0]);
        let (s, t) = axis(&[0.99, 53.2], true, false, 100.0, 0.0);
        assert_eq!((s.lo, s.hi), (0.5, 100.0));
        assert_eq!(t, vec![0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]);
        assert_eq!(s.y(0.5), 100.0);
        assert_eq!(s.y(100.0), 0.0);
        let (s, _) = axis(&[-0.2, 1.0], false, false, 100.0, 0.0);
        assert!(s.lo < 0.0 && s.y(0.0) < 100.0);
        let (s, _) = axis(&[-0.001, 1.0], false, false, 100.0, 0.0);
        assert_eq!(s.lo, 0.0, "a negative sliver does not get its own tick");
        let (_, t) = axis(&[0.0, 8_400_896.0], false, true, 100.0, 0.0);
        assert_eq!(t, vec![0.0, 2097152.0, 4194304.0, 6291456.0, 8388608.0, 10485760.0], "MiB steps");
    }

    #[test]
    fn bar_chart_draws_bars_intervals_notes_and_references() {
        let ch = BarChart {
            title: "t <x>".into(),
            y_label: "EDR".into(),
            log: true,
            groups: vec!["U0".into(), "U90".into()],
            series: vec![BarSeries {
                name: "a".into(),
                color: PALETTE[0].into(),
                bars: vec![
                    Bar { value: Some(2.0), low: Some(1.5), high: Some(2.5), tooltip: "a U0".into(), note: None },
                    Bar { value: None, note: Some("invalid".into()), ..Default::default() },
                ],
            }],
            reference: Some(("ideal".into(), vec![Some(8.0), None])),
            fmt: |v| format!("{v}"),
            binary: false,
        };
        let svg = bar_chart(&ch);
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 1);
        assert_eq!(svg.matches("class=\"ci\"").count(), 1);
        assert_eq!(svg.matches("class=\"ref\"").count(), 1);
        assert!(svg.contains(">invalid<"));
        assert!(svg.contains("t &lt;x&gt;"));
    }
}
