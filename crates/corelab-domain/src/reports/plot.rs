//! SVG plots of the reports, built as text: no script, no external resource, no `style`
//! attribute (pages are served with a Content-Security-Policy without inline styles, so colours
//! and dashes are presentation attributes). Every plot has `role="img"`, a `<title>` and a
//! `<desc>` summarising the data, axis titles, tick labels and a legend; colour is never the only
//! signal (each bar and line is labelled, and the pages show the same numbers as a table).

use std::fmt::Write as _;

use super::response::{SpiderLine, WaterfallBar};
use super::timeline::{EnrolmentPoint, TimelineSubject};
use crate::charter::Date;

const W: f64 = 900.0;
const H: f64 = 460.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 240.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 110.0;
const FONT: &str = "DejaVu Sans, Arial, Helvetica, sans-serif";
const AXIS: &str = "#333333";
const GRID: &str = "#dddddd";

/// PD threshold (+20 %) and PR threshold (-30 %) of RECIST 1.1, in tenths of a percent.
pub const PD_THRESHOLD_TENTHS: i64 = 200;
pub const PR_THRESHOLD_TENTHS: i64 = -300;

/// Text for XML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Tenths of a percent as text: -305 -> "-30.5 %", 200 -> "+20.0 %".
pub fn pct(tenths: i64) -> String {
    let sign = if tenths > 0 {
        "+"
    } else if tenths < 0 {
        "-"
    } else {
        ""
    };
    let a = tenths.unsigned_abs();
    format!("{sign}{}.{} %", a / 10, a % 10)
}

/// A response category for colour and legend: the response word grouped (iRECIST words with
/// their RECIST counterpart, unconfirmed progression apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ResponseGroup {
    Cr,
    Pr,
    Sd,
    NonCrNonPd,
    Iupd,
    Pd,
    Ne,
}

impl ResponseGroup {
    pub fn of(response: &str) -> ResponseGroup {
        match response {
            "CR" | "iCR" => ResponseGroup::Cr,
            "PR" | "iPR" => ResponseGroup::Pr,
            "SD" | "iSD" => ResponseGroup::Sd,
            "NON_CR_NON_PD" | "iNN" | "Non-CR/Non-PD" => ResponseGroup::NonCrNonPd,
            "iUPD" => ResponseGroup::Iupd,
            "PD" | "iCPD" => ResponseGroup::Pd,
            _ => ResponseGroup::Ne,
        }
    }
    pub fn colour(self) -> &'static str {
        match self {
            ResponseGroup::Cr => "#1a7f37",
            ResponseGroup::Pr => "#1f63b5",
            ResponseGroup::Sd => "#8c8c8c",
            ResponseGroup::NonCrNonPd => "#5e9c9c",
            ResponseGroup::Iupd => "#e07b00",
            ResponseGroup::Pd => "#c62828",
            ResponseGroup::Ne => "#6b4f2a",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            ResponseGroup::Cr => "CR: complete response",
            ResponseGroup::Pr => "PR: partial response",
            ResponseGroup::Sd => "SD: stable disease",
            ResponseGroup::NonCrNonPd => "non-CR/non-PD",
            ResponseGroup::Iupd => "iUPD: unconfirmed PD",
            ResponseGroup::Pd => "PD: progressive disease",
            ResponseGroup::Ne => "NE: not evaluable",
        }
    }
}

fn f(v: f64) -> String {
    format!("{v:.1}")
}

/// Round tick values covering [lo, hi] (about `target` of them) and the step.
pub fn ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if hi <= lo || target == 0 {
        return vec![lo];
    }
    #[allow(clippy::cast_precision_loss)]
    let raw = (hi - lo) / target as f64;
    let mag = 10_f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let start = (lo / step).ceil();
    let mut out = Vec::new();
    let mut i = 0.0;
    while (start + i) * step <= hi + step * 1e-9 {
        out.push((start + i) * step);
        i += 1.0;
    }
    out
}

struct Frame {
    out: String,
    id: String,
}

