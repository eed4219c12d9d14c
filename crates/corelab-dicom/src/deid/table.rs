//! DICOM PS3.15 Table E.1-1 as data: parsed once from the embedded TSV file.
//!
//! The file is the standard (one row per row of the table, edition [`TABLE_EDITION`]); what corelab
//! does with each code lives in `engine.rs`.

use std::collections::HashMap;
use std::sync::OnceLock;

use dicom_core::Tag;

/// Edition of PS3.15 the embedded table was transcribed from.
pub const TABLE_EDITION: &str = "2024b";

const TABLE_TSV: &str = include_str!("../../data/ps3.15-table-e.1-1-2024b.tsv");

/// A single action code of Table E.1-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Code {
    /// D: replace with a non-zero length dummy value.
    D,
    /// Z: replace with a zero length value (or dummy).
    Z,
    /// X: remove.
    X,
    /// K: keep (sequences are still processed recursively).
    K,
    /// C: clean (replace with values of similar meaning, no identity).
    C,
    /// U: replace with a non-zero length UID, consistent within the set.
    U,
    /// U* of X/Z/U*: keep the sequence, replacing the UIDs inside it.
    UStar,
}

/// A basic-profile action: one code or a combined code ("first action unless the IOD type requires a
/// later one").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BasicAction(Vec<Code>);

impl BasicAction {
    pub fn codes(&self) -> &[Code] {
        &self.0
    }

    /// The code as written in the table, e.g. "X/Z/D".
    pub fn as_text(&self) -> String {
        self.0.iter().map(|c| code_text(*c)).collect::<Vec<_>>().join("/")
    }

    fn parse(s: &str) -> Option<BasicAction> {
        let codes: Option<Vec<Code>> = s.split('/').map(parse_code).collect();
        let codes = codes?;
        let allowed: &[&[Code]] = &[
            &[Code::D],
            &[Code::Z],
            &[Code::X],
            &[Code::K],
            &[Code::C],
            &[Code::U],
            &[Code::Z, Code::D],
            &[Code::X, Code::Z],
            &[Code::X, Code::D],
            &[Code::X, Code::Z, Code::D],
            &[Code::X, Code::Z, Code::UStar],
        ];
        allowed.contains(&codes.as_slice()).then_some(BasicAction(codes))
    }
}

pub fn code_text(c: Code) -> &'static str {
    match c {
        Code::D => "D",
        Code::Z => "Z",
        Code::X => "X",
        Code::K => "K",
        Code::C => "C",
        Code::U => "U",
        Code::UStar => "U*",
    }
}

fn parse_code(s: &str) -> Option<Code> {
    Some(match s {
        "D" => Code::D,
        "Z" => Code::Z,
        "X" => Code::X,
        "K" => Code::K,
        "C" => Code::C,
        "U" => Code::U,
        "U*" => Code::UStar,
        _ => return None,
    })
}

/// The option columns of Table E.1-1, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum OptionColumn {
    RetainLongFullDates,
    RetainLongModifDates,
    RetainPatientCharacteristics,
    RetainDeviceIdentity,
    RetainInstitutionIdentity,
    RetainUids,
    CleanDescriptors,
    CleanStructuredContent,
    CleanGraphics,
    RetainSafePrivate,
}

pub const OPTION_COLUMNS: [OptionColumn; 10] = [
    OptionColumn::RetainLongFullDates,
    OptionColumn::RetainLongModifDates,
    OptionColumn::RetainPatientCharacteristics,
    OptionColumn::RetainDeviceIdentity,
    OptionColumn::RetainInstitutionIdentity,
    OptionColumn::RetainUids,
    OptionColumn::CleanDescriptors,
    OptionColumn::CleanStructuredContent,
    OptionColumn::CleanGraphics,
    OptionColumn::RetainSafePrivate,
];

/// A tag or tag pattern of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagPattern {
    Exact(Tag),
    /// (50xx,xxxx): every element of the repeating curve groups 5000-501E (even).
    CurveGroup,
    /// (60xx,eeee): element eeee of the repeating overlay groups 6000-601E (even).
    OverlayElement(u16),
    /// (gggg,eeee) where gggg is odd.
    Private,
}

