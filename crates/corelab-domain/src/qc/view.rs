//! One received series as the rules see it: distinct instances and series-level values.

use std::collections::HashSet;

use super::facts::{InstanceFacts, SeriesFacts};
use crate::charter::SeriesSpec;

/// Minimum, median and maximum of a numeric fact over a series' images, and how many lack it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stats {
    pub min: f64,
    pub max: f64,
    pub median: f64,
    pub missing: usize,
}

pub(crate) struct SeriesView<'a> {
    pub facts: &'a SeriesFacts,
    /// Distinct instances (by SOP Instance UID; the same instance received twice counts once).
    pub images: Vec<&'a InstanceFacts>,
    pub number: Option<i64>,
    pub modality: Option<&'a str>,
    pub body_part: Option<&'a str>,
    pub description: Option<&'a str>,
    pub protocol: Option<&'a str>,
    pub trial_series_id: Option<&'a str>,
    pub trial_series_description: Option<&'a str>,
    pub image_type: &'a [String],
}

fn present(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl<'a> SeriesView<'a> {
    pub fn new(facts: &'a SeriesFacts) -> SeriesView<'a> {
        let mut seen = HashSet::new();
        let images: Vec<&InstanceFacts> = facts
            .instances
            .iter()
            .filter(|i| i.sop_instance_uid.is_empty() || seen.insert(i.sop_instance_uid.as_str()))
            .collect();
        let first = |f: fn(&'a InstanceFacts) -> Option<&'a str>| images.iter().find_map(|i| f(i));
        SeriesView {
            facts,
            number: images.iter().find_map(|i| i.series_number),
            modality: first(|i| present(&i.modality)),
            body_part: first(|i| present(&i.body_part_examined)),
            description: first(|i| present(&i.series_description)),
            protocol: first(|i| present(&i.protocol_name)),
            trial_series_id: first(|i| present(&i.clinical_trial_series_id)),
            trial_series_description: first(|i| present(&i.clinical_trial_series_description)),
            image_type: images.iter().map(|i| i.image_type.as_slice()).find(|t| !t.is_empty()).unwrap_or(&[]),
            images,
        }
    }

    pub fn uid(&self) -> &'a str {
        &self.facts.series_instance_uid
    }

    /// First non-empty value of a text fact.
    pub fn text(&self, f: impl Fn(&'a InstanceFacts) -> &'a Option<String>) -> Option<&'a str> {
        self.images.iter().find_map(|i| present(f(i)))
    }

    /// Whether any image has the attribute at all (even empty).
    pub fn has(&self, f: impl Fn(&'a InstanceFacts) -> &'a Option<String>) -> bool {
        self.images.iter().any(|i| f(i).is_some())
    }

    /// Statistics of a numeric fact; None when no image has a finite value.
    pub fn stats(&self, f: impl Fn(&'a InstanceFacts) -> Option<f64>) -> Option<Stats> {
        let mut values: Vec<f64> = self.images.iter().filter_map(|i| f(i)).filter(|v| v.is_finite()).collect();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
        Some(Stats { min: values[0], max: values[n - 1], median, missing: self.images.len() - n })
    }

    /// The descriptors a person typed, for hints: series description, protocol name, clinical trial
    /// series description.
    pub fn descriptors(&self) -> impl Iterator<Item = &'a str> {
        [self.description, self.protocol, self.trial_series_description].into_iter().flatten()
    }

    /// How the site knows this series: "Series 3 'CAP PV 5mm'", or the charter's description when
    /// de-identification removed the series description.
    pub fn label(&self, spec: Option<&SeriesSpec>) -> String {
        let number = self.number.map(|n| format!(" {n}")).unwrap_or_default();
        match (self.description, spec) {
            (Some(d), _) => format!("Series{number} '{d}'"),
            (None, Some(s)) => format!("Series{number} (the charter's '{}')", s.description),
            (None, None) if number.is_empty() => "A series without number or description".to_string(),
            (None, None) => format!("Series{number}"),
        }
    }
}

/// Upper-case words of a descriptor: letters, digits, '+', '*' and '/' kept together.
pub(crate) fn words(text: &str) -> Vec<String> {
    text.to_ascii_uppercase()
        .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '*' | '/')))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}