impl Frame {
    fn new(id: &str, title: &str, desc: &str) -> Frame {
        let id = esc(id);
        let mut out = String::new();
        let _ = write!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\" id=\"{id}\" role=\"img\" \
             aria-labelledby=\"{id}-title {id}-desc\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" \
             font-family=\"{FONT}\" font-size=\"12\">\
             <title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>\
             <rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" fill=\"#ffffff\"/>\
             <text x=\"{}\" y=\"26\" font-size=\"16\" font-weight=\"bold\" fill=\"{AXIS}\">{}</text>",
            esc(title),
            esc(desc),
            LEFT,
            esc(title)
        );
        Frame { out, id }
    }

    fn plot_w() -> f64 {
        W - LEFT - RIGHT
    }
    fn plot_h() -> f64 {
        H - TOP - BOTTOM
    }

    fn empty(mut self, message: &str) -> String {
        let _ = write!(
            self.out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"14\" fill=\"{AXIS}\">{}</text></svg>",
            f(W / 2.0),
            f(H / 2.0),
            esc(message)
        );
        self.out
    }

    /// Y axis with ticks, grid lines and a rotated title; `label` formats a tick.
    fn y_axis(&mut self, ticks: &[f64], y: &dyn Fn(f64) -> f64, label: &dyn Fn(f64) -> String, title: &str) {
        for t in ticks {
            let yy = f(y(*t));
            let _ = write!(
                self.out,
                "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{yy}\" y2=\"{yy}\" stroke=\"{GRID}\" stroke-width=\"1\"/>\
                 <text x=\"{}\" y=\"{yy}\" dy=\"4\" text-anchor=\"end\" fill=\"{AXIS}\">{}</text>",
                f(LEFT + Frame::plot_w()),
                f(LEFT - 6.0),
                esc(&label(*t))
            );
        }
        let _ = write!(
            self.out,
            "<line x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{}\" stroke=\"{AXIS}\" stroke-width=\"1\"/>\
             <text transform=\"translate(18 {}) rotate(-90)\" text-anchor=\"middle\" fill=\"{AXIS}\">{}</text>",
            f(TOP + Frame::plot_h()),
            f(TOP + Frame::plot_h() / 2.0),
            esc(title)
        );
    }

    fn x_axis(&mut self, ticks: &[(f64, String)], title: &str) {
        let base = f(TOP + Frame::plot_h());
        let _ = write!(
            self.out,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{base}\" y2=\"{base}\" stroke=\"{AXIS}\" stroke-width=\"1\"/>",
            f(LEFT + Frame::plot_w())
        );
        for (x, label) in ticks {
            let _ = write!(
                self.out,
                "<line x1=\"{}\" x2=\"{}\" y1=\"{base}\" y2=\"{}\" stroke=\"{AXIS}\"/>\
                 <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{AXIS}\">{}</text>",
                f(*x),
                f(*x),
                f(TOP + Frame::plot_h() + 5.0),
                f(*x),
                f(TOP + Frame::plot_h() + 20.0),
                esc(label)
            );
        }
        let _ = write!(
            self.out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{AXIS}\">{}</text>",
            f(LEFT + Frame::plot_w() / 2.0),
            f(TOP + Frame::plot_h() + 44.0),
            esc(title)
        );
    }

    /// A dashed horizontal reference line with its label (on a white halo) at the right end, or
    /// at the left end with `left`.
    fn reference(&mut self, y: f64, colour: &str, label: &str, left: bool) {
        let yy = f(y);
        let (x, anchor) = if left { (LEFT + 4.0, "start") } else { (LEFT + Frame::plot_w() - 4.0, "end") };
        let _ = write!(
            self.out,
            "<line class=\"threshold\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{yy}\" y2=\"{yy}\" stroke=\"{colour}\" \
             stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\
             <text x=\"{}\" y=\"{yy}\" dy=\"-5\" text-anchor=\"{anchor}\" font-weight=\"bold\" fill=\"{colour}\" \
             stroke=\"#ffffff\" stroke-width=\"3\" paint-order=\"stroke\">{}</text>",
            f(LEFT + Frame::plot_w()),
            f(x),
            esc(label)
        );
    }

    /// A legend to the right of the plot: (swatch colour, text, circle marker?).
    fn legend(&mut self, title: &str, entries: &[(&str, String, bool)]) {
        let x = LEFT + Frame::plot_w() + 64.0;
        let mut y = TOP + 60.0;
        let _ = write!(
            self.out,
            "<g class=\"legend\"><text x=\"{}\" y=\"{}\" font-weight=\"bold\" fill=\"{AXIS}\">{}</text>",
            f(x),
            f(y),
            esc(title)
        );
        for (colour, text, circle) in entries {
            y += 20.0;
            if *circle {
                let _ =
                    write!(self.out, "<circle cx=\"{}\" cy=\"{}\" r=\"5\" fill=\"{colour}\"/>", f(x + 6.0), f(y - 4.0));
            } else {
                let _ = write!(
                    self.out,
                    "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{colour}\"/>",
                    f(x),
                    f(y - 10.0)
                );
            }
            let _ = write!(self.out, "<text x=\"{}\" y=\"{}\" fill=\"{AXIS}\">{}</text>", f(x + 18.0), f(y), esc(text));
        }
        self.out.push_str("</g>");
    }

    fn finish(mut self) -> String {
        self.out.push_str("</svg>");
        let _ = &self.id;
        self.out
    }
}