impl TagPattern {
    fn parse(s: &str) -> Option<TagPattern> {
        let inner = s.strip_prefix('(')?.strip_suffix(')')?;
        let (g, e) = inner.split_once(',')?;
        if g.len() != 4 || e.len() != 4 {
            return None;
        }
        match (g, e) {
            ("gggg", "eeee") => Some(TagPattern::Private),
            ("50xx", "xxxx") => Some(TagPattern::CurveGroup),
            ("60xx", e) => u16::from_str_radix(e, 16).ok().map(TagPattern::OverlayElement),
            (g, e) => {
                let g = u16::from_str_radix(g, 16).ok()?;
                let e = u16::from_str_radix(e, 16).ok()?;
                Some(TagPattern::Exact(Tag(g, e)))
            }
        }
    }
}

/// One row of Table E.1-1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub pattern: TagPattern,
    pub keyword: String,
    pub vr: String,
    pub in_std_iod: bool,
    pub basic: BasicAction,
    /// Option column codes, indexed like [`OPTION_COLUMNS`].
    pub options: [Option<Code>; 10],
}

impl Row {
    pub fn exact_tag(&self) -> Option<Tag> {
        match self.pattern {
            TagPattern::Exact(t) => Some(t),
            _ => None,
        }
    }

    pub fn option(&self, col: OptionColumn) -> Option<Code> {
        let i = OPTION_COLUMNS.iter().position(|c| *c == col)?;
        self.options.get(i).copied().flatten()
    }
}

/// The parsed table with lookups by tag.
#[derive(Debug)]
pub struct Table {
    rows: Vec<Row>,
    exact: HashMap<Tag, usize>,
    overlay: HashMap<u16, usize>,
    curve: Option<usize>,
    private: Option<usize>,
}

/// A problem in the embedded table file (a test makes sure there is none).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Table E.1-1 data file, line {line}: {problem}")]
pub struct TableError {
    pub line: usize,
    pub problem: String,
}

impl Table {
    /// Parses a table in the TSV layout of the embedded file.
    pub fn parse(text: &str) -> Result<Table, TableError> {
        let mut rows = Vec::new();
        let mut exact = HashMap::new();
        let mut overlay = HashMap::new();
        let mut curve = None;
        let mut private = None;
        let mut seen_header = false;
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let err = |problem: String| TableError { line: line_no, problem };
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if !seen_header {
                if !line.starts_with("tag\tkeyword\t") {
                    return Err(err("expected the column header line".into()));
                }
                seen_header = true;
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() != 16 {
                return Err(err(format!("expected 16 columns, found {}", cols.len())));
            }
            let pattern = TagPattern::parse(cols[0]).ok_or_else(|| err(format!("bad tag {:?}", cols[0])))?;
            let basic = BasicAction::parse(cols[4]).ok_or_else(|| err(format!("bad basic action {:?}", cols[4])))?;
            let in_std_iod = match cols[3] {
                "Y" => true,
                "N" => false,
                other => return Err(err(format!("bad in_std_iod {other:?}"))),
            };
            let mut options = [None; 10];
            for (k, slot) in options.iter_mut().enumerate() {
                let cell = cols[5 + k];
                *slot = match cell {
                    "-" => None,
                    "K" => Some(Code::K),
                    "C" => Some(Code::C),
                    "X" => Some(Code::X),
                    other => return Err(err(format!("bad option code {other:?}"))),
                };
            }
            if cols[1].is_empty() || cols[15].is_empty() {
                return Err(err("empty keyword or name".into()));
            }
            let idx = rows.len();
            let dup = match pattern {
                TagPattern::Exact(t) => exact.insert(t, idx).is_some(),
                TagPattern::OverlayElement(e) => overlay.insert(e, idx).is_some(),
                TagPattern::CurveGroup => curve.replace(idx).is_some(),
                TagPattern::Private => private.replace(idx).is_some(),
            };
            if dup {
                return Err(err(format!("duplicate tag {}", cols[0])));
            }
            rows.push(Row {
                pattern,
                keyword: cols[1].to_string(),
                vr: cols[2].to_string(),
                in_std_iod,
                basic,
                options,
            });
        }
        if !seen_header {
            return Err(TableError { line: 0, problem: "no header line".into() });
        }
        Ok(Table { rows, exact, overlay, curve, private })
    }

