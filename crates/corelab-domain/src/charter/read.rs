//! Structural reading: the spanned TOML document to the typed model.
//!
//! The reader never stops at the first problem. A value that cannot be read is reported (wrong
//! type, missing, unknown word) and replaced by a stand-in so the rest is still read and checked;
//! the path of each such value is kept in `broken`, and semantic findings about what depends on it
//! are dropped later (see `super::locate_and_filter`). A charter with any error is never returned.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::model::*;
use super::pattern::SubjectIdPattern;
use super::problem::{Finding, ProblemCode, SpanIndex, parent_path};
use super::text::closest;
use crate::deid_profile::{DateHandling, DeidProfile, MaskRegion, PixelMask, SafePrivateTag};

type Val<'i> = Spanned<DeValue<'i>>;

/// The keys each table accepts. `TABLES` names them as the JSON schema's `$defs` do (the root is
/// "charter"); a test keeps the schema in step with these lists.
pub(crate) mod keys {
    pub const CHARTER: &[&str] = &[
        "format",
        "version",
        "trial",
        "dimse",
        "sites",
        "subjects",
        "arms",
        "schedule",
        "visits",
        "imaging",
        "deidentification",
        "qc",
        "reads",
    ];
    pub const TRIAL: &[&str] = &["sponsor", "protocol_id", "protocol_name", "therapeutic_area", "blinding"];
    pub const BLINDING: &[&str] = &["readers_blinded_to_dates", "timepoint_labels", "sponsor_blinded"];
    pub const DIMSE: &[&str] = &["called_ae_titles"];
    pub const SITE: &[&str] = &["id", "name", "country", "ae_titles"];
    pub const SUBJECTS: &[&str] = &["id_pattern"];
    pub const ARM: &[&str] = &["id", "label"];
    pub const SCHEDULE: &[&str] = &["anchor", "unscheduled_visits_allowed"];
    pub const VISIT: &[&str] = &[
        "id",
        "label",
        "baseline",
        "day",
        "days",
        "every_weeks",
        "from_week",
        "until_week",
        "window",
        "imaging",
        "imaging_rule",
        "series",
    ];
    pub const WINDOW: &[&str] = &["minus_days", "plus_days"];
    pub const IMAGING: &[&str] = &["id", "modality", "body_region", "body_part_examined", "series"];
    pub const SERIES: &[&str] = &["id", "description", "required", "identify", "constraints"];
    pub const IDENTIFY: &[&str] = &["series_description", "protocol_name", "image_type", "contrast"];
    pub const CONSTRAINTS: &[&str] = &[
        "slice_thickness_mm",
        "slice_spacing_mm",
        "slice_gap_mm",
        "pixel_spacing_mm",
        "matrix_min",
        "kvp",
        "contrast",
        "field_strength_t",
        "mr_sequence",
        "mr_acquisition",
        "same_scanner_as_baseline",
        "baseline_tolerance",
    ];
    pub const RANGE: &[&str] = &["min", "max"];
    pub const CONTRAST: &[&str] = &["agent", "phase", "min_delay_minutes"];
    pub const BASELINE_TOLERANCE: &[&str] = &["slice_thickness_mm", "pixel_spacing_mm", "kvp", "field_strength_t"];
    /// The fields of [`crate::deid_profile::DeidProfile`].
    pub const DEIDENTIFICATION: &[&str] = &[
        "dates",
        "max_shift_days",
        "retain_patient_characteristics",
        "retain_device_identity",
        "retain_institution_identity",
        "retain_uids",
        "retain_safe_private",
        "safe_private",
        "clean_descriptors",
        "descriptor_allow_list",
        "pixel_masks",
    ];
    pub const SAFE_PRIVATE_TAG: &[&str] = &["creator", "group", "element"];
    pub const PIXEL_MASK: &[&str] = &["manufacturer", "model", "rows", "columns", "regions"];
    pub const MASK_REGION: &[&str] = &["x", "y", "width", "height"];
    pub const QC: &[&str] = &["stages"];
    pub const READS: &[&str] = &[
        "criteria",
        "readers_per_case",
        "paradigm",
        "adjudication",
        "sd_min_days",
        "confirmation_required",
        "confirmation_min_days",
        "measures",
        "reader_qualifications",
    ];
    pub const ADJUDICATION: &[&str] = &["triggers", "choice", "ef_tolerance_points"];
    pub const READER_QUALIFICATIONS: &[&str] = &["therapeutic_area", "criteria", "training_current"];

    /// (schema `$defs` name, keys); "charter" is the document root.
    pub const TABLES: &[(&str, &[&str])] = &[
        ("charter", CHARTER),
        ("trial", TRIAL),
        ("blinding", BLINDING),
        ("dimse", DIMSE),
        ("site", SITE),
        ("subjects", SUBJECTS),
        ("arm", ARM),
        ("schedule", SCHEDULE),
        ("visit", VISIT),
        ("window", WINDOW),
        ("imaging", IMAGING),
        ("series", SERIES),
        ("identify", IDENTIFY),
        ("constraints", CONSTRAINTS),
        ("range", RANGE),
        ("contrast", CONTRAST),
        ("baseline_tolerance", BASELINE_TOLERANCE),
        ("deidentification", DEIDENTIFICATION),
        ("safe_private_tag", SAFE_PRIVATE_TAG),
        ("pixel_mask", PIXEL_MASK),
        ("mask_region", MASK_REGION),
        ("qc", QC),
        ("reads", READS),
        ("adjudication", ADJUDICATION),
        ("reader_qualifications", READER_QUALIFICATIONS),
    ];
}