fn response_legend(responses: impl Iterator<Item = ResponseGroup>, circle: bool) -> Vec<(&'static str, String, bool)> {
    let mut groups: Vec<ResponseGroup> = responses.collect();
    groups.sort();
    groups.dedup();
    groups.into_iter().map(|g| (g.colour(), g.label().to_string(), circle)).collect()
}

/// The % axis range: at least -100 % .. +30 %, widened to the data, in percent.
fn pct_range(values: impl Iterator<Item = i64>) -> (f64, f64) {
    let (mut lo, mut hi) = (-100.0_f64, 30.0_f64);
    for v in values {
        #[allow(clippy::cast_precision_loss)]
        let p = v as f64 / 10.0;
        lo = lo.min((p / 10.0).floor() * 10.0);
        hi = hi.max((p / 10.0).ceil() * 10.0 + 10.0);
    }
    (lo, hi)
}

/// Waterfall plot: one bar per subject, best % change in the sum of target diameters, sorted from
/// the largest increase to the largest decrease, coloured by best overall response, with the
/// +20 % (PD) and -30 % (PR) thresholds as dashed lines.
pub fn waterfall(id: &str, title: &str, bars: &[WaterfallBar]) -> String {
    let desc = match (bars.first(), bars.last()) {
        (Some(top), Some(bottom)) => format!(
            "Waterfall plot of {} subjects: best change in the sum of target lesion diameters from baseline, \
             from {} ({}) to {} ({}). Dashed lines mark +20 % (progression threshold) and -30 % (partial \
             response threshold).",
            bars.len(),
            pct(top.best_change_tenths),
            top.label,
            pct(bottom.best_change_tenths),
            bottom.label
        ),
        _ => "Waterfall plot: no subject has a measured follow-up yet.".to_string(),
    };
    let mut fr = Frame::new(id, title, &desc);
    if bars.is_empty() {
        return fr.empty("No subject has a measured follow-up yet.");
    }
    let (lo, hi) = pct_range(bars.iter().map(|b| b.best_change_tenths));
    let y = move |p: f64| TOP + (hi - p) / (hi - lo) * Frame::plot_h();
    let yt = ticks(lo, hi, 8);
    fr.y_axis(&yt, &y, &|t| format!("{t:.0} %"), "Best change in sum of diameters from baseline (%)");
    #[allow(clippy::cast_precision_loss)]
    let slot = Frame::plot_w() / bars.len() as f64;
    let bw = (slot * 0.7).min(48.0);
    let zero = y(0.0);
    fr.out.push_str("<g class=\"bars\">");
    for (i, b) in bars.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let cx = LEFT + slot * (i as f64 + 0.5);
        #[allow(clippy::cast_precision_loss)]
        let v = y(b.best_change_tenths as f64 / 10.0);
        let (top, h) = if v < zero { (v, zero - v) } else { (zero, v - zero) };
        let g = ResponseGroup::of(&b.best_overall_response);
        let _ = write!(
            fr.out,
            "<rect class=\"bar\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" data-subject=\"{}\" \
             data-change=\"{}\" data-response=\"{}\"><title>{}: {} (best overall response {})</title></rect>",
            f(cx - bw / 2.0),
            f(top),
            f(bw),
            f(h.max(0.5)),
            g.colour(),
            esc(&b.label),
            esc(&pct(b.best_change_tenths)),
            esc(&b.best_overall_response),
            esc(&b.label),
            esc(&pct(b.best_change_tenths)),
            esc(&b.best_overall_response)
        );
        if bars.len() <= 40 {
            let ly = TOP + Frame::plot_h() + 10.0;
            let _ = write!(
                fr.out,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"11\" transform=\"rotate(-50 {} {})\" \
                 fill=\"{AXIS}\">{}</text>",
                f(cx),
                f(ly),
                f(cx),
                f(ly),
                esc(&format!("{} {}", b.label, b.best_overall_response))
            );
        }
    }
    fr.out.push_str("</g>");
    let _ = write!(
        fr.out,
        "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"{AXIS}\" stroke-width=\"1.5\"/>",
        f(LEFT + Frame::plot_w()),
        f(zero),
        f(zero)
    );
    fr.reference(y(20.0), "#c62828", "+20 % (PD)", false);
    fr.reference(y(-30.0), "#1f63b5", "-30 % (PR)", true);
    let _ = write!(
        fr.out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{AXIS}\">Subjects, sorted by best change</text>",
        f(LEFT + Frame::plot_w() / 2.0),
        f(H - 6.0)
    );
    let legend = response_legend(bars.iter().map(|b| ResponseGroup::of(&b.best_overall_response)), false);
    fr.legend("Best overall response", &legend);
    fr.finish()
}

