//! Semantic validation of a read charter: every rule that looks at values and at how parts of
//! the charter fit together. Findings carry key paths; `super` locates them in the source.

use std::collections::HashMap;

use super::model::*;
use super::pattern::{glob_error, glob_matches};
use super::problem::{Finding, ProblemCode as P};
use super::schedule::{MAX_SCHEDULED_VISITS, ScheduledVisit, definition_days, expand_definition, fill_template};
use super::text::{ae_key, ae_title_error, closest, country_error, cs_error, id_error, lo_error};
use crate::deid_profile::DateHandling;

/// Longest charter ID (site, visit, series, imaging requirement, arm).
pub const MAX_ID_LEN: usize = 16;

pub(crate) fn validate(c: &Charter) -> Vec<Finding> {
    let mut v = Validator::default();
    v.trial(c);
    v.dimse(c);
    v.sites(c);
    v.subjects(c);
    v.arms(c);
    v.visits(c);
    v.imaging(c);
    v.deidentification(c);
    v.reads(c);
    v.out
}

#[derive(Default)]
struct Validator {
    out: Vec<Finding>,
}

impl Validator {
    fn push(&mut self, f: Finding) {
        self.out.push(f);
    }

    fn id(&mut self, path: String, id: &str, what: &str) {
        if let Some(e) = id_error(id, MAX_ID_LEN) {
            self.push(
                Finding::error(P::InvalidValue, path, format!("{what} ID \"{id}\" {e}"))
                    .hint(format!("use 1-{MAX_ID_LEN} letters, digits, '-', '_' or '.'")),
            );
        }
    }