/// What a value should have been, for messages and for how far a failure's effects reach.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Num,
    Bool,
    List,
    Table,
    Tables,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::Int => "an integer",
            Kind::Num => "a number",
            Kind::Bool => "a boolean",
            Kind::List => "an array",
            Kind::Table => "a table",
            Kind::Tables => "an array of tables",
        }
    }
}

fn found_noun(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date/time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn type_hint(expected: Kind, found: &DeValue<'_>, key: &str) -> String {
    match (expected, found) {
        (Kind::Str, _) => format!("put the value in double quotes: {key} = \"...\""),
        (Kind::Int, DeValue::String(s)) if s.trim().parse::<i64>().is_ok() => {
            format!("remove the quotes: {key} = {}", s.trim())
        }
        (Kind::Int, DeValue::Float(_)) => "write a whole number, without a decimal point".into(),
        (Kind::Int, _) => format!("write a whole number without quotes: {key} = 5"),
        (Kind::Num, DeValue::String(s)) if s.trim().parse::<f64>().is_ok() => {
            format!("remove the quotes: {key} = {}", s.trim())
        }
        (Kind::Num, _) => format!("write a number without quotes: {key} = 2.5"),
        (Kind::Bool, DeValue::String(s)) if matches!(s.as_ref(), "true" | "false") => {
            format!("remove the quotes: {key} = {s}")
        }
        (Kind::Bool, _) => format!("write true or false without quotes: {key} = true"),
        (Kind::List, _) => format!("write a list in brackets: {key} = [\"A\", \"B\"]"),
        (Kind::Table, _) => {
            format!("write a table: a [{key}] section or an inline {key} = {{ ... }}")
        }
        (Kind::Tables, _) => format!("write one [[{key}]] section per entry"),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// The key a path ends with, without list indexes: `reads.criteria[0]` -> `criteria`.
fn last_segment(path: &str) -> &str {
    let mut p = path;
    while p.ends_with(']') {
        match p.rfind('[') {
            Some(i) => p = &p[..i],
            None => break,
        }
    }
    p.rsplit('.').next().unwrap_or(p)
}

/// A table being read: its path, where it starts, and its entries.
struct Tbl<'a, 'i> {
    path: String,
    at: usize,
    table: &'a DeTable<'i>,
}

impl<'a, 'i> Tbl<'a, 'i> {
    fn get(&self, key: &str) -> Option<(String, usize, &'a Val<'i>)> {
        self.table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(k, v)| (join(&self.path, key), k.span().start, v))
    }
    fn has(&self, key: &str) -> bool {
        self.table.iter().any(|(k, _)| k.get_ref().as_ref() == key)
    }
}

#[derive(Default)]
pub(crate) struct Reader {
    pub findings: Vec<Finding>,
    pub spans: SpanIndex,
    /// Paths under which semantic findings are not trusted because something there was broken.
    pub broken: Vec<String>,
}

impl Reader {
    fn fail(&mut self, finding: Finding, kind: Kind) {
        // A broken scalar leaves a stand-in in its table, so distrust the whole table; a broken
        // table only itself.
        // A broken list item leaves a shorter list, so distrust the table holding the list.
        let scope = match kind {
            Kind::Table | Kind::Tables => finding.path.clone(),
            _ => {
                let mut scope = parent_path(&finding.path);
                if finding.path.ends_with(']') {
                    scope = scope.and_then(parent_path);
                }
                match scope {
                    Some(s) if !s.is_empty() => s.to_string(),
                    _ => finding.path.clone(),
                }
            }
        };
        self.broken.push(scope);
        self.findings.push(finding);
    }

    fn wrong_type(&mut self, path: &str, at: usize, expected: Kind, found: &DeValue<'_>) {
        let key = last_segment(path);
        let f = Finding::error(
            ProblemCode::WrongType,
            path,
            format!("expected {}, found {}", expected.noun(), found_noun(found)),
        )
        .hint(type_hint(expected, found, key))
        .at(at);
        self.fail(f, expected);
    }

    fn invalid(&mut self, path: &str, at: usize, kind: Kind, message: String, hint: String) {
        let f = Finding::error(ProblemCode::InvalidValue, path, message).hint(hint).at(at);
        self.fail(f, kind);
    }

    fn missing(&mut self, t: &Tbl<'_, '_>, key: &str, kind: Kind) {
        let path = join(&t.path, key);
        let place =
            if t.path.is_empty() { "the top level of the charter".to_string() } else { format!("`{}`", t.path) };
        let f = Finding::error(ProblemCode::MissingKey, &path, format!("missing required key `{key}`"))
            .hint(format!("add `{key}` ({}) to {place}", kind.noun()))
            .at(t.at);
        self.fail(f, kind);
    }

    /// Open `v` as a table and report its unknown keys.
    fn table<'a, 'i>(&mut self, path: &str, at: usize, v: &'a Val<'i>, allowed: &[&str]) -> Option<Tbl<'a, 'i>> {
        let DeValue::Table(table) = v.get_ref() else {
            self.wrong_type(path, at, Kind::Table, v.get_ref());
            return None;
        };
        for (k, _) in table.iter() {
            let name: &str = k.get_ref();
            let kpath = join(path, name);
            self.spans.insert(&kpath, k.span().start);
            if !allowed.contains(&name) {
                let hint = match closest(name, allowed.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => match keys::TABLES.iter().find(|(_, ks)| ks.contains(&name)) {
                        Some((table_name, _)) => format!(
                            "`{name}` is a key of {table_name} tables; keys allowed here: {}",
                            allowed.join(", ")
                        ),
                        None => format!("keys allowed here: {}", allowed.join(", ")),
                    },
                };
                self.findings.push(
                    Finding::error(ProblemCode::UnknownKey, &kpath, format!("unknown key `{name}`"))
                        .hint(hint)
                        .at(k.span().start),
                );
            }
        }
        Some(Tbl { path: path.to_string(), at, table })
    }

    /// A required field: reported as missing when absent.
    fn req<'a, 'i, T>(
        &mut self,
        t: &Tbl<'a, 'i>,
        key: &str,
        kind: Kind,
        conv: impl FnOnce(&mut Self, &str, usize, &'a Val<'i>) -> Option<T>,
    ) -> Option<T> {
        match t.get(key) {
            Some((path, at, v)) => conv(self, &path, at, v),
            None => {
                self.missing(t, key, kind);
                None
            }
        }
    }

    /// An optional field.
    fn opt<'a, 'i, T>(
        &mut self,
        t: &Tbl<'a, 'i>,
        key: &str,
        conv: impl FnOnce(&mut Self, &str, usize, &'a Val<'i>) -> Option<T>,
    ) -> Option<T> {
        let (path, at, v) = t.get(key)?;
        conv(self, &path, at, v)
    }

    fn string(&mut self, path: &str, at: usize, v: &Val<'_>) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            other => {
                self.wrong_type(path, at, Kind::Str, other);
                None
            }
        }
    }

    /// A string that must not be empty or blank.
    fn text(&mut self, path: &str, at: usize, v: &Val<'_>) -> Option<String> {
        let s = self.string(path, at, v)?;
        if s.trim().is_empty() {
            let key = last_segment(path);
            self.invalid(path, at, Kind::Str, format!("`{key}` is empty"), format!("write a value: {key} = \"...\""));
            return None;
        }
        Some(s)
    }

    fn boolean(&mut self, path: &str, at: usize, v: &Val<'_>) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                self.wrong_type(path, at, Kind::Bool, other);
                None
            }
        }
    }

    fn int(&mut self, path: &str, at: usize, v: &Val<'_>, min: i64, max: i64) -> Option<i64> {
        let DeValue::Integer(i) = v.get_ref() else {
            self.wrong_type(path, at, Kind::Int, v.get_ref());
            return None;
        };
        let n = i64::from_str_radix(i.as_str(), i.radix()).ok();
        match n {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                let key = last_segment(path);
                self.invalid(
                    path,
                    at,
                    Kind::Int,
                    format!("`{key}` = {i} is out of range {min}..={max}"),
                    format!("use a whole number from {min} to {max}"),
                );
                None
            }
        }
    }

    fn u32_in(&mut self, path: &str, at: usize, v: &Val<'_>, min: u32, max: u32) -> Option<u32> {
        self.int(path, at, v, i64::from(min), i64::from(max)).and_then(|n| u32::try_from(n).ok())
    }

    fn i32_in(&mut self, path: &str, at: usize, v: &Val<'_>, min: i32, max: i32) -> Option<i32> {
        self.int(path, at, v, i64::from(min), i64::from(max)).and_then(|n| i32::try_from(n).ok())
    }

    fn number(&mut self, path: &str, at: usize, v: &Val<'_>) -> Option<f64> {
        let n = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok().map(|n| n as f64),
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            other => {
                self.wrong_type(path, at, Kind::Num, other);
                return None;
            }
        };
        match n {
            Some(n) if n.is_finite() => Some(n),
            _ => {
                let key = last_segment(path);
                self.invalid(
                    path,
                    at,
                    Kind::Num,
                    format!("`{key}` must be a finite number"),
                    "write a plain number such as 2.5 (not inf or nan)".into(),
                );
                None
            }
        }
    }

    fn choice<T: Copy>(&mut self, path: &str, at: usize, v: &Val<'_>, options: &[(&'static str, T)]) -> Option<T> {
        let s = self.string(path, at, v)?;
        if let Some((_, value)) = options.iter().find(|(name, _)| *name == s) {
            return Some(*value);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let hint = if let Some(exact) = names.iter().find(|n| n.eq_ignore_ascii_case(&s)) {
            format!("write it as \"{exact}\"")
        } else if let Some(near) = closest(&s, names.iter().copied()) {
            format!("did you mean \"{near}\"?")
        } else {
            format!("use one of: {}", quoted(&names))
        };
        let key = last_segment(path);
        self.invalid(
            path,
            at,
            Kind::Str,
            format!("\"{s}\" is not a valid `{key}`; expected one of {}", quoted(&names)),
            hint,
        );
        None
    }

    /// A list; items that cannot be read are reported and left out.
    fn list<'a, 'i, T>(
        &mut self,
        path: &str,
        at: usize,
        v: &'a Val<'i>,
        kind: Kind,
        mut item: impl FnMut(&mut Self, &str, usize, &'a Val<'i>) -> Option<T>,
    ) -> Option<Vec<T>> {
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(path, at, kind, v.get_ref());
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, it) in items.iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            let iat = it.span().start;
            self.spans.insert(&ipath, iat);
            if let Some(x) = item(self, &ipath, iat, it) {
                out.push(x);
            }
        }
        Some(out)
    }

    fn strings(&mut self, path: &str, at: usize, v: &Val<'_>) -> Option<Vec<String>> {
        self.list(path, at, v, Kind::List, |r, p, a, it| r.string(p, a, it))
    }

    fn choices<T: Copy>(
        &mut self,
        path: &str,
        at: usize,
        v: &Val<'_>,
        options: &[(&'static str, T)],
    ) -> Option<Vec<T>> {
        self.list(path, at, v, Kind::List, |r, p, a, it| r.choice(p, a, it, options))
    }

    fn tables<'a, 'i, T>(
        &mut self,
        path: &str,
        at: usize,
        v: &'a Val<'i>,
        mut read: impl FnMut(&mut Self, Tbl<'a, 'i>) -> Option<T>,
        allowed: &[&str],
    ) -> Option<Vec<T>> {
        self.list(path, at, v, Kind::Tables, |r, p, a, it| {
            let t = r.table(p, a, it, allowed)?;
            read(r, t)
        })
    }
}

fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
}