/// Spider plot: % change in the sum of target diameters over time, one line per subject from
/// day 0 (baseline, 0 %), coloured by best overall response, labelled at its last point.
pub fn spider(id: &str, title: &str, lines: &[SpiderLine]) -> String {
    let max_day = lines.iter().flat_map(|l| l.points.iter().map(|p| p.days_from_baseline)).max().unwrap_or(0);
    let desc = if lines.is_empty() {
        "Spider plot: no subject has a measured follow-up yet.".to_string()
    } else {
        let parts: Vec<String> = lines
            .iter()
            .map(|l| {
                let pts: Vec<String> =
                    l.points.iter().map(|p| format!("day {} {}", p.days_from_baseline, pct(p.change_tenths))).collect();
                format!("{} ({}): {}", l.label, l.best_overall_response, pts.join(", "))
            })
            .collect();
        format!(
            "Spider plot of {} subjects, change in the sum of target lesion diameters from baseline over days \
             from baseline: {}. Dashed lines mark +20 % and -30 %.",
            lines.len(),
            parts.join("; ")
        )
    };
    let mut fr = Frame::new(id, title, &desc);
    if lines.is_empty() || max_day == 0 {
        return fr.empty("No subject has a measured follow-up yet.");
    }
    let (lo, hi) = pct_range(lines.iter().flat_map(|l| l.points.iter().map(|p| p.change_tenths)));
    let y = move |p: f64| TOP + (hi - p) / (hi - lo) * Frame::plot_h();
    let xt = ticks(0.0, f64::from(max_day), 8);
    let x_hi = xt.last().copied().unwrap_or(f64::from(max_day)).max(f64::from(max_day));
    let x = move |d: f64| LEFT + d / x_hi * Frame::plot_w();
    fr.y_axis(&ticks(lo, hi, 8), &y, &|t| format!("{t:.0} %"), "Change in sum of diameters from baseline (%)");
    let xticks: Vec<(f64, String)> = xt.iter().map(|d| (x(*d), format!("{d:.0}"))).collect();
    fr.x_axis(&xticks, "Days from baseline");
    fr.reference(y(20.0), "#c62828", "+20 % (PD)", false);
    fr.reference(y(-30.0), "#1f63b5", "-30 % (PR)", true);
    let zero = f(y(0.0));
    let _ = write!(
        fr.out,
        "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{zero}\" y2=\"{zero}\" stroke=\"{AXIS}\" stroke-width=\"1\"/>",
        f(LEFT + Frame::plot_w())
    );
    fr.out.push_str("<g class=\"lines\">");
    for l in lines {
        let colour = ResponseGroup::of(&l.best_overall_response).colour();
        let pts: Vec<String> = l
            .points
            .iter()
            .map(|p| {
                #[allow(clippy::cast_precision_loss)]
                let v = p.change_tenths as f64 / 10.0;
                format!("{},{}", f(x(f64::from(p.days_from_baseline))), f(y(v)))
            })
            .collect();
        let _ = write!(
            fr.out,
            "<g class=\"subject\" data-subject=\"{}\"><title>{} ({})</title><polyline points=\"{}\" fill=\"none\" \
             stroke=\"{colour}\" stroke-width=\"2\"/>",
            esc(&l.label),
            esc(&l.label),
            esc(&l.best_overall_response),
            pts.join(" ")
        );
        for p in &l.points {
            #[allow(clippy::cast_precision_loss)]
            let v = p.change_tenths as f64 / 10.0;
            let _ = write!(
                fr.out,
                "<circle cx=\"{}\" cy=\"{}\" r=\"3.5\" fill=\"{colour}\"><title>{}, day {}: {}</title></circle>",
                f(x(f64::from(p.days_from_baseline))),
                f(y(v)),
                esc(&l.label),
                p.days_from_baseline,
                esc(&pct(p.change_tenths))
            );
        }
        if let Some(last) = l.points.last() {
            #[allow(clippy::cast_precision_loss)]
            let v = last.change_tenths as f64 / 10.0;
            let _ = write!(
                fr.out,
                "<text x=\"{}\" y=\"{}\" dy=\"-6\" font-size=\"11\" fill=\"{colour}\">{}</text>",
                f(x(f64::from(last.days_from_baseline)) + 4.0),
                f(y(v)),
                esc(&l.label)
            );
        }
        fr.out.push_str("</g>");
    }
    fr.out.push_str("</g>");
    let legend = response_legend(lines.iter().map(|l| ResponseGroup::of(&l.best_overall_response)), false);
    fr.legend("Best overall response", &legend);
    fr.finish()
}

