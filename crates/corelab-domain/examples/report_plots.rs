//! Writes the report plots of a synthetic 16-subject trial as SVG files, to look at them:
//! `cargo run -p corelab-domain --example report_plots -- DIR`.

use corelab_domain::charter::Date;
use corelab_domain::reports::{
    ImagingEvent, SubjectSums, TimelineSubject, TimepointSum, enrolment_curve, plot, response_summary,
};

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    std::fs::create_dir_all(&dir)?;
    // (baseline sum in tenths, sums at days 56, 112, 168, best overall response)
    let table: &[(i64, &[Option<i64>], &str)] = &[
        (510, &[Some(357), Some(300), Some(280)], "PR"),
        (620, &[Some(700), Some(790)], "PD"),
        (400, &[Some(380), Some(390), Some(410)], "SD"),
        (300, &[Some(150), Some(0), Some(0)], "CR"),
        (880, &[Some(1100)], "PD"),
        (450, &[Some(430), None, Some(400)], "SD"),
        (700, &[Some(520), Some(470)], "PR"),
        (350, &[Some(360), Some(380), Some(420)], "SD"),
        (610, &[Some(640), Some(500), Some(420)], "PR"),
        (520, &[None], "NE"),
        (290, &[Some(300), Some(360)], "PD"),
        (800, &[Some(760), Some(740), Some(700)], "SD"),
        (430, &[Some(300), Some(280)], "PR"),
        (390, &[Some(420), Some(430)], "iUPD"),
        (560, &[Some(560)], "SD"),
        (640, &[Some(600), Some(450), Some(380)], "PR"),
    ];
    let subjects: Vec<SubjectSums> = table
        .iter()
        .enumerate()
        .map(|(i, (base, sums, bor))| SubjectSums {
            label: format!("{}-{:03}", 101 + i % 3, i + 1),
            baseline_sum_tenths: Some(*base),
            timepoints: sums
                .iter()
                .enumerate()
                .map(|(k, s)| TimepointSum {
                    days_from_baseline: 56 * (k as u32 + 1),
                    sum_tenths: *s,
                    overall: (*bor).to_string(),
                })
                .collect(),
            best_overall_response: (*bor).to_string(),
        })
        .collect();
    let r = response_summary(&subjects);
    std::fs::write(format!("{dir}/waterfall.svg"), plot::waterfall("w", "Waterfall (synthetic)", &r.waterfall))?;
    std::fs::write(format!("{dir}/spider.svg"), plot::spider("s", "Spider (synthetic)", &r.spider))?;
    let start = Date::parse_iso("2026-03-02").unwrap_or(Date::EPOCH);
    let states = ["qc_passed", "qc_passed", "qc_failed", "awaiting_qc1"];
    let rows: Vec<TimelineSubject> = (0..12)
        .map(|i| {
            let enrolled = start.add_days(i * 17);
            TimelineSubject {
                label: format!("{}-{:03}", 101 + i % 3, i + 1),
                enrolled,
                events: (0..(4 - i / 4))
                    .map(|k| ImagingEvent {
                        visit_id: if k == 0 { "BL".into() } else { format!("W{}", 8 * k) },
                        date: enrolled.add_days(56 * k - 3 + (i % 3)),
                        state: states[usize::try_from((i + k) % 4).unwrap_or(0)].into(),
                        read: k + i < 4,
                    })
                    .collect(),
            }
        })
        .collect();
    let today = start.add_days(240);
    let curve = enrolment_curve(&rows.iter().map(|r| r.enrolled).collect::<Vec<_>>());
    std::fs::write(format!("{dir}/enrolment.svg"), plot::enrolment("e", "Enrolment (synthetic)", &curve, today))?;
    std::fs::write(format!("{dir}/timeline.svg"), plot::imaging_timeline("t", "Imaging (synthetic)", &rows, today))?;
    Ok(())
}