/// Read the whole document. Always returns a model (with stand-ins where values were broken);
/// the caller decides from the findings whether it may be used.
pub(crate) fn read_charter(r: &mut Reader, root: &DeTable<'_>) -> Charter {
    let t = Tbl { path: String::new(), at: 0, table: root };
    for (k, _) in root.iter() {
        let name: &str = k.get_ref();
        if !keys::CHARTER.contains(&name) {
            let hint = match closest(name, keys::CHARTER.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("top-level keys: {}", keys::CHARTER.join(", ")),
            };
            r.findings.push(
                Finding::error(ProblemCode::UnknownKey, name, format!("unknown key `{name}`"))
                    .hint(hint)
                    .at(k.span().start),
            );
        }
        r.spans.insert(name, k.span().start);
    }

    let format = r
        .req(&t, "format", Kind::Int, |r, p, a, v| {
            let n = r.int(p, a, v, i64::MIN, i64::MAX)?;
            if n != i64::from(FORMAT_VERSION) {
                r.invalid(
                    p,
                    a,
                    Kind::Int,
                    format!("charter format {n} is not supported; this corelab reads format {FORMAT_VERSION}"),
                    format!("set format = {FORMAT_VERSION} and follow docs/charter.md"),
                );
                return None;
            }
            Some(FORMAT_VERSION)
        })
        .unwrap_or(FORMAT_VERSION);
    let version = r.req(&t, "version", Kind::Str, Reader::text).unwrap_or_default();
    let trial = r
        .req(&t, "trial", Kind::Table, |r, p, a, v| {
            let t = r.table(p, a, v, keys::TRIAL)?;
            Some(read_trial(r, &t))
        })
        .unwrap_or_else(read_trial_default);
    let dimse = r
        .req(&t, "dimse", Kind::Table, |r, p, a, v| {
            let t = r.table(p, a, v, keys::DIMSE)?;
            let called_ae_titles = r.req(&t, "called_ae_titles", Kind::List, Reader::strings).unwrap_or_default();
            Some(Dimse { called_ae_titles })
        })
        .unwrap_or(Dimse { called_ae_titles: Vec::new() });
    let sites =
        r.req(&t, "sites", Kind::Tables, |r, p, a, v| r.tables(p, a, v, read_site, keys::SITE)).unwrap_or_default();
    let subjects = r
        .req(&t, "subjects", Kind::Table, |r, p, a, v| {
            let t = r.table(p, a, v, keys::SUBJECTS)?;
            let id_pattern = r.req(&t, "id_pattern", Kind::Str, |r, p, a, v| {
                let s = r.string(p, a, v)?;
                match SubjectIdPattern::parse(&s) {
                    Ok(pattern) => Some(pattern),
                    Err(why) => {
                        let f = Finding::error(
                            ProblemCode::BadPattern,
                            p,
                            format!("subject ID pattern \"{s}\" is not valid: {why}"),
                        )
                        .hint("write literal characters with {site} and {n...} placeholders, e.g. \"{site}-{nnn}\"")
                        .at(a);
                        r.fail(f, Kind::Str);
                        None
                    }
                }
            })?;
            Some(Subjects { id_pattern })
        })
        .unwrap_or_else(|| Subjects { id_pattern: SubjectIdPattern::placeholder() });
    let arms = r
        .opt(&t, "arms", |r, p, a, v| {
            r.tables(
                p,
                a,
                v,
                |r, t| {
                    Some(Arm {
                        id: r.req(&t, "id", Kind::Str, Reader::text).unwrap_or_default(),
                        label: r.req(&t, "label", Kind::Str, Reader::text).unwrap_or_default(),
                    })
                },
                keys::ARM,
            )
        })
        .unwrap_or_default();
    let schedule = r
        .req(&t, "schedule", Kind::Table, |r, p, a, v| {
            let t = r.table(p, a, v, keys::SCHEDULE)?;
            Some(Schedule {
                anchor: r
                    .req(&t, "anchor", Kind::Str, |r, p, a, v| r.choice(p, a, v, &Anchor::options()))
                    .unwrap_or(Anchor::Randomization),
                unscheduled_visits_allowed: r
                    .req(&t, "unscheduled_visits_allowed", Kind::Bool, Reader::boolean)
                    .unwrap_or(false),
            })
        })
        .unwrap_or(Schedule { anchor: Anchor::Randomization, unscheduled_visits_allowed: false });
    let visits =
        r.req(&t, "visits", Kind::Tables, |r, p, a, v| r.tables(p, a, v, read_visit, keys::VISIT)).unwrap_or_default();
    let imaging = r
        .req(&t, "imaging", Kind::Tables, |r, p, a, v| r.tables(p, a, v, read_imaging, keys::IMAGING))
        .unwrap_or_default();
    let deidentification = r
        .opt(&t, "deidentification", |r, p, a, v| {
            let t = r.table(p, a, v, keys::DEIDENTIFICATION)?;
            Some(read_deid(r, &t))
        })
        .unwrap_or_default();
    let qc = r
        .req(&t, "qc", Kind::Table, |r, p, a, v| {
            let t = r.table(p, a, v, keys::QC)?;
            let stages = r.req(&t, "stages", Kind::Str, |r, p, a, v| r.choice(p, a, v, &QcStages::options()))?;
            Some(Qc { stages })
        })
        .unwrap_or(Qc { stages: QcStages::Automated });
    let reads = r
        .req(&t, "reads", Kind::Table, |r, p, a, v| {
            let t = r.table(p, a, v, keys::READS)?;
            Some(read_reads(r, &t))
        })
        .unwrap_or_else(read_reads_default);

    Charter {
        format,
        version,
        trial,
        dimse,
        sites,
        subjects,
        arms,
        schedule,
        visits,
        imaging,
        deidentification,
        qc,
        reads,
    }
}