    /// Report later occurrences of an ID already seen.
    fn unique<'a>(&mut self, what: &str, items: impl IntoIterator<Item = (String, &'a str)>) {
        let mut seen: HashMap<&str, String> = HashMap::new();
        for (path, id) in items {
            if id.is_empty() {
                continue;
            }
            if let Some(first) = seen.get(id) {
                self.push(
                    Finding::error(P::DuplicateId, path, format!("{what} ID \"{id}\" is already used at {first}"))
                        .hint(format!("give each {what} its own ID")),
                );
            } else {
                seen.insert(id, path);
            }
        }
    }

    fn lo(&mut self, path: String, value: &str, element: &str) {
        if let Some(e) = lo_error(value) {
            self.push(
                Finding::error(P::InvalidValue, path, format!("value {e}"))
                    .hint(format!("it is written to DICOM {element}: at most 64 characters, no backslash")),
            );
        }
    }

    fn trial(&mut self, c: &Charter) {
        self.lo("trial.sponsor".into(), &c.trial.sponsor, "Clinical Trial Sponsor Name (0012,0010)");
        self.lo("trial.protocol_id".into(), &c.trial.protocol_id, "Clinical Trial Protocol ID (0012,0020)");
        self.lo("trial.protocol_name".into(), &c.trial.protocol_name, "Clinical Trial Protocol Name (0012,0021)");
    }

    fn ae_title(&mut self, path: String, ae: &str) -> bool {
        if let Some(e) = ae_title_error(ae) {
            self.push(
                Finding::error(P::InvalidValue, path, format!("\"{ae}\": {e}"))
                    .hint("an AE title has 1-16 printable ASCII characters, no backslash, not only spaces"),
            );
            return false;
        }
        if ae.trim() != ae {
            self.push(
                Finding::warning(
                    P::InvalidValue,
                    path,
                    format!("AE title \"{ae}\" has leading or trailing spaces, which DICOM ignores"),
                )
                .hint(format!("write \"{}\"", ae.trim())),
            );
        }
        true
    }

    fn dimse(&mut self, c: &Charter) {
        let titles = &c.dimse.called_ae_titles;
        if titles.is_empty() {
            self.push(
                Finding::error(P::InvalidValue, "dimse.called_ae_titles", "no called AE title")
                    .hint("list the AE title(s) sites call to send this trial's images, e.g. [\"ACME101\"]"),
            );
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, ae) in titles.iter().enumerate() {
            let path = format!("dimse.called_ae_titles[{i}]");
            if !self.ae_title(path.clone(), ae) {
                continue;
            }
            if let Some(first) = seen.get(&ae_key(ae)) {
                self.push(
                    Finding::error(
                        P::DuplicateAeTitle,
                        path,
                        format!("called AE title \"{ae}\" is listed twice (also at dimse.called_ae_titles[{first}])"),
                    )
                    .hint("remove the duplicate"),
                );
            } else {
                seen.insert(ae_key(ae), i);
            }
        }
    }

    fn sites(&mut self, c: &Charter) {
        if c.sites.is_empty() {
            self.push(
                Finding::error(P::InvalidValue, "sites", "the charter lists no site")
                    .hint("add a [[sites]] entry per site"),
            );
        }
        let mut ae_owner: HashMap<String, (String, String)> = HashMap::new();
        for (i, s) in c.sites.iter().enumerate() {
            self.id(format!("sites[{i}].id"), &s.id, "site");
            self.lo(format!("sites[{i}].name"), &s.name, "Clinical Trial Site Name (0012,0031)");
            if !s.country.is_empty()
                && let Some((message, hint)) = country_error(&s.country)
            {
                self.push(Finding::error(P::InvalidValue, format!("sites[{i}].country"), message).hint(hint));
            }
            for (k, ae) in s.ae_titles.iter().enumerate() {
                let path = format!("sites[{i}].ae_titles[{k}]");
                if !self.ae_title(path.clone(), ae) {
                    continue;
                }
                match ae_owner.get(&ae_key(ae)) {
                    Some((site, first)) => {
                        let whose = if *site == s.id { "this site".to_string() } else { format!("site {site}") };
                        self.push(
                            Finding::error(
                                P::DuplicateAeTitle,
                                path,
                                format!("AE title \"{ae}\" is already used by {whose} ({first})"),
                            )
                            .hint("a calling AE title must identify one site: give this device its own AE title (AE titles are compared without case and surrounding spaces)"),
                        );
                    }
                    None => {
                        ae_owner.insert(ae_key(ae), (s.id.clone(), path));
                    }
                }
            }
        }
        self.unique("site", c.sites.iter().enumerate().map(|(i, s)| (format!("sites[{i}].id"), s.id.as_str())));
    }

    fn subjects(&mut self, c: &Charter) {
        let pattern = &c.subjects.id_pattern;
        // Report once, for the site with the longest IDs.
        if let Some(s) = c.sites.iter().max_by_key(|s| pattern.id_len(&s.id)) {
            let len = pattern.id_len(&s.id);
            if len > 64 {
                self.push(
                    Finding::error(
                        P::BadPattern,
                        "subjects.id_pattern",
                        format!("subject IDs of site {} would have {len} characters; Clinical Trial Subject ID (0012,0040) holds at most 64", s.id),
                    )
                    .hint("shorten the pattern's literal parts or digit placeholders"),
                );
            }
        }
        if !pattern.uses_site() && c.sites.len() > 1 {
            self.push(
                Finding::warning(
                    P::BadPattern,
                    "subjects.id_pattern",
                    format!("pattern \"{pattern}\" has no {{site}}: a subject ID does not tell its site, and two sites can issue the same ID"),
                )
                .hint("add {site}, e.g. \"{site}-{nnn}\""),
            );
        }
    }

    fn arms(&mut self, c: &Charter) {
        for (i, a) in c.arms.iter().enumerate() {
            self.id(format!("arms[{i}].id"), &a.id, "arm");
        }
        self.unique("arm", c.arms.iter().enumerate().map(|(i, a)| (format!("arms[{i}].id"), a.id.as_str())));
    }

    fn visits(&mut self, c: &Charter) {
        if c.visits.is_empty() {
            self.push(
                Finding::error(P::InvalidValue, "visits", "the schedule has no visit")
                    .hint("add a [[visits]] entry with baseline = true, then the follow-up visits"),
            );
            return;
        }
        let imaging_ids: Vec<&str> = c.imaging.iter().map(|r| r.id.as_str()).collect();
        let mut all: Vec<ScheduledVisit> = Vec::new();
        for (i, def) in c.visits.iter().enumerate() {
            self.visit_definition(c, i, def, &imaging_ids);
            all.extend(expand_definition(i, def));
        }

        if all.len() > MAX_SCHEDULED_VISITS {
            self.push(
                Finding::error(
                    P::InvalidValue,
                    "visits",
                    format!("the schedule generates more than {MAX_SCHEDULED_VISITS} visits"),
                )
                .hint("check every_weeks and until_week"),
            );
            return;
        }

        let baselines: Vec<usize> =
            c.visits.iter().enumerate().filter(|(_, d)| d.timing == VisitTiming::Baseline).map(|(i, _)| i).collect();
        match baselines.as_slice() {
            [] => self.push(
                Finding::error(P::MissingKey, "visits", "the schedule has no baseline visit")
                    .hint("mark the baseline visit with baseline = true")
                    // Not trusted when a visit could not be read: it may be the baseline.
                    .refers_to("visits"),
            ),
            [_] => {}
            [first, rest @ ..] => {
                for j in rest {
                    self.push(
                        Finding::error(
                            P::Inconsistent,
                            format!("visits[{j}].baseline"),
                            format!("a second baseline visit (the first is visits[{first}])"),
                        )
                        .hint("keep baseline = true on one visit only"),
                    );
                }
            }
        }

        // Generated IDs must be unique across the whole schedule.
        // Repeats of one entry are reported by the entry's own ID check; report each entry once.
        let mut seen: HashMap<&str, &ScheduledVisit> = HashMap::new();
        let mut reported: Vec<usize> = Vec::new();
        for v in &all {
            if v.id.is_empty() {
                continue;
            }
            match seen.get(v.id.as_str()) {
                Some(first) if first.definition == v.definition || reported.contains(&v.definition) => {}
                Some(first) => {
                    reported.push(v.definition);
                    self.push(
                        Finding::error(
                            P::DuplicateId,
                            format!("visits[{}].id", v.definition),
                            format!(
                                "visit ID \"{}\" (day {}) is already used by visits[{}] (day {})",
                                v.id, v.day, first.definition, first.day
                            ),
                        )
                        .hint("give each visit its own ID; for repeats use {week} or {day} in the ID"),
                    );
                }
                None => {
                    seen.insert(&v.id, v);
                }
            }
        }

        // Overlapping windows make a scan's visit ambiguous: warn once per pair of definitions.
        let mut ordered: Vec<&ScheduledVisit> =
            all.iter().filter(|v| v.window.minus_days + v.window.plus_days >= 0).collect();
        ordered.sort_by_key(|v| (v.day, v.definition));
        let mut warned: Vec<(usize, usize)> = Vec::new();
        for pair in ordered.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let same_visit = a.definition == b.definition && a.day == b.day; // reported as a duplicate day
            if !same_visit && b.window_opens() <= a.window_closes() && !warned.contains(&(a.definition, b.definition)) {
                warned.push((a.definition, b.definition));
                self.push(
                    Finding::warning(
                        P::Inconsistent,
                        format!("visits[{}].window", b.definition),
                        format!(
                            "windows of {} (days {}..{}) and {} (days {}..{}) overlap: a scan in both windows cannot be matched to one visit",
                            a.id,
                            a.window_opens(),
                            a.window_closes(),
                            b.id,
                            b.window_opens(),
                            b.window_closes()
                        ),
                    )
                    .hint("narrow the windows or space the visits further apart"),
                );
            }
        }
    }

    fn visit_definition(&mut self, c: &Charter, i: usize, def: &VisitDefinition, imaging_ids: &[&str]) {
        let base = format!("visits[{i}]");
        let days = definition_days(&def.timing);
        match &def.timing {
            VisitTiming::Baseline => {}
            VisitTiming::Day(d) => {
                if *d <= 0 {
                    self.push(
                        Finding::error(
                            P::InvalidValue,
                            format!("{base}.day"),
                            format!("follow-up visit on day {d} is not after baseline (day 0)"),
                        )
                        .hint("follow-up days count from the anchor and start at 1; mark the baseline visit with baseline = true"),
                    );
                }
            }
            VisitTiming::Days(list) => {
                if list.is_empty() {
                    self.push(
                        Finding::error(P::InvalidValue, format!("{base}.days"), "`days` is empty")
                            .hint("list the visit days, e.g. days = [42, 84]"),
                    );
                }
                for (k, d) in list.iter().enumerate() {
                    if *d <= 0 {
                        self.push(
                            Finding::error(
                                P::InvalidValue,
                                format!("{base}.days[{k}]"),
                                format!("follow-up visit on day {d} is not after baseline (day 0)"),
                            )
                            .hint("follow-up days count from the anchor and start at 1"),
                        );
                    } else if list[..k].contains(d) {
                        self.push(
                            Finding::error(
                                P::DuplicateId,
                                format!("{base}.days[{k}]"),
                                format!("day {d} is listed twice"),
                            )
                            .hint("remove the duplicate day"),
                        );
                    }
                }
            }
            VisitTiming::EveryWeeks { from_week, until_week, .. } => {
                if *from_week == 0 {
                    self.push(
                        Finding::error(
                            P::InvalidValue,
                            format!("{base}.from_week"),
                            "a repeat cannot start at week 0, the baseline",
                        )
                        .hint("start at week 1 or later (from_week defaults to every_weeks)"),
                    );
                }
                if until_week < from_week {
                    self.push(
                        Finding::error(
                            P::WindowEndsBeforeStart,
                            format!("{base}.until_week"),
                            format!("repeat ends at week {until_week}, before it starts at week {from_week}"),
                        )
                        .hint(format!("set until_week to week {from_week} or later")),
                    );
                }
                if days.len() > MAX_SCHEDULED_VISITS {
                    self.push(
                        Finding::error(
                            P::InvalidValue,
                            format!("{base}.every_weeks"),
                            format!("this repeat generates more than {MAX_SCHEDULED_VISITS} visits"),
                        )
                        .hint("check every_weeks and until_week"),
                    );
                }
            }
        }

        // IDs and labels: placeholders.
        let generates_many = matches!(def.timing, VisitTiming::Days(_) | VisitTiming::EveryWeeks { .. });
        for (key, text) in [("id", &def.id), ("label", &def.label)] {
            let path = format!("{base}.{key}");
            for name in placeholders(text) {
                if name != "week" && name != "day" {
                    self.push(
                        Finding::error(
                            P::BadPattern,
                            path.clone(),
                            format!("unknown placeholder {{{name}}} in `{key}`"),
                        )
                        .hint("visit IDs and labels may use {week} and {day}"),
                    );
                } else if name == "week"
                    && let Some(d) = days.iter().find(|d| *d % 7 != 0)
                {
                    self.push(
                        Finding::error(
                            P::BadPattern,
                            path.clone(),
                            format!("{{week}} is used but day {d} is not a whole week"),
                        )
                        .hint("use {day}, or list days that are multiples of 7"),
                    );
                }
            }
        }
        if generates_many && !def.id.contains("{week}") && !def.id.contains("{day}") {
            self.push(
                Finding::error(
                    P::BadPattern,
                    format!("{base}.id"),
                    format!("visit ID \"{}\" would be the same for every visit this entry generates", def.id),
                )
                .hint("put {week} or {day} in the ID, e.g. id = \"W{week}\""),
            );
        } else if let Some(day) = days.first() {
            let id = fill_template(&def.id, *day);
            if !def.id.is_empty() && !id.contains('{') {
                self.id(format!("{base}.id"), &id, "visit");
            }
        }

        // Window.
        let w = def.window;
        if w.minus_days + w.plus_days < 0 {
            let day = days.first().copied().unwrap_or(0);
            self.push(
                Finding::error(
                    P::WindowEndsBeforeStart,
                    format!("{base}.window.plus_days"),
                    format!(
                        "window ends before it starts: for day {day} it opens on day {} and closes on day {}",
                        w.opens(day),
                        w.closes(day)
                    ),
                )
                .hint(format!(
                    "the window is [day - minus_days, day + plus_days]; plus_days must be at least {}",
                    -w.minus_days
                )),
            );
        }

        // Imaging references.
        if def.imaging.is_empty() {
            self.push(
                Finding::error(P::InvalidValue, format!("{base}.imaging"), "visit expects no imaging")
                    .hint("list the [[imaging]] requirement IDs expected at this visit"),
            );
        }
        for (k, id) in def.imaging.iter().enumerate() {
            let path = format!("{base}.imaging[{k}]");
            if !imaging_ids.contains(&id.as_str()) {
                self.push(
                    Finding::error(
                        P::UnknownReference,
                        path,
                        format!("visit refers to unknown imaging requirement \"{id}\""),
                    )
                    .hint(did_you_mean(id, imaging_ids.iter().copied(), "imaging requirements"))
                    .refers_to("imaging"),
                );
            } else if def.imaging[..k].contains(id) {
                self.push(
                    Finding::error(P::DuplicateId, path, format!("imaging requirement \"{id}\" is listed twice"))
                        .hint("remove the duplicate"),
                );
            }
        }
        if def.imaging_rule == ImagingRule::OneOf && def.imaging.len() < 2 {
            self.push(
                Finding::warning(
                    P::Inconsistent,
                    format!("{base}.imaging_rule"),
                    "imaging_rule = \"one_of\" with fewer than two imaging requirements has no effect",
                )
                .hint("list the alternatives in `imaging`, or remove imaging_rule"),
            );
        }

        // Series subset.
        let all_series: Vec<&str> = c.imaging.iter().flat_map(|r| r.series.iter().map(|s| s.id.as_str())).collect();
        for (k, sid) in def.series.iter().enumerate() {
            let path = format!("{base}.series[{k}]");
            match c.series(sid) {
                None => self.push(
                    Finding::error(P::UnknownReference, path, format!("visit refers to unknown series \"{sid}\""))
                        .hint(did_you_mean(sid, all_series.iter().copied(), "series"))
                        .refers_to("imaging"),
                ),
                Some((req, _)) if !def.imaging.contains(&req.id) => self.push(
                    Finding::error(
                        P::Inconsistent,
                        path,
                        format!(
                            "series \"{sid}\" belongs to imaging requirement \"{}\", which this visit does not list",
                            req.id
                        ),
                    )
                    .hint(format!("add \"{}\" to this visit's imaging, or remove the series", req.id)),
                ),
                Some(_) => {}
            }
        }
        let series_known = def.series.iter().all(|s| c.series(s).is_some());
        if !def.series.is_empty() && series_known {
            for (k, rid) in def.imaging.iter().enumerate() {
                if let Some(req) = c.imaging_requirement(rid)
                    && !req.series.iter().any(|s| def.series.contains(&s.id))
                {
                    self.push(
                        Finding::error(
                            P::Inconsistent,
                            format!("{base}.imaging[{k}]"),
                            format!(
                                "none of the series of imaging requirement \"{rid}\" is listed in this visit's `series`"
                            ),
                        )
                        .hint("add its series to `series`, or remove `series` to expect all series"),
                    );
                }
            }
        }
    }

    fn imaging(&mut self, c: &Charter) {
        if c.imaging.is_empty() {
            self.push(
                Finding::error(P::InvalidValue, "imaging", "the charter defines no imaging requirement")
                    .hint("add an [[imaging]] entry with its [[imaging.series]]"),
            );
        }
        for (i, req) in c.imaging.iter().enumerate() {
            let base = format!("imaging[{i}]");
            self.id(format!("{base}.id"), &req.id, "imaging requirement");
            for (k, part) in req.body_part_examined.iter().enumerate() {
                if let Some(e) = cs_error(part) {
                    self.push(
                        Finding::error(
                            P::InvalidValue,
                            format!("{base}.body_part_examined[{k}]"),
                            format!("\"{part}\" {e}"),
                        )
                        .hint("use Body Part Examined (0018,0015) values such as \"CHEST\", \"ABDOMEN\", \"HEAD\""),
                    );
                }
            }
            if req.series.is_empty() {
                self.push(
                    Finding::error(P::InvalidValue, format!("{base}.series"), "imaging requirement lists no series")
                        .hint("add an [[imaging.series]] entry per expected series"),
                );
            }
            for (j, s) in req.series.iter().enumerate() {
                self.series(req, &format!("{base}.series[{j}]"), s, &c.deidentification);
                for (j0, earlier) in req.series[..j].iter().enumerate() {
                    if !s.identify.is_empty() && s.identify == earlier.identify {
                        self.push(
                            Finding::warning(
                                P::Inconsistent,
                                format!("{base}.series[{j}].identify"),
                                format!(
                                    "series \"{}\" is identified exactly like \"{}\" ({base}.series[{j0}])",
                                    s.id, earlier.id
                                ),
                            )
                            .hint("add a criterion that tells them apart (description pattern, contrast, image type)"),
                        );
                    }
                }
            }
            let used = c.visits.iter().any(|v| v.imaging.contains(&req.id));
            if !used && !req.id.is_empty() {
                self.push(
                    Finding::warning(
                        P::Inconsistent,
                        format!("{base}.id"),
                        format!("imaging requirement \"{}\" is not expected at any visit", req.id),
                    )
                    .hint("add it to a visit's `imaging`, or remove it"),
                );
            }
        }
        self.unique(
            "imaging requirement",
            c.imaging.iter().enumerate().map(|(i, r)| (format!("imaging[{i}].id"), r.id.as_str())),
        );
        self.unique(
            "series",
            c.imaging.iter().enumerate().flat_map(|(i, r)| {
                r.series.iter().enumerate().map(move |(j, s)| (format!("imaging[{i}].series[{j}].id"), s.id.as_str()))
            }),
        );
    }

    fn series(
        &mut self,
        req: &ImagingRequirement,
        base: &str,
        s: &SeriesSpec,
        deid: &crate::deid_profile::DeidProfile,
    ) {
        self.id(format!("{base}.id"), &s.id, "series");
        let idf = &s.identify;
        if idf.is_empty() {
            self.push(
                Finding::error(
                    P::InvalidValue,
                    format!("{base}.identify"),
                    format!("series \"{}\" has no way to be recognised", s.id),
                )
                .hint("give series_description or protocol_name patterns, image_type values or contrast"),
            );
        }
        for (key, patterns) in [("series_description", &idf.series_description), ("protocol_name", &idf.protocol_name)]
        {
            for (k, p) in patterns.iter().enumerate() {
                let path = format!("{base}.identify.{key}[{k}]");
                if let Some(e) = glob_error(p) {
                    self.push(
                        Finding::error(P::BadPattern, path, format!("\"{p}\": {e}"))
                            .hint("use case-insensitive globs with * and ?, e.g. \"*T1*MPRAGE*\""),
                    );
                    continue;
                }
                if !deid.clean_descriptors {
                    // One warning per list is enough.
                    if k == 0 {
                        self.push(
                            Finding::warning(
                                P::Inconsistent,
                                format!("{base}.identify.{key}"),
                                format!("the basic de-identification profile removes {}, so QC on de-identified headers cannot match these patterns", descriptor_tag(key)),
                            )
                            .hint("set clean_descriptors = true in [deidentification] and cover these patterns in descriptor_allow_list"),
                        );
                    }
                } else if !deid.descriptor_allow_list.iter().any(|a| glob_matches(a, p)) {
                    self.push(
                        Finding::warning(
                            P::Inconsistent,
                            path,
                            format!("no descriptor_allow_list entry keeps descriptions matching \"{p}\", so de-identification removes them before QC"),
                        )
                        .hint(format!("add \"{p}\" (or a broader pattern) to deidentification.descriptor_allow_list")),
                    );
                }
            }
        }
        for (k, v) in idf.image_type.iter().enumerate() {
            if let Some(e) = cs_error(v) {
                self.push(
                    Finding::error(P::InvalidValue, format!("{base}.identify.image_type[{k}]"), format!("\"{v}\" {e}"))
                        .hint("use Image Type (0008,0008) values such as \"ORIGINAL\", \"PRIMARY\", \"AXIAL\""),
                );
            }
        }

        let cons = &s.constraints;
        let cbase = format!("{base}.constraints");
        let m = req.modality;
        let ranges: [(&str, &Option<Range>, bool); 6] = [
            ("slice_thickness_mm", &cons.slice_thickness_mm, false),
            ("slice_spacing_mm", &cons.slice_spacing_mm, false),
            ("slice_gap_mm", &cons.slice_gap_mm, true),
            ("pixel_spacing_mm", &cons.pixel_spacing_mm, false),
            ("kvp", &cons.kvp, false),
            ("field_strength_t", &cons.field_strength_t, false),
        ];
        for (key, range, may_be_negative) in ranges {
            let Some(range) = range else { continue };
            let path = format!("{cbase}.{key}");
            self.applies(&path, key, m);
            for (bound, value) in [("min", range.min), ("max", range.max)] {
                if let Some(v) = value
                    && v < 0.0
                    && !may_be_negative
                {
                    self.push(
                        Finding::error(
                            P::InvalidValue,
                            format!("{path}.{bound}"),
                            format!("{key} {bound} {} is negative", fmt_num(v)),
                        )
                        .hint("use a value of 0 or more"),
                    );
                }
            }
            if let (Some(min), Some(max)) = (range.min, range.max)
                && min > max
            {
                self.push(
                    Finding::error(
                        P::MinAboveMax,
                        format!("{path}.max"),
                        format!("{key}: min {} is above max {}", fmt_num(min), fmt_num(max)),
                    )
                    .hint("swap the bounds, or fix the one that is wrong"),
                );
            }
        }
        if cons.matrix_min.is_some() {
            self.applies(&format!("{cbase}.matrix_min"), "matrix_min", m);
        }
        if cons.mr_sequence.is_some() {
            self.applies(&format!("{cbase}.mr_sequence"), "mr_sequence", m);
        }
        if cons.mr_acquisition.is_some() {
            self.applies(&format!("{cbase}.mr_acquisition"), "mr_acquisition", m);
        }
        if let Some(contrast) = cons.contrast {
            let path = format!("{cbase}.contrast");
            if contrast.agent == ContrastAgent::Forbidden {
                if contrast.phase.is_some() {
                    self.push(
                        Finding::error(
                            P::Inconsistent,
                            format!("{path}.phase"),
                            "a contrast phase is given but contrast is forbidden",
                        )
                        .hint("remove phase, or set agent = \"required\""),
                    );
                }
                if contrast.min_delay_minutes.is_some() {
                    self.push(
                        Finding::error(
                            P::Inconsistent,
                            format!("{path}.min_delay_minutes"),
                            "an injection delay is given but contrast is forbidden",
                        )
                        .hint("remove min_delay_minutes, or set agent = \"required\""),
                    );
                }
            }
            let conflict = match (idf.contrast, contrast.agent) {
                (Some(true), ContrastAgent::Forbidden) => {
                    Some("identified as contrast-enhanced but contrast is forbidden")
                }
                (Some(false), ContrastAgent::Required) => Some("identified as non-contrast but contrast is required"),
                _ => None,
            };
            if let Some(why) = conflict {
                self.push(
                    Finding::error(P::Inconsistent, format!("{path}.agent"), format!("series \"{}\" is {why}", s.id))
                        .hint("make identify.contrast and constraints.contrast.agent agree"),
                );
            }
        }
        if let Some(tol) = cons.baseline_tolerance {
            let path = format!("{cbase}.baseline_tolerance");
            for (key, value) in [
                ("slice_thickness_mm", tol.slice_thickness_mm),
                ("pixel_spacing_mm", tol.pixel_spacing_mm),
                ("kvp", tol.kvp),
                ("field_strength_t", tol.field_strength_t),
            ] {
                let Some(v) = value else { continue };
                let kpath = format!("{path}.{key}");
                if v < 0.0 {
                    self.push(
                        Finding::error(P::InvalidValue, kpath.clone(), format!("tolerance {} is negative", fmt_num(v)))
                            .hint("a tolerance is the largest allowed absolute difference: 0 or more"),
                    );
                }
                self.applies(&kpath, key, m);
            }
        }
        if cons.same_scanner_as_baseline && !deid.retain_device_identity {
            self.push(
                Finding::warning(
                    P::Inconsistent,
                    format!("{cbase}.same_scanner_as_baseline"),
                    "the de-identification profile removes Device Serial Number and Station Name, so QC can only compare manufacturer and model with the baseline scanner",
                )
                .hint("set retain_device_identity = true in [deidentification]"),
            );
        }
    }

    /// Report a constraint that does not apply to the modality.
    fn applies(&mut self, path: &str, key: &str, m: Modality) {
        use Modality::*;
        let ok = match key {
            "slice_thickness_mm" | "slice_spacing_mm" | "slice_gap_mm" => {
                matches!(m, Ct | Mr | Pt | Nm)
            }
            "kvp" => matches!(m, Ct | Dx | Cr | Mg | Xa),
            "field_strength_t" | "mr_sequence" | "mr_acquisition" => m == Mr,
            _ => true,
        };
        if !ok {
            self.push(
                Finding::error(P::Inconsistent, path, format!("`{key}` does not apply to {m} series"))
                    .hint("remove it, or put it on an imaging requirement of a modality it applies to"),
            );
        }
    }

    fn deidentification(&mut self, c: &Charter) {
        let d = &c.deidentification;
        let base = "deidentification";
        if d.dates == DateHandling::Shift && d.max_shift_days == 0 {
            self.push(
                Finding::error(
                    P::InvalidValue,
                    format!("{base}.max_shift_days"),
                    "dates = \"shift\" needs max_shift_days of at least 1",
                )
                .hint("set max_shift_days, e.g. 365"),
            );
        }
        if d.dates != DateHandling::Shift && d.max_shift_days > 0 {
            self.push(
                Finding::warning(
                    P::Inconsistent,
                    format!("{base}.max_shift_days"),
                    "max_shift_days has no effect unless dates = \"shift\"",
                )
                .hint("remove it, or set dates = \"shift\""),
            );
        }
        if !d.retain_safe_private && !d.safe_private.is_empty() {
            self.push(
                Finding::warning(
                    P::Inconsistent,
                    format!("{base}.safe_private"),
                    "safe_private has no effect unless retain_safe_private = true",
                )
                .hint("set retain_safe_private = true, or remove safe_private"),
            );
        }
        if !d.clean_descriptors && !d.descriptor_allow_list.is_empty() {
            self.push(
                Finding::warning(
                    P::Inconsistent,
                    format!("{base}.descriptor_allow_list"),
                    "descriptor_allow_list has no effect unless clean_descriptors = true",
                )
                .hint("set clean_descriptors = true, or remove the list"),
            );
        }
        for (k, p) in d.descriptor_allow_list.iter().enumerate() {
            if p.trim().is_empty() {
                self.push(
                    Finding::error(P::BadPattern, format!("{base}.descriptor_allow_list[{k}]"), "pattern is empty")
                        .hint("use a glob such as \"*T1*\""),
                );
            }
        }
        for (k, t) in d.safe_private.iter().enumerate() {
            let path = format!("{base}.safe_private[{k}]");
            if t.group % 2 == 0 || t.group <= 0x0008 || t.group == 0xFFFF {
                self.push(
                    Finding::error(
                        P::InvalidValue,
                        format!("{path}.group"),
                        format!("group {:#06x} is not a private group", t.group),
                    )
                    .hint("private groups are odd numbers from 0x0009 to 0xFFFD, e.g. 0x0029"),
                );
            }
            self.lo(format!("{path}.creator"), &t.creator, "Private Creator");
        }
        for (k, mask) in d.pixel_masks.iter().enumerate() {
            let path = format!("{base}.pixel_masks[{k}]");
            if mask.regions.is_empty() {
                self.push(
                    Finding::error(P::InvalidValue, format!("{path}.regions"), "pixel mask has no region")
                        .hint("add [[deidentification.pixel_masks.regions]] with x, y, width, height"),
                );
            }
            for (j, r) in mask.regions.iter().enumerate() {
                let inside = r.width > 0
                    && r.height > 0
                    && u64::from(r.x) + u64::from(r.width) <= u64::from(mask.columns)
                    && u64::from(r.y) + u64::from(r.height) <= u64::from(mask.rows);
                if !inside {
                    self.push(
                        Finding::error(
                            P::InvalidValue,
                            format!("{path}.regions[{j}]"),
                            format!(
                                "region x={} y={} {}x{} is empty or outside the {}x{} image",
                                r.x, r.y, r.width, r.height, mask.columns, mask.rows
                            ),
                        )
                        .hint("regions are in pixels: x + width <= columns and y + height <= rows"),
                    );
                }
            }
        }
        if c.trial.blinding.readers_blinded_to_dates && d.dates == DateHandling::Keep {
            self.push(
                Finding::warning(
                    P::Inconsistent,
                    format!("{base}.dates"),
                    "readers are blinded to dates, but de-identification keeps the real dates in the images they read",
                )
                .hint("use dates = \"shift\" or \"remove\", or set trial.blinding.readers_blinded_to_dates = false"),
            );
        }
    }

    fn reads(&mut self, c: &Charter) {
        let r = &c.reads;
        let base = "reads";
        if r.criteria.is_empty() {
            self.push(
                Finding::error(P::InvalidValue, format!("{base}.criteria"), "no read criteria")
                    .hint("list the criteria, e.g. criteria = [\"RECIST1.1\"]"),
            );
        }
        let area = c.trial.therapeutic_area;
        for (k, cr) in r.criteria.iter().enumerate() {
            let path = format!("{base}.criteria[{k}]");
            if r.criteria[..k].contains(cr) {
                self.push(
                    Finding::error(P::DuplicateId, path, format!("{cr} is listed twice")).hint("remove the duplicate"),
                );
                continue;
            }
            let fits = match cr {
                Criteria::Recist11 | Criteria::Irecist => {
                    matches!(area, TherapeuticArea::Oncology | TherapeuticArea::Other)
                }
                Criteria::Lvef => {
                    matches!(area, TherapeuticArea::Cardiology | TherapeuticArea::Oncology | TherapeuticArea::Other)
                }
                Criteria::Ms => matches!(area, TherapeuticArea::Neurology | TherapeuticArea::Other),
            };
            if !fits {
                self.push(
                    Finding::warning(
                        P::CriteriaMismatch,
                        path,
                        format!("{cr} does not fit the trial's therapeutic area ({area})"),
                    )
                    .hint("check reads.criteria and trial.therapeutic_area"),
                );
            }
        }
        let recist = r.is_recist_family();

        match (&r.adjudication, r.readers_per_case) {
            (Some(_), 1) => self.push(
                Finding::error(
                    P::Inconsistent,
                    format!("{base}.adjudication"),
                    "adjudication needs two readers per case",
                )
                .hint("set readers_per_case = 2, or remove [reads.adjudication]"),
            ),
            (None, 2) => self.push(
                Finding::warning(
                    P::Inconsistent,
                    format!("{base}.readers_per_case"),
                    "two readers per case without adjudication: disagreements have no resolution",
                )
                .hint("add [reads.adjudication] with triggers and choice"),
            ),
            _ => {}
        }
        if let Some(adj) = &r.adjudication {
            if adj.ef_tolerance_points.is_some() && !r.criteria.contains(&Criteria::Lvef) {
                self.push(
                    Finding::warning(
                        P::Inconsistent,
                        format!("{base}.adjudication.ef_tolerance_points"),
                        "ef_tolerance_points is only used by LVEF reads",
                    )
                    .hint("remove it"),
                );
            }
            let path = format!("{base}.adjudication.triggers");
            if adj.triggers.is_empty() {
                self.push(Finding::error(P::InvalidValue, path.clone(), "no adjudication trigger").hint(
                    "list triggers, e.g. [\"progression_date\"], or remove [reads.adjudication] for no adjudication",
                ));
            }
            for (k, t) in adj.triggers.iter().enumerate() {
                let tpath = format!("{path}[{k}]");
                if adj.triggers[..k].contains(t) {
                    self.push(
                        Finding::error(P::DuplicateId, tpath, format!("{t} is listed twice"))
                            .hint("remove the duplicate"),
                    );
                } else if !recist
                    && matches!(t, AdjudicationTrigger::ProgressionDate | AdjudicationTrigger::BestOverallResponse)
                {
                    self.push(
                        Finding::error(P::Inconsistent, tpath, format!("trigger {t} needs RECIST1.1 or iRECIST reads"))
                            .hint("use any_timepoint for LVEF and MS reads"),
                    );
                }
            }
        }

        match (recist, r.sd_min_days) {
            (true, None) => self.push(
                Finding::error(
                    P::MissingKey,
                    format!("{base}.sd_min_days"),
                    "RECIST reads need the minimum days from baseline for stable disease",
                )
                .hint("add sd_min_days from the protocol, commonly 42 (6 weeks) or 56 (8 weeks)"),
            ),
            (false, Some(_)) => self.push(
                Finding::warning(
                    P::Inconsistent,
                    format!("{base}.sd_min_days"),
                    "sd_min_days is only used by RECIST1.1 and iRECIST",
                )
                .hint("remove it"),
            ),
            _ => {}
        }
        if r.confirmation_required && !recist {
            self.push(
                Finding::error(
                    P::Inconsistent,
                    format!("{base}.confirmation_required"),
                    "response confirmation applies to RECIST1.1 and iRECIST reads only",
                )
                .hint("set confirmation_required = false"),
            );
        }
        if let Some(days) = r.confirmation_min_days {
            if !r.confirmation_required {
                self.push(
                    Finding::warning(
                        P::Inconsistent,
                        format!("{base}.confirmation_min_days"),
                        "confirmation_min_days has no effect unless confirmation_required = true",
                    )
                    .hint("remove it, or set confirmation_required = true"),
                );
            } else if days < 28 {
                self.push(
                    Finding::warning(
                        P::InvalidValue,
                        format!("{base}.confirmation_min_days"),
                        format!("{days} days is shorter than the 4 weeks RECIST 1.1 asks for"),
                    )
                    .hint("use 28 or more"),
                );
            }
        }

        for (k, m) in r.measures.iter().enumerate() {
            let path = format!("{base}.measures[{k}]");
            if r.measures[..k].contains(m) {
                self.push(
                    Finding::error(P::DuplicateId, path, format!("{m} is listed twice")).hint("remove the duplicate"),
                );
            } else if !r.criteria.contains(&m.criteria()) {
                self.push(
                    Finding::error(
                        P::Inconsistent,
                        path,
                        format!("measure {m} belongs to {} reads, which reads.criteria does not list", m.criteria()),
                    )
                    .hint(format!("add \"{}\" to criteria, or remove the measure", m.criteria())),
                );
            }
        }
        if r.criteria.contains(&Criteria::Ms) && !r.measures.iter().any(|m| m.criteria() == Criteria::Ms) {
            self.push(
                Finding::error(P::MissingKey, format!("{base}.measures"), "MS reads need the measures to read")
                    .hint("list them, e.g. measures = [\"gd_enhancing_lesions\", \"new_enlarging_t2_lesions\", \"brain_volume_change\"]"),
            );
        }

        let q = &r.reader_qualifications;
        let qbase = format!("{base}.reader_qualifications");
        if let Some(qa) = q.therapeutic_area
            && qa != area
            && area != TherapeuticArea::Other
        {
            self.push(
                Finding::warning(
                    P::Inconsistent,
                    format!("{qbase}.therapeutic_area"),
                    format!("readers must be qualified in {qa}, but the trial is {area}"),
                )
                .hint("check reader_qualifications.therapeutic_area"),
            );
        }
        if !q.criteria.is_empty() {
            for cr in &r.criteria {
                if !q.criteria.contains(cr) {
                    self.push(
                        Finding::warning(
                            P::Inconsistent,
                            format!("{qbase}.criteria"),
                            format!("readers are not required to be qualified in {cr}, which the reads use"),
                        )
                        .hint(format!("add \"{cr}\" to reader_qualifications.criteria")),
                    );
                }
            }
        }
        if !q.training_current {
            self.push(
                Finding::warning(
                    P::Inconsistent,
                    format!("{qbase}.training_current"),
                    "readers are not required to hold current training on protocol, criteria and charter",
                )
                .hint("FDA imaging endpoint standards expect trained readers: set training_current = true"),
            );
        }
    }
}

fn did_you_mean<'a>(word: &str, candidates: impl Iterator<Item = &'a str> + Clone, what: &str) -> String {
    match closest(word, candidates.clone()) {
        Some(near) => format!("did you mean \"{near}\"?"),
        None => {
            let all: Vec<&str> = candidates.collect();
            if all.is_empty() {
                format!("no {what} are defined")
            } else {
                format!("defined {what}: {}", all.join(", "))
            }
        }
    }
}

fn descriptor_tag(key: &str) -> &'static str {
    if key == "protocol_name" { "Protocol Name (0018,1030)" } else { "Series Description (0008,103E)" }
}

/// The `{...}` placeholder names in a template.
fn placeholders(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                out.push(&after[..end]);
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out
}

/// A number as a person writes it: 5 rather than 5.0.
pub(crate) fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") }
}