/// Date axis ticks between `first` and `last` (inclusive), about `target` of them.
fn date_ticks(first: Date, last: Date, target: usize) -> Vec<Date> {
    let span = first.days_until(last).max(1);
    let step = [1, 2, 7, 14, 30, 61, 91, 182, 365, 730]
        .into_iter()
        .find(|s| span / s <= i32::try_from(target).unwrap_or(8))
        .unwrap_or(1461);
    (0..=span / step).map(|i| first.add_days(i * step)).collect()
}

/// Enrolment over time: the cumulative number of subjects enrolled, as a step line.
pub fn enrolment(id: &str, title: &str, curve: &[EnrolmentPoint], today: Date) -> String {
    let total = curve.last().map_or(0, |p| p.enrolled);
    let desc = match (curve.first(), curve.last()) {
        (Some(a), Some(b)) => {
            format!("Cumulative enrolment: {total} subjects enrolled between {} and {}.", a.date, b.date)
        }
        _ => "Cumulative enrolment: no subject enrolled yet.".to_string(),
    };
    let mut fr = Frame::new(id, title, &desc);
    let (Some(first), Some(last)) = (curve.first(), curve.last()) else {
        return fr.empty("No subject enrolled yet.");
    };
    let start = first.date.add_days(-1);
    let end = if today > last.date { today } else { last.date.add_days(1) };
    let span = f64::from(start.days_until(end).max(1));
    let x = move |d: Date| LEFT + f64::from(start.days_until(d)) / span * Frame::plot_w();
    #[allow(clippy::cast_precision_loss)]
    let hi = ticks(0.0, (total as f64).max(1.0), 6).last().copied().unwrap_or(1.0).max(total as f64);
    let y = move |n: f64| TOP + (hi - n) / hi * Frame::plot_h();
    let yt: Vec<f64> = ticks(0.0, hi, 6).into_iter().filter(|t| t.fract() == 0.0).collect();
    fr.y_axis(&yt, &y, &|t| format!("{t:.0}"), "Subjects enrolled");
    let xticks: Vec<(f64, String)> = date_ticks(start, end, 7).into_iter().map(|d| (x(d), d.to_string())).collect();
    fr.x_axis(&xticks, "Date of enrolment (UTC)");
    let mut path = format!("M{},{}", f(x(start)), f(y(0.0)));
    let mut prev = 0_u64;
    for p in curve {
        #[allow(clippy::cast_precision_loss)]
        let _ = write!(path, " H{} V{}", f(x(p.date)), f(y(p.enrolled as f64)));
        prev = p.enrolled;
    }
    let _ = write!(path, " H{}", f(x(end)));
    let _ = prev;
    let _ =
        write!(fr.out, "<path class=\"enrolment\" d=\"{path}\" fill=\"none\" stroke=\"#1f63b5\" stroke-width=\"2\"/>");
    for p in curve {
        #[allow(clippy::cast_precision_loss)]
        let _ = write!(
            fr.out,
            "<circle cx=\"{}\" cy=\"{}\" r=\"3.5\" fill=\"#1f63b5\"><title>{}: {} enrolled</title></circle>",
            f(x(p.date)),
            f(y(p.enrolled as f64)),
            p.date,
            p.enrolled
        );
    }
    fr.legend("", &[("#1f63b5", format!("{total} enrolled"), true)]);
    fr.finish()
}