fn read_trial_default() -> Trial {
    Trial {
        sponsor: String::new(),
        protocol_id: String::new(),
        protocol_name: String::new(),
        therapeutic_area: TherapeuticArea::Other,
        blinding: Blinding {
            readers_blinded_to_dates: true,
            timepoint_labels: TimepointLabels::Pseudo,
            sponsor_blinded: true,
        },
    }
}

fn read_trial(r: &mut Reader, t: &Tbl<'_, '_>) -> Trial {
    let d = read_trial_default();
    Trial {
        sponsor: r.req(t, "sponsor", Kind::Str, Reader::text).unwrap_or_default(),
        protocol_id: r.req(t, "protocol_id", Kind::Str, Reader::text).unwrap_or_default(),
        protocol_name: r.req(t, "protocol_name", Kind::Str, Reader::text).unwrap_or_default(),
        therapeutic_area: r
            .req(t, "therapeutic_area", Kind::Str, |r, p, a, v| r.choice(p, a, v, &TherapeuticArea::options()))
            .unwrap_or(d.therapeutic_area),
        blinding: r
            .req(t, "blinding", Kind::Table, |r, p, a, v| {
                let t = r.table(p, a, v, keys::BLINDING)?;
                Some(Blinding {
                    readers_blinded_to_dates: r
                        .req(&t, "readers_blinded_to_dates", Kind::Bool, Reader::boolean)
                        .unwrap_or(true),
                    timepoint_labels: r
                        .req(&t, "timepoint_labels", Kind::Str, |r, p, a, v| {
                            r.choice(p, a, v, &TimepointLabels::options())
                        })
                        .unwrap_or(TimepointLabels::Pseudo),
                    sponsor_blinded: r.req(&t, "sponsor_blinded", Kind::Bool, Reader::boolean).unwrap_or(true),
                })
            })
            .unwrap_or(d.blinding),
    }
}

