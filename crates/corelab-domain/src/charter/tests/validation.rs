//! One row per kind of problem, all through `check()`: a one-line edit of a small valid charter,
//! the key and line the problem must carry, its code and a fragment of its message and hint.

use super::super::*;

/// A small valid charter; the rows below edit it by line number (shown on the right).
const BASE: &str = r#"format = 1
version = "1.0"

[trial]
sponsor = "Acme"
protocol_id = "ACME-1"
protocol_name = "Test trial"
therapeutic_area = "oncology"
blinding = { readers_blinded_to_dates = true, timepoint_labels = "pseudo", sponsor_blinded = true }

[dimse]
called_ae_titles = ["ACME1"]

[[sites]]
id = "101"
name = "Site one"
country = "FR"
ae_titles = ["S1_CT"]

[[sites]]
id = "102"
name = "Site two"
country = "DE"
ae_titles = ["S2_CT"]

[subjects]
id_pattern = "{site}-{nnn}"

[schedule]
anchor = "randomization"
unscheduled_visits_allowed = true

[[visits]]
id = "BL"
label = "Baseline"
baseline = true
window = { minus_days = 28, plus_days = 0 }
imaging = ["CT_CAP"]

[[visits]]
id = "W{week}"
label = "Week {week}"
every_weeks = 8
until_week = 48
window = { minus_days = 7, plus_days = 7 }
imaging = ["CT_CAP"]

[[imaging]]
id = "CT_CAP"
modality = "CT"
body_region = "chest, abdomen and pelvis"

[[imaging.series]]
id = "CT_CAP_PV"
description = "portal venous"
identify = { image_type = ["ORIGINAL", "AXIAL"], contrast = true }

[imaging.series.constraints]
slice_thickness_mm = { max = 5.0 }
contrast = { agent = "required", phase = "portal_venous" }

[qc]
stages = "automated+qc1"

[reads]
criteria = ["RECIST1.1"]
readers_per_case = 2
paradigm = "sequential_locked"
sd_min_days = 42

[reads.adjudication]
triggers = ["progression_date"]
choice = "per_subject"

[reads.reader_qualifications]
training_current = true
"#;

struct Row {
    name: &'static str,
    /// 1-based line of BASE to replace (with `new`, which may span several lines).
    line: usize,
    new: &'static str,
    key: &'static str,
    at_line: u32,
    code: ProblemCode,
    severity: Severity,
    message: &'static str,
    hint: &'static str,
}

const E: Severity = Severity::Error;
const W: Severity = Severity::Warning;

fn edit(line: usize, new: &str) -> String {
    let mut lines: Vec<&str> = BASE.lines().collect();
    assert!(line >= 1 && line <= lines.len(), "line {line} is outside BASE");
    lines[line - 1] = new;
    lines.join("\n") + "\n"
}

fn check(row: &Row) {
    let text = edit(row.line, row.new);
    let result = check_charter(&text);
    let shown = result.problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    assert_eq!(result.problems.len(), 1, "{}: expected one problem, got:\n{shown}", row.name);
    let p = &result.problems[0];
    assert_eq!(p.key, row.key, "{}: key ({shown})", row.name);
    assert_eq!(p.line, row.at_line, "{}: line ({shown})", row.name);
    assert_eq!(p.code, row.code, "{}: code ({shown})", row.name);
    assert_eq!(p.severity, row.severity, "{}: severity ({shown})", row.name);
    assert!(p.message.contains(row.message), "{}: message {:?}", row.name, p.message);
    assert!(p.hint.contains(row.hint), "{}: hint {:?}", row.name, p.hint);
    // Errors withhold the charter, warnings do not.
    assert_eq!(result.charter.is_some(), row.severity == W, "{}", row.name);
}

#[test]
fn base_charter_is_valid() {
    let check = check_charter(BASE);
    assert!(check.problems.is_empty(), "{:?}", check.problems);
    assert_eq!(BASE.lines().nth(44), Some("window = { minus_days = 7, plus_days = 7 }"));
}