/// The colour and legend text of an imaging visit's state.
fn visit_mark(state: &str, read: bool) -> (&'static str, &'static str) {
    if read {
        return ("#1f63b5", "read (accepted)");
    }
    match state {
        "qc_passed" => ("#1a7f37", "QC passed"),
        "qc_failed" | "qc_rejected" | "received_incomplete" => ("#c62828", "QC failed or incomplete"),
        _ => ("#e07b00", "QC pending"),
    }
}

/// Imaging timeline: one row per subject, a diamond at enrolment and a circle per imaging visit at
/// its scan date, coloured by where the visit stands (read, QC passed, QC failed, pending).
pub fn imaging_timeline(id: &str, title: &str, subjects: &[TimelineSubject], today: Date) -> String {
    let visits: usize = subjects.iter().map(|s| s.events.len()).sum();
    let desc = if subjects.is_empty() {
        "Imaging timeline: no subject enrolled yet.".to_string()
    } else {
        let rows: Vec<String> = subjects
            .iter()
            .map(|s| {
                let ev: Vec<String> =
                    s.events.iter().map(|e| format!("{} {} {}", e.visit_id, e.date, e.state)).collect();
                format!(
                    "{} enrolled {}: {}",
                    s.label,
                    s.enrolled,
                    if ev.is_empty() { "no images".into() } else { ev.join(", ") }
                )
            })
            .collect();
        format!("Imaging timeline of {} subjects and {visits} imaging visits. {}", subjects.len(), rows.join("; "))
    };
    let mut fr = Frame::new(id, title, &desc);
    if subjects.is_empty() {
        return fr.empty("No subject enrolled yet.");
    }
    let dates: Vec<Date> =
        subjects.iter().flat_map(|s| std::iter::once(s.enrolled).chain(s.events.iter().map(|e| e.date))).collect();
    let first = dates.iter().min().copied().unwrap_or(today).add_days(-7);
    let last = dates.iter().max().copied().unwrap_or(today).max(today).add_days(7);
    let span = f64::from(first.days_until(last).max(1));
    let x = move |d: Date| LEFT + f64::from(first.days_until(d)) / span * Frame::plot_w();
    #[allow(clippy::cast_precision_loss)]
    let row_h = (Frame::plot_h() / subjects.len() as f64).min(40.0);
    let xticks: Vec<(f64, String)> = date_ticks(first, last, 7).into_iter().map(|d| (x(d), d.to_string())).collect();
    fr.x_axis(&xticks, "Date (UTC)");
    let _ = write!(
        fr.out,
        "<line x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{}\" stroke=\"{AXIS}\"/>",
        f(TOP + Frame::plot_h())
    );
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (i, s) in subjects.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let cy = TOP + row_h * (i as f64 + 0.5);
        let _ = write!(
            fr.out,
            "<g class=\"subject\" data-subject=\"{}\"><line x1=\"{LEFT}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"{GRID}\"/>\
             <text x=\"{}\" y=\"{}\" dy=\"4\" text-anchor=\"end\" fill=\"{AXIS}\">{}</text>\
             <path d=\"M{},{} l6,6 l-6,6 l-6,-6 z\" fill=\"#333333\"><title>{} enrolled {}</title></path>",
            esc(&s.label),
            f(LEFT + Frame::plot_w()),
            f(cy),
            f(cy),
            f(LEFT - 6.0),
            f(cy),
            esc(&s.label),
            f(x(s.enrolled)),
            f(cy - 6.0),
            esc(&s.label),
            s.enrolled
        );
        for (k, e) in s.events.iter().enumerate() {
            // Visits received on the same day sit side by side.
            let same: Vec<usize> =
                s.events.iter().enumerate().filter(|(_, o)| o.date == e.date).map(|(j, _)| j).collect();
            let rank = same.iter().position(|j| *j == k).unwrap_or(0);
            #[allow(clippy::cast_precision_loss)]
            let dx = (rank as f64 - (same.len() as f64 - 1.0) / 2.0) * 24.0;
            let (colour, text) = visit_mark(&e.state, e.read);
            if !seen.iter().any(|(_, t)| *t == text) {
                seen.push((colour, text));
            }
            let _ = write!(
                fr.out,
                "<circle class=\"visit\" cx=\"{}\" cy=\"{}\" r=\"6\" fill=\"{colour}\" stroke=\"#ffffff\" \
                 stroke-width=\"1\"><title>{} {} {}: {}</title></circle>\
                 <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"10\" fill=\"{AXIS}\">{}</text>",
                f(x(e.date) + dx),
                f(cy),
                esc(&s.label),
                esc(&e.visit_id),
                e.date,
                esc(text),
                f(x(e.date) + dx),
                f(cy - 9.0),
                esc(&e.visit_id)
            );
        }
        fr.out.push_str("</g>");
    }
    let _ = write!(
        fr.out,
        "<line class=\"today\" x1=\"{}\" x2=\"{}\" y1=\"{TOP}\" y2=\"{}\" stroke=\"#555555\" stroke-dasharray=\"3 3\"/>",
        f(x(today)),
        f(x(today)),
        f(TOP + Frame::plot_h())
    );
    let mut legend: Vec<(&str, String, bool)> = vec![("#333333", "enrolment".into(), false)];
    legend.extend(seen.into_iter().map(|(c, t)| (c, t.to_string(), true)));
    legend.push(("#555555", format!("today, {today}"), false));
    fr.legend("", &legend);
    fr.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::{SpiderPoint, TimelineSubject, enrolment_curve};

    fn bar(label: &str, change: i64, bor: &str) -> WaterfallBar {
        WaterfallBar { label: label.into(), best_change_tenths: change, best_overall_response: bor.into() }
    }

    /// The XML must be well formed enough for a browser: every opened element closed, and no
    /// unescaped markup from labels.
    fn balanced(svg: &str) {
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<svg").count(), svg.matches("</svg>").count());
        assert_eq!(svg.matches("<g").count(), svg.matches("</g>").count());
        assert!(!svg.contains("style="), "no inline style (CSP)");
        assert!(!svg.contains("<script"));
    }

    #[test]
    fn formats_percentages() {
        for (t, s) in [(-305, "-30.5 %"), (200, "+20.0 %"), (0, "0.0 %"), (-1000, "-100.0 %"), (5, "+0.5 %")] {
            assert_eq!(pct(t), s);
        }
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(ticks(-100.0, 40.0, 7), vec![-100.0, -80.0, -60.0, -40.0, -20.0, 0.0, 20.0, 40.0]);
        assert_eq!(ticks(0.0, 112.0, 8), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
    }

    #[test]
    fn waterfall_has_bars_thresholds_legend_and_accessible_names() {
        let svg = waterfall(
            "wf",
            "Best change <all>",
            &[bar("102-001", 250, "PD"), bar("101-001", -100, "SD"), bar("103-001", -420, "PR")],
        );
        balanced(&svg);
        assert!(svg.contains("role=\"img\""));
        assert!(svg.contains("<title id=\"wf-title\">Best change &lt;all&gt;</title>"));
        assert!(svg.contains("<desc id=\"wf-desc\">Waterfall plot of 3 subjects"));
        assert_eq!(svg.matches("class=\"bar\"").count(), 3);
        assert_eq!(svg.matches("class=\"threshold\"").count(), 2);
        assert!(svg.contains("stroke-dasharray"));
        assert!(svg.contains("+20 % (PD)") && svg.contains("-30 % (PR)"));
        // Bars keep their order and colours.
        let order: Vec<usize> = ["102-001", "101-001", "103-001"]
            .iter()
            .map(|s| svg.find(&format!("data-subject=\"{s}\"")).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]));
        assert!(svg.contains("fill=\"#c62828\" data-subject=\"102-001\""));
        assert!(svg.contains("fill=\"#1f63b5\" data-subject=\"103-001\""));
        for legend in ["PD: progressive disease", "SD: stable disease", "PR: partial response"] {
            assert!(svg.contains(legend), "{legend}");
        }
        assert!(!svg.contains("CR: complete"), "only responses present are in the legend");
    }

    #[test]
    fn bar_geometry_matches_the_axis() {
        // Axis -100..+30 % over the plot height: a -30 % bar reaches the -30 % threshold line.
        let svg = waterfall("w", "t", &[bar("A", -300, "PR")]);
        let y_of = |needle: &str| -> f64 {
            let i = svg.find(needle).unwrap();
            let rest = &svg[i..];
            let y1 = rest.find("y1=\"").unwrap() + 4;
            rest[y1..y1 + rest[y1..].find('"').unwrap()].parse().unwrap()
        };
        let threshold_pr = {
            let i = svg.rfind("class=\"threshold\"").unwrap();
            let rest = &svg[i..];
            let y1 = rest.find("y1=\"").unwrap() + 4;
            rest[y1..y1 + rest[y1..].find('"').unwrap()].parse::<f64>().unwrap()
        };
        let _ = y_of;
        let rect = &svg[svg.find("class=\"bar\"").unwrap()..];
        let get = |k: &str| -> f64 {
            let i = rect.find(&format!(" {k}=\"")).unwrap() + k.len() + 3;
            rect[i..i + rect[i..].find('"').unwrap()].parse().unwrap()
        };
        let bottom = get("y") + get("height");
        assert!((bottom - threshold_pr).abs() < 0.15, "{bottom} vs {threshold_pr}");
    }

    #[test]
    fn spider_lines_and_empty_plots() {
        let lines = vec![SpiderLine {
            label: "101-001".into(),
            best_overall_response: "PR".into(),
            points: vec![
                SpiderPoint { days_from_baseline: 0, change_tenths: 0 },
                SpiderPoint { days_from_baseline: 56, change_tenths: -350 },
            ],
        }];
        let svg = spider("sp", "Spider", &lines);
        balanced(&svg);
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(svg.contains("101-001 (PR): day 0 0.0 %, day 56 -35.0 %"));
        assert!(svg.contains("Days from baseline"));
        for empty in [spider("e", "E", &[]), waterfall("e", "E", &[])] {
            balanced(&empty);
            assert!(empty.contains("No subject has a measured follow-up yet."));
        }
    }

    #[test]
    fn enrolment_and_timeline() {
        let d = |s: &str| Date::parse_iso(s).unwrap();
        let curve = enrolment_curve(&[d("2026-10-01"), d("2026-10-01"), d("2026-11-02")]);
        let svg = enrolment("en", "Enrolment", &curve, d("2026-11-27"));
        balanced(&svg);
        assert!(svg.contains("3 subjects enrolled between 2026-10-01 and 2026-11-02"));
        let subjects = vec![TimelineSubject {
            label: "101-001".into(),
            enrolled: d("2026-10-01"),
            events: vec![
                super::super::ImagingEvent {
                    visit_id: "BL".into(),
                    date: d("2026-09-20"),
                    state: "qc_passed".into(),
                    read: true,
                },
                super::super::ImagingEvent {
                    visit_id: "W8".into(),
                    date: d("2026-11-26"),
                    state: "qc_failed".into(),
                    read: false,
                },
            ],
        }];
        let svg = imaging_timeline("tl", "Imaging", &subjects, d("2026-11-27"));
        balanced(&svg);
        assert_eq!(svg.matches("class=\"visit\"").count(), 2);
        assert!(svg.contains("read (accepted)") && svg.contains("QC failed or incomplete"));
        assert!(svg.contains("101-001 enrolled 2026-10-01: BL 2026-09-20 qc_passed, W8 2026-11-26 qc_failed"));
    }
}