fn read_site(r: &mut Reader, t: Tbl<'_, '_>) -> Option<Site> {
    Some(Site {
        id: r.req(&t, "id", Kind::Str, Reader::text).unwrap_or_default(),
        name: r.req(&t, "name", Kind::Str, Reader::text).unwrap_or_default(),
        country: r.req(&t, "country", Kind::Str, Reader::text).unwrap_or_default(),
        ae_titles: r.opt(&t, "ae_titles", Reader::strings).unwrap_or_default(),
    })
}

fn read_visit(r: &mut Reader, t: Tbl<'_, '_>) -> Option<VisitDefinition> {
    let id = r.req(&t, "id", Kind::Str, Reader::text).unwrap_or_default();
    let label = r.req(&t, "label", Kind::Str, Reader::text).unwrap_or_default();
    let timing = read_timing(r, &t);
    let window = r
        .req(&t, "window", Kind::Table, |r, p, a, v| {
            let w = r.table(p, a, v, keys::WINDOW)?;
            let minus_days = r.req(&w, "minus_days", Kind::Int, |r, p, a, v| r.i32_in(p, a, v, -3650, 3650));
            let plus_days = r.req(&w, "plus_days", Kind::Int, |r, p, a, v| r.i32_in(p, a, v, -3650, 3650));
            Some(Window { minus_days: minus_days?, plus_days: plus_days? })
        })
        .unwrap_or(Window { minus_days: 0, plus_days: 0 });
    let imaging = r.req(&t, "imaging", Kind::List, Reader::strings).unwrap_or_default();
    let imaging_rule =
        r.opt(&t, "imaging_rule", |r, p, a, v| r.choice(p, a, v, &ImagingRule::options())).unwrap_or(ImagingRule::All);
    let series = r.opt(&t, "series", Reader::strings).unwrap_or_default();
    Some(VisitDefinition {
        id,
        label,
        // A broken timing becomes an empty list of days: it generates no visit, so it cannot
        // fake a second baseline or a duplicate ID.
        timing: timing.unwrap_or(VisitTiming::Days(Vec::new())),
        window,
        imaging,
        imaging_rule,
        series,
    })
}