#[test]
fn every_kind_of_problem_is_reported_at_its_key() {
    use ProblemCode::*;
    #[rustfmt::skip]
    let rows = [
        Row { name: "string for integer", line: 43, new: r#"every_weeks = "8""#, key: "visits[1].every_weeks", at_line: 43, code: WrongType, severity: E, message: "expected an integer, found a string", hint: "remove the quotes: every_weeks = 8" },
        Row { name: "string for boolean", line: 31, new: r#"unscheduled_visits_allowed = "yes""#, key: "schedule.unscheduled_visits_allowed", at_line: 31, code: WrongType, severity: E, message: "expected a boolean, found a string", hint: "true or false" },
        Row { name: "float for integer", line: 59, new: "slice_thickness_mm = { max = 5.0 }\nmatrix_min = 512.5", key: "imaging[0].series[0].constraints.matrix_min", at_line: 60, code: WrongType, severity: E, message: "expected an integer, found a float", hint: "whole number" },
        Row { name: "string for table", line: 37, new: r#"window = "28 days before""#, key: "visits[0].window", at_line: 37, code: WrongType, severity: E, message: "expected a table, found a string", hint: "inline window = {" },
        Row { name: "unknown key, close to a known one", line: 59, new: "slice_thicknes_mm = { max = 5.0 }", key: "imaging[0].series[0].constraints.slice_thicknes_mm", at_line: 59, code: UnknownKey, severity: E, message: "unknown key `slice_thicknes_mm`", hint: "did you mean `slice_thickness_mm`?" },
        Row { name: "unknown top-level key", line: 2, new: "version = \"1.0\"\nverison = \"2\"", key: "verison", at_line: 3, code: UnknownKey, severity: E, message: "unknown key `verison`", hint: "did you mean `version`?" },
        Row { name: "key of another table", line: 37, new: "window = { minus_days = 28, plus_days = 0, every_weeks = 2 }", key: "visits[0].window.every_weeks", at_line: 37, code: UnknownKey, severity: E, message: "unknown key `every_weeks`", hint: "`every_weeks` is a key of visit tables" },
        Row { name: "missing key", line: 5, new: "", key: "trial.sponsor", at_line: 4, code: MissingKey, severity: E, message: "missing required key `sponsor`", hint: "add `sponsor` (a string) to `trial`" },
        Row { name: "missing timing-dependent key", line: 69, new: "", key: "reads.sd_min_days", at_line: 65, code: MissingKey, severity: E, message: "minimum days from baseline for stable disease", hint: "commonly 42" },
        Row { name: "no baseline", line: 36, new: "day = 1", key: "visits", at_line: 33, code: MissingKey, severity: E, message: "no baseline visit", hint: "baseline = true" },
        Row { name: "range without bounds", line: 59, new: "slice_thickness_mm = {}", key: "imaging[0].series[0].constraints.slice_thickness_mm", at_line: 59, code: MissingKey, severity: E, message: "a range needs `min`, `max` or both", hint: "{ max = 5.0 }" },
        Row { name: "wrong case of a word", line: 66, new: r#"criteria = ["recist1.1"]"#, key: "reads.criteria[0]", at_line: 66, code: InvalidValue, severity: E, message: "\"recist1.1\" is not a valid `criteria`", hint: "write it as \"RECIST1.1\"" },
        Row { name: "misspelt word", line: 8, new: r#"therapeutic_area = "oncolgy""#, key: "trial.therapeutic_area", at_line: 8, code: InvalidValue, severity: E, message: "expected one of \"oncology\", \"cardiology\", \"neurology\", \"other\"", hint: "did you mean \"oncology\"?" },
        Row { name: "integer out of range", line: 67, new: "readers_per_case = 3", key: "reads.readers_per_case", at_line: 67, code: InvalidValue, severity: E, message: "out of range 1..=2", hint: "from 1 to 2" },
        Row { name: "empty string", line: 7, new: r#"protocol_name = """#, key: "trial.protocol_name", at_line: 7, code: InvalidValue, severity: E, message: "`protocol_name` is empty", hint: "write a value" },
        Row { name: "unsupported format", line: 1, new: "format = 2", key: "format", at_line: 1, code: InvalidValue, severity: E, message: "charter format 2 is not supported", hint: "format = 1" },
        Row { name: "window ends before it starts", line: 45, new: "window = { minus_days = -10, plus_days = 3 }", key: "visits[1].window.plus_days", at_line: 45, code: WindowEndsBeforeStart, severity: E, message: "window ends before it starts: for day 56 it opens on day 66 and closes on day 59", hint: "plus_days must be at least 10" },
        Row { name: "repeat ends before it starts", line: 44, new: "until_week = 4", key: "visits[1].until_week", at_line: 44, code: WindowEndsBeforeStart, severity: E, message: "repeat ends at week 4, before it starts at week 8", hint: "week 8 or later" },
        Row { name: "follow-up day not after baseline", line: 47, new: "[[visits]]\nid = \"PRE\"\nlabel = \"Pre-screen\"\nday = -40\nwindow = { minus_days = 0, plus_days = 0 }\nimaging = [\"CT_CAP\"]\n", key: "visits[2].day", at_line: 50, code: InvalidValue, severity: E, message: "day -40 is not after baseline", hint: "start at 1" },
        Row { name: "repeat bounds without a repeat", line: 43, new: "day = 70", key: "visits[1].until_week", at_line: 44, code: Inconsistent, severity: E, message: "`until_week` only applies to a repeating visit", hint: "add every_weeks" },
        Row { name: "two timings", line: 43, new: "every_weeks = 8\nday = 10", key: "visits[1].every_weeks", at_line: 43, code: Inconsistent, severity: E, message: "this one has day and every_weeks", hint: "keep one of" },
        Row { name: "repeat without placeholder", line: 41, new: r#"id = "FU""#, key: "visits[1].id", at_line: 41, code: BadPattern, severity: E, message: "would be the same for every visit", hint: "W{week}" },
        Row { name: "unknown placeholder", line: 42, new: r#"label = "Week {wk}""#, key: "visits[1].label", at_line: 42, code: BadPattern, severity: E, message: "unknown placeholder {wk}", hint: "{week} and {day}" },
        Row { name: "unknown imaging requirement", line: 46, new: r#"imaging = ["CT_CAPP"]"#, key: "visits[1].imaging[0]", at_line: 46, code: UnknownReference, severity: E, message: "unknown imaging requirement \"CT_CAPP\"", hint: "did you mean \"CT_CAP\"?" },
        Row { name: "unknown series", line: 46, new: "imaging = [\"CT_CAP\"]\nseries = [\"MR_T1\"]", key: "visits[1].series[0]", at_line: 47, code: UnknownReference, severity: E, message: "unknown series \"MR_T1\"", hint: "defined series: CT_CAP_PV" },
        Row { name: "duplicate site ID", line: 21, new: r#"id = "101""#, key: "sites[1].id", at_line: 21, code: DuplicateId, severity: E, message: "site ID \"101\" is already used at sites[0].id", hint: "its own ID" },
        Row { name: "duplicate generated visit ID", line: 47, new: "[[visits]]\nid = \"W8\"\nlabel = \"Extra\"\nday = 400\nwindow = { minus_days = 0, plus_days = 0 }\nimaging = [\"CT_CAP\"]\n", key: "visits[2].id", at_line: 48, code: DuplicateId, severity: E, message: "visit ID \"W8\" (day 400) is already used by visits[1] (day 56)", hint: "its own ID" },
        Row { name: "AE title at two sites", line: 24, new: r#"ae_titles = ["s1_ct"]"#, key: "sites[1].ae_titles[0]", at_line: 24, code: DuplicateAeTitle, severity: E, message: "AE title \"s1_ct\" is already used by site 101 (sites[0].ae_titles[0])", hint: "own AE title" },
        Row { name: "AE title too long", line: 18, new: r#"ae_titles = ["THIS_AE_IS_TOO_LONG"]"#, key: "sites[0].ae_titles[0]", at_line: 18, code: InvalidValue, severity: E, message: "at most 16", hint: "1-16 printable ASCII" },
        Row { name: "AE title with backslash", line: 12, new: r#"called_ae_titles = ["ACME\\1"]"#, key: "dimse.called_ae_titles[0]", at_line: 12, code: InvalidValue, severity: E, message: "backslash", hint: "no backslash" },
        Row { name: "bad subject pattern", line: 27, new: r#"id_pattern = "{site}-{xx}""#, key: "subjects.id_pattern", at_line: 27, code: BadPattern, severity: E, message: "unknown placeholder {xx}", hint: "{site}-{nnn}" },
        Row { name: "bad country", line: 17, new: r#"country = "UK""#, key: "sites[0].country", at_line: 17, code: InvalidValue, severity: E, message: "\"UK\" is not an ISO 3166-1 alpha-2 country code", hint: "\"GB\"" },
        Row { name: "bad site ID", line: 15, new: r#"id = "1 01""#, key: "sites[0].id", at_line: 15, code: InvalidValue, severity: E, message: "site ID \"1 01\" contains ' '", hint: "letters, digits" },
        Row { name: "min above max", line: 59, new: "slice_thickness_mm = { min = 5.0, max = 3 }", key: "imaging[0].series[0].constraints.slice_thickness_mm.max", at_line: 59, code: MinAboveMax, severity: E, message: "slice_thickness_mm: min 5 is above max 3", hint: "swap the bounds" },
        Row { name: "negative bound", line: 59, new: "slice_thickness_mm = { min = -1.0 }", key: "imaging[0].series[0].constraints.slice_thickness_mm.min", at_line: 59, code: InvalidValue, severity: E, message: "slice_thickness_mm min -1 is negative", hint: "0 or more" },
        Row { name: "constraint of another modality", line: 59, new: "field_strength_t = { min = 1.5 }", key: "imaging[0].series[0].constraints.field_strength_t", at_line: 59, code: Inconsistent, severity: E, message: "`field_strength_t` does not apply to CT series", hint: "remove it" },
        Row { name: "contrast contradiction", line: 60, new: r#"contrast = { agent = "forbidden" }"#, key: "imaging[0].series[0].constraints.contrast.agent", at_line: 60, code: Inconsistent, severity: E, message: "identified as contrast-enhanced but contrast is forbidden", hint: "agree" },
        Row { name: "bad header pattern", line: 56, new: r#"identify = { series_description = ["**"] }"#, key: "imaging[0].series[0].identify.series_description[0]", at_line: 56, code: BadPattern, severity: E, message: "matches everything", hint: "globs" },
        Row { name: "adjudication with one reader", line: 67, new: "readers_per_case = 1", key: "reads.adjudication", at_line: 71, code: Inconsistent, severity: E, message: "adjudication needs two readers", hint: "readers_per_case = 2" },
        Row { name: "measure of other criteria", line: 69, new: "sd_min_days = 42\nmeasures = [\"lvef\"]", key: "reads.measures[0]", at_line: 70, code: Inconsistent, severity: E, message: "measure lvef belongs to LVEF reads", hint: "add \"LVEF\" to criteria" },
        Row { name: "shift without a maximum", line: 61, new: "\n[deidentification]\ndates = \"shift\"", key: "deidentification.max_shift_days", at_line: 62, code: InvalidValue, severity: E, message: "needs max_shift_days", hint: "365" },
        Row { name: "TOML syntax", line: 12, new: r#"called_ae_titles = ["ACME1]"#, key: "", at_line: 12, code: Syntax, severity: E, message: "TOML syntax: invalid basic string", hint: "fix the TOML syntax" },
        Row { name: "TOML duplicate key", line: 6, new: "protocol_id = \"ACME-1\"\nsponsor = \"Other\"", key: "", at_line: 7, code: Syntax, severity: E, message: "duplicate key", hint: "fix the TOML syntax" },
        Row { name: "criteria not fitting the area", line: 8, new: r#"therapeutic_area = "cardiology""#, key: "reads.criteria[0]", at_line: 66, code: CriteriaMismatch, severity: W, message: "RECIST1.1 does not fit the trial's therapeutic area (cardiology)", hint: "check" },
        Row { name: "overlapping windows", line: 45, new: "window = { minus_days = 30, plus_days = 30 }", key: "visits[1].window", at_line: 45, code: Inconsistent, severity: W, message: "windows of W8 (days 26..86) and W16 (days 82..142) overlap", hint: "narrow the windows" },
        Row { name: "dates kept for date-blinded readers", line: 61, new: "\n[deidentification]\ndates = \"keep\"", key: "deidentification.dates", at_line: 63, code: Inconsistent, severity: W, message: "readers are blinded to dates", hint: "\"shift\"" },
        Row { name: "AE title with surrounding spaces", line: 18, new: r#"ae_titles = [" S1_CT"]"#, key: "sites[0].ae_titles[0]", at_line: 18, code: InvalidValue, severity: W, message: "leading or trailing spaces", hint: "write \"S1_CT\"" },
        Row { name: "called AE title twice", line: 12, new: r#"called_ae_titles = ["ACME1", "acme1"]"#, key: "dimse.called_ae_titles[1]", at_line: 12, code: DuplicateAeTitle, severity: E, message: "listed twice", hint: "remove the duplicate" },
        Row { name: "no called AE title", line: 12, new: "called_ae_titles = []", key: "dimse.called_ae_titles", at_line: 12, code: InvalidValue, severity: E, message: "no called AE title", hint: "ACME101" },
        Row { name: "pattern without site", line: 27, new: r#"id_pattern = "S-{nnnn}""#, key: "subjects.id_pattern", at_line: 27, code: BadPattern, severity: W, message: "has no {site}", hint: "add {site}" },
        Row { name: "subject IDs too long", line: 27, new: r#"id_pattern = "{site}-{nnnnnnnnnnnn}-{nnnnnnnnnnnn}-{nnnnnnnnnnnn}-{nnnnnnnnnnnn}-{nnnnnnnnnnnn}""#, key: "subjects.id_pattern", at_line: 27, code: BadPattern, severity: E, message: "would have 68 characters", hint: "shorten" },
        Row { name: "value too long for DICOM LO", line: 7, new: "protocol_name = \"A protocol name that is much too long to fit into a DICOM LO element\"", key: "trial.protocol_name", at_line: 7, code: InvalidValue, severity: E, message: "DICOM allows at most 64", hint: "(0012,0021)" },
        Row { name: "day listed twice", line: 47, new: "[[visits]]\nid = \"D{day}\"\nlabel = \"Day {day}\"\ndays = [400, 400]\nwindow = { minus_days = 0, plus_days = 0 }\nimaging = [\"CT_CAP\"]\n", key: "visits[2].days[1]", at_line: 50, code: DuplicateId, severity: E, message: "day 400 is listed twice", hint: "remove the duplicate" },
        Row { name: "empty days list", line: 47, new: "[[visits]]\nid = \"D{day}\"\nlabel = \"Day {day}\"\ndays = []\nwindow = { minus_days = 0, plus_days = 0 }\nimaging = [\"CT_CAP\"]\n", key: "visits[2].days", at_line: 50, code: InvalidValue, severity: E, message: "`days` is empty", hint: "days = [42, 84]" },
        Row { name: "week placeholder on a non-week day", line: 47, new: "[[visits]]\nid = \"W{week}X\"\nlabel = \"Late\"\ndays = [400]\nwindow = { minus_days = 0, plus_days = 0 }\nimaging = [\"CT_CAP\"]\n", key: "visits[2].id", at_line: 48, code: BadPattern, severity: E, message: "{week} is used but day 400 is not a whole week", hint: "use {day}" },
        Row { name: "visit without timing", line: 36, new: "baseline = false", key: "visits[0]", at_line: 33, code: MissingKey, severity: E, message: "visit has no timing", hint: "baseline = true" },
        Row { name: "visit without imaging", line: 46, new: "imaging = []", key: "visits[1].imaging", at_line: 46, code: InvalidValue, severity: E, message: "visit expects no imaging", hint: "[[imaging]] requirement IDs" },
        Row { name: "imaging listed twice", line: 46, new: r#"imaging = ["CT_CAP", "CT_CAP"]"#, key: "visits[1].imaging[1]", at_line: 46, code: DuplicateId, severity: E, message: "listed twice", hint: "remove the duplicate" },
        Row { name: "one_of with one requirement", line: 46, new: "imaging = [\"CT_CAP\"]\nimaging_rule = \"one_of\"", key: "visits[1].imaging_rule", at_line: 47, code: Inconsistent, severity: W, message: "fewer than two imaging requirements", hint: "list the alternatives" },
        Row { name: "series identified alike", line: 61, new: "\n[[imaging.series]]\nid = \"CT_CAP_PV2\"\ndescription = \"copy\"\nidentify = { image_type = [\"ORIGINAL\", \"AXIAL\"], contrast = true }", key: "imaging[0].series[1].identify", at_line: 65, code: Inconsistent, severity: W, message: "is identified exactly like \"CT_CAP_PV\"", hint: "tells them apart" },
        Row { name: "duplicate series ID", line: 61, new: "\n[[imaging.series]]\nid = \"CT_CAP_PV\"\ndescription = \"plain\"\nidentify = { contrast = false }", key: "imaging[0].series[1].id", at_line: 63, code: DuplicateId, severity: E, message: "series ID \"CT_CAP_PV\" is already used at imaging[0].series[0].id", hint: "its own ID" },
        Row { name: "imaging requirement at no visit", line: 61, new: "\n[[imaging]]\nid = \"MR_BRAIN\"\nmodality = \"MR\"\nbody_region = \"brain\"\n[[imaging.series]]\nid = \"T1\"\ndescription = \"t1\"\nidentify = { contrast = false }", key: "imaging[1].id", at_line: 63, code: Inconsistent, severity: W, message: "\"MR_BRAIN\" is not expected at any visit", hint: "add it to a visit" },
        Row { name: "body part not a code string", line: 51, new: "body_region = \"cap\"\nbody_part_examined = [\"chest\"]", key: "imaging[0].body_part_examined[0]", at_line: 52, code: InvalidValue, severity: E, message: "upper case letters", hint: "(0018,0015)" },
        Row { name: "image type not a code string", line: 56, new: r#"identify = { image_type = ["original"], contrast = true }"#, key: "imaging[0].series[0].identify.image_type[0]", at_line: 56, code: InvalidValue, severity: E, message: "upper case letters", hint: "(0008,0008)" },
        Row { name: "series with no identification", line: 56, new: "identify = {}", key: "imaging[0].series[0].identify", at_line: 56, code: InvalidValue, severity: E, message: "has no way to be recognised", hint: "series_description" },
        Row { name: "descriptions removed by de-identification", line: 56, new: r#"identify = { series_description = ["*PV*"], contrast = true }"#, key: "imaging[0].series[0].identify.series_description", at_line: 56, code: Inconsistent, severity: W, message: "removes Series Description (0008,103E)", hint: "clean_descriptors = true" },
        Row { name: "negative baseline tolerance", line: 59, new: "slice_thickness_mm = { max = 5.0 }\nbaseline_tolerance = { kvp = -5 }", key: "imaging[0].series[0].constraints.baseline_tolerance.kvp", at_line: 60, code: InvalidValue, severity: E, message: "tolerance -5 is negative", hint: "0 or more" },
        Row { name: "same scanner without device identity", line: 59, new: "slice_thickness_mm = { max = 5.0 }\nsame_scanner_as_baseline = true", key: "imaging[0].series[0].constraints.same_scanner_as_baseline", at_line: 60, code: Inconsistent, severity: W, message: "removes Device Serial Number", hint: "retain_device_identity = true" },
        Row { name: "shift days without shifting", line: 61, new: "\n[deidentification]\nmax_shift_days = 30", key: "deidentification.max_shift_days", at_line: 63, code: Inconsistent, severity: W, message: "no effect unless dates = \"shift\"", hint: "remove it" },
        Row { name: "safe private tag outside a private group", line: 61, new: "\n[deidentification]\nretain_safe_private = true\nsafe_private = [{ creator = \"X\", group = 0x0010, element = 0x10 }]", key: "deidentification.safe_private[0].group", at_line: 64, code: InvalidValue, severity: E, message: "group 0x0010 is not a private group", hint: "odd numbers" },
        Row { name: "pixel mask region outside the image", line: 61, new: "\n[[deidentification.pixel_masks]]\nmanufacturer = \"X\"\nrows = 10\ncolumns = 10\nregions = [{ x = 5, y = 0, width = 10, height = 2 }]", key: "deidentification.pixel_masks[0].regions[0]", at_line: 66, code: InvalidValue, severity: E, message: "outside the 10x10 image", hint: "x + width <= columns" },
        Row { name: "confirmation window too short", line: 69, new: "sd_min_days = 42\nconfirmation_required = true\nconfirmation_min_days = 21", key: "reads.confirmation_min_days", at_line: 71, code: InvalidValue, severity: W, message: "shorter than the 4 weeks", hint: "28 or more" },
        Row { name: "confirmation days without confirmation", line: 69, new: "sd_min_days = 42\nconfirmation_min_days = 28", key: "reads.confirmation_min_days", at_line: 70, code: Inconsistent, severity: W, message: "no effect unless confirmation_required = true", hint: "remove it" },
        Row { name: "trigger listed twice", line: 72, new: r#"triggers = ["progression_date", "progression_date"]"#, key: "reads.adjudication.triggers[1]", at_line: 72, code: DuplicateId, severity: E, message: "progression_date is listed twice", hint: "remove the duplicate" },
        Row { name: "EF tolerance on RECIST reads", line: 73, new: "choice = \"per_subject\"\nef_tolerance_points = 5.0", key: "reads.adjudication.ef_tolerance_points", at_line: 74, code: Inconsistent, severity: W, message: "only used by LVEF reads", hint: "remove it" },
        Row { name: "EF tolerance of zero", line: 73, new: "choice = \"per_subject\"\nef_tolerance_points = 0", key: "reads.adjudication.ef_tolerance_points", at_line: 74, code: InvalidValue, severity: E, message: "must be above 0 and at most 50", hint: "e.g. 5.0" },
        Row { name: "EF tolerance with two decimals", line: 73, new: "choice = \"per_subject\"\nef_tolerance_points = 5.25", key: "reads.adjudication.ef_tolerance_points", at_line: 74, code: InvalidValue, severity: E, message: "one decimal, got 5.25", hint: "percentage points" },
        Row { name: "no trigger", line: 72, new: "triggers = []", key: "reads.adjudication.triggers", at_line: 72, code: InvalidValue, severity: E, message: "no adjudication trigger", hint: "progression_date" },
        Row { name: "criteria listed twice", line: 66, new: r#"criteria = ["RECIST1.1", "RECIST1.1"]"#, key: "reads.criteria[1]", at_line: 66, code: DuplicateId, severity: E, message: "RECIST1.1 is listed twice", hint: "remove the duplicate" },
        Row { name: "readers qualified in another area", line: 76, new: "training_current = true\ntherapeutic_area = \"neurology\"", key: "reads.reader_qualifications.therapeutic_area", at_line: 77, code: Inconsistent, severity: W, message: "qualified in neurology, but the trial is oncology", hint: "check" },
        Row { name: "readers not qualified in the criteria", line: 76, new: "training_current = true\ncriteria = [\"iRECIST\"]", key: "reads.reader_qualifications.criteria", at_line: 77, code: Inconsistent, severity: W, message: "not required to be qualified in RECIST1.1", hint: "add \"RECIST1.1\"" },
        Row { name: "training not required", line: 76, new: "training_current = false", key: "reads.reader_qualifications.training_current", at_line: 76, code: Inconsistent, severity: W, message: "not required to hold current training", hint: "training_current = true" },
    ];
    for row in &rows {
        check(row);
    }
}

#[test]
fn two_readers_without_adjudication_is_a_warning() {
    let lines: Vec<&str> = BASE.lines().collect();
    // Drop the [reads.adjudication] table (lines 71-73).
    let text = [&lines[..70], &lines[73..]].concat().join("\n");
    let check = check_charter(&text);
    assert_eq!(check.problems.len(), 1, "{:?}", check.problems);
    let p = &check.problems[0];
    assert_eq!((p.key.as_str(), p.line, p.severity), ("reads.readers_per_case", 67, Severity::Warning));
    assert!(p.message.contains("two readers per case without adjudication"));
    assert!(check.charter.is_some(), "warnings do not withhold the charter");
    assert!(parse_charter(&text).is_ok());
}

#[test]
fn parse_charter_returns_warnings_with_errors() {
    // A warning (criteria vs area) and an error (unknown key) together: both are returned.
    let text =
        edit(8, r#"therapeutic_area = "neurology""#).replace("sd_min_days = 42", "sd_min_days = 42\nsd_days = 1");
    let problems = parse_charter(&text).err().unwrap_or_default();
    let summary: Vec<(Severity, &str)> = problems.iter().map(|p| (p.severity, p.key.as_str())).collect();
    assert_eq!(summary, [(Severity::Warning, "reads.criteria[0]"), (Severity::Error, "reads.sd_days")]);
}

#[test]
fn a_broken_section_does_not_cascade() {
    // The imaging requirement's ID has the wrong type: the visits that refer to "CT_CAP" are not
    // reported as unknown references, only the type error is.
    let text = edit(49, "id = 7");
    let problems = parse_charter(&text).err().unwrap_or_default();
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["imaging[0].id"]);
    // A missing section is one problem, not one per key it should have held.
    let lines: Vec<&str> = BASE.lines().collect();
    let text = [&lines[..3], &lines[9..]].concat().join("\n");
    let problems = parse_charter(&text).err().unwrap_or_default();
    let keys: Vec<(&str, u32, u32)> = problems.iter().map(|p| (p.key.as_str(), p.line, p.column)).collect();
    assert_eq!(keys, [("trial", 1, 1)]);
    assert_eq!(problems[0].message, "missing required key `trial`");
}

#[test]
fn settings_that_only_fit_recist_are_reported_for_other_criteria() {
    // LVEF reads keep the RECIST-only settings of BASE: the SD minimum (warning) and a
    // progression-date trigger (error). LVEF fits an oncology trial (cardio-oncology).
    let text = edit(66, r#"criteria = ["LVEF"]"#);
    let problems = check_charter(&text).problems;
    let got: Vec<(&str, Severity, ProblemCode)> =
        problems.iter().map(|p| (p.key.as_str(), p.severity, p.code)).collect();
    assert_eq!(
        got,
        [
            ("reads.sd_min_days", Severity::Warning, ProblemCode::Inconsistent),
            ("reads.adjudication.triggers[0]", Severity::Error, ProblemCode::Inconsistent),
        ]
    );
    assert!(problems[1].message.contains("progression_date needs RECIST1.1 or iRECIST"));

    // MS reads in an oncology trial: criteria warning, SD minimum warning, trigger error, and
    // the missing MS measures.
    let text = edit(66, r#"criteria = ["MS"]"#).replace("sd_min_days = 42\n", "");
    let problems = check_charter(&text).problems;
    let got: Vec<(&str, Severity)> = problems.iter().map(|p| (p.key.as_str(), p.severity)).collect();
    assert_eq!(
        got,
        [
            ("reads.measures", Severity::Error),
            ("reads.criteria[0]", Severity::Warning),
            ("reads.adjudication.triggers[0]", Severity::Error),
        ]
    );
    assert_eq!(problems[0].message, "MS reads need the measures to read");
    // Confirmation is a RECIST setting too.
    let text = edit(69, "confirmation_required = true")
        .replace("criteria = [\"RECIST1.1\"]", "criteria = [\"LVEF\"]")
        .replace("triggers = [\"progression_date\"]", "triggers = [\"any_timepoint\"]");
    let problems = check_charter(&text).problems;
    let got: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(got, ["reads.confirmation_required"]);
}