    /// The embedded 2024b table, parsed once.
    pub fn standard() -> Result<&'static Table, TableError> {
        static TABLE: OnceLock<Result<Table, TableError>> = OnceLock::new();
        TABLE.get_or_init(|| Table::parse(TABLE_TSV)).as_ref().map_err(Clone::clone)
    }

    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The row for a (standard, even-group) tag, if the table lists it.
    pub fn lookup(&self, tag: Tag) -> Option<&Row> {
        let Tag(g, e) = tag;
        if g % 2 == 1 {
            return self.private.and_then(|i| self.rows.get(i));
        }
        if let Some(i) = self.exact.get(&tag) {
            return self.rows.get(*i);
        }
        if (0x5000..=0x501E).contains(&g) {
            return self.curve.and_then(|i| self.rows.get(i));
        }
        if (0x6000..=0x601E).contains(&g) {
            return self.overlay.get(&e).and_then(|i| self.rows.get(*i));
        }
        None
    }

    /// The row of private attributes.
    pub fn private_row(&self) -> Option<&Row> {
        self.private.and_then(|i| self.rows.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::dictionary::DataDictionary;
    use dicom_dictionary_std::StandardDataDictionary;
    use std::collections::HashSet;

    #[test]
    fn every_row_parses_and_no_duplicates() {
        let t = Table::standard().expect("embedded table parses");
        // 2024b lists 621 rows.
        assert_eq!(t.rows().len(), 621);
        let mut seen = HashSet::new();
        for r in t.rows() {
            assert!(seen.insert(r.pattern), "duplicate {:?}", r.pattern);
        }
        let data_lines = TABLE_TSV
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("tag\t") && !l.trim().is_empty())
            .count();
        assert_eq!(data_lines, t.rows().len());
    }

    #[test]
    fn keywords_agree_with_the_dictionary() {
        let t = Table::standard().unwrap();
        let dict = StandardDataDictionary;
        let mut checked = 0;
        for r in t.rows() {
            if let (TagPattern::Exact(tag), Some(entry)) = (r.pattern, r.exact_tag().and_then(|t| dict.by_tag(t))) {
                assert_eq!(entry.alias, r.keyword, "keyword of {tag}");
                checked += 1;
            }
        }
        assert!(checked > 550, "only {checked} rows checked against the dictionary");
    }

    #[test]
    fn known_rows_have_the_2024b_codes() {
        let t = Table::standard().unwrap();
        let row = |g, e| t.lookup(Tag(g, e)).unwrap();
        assert_eq!(row(0x0010, 0x0010).basic.as_text(), "Z");
        assert_eq!(row(0x0010, 0x0020).basic.as_text(), "Z/D");
        assert_eq!(row(0x0008, 0x1140).basic.as_text(), "X/Z/U*");
        assert_eq!(row(0x0020, 0x000D).basic.as_text(), "U");
        assert_eq!(row(0x0008, 0x0080).option(OptionColumn::RetainInstitutionIdentity), Some(Code::K));
        assert_eq!(row(0x0008, 0x0020).option(OptionColumn::RetainLongModifDates), Some(Code::C));
        assert_eq!(row(0x0008, 0x103E).option(OptionColumn::CleanDescriptors), Some(Code::C));
        assert_eq!(row(0x0002, 0x0003).basic.as_text(), "U");
        assert_eq!(row(0xFFFA, 0xFFFA).basic.as_text(), "X");
        // patterns
        assert_eq!(t.lookup(Tag(0x6002, 0x3000)).unwrap().keyword, "OverlayData");
        assert_eq!(t.lookup(Tag(0x5004, 0x0010)).unwrap().keyword, "CurveData");
        assert!(t.lookup(Tag(0x6002, 0x0010)).is_none(), "overlay rows are kept");
        assert_eq!(t.lookup(Tag(0x0009, 0x1001)).unwrap().option(OptionColumn::RetainSafePrivate), Some(Code::C));
        // not listed: kept
        assert!(t.lookup(Tag(0x0008, 0x0060)).is_none());
        assert!(t.lookup(Tag(0x0008, 0x0016)).is_none());
    }

    #[test]
    fn bad_rows_are_refused() {
        let head = "tag\tkeyword\tvr\tin_std_iod\tbasic\ta\tb\tc\td\te\tf\tg\th\ti\tj\tname\n";
        let ok = "(0010,0010)\tPatientName\tPN\tY\tZ\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\tPatient's Name\n";
        assert!(Table::parse(&format!("{head}{ok}")).is_ok());
        assert!(Table::parse(&format!("{head}{ok}{ok}")).unwrap_err().problem.contains("duplicate"));
        let bad_code = ok.replace("\tZ\t", "\tQ\t");
        assert!(Table::parse(&format!("{head}{bad_code}")).is_err());
        let bad_combo = ok.replace("\tZ\t", "\tD/X\t");
        assert!(Table::parse(&format!("{head}{bad_combo}")).is_err());
        let bad_tag = ok.replace("(0010,0010)", "(0010,001G)");
        assert!(Table::parse(&format!("{head}{bad_tag}")).is_err());
        assert!(Table::parse(ok).is_err(), "no header");
    }
}