/// Exactly one of `baseline = true`, `day`, `days`, `every_weeks` (with `until_week` and an
/// optional `from_week`).
fn read_timing(r: &mut Reader, t: &Tbl<'_, '_>) -> Option<VisitTiming> {
    const MAX_DAY: i32 = 36_500;
    let mut given: Vec<(&str, VisitTiming)> = Vec::new();
    let mut broken = false;
    if let Some((p, a, v)) = t.get("baseline") {
        match r.boolean(&p, a, v) {
            Some(true) => given.push(("baseline", VisitTiming::Baseline)),
            Some(false) => {}
            None => broken = true,
        }
    }
    if let Some((p, a, v)) = t.get("day") {
        match r.i32_in(&p, a, v, -MAX_DAY, MAX_DAY) {
            Some(d) => given.push(("day", VisitTiming::Day(d))),
            None => broken = true,
        }
    }
    if let Some((p, a, v)) = t.get("days") {
        match r.list(&p, a, v, Kind::List, |r, p, a, v| r.i32_in(p, a, v, -MAX_DAY, MAX_DAY)) {
            Some(d) => given.push(("days", VisitTiming::Days(d))),
            None => broken = true,
        }
    }
    let from_week = r.opt(t, "from_week", |r, p, a, v| r.u32_in(p, a, v, 0, 5200));
    let until_week = r.opt(t, "until_week", |r, p, a, v| r.u32_in(p, a, v, 0, 5200));
    if let Some((p, a, v)) = t.get("every_weeks") {
        match r.u32_in(&p, a, v, 1, 520) {
            Some(every_weeks) => {
                let until = if t.has("until_week") {
                    until_week
                } else {
                    r.missing(t, "until_week", Kind::Int);
                    None
                };
                match until {
                    Some(until_week) => given.push((
                        "every_weeks",
                        VisitTiming::EveryWeeks {
                            every_weeks,
                            from_week: from_week.unwrap_or(every_weeks),
                            until_week,
                        },
                    )),
                    None => broken = true,
                }
            }
            None => broken = true,
        }
    } else {
        for key in ["from_week", "until_week"] {
            if let Some((p, a, _)) = t.get(key) {
                let f =
                    Finding::error(ProblemCode::Inconsistent, &p, format!("`{key}` only applies to a repeating visit"))
                        .hint("add every_weeks = N, or remove this key")
                        .at(a);
                // The visit's timing is still sound: nothing downstream depends on this key.
                r.findings.push(f);
            }
        }
    }
    match given.len() {
        1 => given.pop().map(|(_, timing)| timing),
        0 => {
            if !broken {
                let f = Finding::error(ProblemCode::MissingKey, &t.path, "visit has no timing")
                    .hint("add one of: baseline = true, day = N, days = [N, ...], every_weeks = N with until_week = M")
                    .at(t.at);
                r.fail(f, Kind::Table);
            }
            None
        }
        _ => {
            let names: Vec<&str> = given.iter().map(|(k, _)| *k).collect();
            let second = names.get(1).copied().unwrap_or_default();
            let (p, a) = t.get(second).map_or((t.path.clone(), t.at), |(p, a, _)| (p, a));
            let f = Finding::error(
                ProblemCode::Inconsistent,
                p,
                format!("a visit has exactly one timing, this one has {}", names.join(" and ")),
            )
            .hint("keep one of baseline, day, days, every_weeks; write another [[visits]] entry for the rest")
            .at(a);
            // The whole visit has a stand-in timing now.
            r.broken.push(t.path.clone());
            r.findings.push(f);
            None
        }
    }
}

fn read_imaging(r: &mut Reader, t: Tbl<'_, '_>) -> Option<ImagingRequirement> {
    Some(ImagingRequirement {
        id: r.req(&t, "id", Kind::Str, Reader::text).unwrap_or_default(),
        modality: r
            .req(&t, "modality", Kind::Str, |r, p, a, v| r.choice(p, a, v, &Modality::options()))
            .unwrap_or(Modality::Ct),
        body_region: r.req(&t, "body_region", Kind::Str, Reader::text).unwrap_or_default(),
        body_part_examined: r.opt(&t, "body_part_examined", Reader::strings).unwrap_or_default(),
        series: r
            .req(&t, "series", Kind::Tables, |r, p, a, v| r.tables(p, a, v, read_series, keys::SERIES))
            .unwrap_or_default(),
    })
}

fn read_series(r: &mut Reader, t: Tbl<'_, '_>) -> Option<SeriesSpec> {
    Some(SeriesSpec {
        id: r.req(&t, "id", Kind::Str, Reader::text).unwrap_or_default(),
        description: r.req(&t, "description", Kind::Str, Reader::text).unwrap_or_default(),
        required: r.opt(&t, "required", Reader::boolean).unwrap_or(true),
        identify: r
            .req(&t, "identify", Kind::Table, |r, p, a, v| {
                let t = r.table(p, a, v, keys::IDENTIFY)?;
                Some(SeriesIdentification {
                    series_description: r.opt(&t, "series_description", Reader::strings).unwrap_or_default(),
                    protocol_name: r.opt(&t, "protocol_name", Reader::strings).unwrap_or_default(),
                    image_type: r.opt(&t, "image_type", Reader::strings).unwrap_or_default(),
                    contrast: r.opt(&t, "contrast", Reader::boolean),
                })
            })
            .unwrap_or_default(),
        constraints: r
            .opt(&t, "constraints", |r, p, a, v| {
                let t = r.table(p, a, v, keys::CONSTRAINTS)?;
                Some(read_constraints(r, &t))
            })
            .unwrap_or_default(),
    })
}

fn read_range(r: &mut Reader, p: &str, a: usize, v: &Val<'_>) -> Option<Range> {
    let t = r.table(p, a, v, keys::RANGE)?;
    let min = r.opt(&t, "min", Reader::number);
    let max = r.opt(&t, "max", Reader::number);
    if !t.has("min") && !t.has("max") {
        let f = Finding::error(ProblemCode::MissingKey, p, "a range needs `min`, `max` or both")
            .hint("write e.g. { max = 5.0 } or { min = 1.5, max = 3.0 }")
            .at(a);
        r.fail(f, Kind::Table);
        return None;
    }
    Some(Range { min, max })
}

fn read_constraints(r: &mut Reader, t: &Tbl<'_, '_>) -> AcquisitionConstraints {
    AcquisitionConstraints {
        slice_thickness_mm: r.opt(t, "slice_thickness_mm", read_range),
        slice_spacing_mm: r.opt(t, "slice_spacing_mm", read_range),
        slice_gap_mm: r.opt(t, "slice_gap_mm", read_range),
        pixel_spacing_mm: r.opt(t, "pixel_spacing_mm", read_range),
        matrix_min: r.opt(t, "matrix_min", |r, p, a, v| r.u32_in(p, a, v, 1, 65_535)),
        kvp: r.opt(t, "kvp", read_range),
        contrast: r.opt(t, "contrast", |r, p, a, v| {
            let c = r.table(p, a, v, keys::CONTRAST)?;
            let agent = r.req(&c, "agent", Kind::Str, |r, p, a, v| r.choice(p, a, v, &ContrastAgent::options()))?;
            Some(ContrastRule {
                agent,
                phase: r.opt(&c, "phase", |r, p, a, v| r.choice(p, a, v, &ContrastPhase::options())),
                min_delay_minutes: r.opt(&c, "min_delay_minutes", |r, p, a, v| r.u32_in(p, a, v, 0, 600)),
            })
        }),
        field_strength_t: r.opt(t, "field_strength_t", read_range),
        mr_sequence: r.opt(t, "mr_sequence", |r, p, a, v| r.choice(p, a, v, &MrSequence::options())),
        mr_acquisition: r.opt(t, "mr_acquisition", |r, p, a, v| r.choice(p, a, v, &MrAcquisition::options())),
        same_scanner_as_baseline: r.opt(t, "same_scanner_as_baseline", Reader::boolean).unwrap_or(false),
        baseline_tolerance: r.opt(t, "baseline_tolerance", |r, p, a, v| {
            let b = r.table(p, a, v, keys::BASELINE_TOLERANCE)?;
            let tol = BaselineTolerance {
                slice_thickness_mm: r.opt(&b, "slice_thickness_mm", Reader::number),
                pixel_spacing_mm: r.opt(&b, "pixel_spacing_mm", Reader::number),
                kvp: r.opt(&b, "kvp", Reader::number),
                field_strength_t: r.opt(&b, "field_strength_t", Reader::number),
            };
            if b.table.is_empty() {
                let f = Finding::error(ProblemCode::MissingKey, p, "baseline_tolerance is empty")
                    .hint("give at least one tolerance, e.g. { slice_thickness_mm = 1.0 }, or remove it")
                    .at(a);
                r.fail(f, Kind::Table);
                return None;
            }
            Some(tol)
        }),
    }
}

fn read_deid(r: &mut Reader, t: &Tbl<'_, '_>) -> DeidProfile {
    let d = DeidProfile::default();
    let dates = [("remove", DateHandling::Remove), ("keep", DateHandling::Keep), ("shift", DateHandling::Shift)];
    let flag = |r: &mut Reader, key: &str, default: bool| r.opt(t, key, Reader::boolean).unwrap_or(default);
    DeidProfile {
        dates: r.opt(t, "dates", |r, p, a, v| r.choice(p, a, v, &dates)).unwrap_or(d.dates),
        max_shift_days: r
            .opt(t, "max_shift_days", |r, p, a, v| r.u32_in(p, a, v, 0, 36_500))
            .unwrap_or(d.max_shift_days),
        retain_patient_characteristics: flag(r, "retain_patient_characteristics", d.retain_patient_characteristics),
        retain_device_identity: flag(r, "retain_device_identity", d.retain_device_identity),
        retain_institution_identity: flag(r, "retain_institution_identity", d.retain_institution_identity),
        retain_uids: flag(r, "retain_uids", d.retain_uids),
        retain_safe_private: flag(r, "retain_safe_private", d.retain_safe_private),
        safe_private: r
            .opt(t, "safe_private", |r, p, a, v| {
                r.tables(
                    p,
                    a,
                    v,
                    |r, t| {
                        let creator = r.req(&t, "creator", Kind::Str, Reader::text);
                        let group = r.req(&t, "group", Kind::Int, |r, p, a, v| {
                            r.int(p, a, v, 0, 0xFFFF).and_then(|n| u16::try_from(n).ok())
                        });
                        let element = r.req(&t, "element", Kind::Int, |r, p, a, v| {
                            r.int(p, a, v, 0, 0xFF).and_then(|n| u8::try_from(n).ok())
                        });
                        Some(SafePrivateTag { creator: creator?, group: group?, element: element? })
                    },
                    keys::SAFE_PRIVATE_TAG,
                )
            })
            .unwrap_or_default(),
        clean_descriptors: flag(r, "clean_descriptors", d.clean_descriptors),
        descriptor_allow_list: r.opt(t, "descriptor_allow_list", Reader::strings).unwrap_or_default(),
        pixel_masks: r
            .opt(t, "pixel_masks", |r, p, a, v| r.tables(p, a, v, read_pixel_mask, keys::PIXEL_MASK))
            .unwrap_or_default(),
    }
}

fn read_pixel_mask(r: &mut Reader, t: Tbl<'_, '_>) -> Option<PixelMask> {
    let dim = |r: &mut Reader, key: &str| r.req(&t, key, Kind::Int, |r, p, a, v| r.u32_in(p, a, v, 1, 65_535));
    let manufacturer = r.req(&t, "manufacturer", Kind::Str, Reader::text);
    let model = r.opt(&t, "model", Reader::text);
    let rows = dim(r, "rows");
    let columns = dim(r, "columns");
    let regions = r.req(&t, "regions", Kind::Tables, |r, p, a, v| {
        r.tables(
            p,
            a,
            v,
            |r, t| {
                let n =
                    |r: &mut Reader, key: &str| r.req(&t, key, Kind::Int, |r, p, a, v| r.u32_in(p, a, v, 0, 65_535));
                let (x, y, width, height) = (n(r, "x"), n(r, "y"), n(r, "width"), n(r, "height"));
                Some(MaskRegion { x: x?, y: y?, width: width?, height: height? })
            },
            keys::MASK_REGION,
        )
    });
    Some(PixelMask { manufacturer: manufacturer?, model, rows: rows?, columns: columns?, regions: regions? })
}

fn read_reads_default() -> ReadDesign {
    ReadDesign {
        criteria: Vec::new(),
        readers_per_case: 1,
        paradigm: ReadParadigm::SequentialLocked,
        adjudication: None,
        sd_min_days: None,
        confirmation_required: false,
        confirmation_min_days: None,
        measures: Vec::new(),
        reader_qualifications: ReaderQualifications {
            therapeutic_area: None,
            criteria: Vec::new(),
            training_current: true,
        },
    }
}

fn read_reads(r: &mut Reader, t: &Tbl<'_, '_>) -> ReadDesign {
    let d = read_reads_default();
    let confirmation_required = r.opt(t, "confirmation_required", Reader::boolean).unwrap_or(false);
    let confirmation_min_days = r
        .opt(t, "confirmation_min_days", |r, p, a, v| r.u32_in(p, a, v, 1, 3650))
        .or(confirmation_required.then_some(28));
    ReadDesign {
        criteria: r
            .req(t, "criteria", Kind::List, |r, p, a, v| r.choices(p, a, v, &Criteria::options()))
            .unwrap_or_default(),
        readers_per_case: r
            .req(t, "readers_per_case", Kind::Int, |r, p, a, v| r.int(p, a, v, 1, 2).and_then(|n| u8::try_from(n).ok()))
            .unwrap_or(d.readers_per_case),
        paradigm: r
            .req(t, "paradigm", Kind::Str, |r, p, a, v| r.choice(p, a, v, &ReadParadigm::options()))
            .unwrap_or(d.paradigm),
        adjudication: r.opt(t, "adjudication", |r, p, a, v| {
            let t = r.table(p, a, v, keys::ADJUDICATION)?;
            let triggers =
                r.req(&t, "triggers", Kind::List, |r, p, a, v| r.choices(p, a, v, &AdjudicationTrigger::options()));
            let choice = r.req(&t, "choice", Kind::Str, |r, p, a, v| r.choice(p, a, v, &AdjudicationChoice::options()));
            let ef_tolerance_points = r.opt(&t, "ef_tolerance_points", |r, p, a, v| {
                let n = r.number(p, a, v)?;
                match crate::response::Tenths::parse(&n.to_string()) {
                    Ok(points) if n > 0.0 && n <= 50.0 => Some(points),
                    _ => {
                        r.invalid(
                            p,
                            a,
                            Kind::Num,
                            format!("`ef_tolerance_points` must be above 0 and at most 50 with one decimal, got {n}"),
                            "write the protocol's tolerance in percentage points, e.g. 5.0".into(),
                        );
                        None
                    }
                }
            });
            Some(Adjudication { triggers: triggers?, choice: choice?, ef_tolerance_points })
        }),
        sd_min_days: r.opt(t, "sd_min_days", |r, p, a, v| r.u32_in(p, a, v, 0, 3650)),
        confirmation_required,
        confirmation_min_days,
        measures: r.opt(t, "measures", |r, p, a, v| r.choices(p, a, v, &Measure::options())).unwrap_or_default(),
        reader_qualifications: r
            .req(t, "reader_qualifications", Kind::Table, |r, p, a, v| {
                let q = r.table(p, a, v, keys::READER_QUALIFICATIONS)?;
                Some(ReaderQualifications {
                    therapeutic_area: r
                        .opt(&q, "therapeutic_area", |r, p, a, v| r.choice(p, a, v, &TherapeuticArea::options())),
                    criteria: r
                        .opt(&q, "criteria", |r, p, a, v| r.choices(p, a, v, &Criteria::options()))
                        .unwrap_or_default(),
                    training_current: r.req(&q, "training_current", Kind::Bool, Reader::boolean).unwrap_or(true),
                })
            })
            .unwrap_or(d.reader_qualifications),
    }
}
