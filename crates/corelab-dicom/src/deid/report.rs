//! The per-instance de-identification report: tags, keywords, actions, counts and flags, never values.

use std::collections::BTreeMap;

use dicom_core::Tag;
use serde::Serialize;

/// What happened to an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Removed (X, private, group length, padding, a removed overlay's group).
    Removed,
    /// Emptied (Z): present with a zero-length value or an empty sequence.
    Emptied,
    /// Replaced by a dummy value of its VR (D).
    Dummy,
    /// UIDs replaced by their de-identified UIDs (U).
    UidRemapped,
    /// Dates moved by the subject's offset (Modified Dates option).
    DateShifted,
    /// Kept because an option (or the descriptor allow-list, or the safe-private list) says so.
    KeptByOption,
    /// Kept as a sequence whose content was processed (K, U*).
    SequenceProcessed,
    /// Set by corelab: pseudonyms, clinical trial attributes, de-identification marking.
    Written,
    /// Pixel regions blanked by a charter mask.
    Masked,
}

/// One line of the report: an attribute, what happened to it, why, and how many times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportEntry {
    /// "(gggg,eeee)".
    pub tag: String,
    /// Dictionary keyword, "(private)" or "" when unknown.
    pub keyword: String,
    /// True when this occurred inside a sequence item.
    pub nested: bool,
    pub outcome: Outcome,
    /// Why: "basic X", "basic X/Z/D as Z (IOD type 2)", "option RetainDeviceIdentity: K", ...
    pub rule: String,
    pub count: u32,
}

/// Something QC must look at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "flag", rename_all = "snake_case")]
pub enum QcFlag {
    /// Burned In Annotation (0028,0301) = YES.
    BurnedInAnnotationYes,
    /// Burned In Annotation absent on an instance of a kind known to carry text in its pixels.
    BurnedInAnnotationUnknown { reason: String },
    /// A charter pixel mask matched the instance but could not be applied (e.g. compressed data).
    PixelMaskNotApplied { reason: String },
}

/// The report for one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeidReport {
    /// PS3.15 edition of the attribute table used.
    pub table_edition: String,
    /// Transfer syntax UID of input and output (a standard UID).
    pub transfer_syntax: String,
    pub entries: Vec<ReportEntry>,
    pub removed: u32,
    pub emptied: u32,
    pub dummies: u32,
    pub uids_remapped: u32,
    pub dates_shifted: u32,
    pub kept_by_option: u32,
    pub written: u32,
    pub flags: Vec<QcFlag>,
    /// Number of mask rectangles applied (per frame) and frames masked.
    pub masked_regions: u32,
    pub masked_frames: u32,
    /// CID 7050 codes written to De-identification Method Code Sequence (0012,0064).
    pub method_codes: Vec<String>,
}

impl DeidReport {
    /// Count of entries with this outcome for this tag (all nesting levels).
    pub fn count(&self, tag: Tag, outcome: Outcome) -> u32 {
        let t = tag_text(tag);
        self.entries.iter().filter(|e| e.tag == t && e.outcome == outcome).map(|e| e.count).sum()
    }
}

/// "(gggg,eeee)", upper-case hex. Written by hand: it runs for every report entry of every
/// instance, and `format!` was a tenth of the CPU of de-identifying a small file.
pub(crate) fn tag_text(tag: Tag) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut b = *b"(0000,0000)";
    for (at, v) in [(1, tag.group()), (6, tag.element())] {
        for i in 0..4 {
            b[at + i] = HEX[usize::from((v >> (12 - 4 * i)) & 0xF)];
        }
    }
    b.iter().map(|&c| char::from(c)).collect()
}

#[derive(Debug, Default)]
pub(crate) struct ReportBuilder {
    entries: BTreeMap<(Tag, bool, Outcome, String), u32>,
    pub flags: Vec<QcFlag>,
    pub masked_regions: u32,
    pub masked_frames: u32,
    pub method_codes: Vec<String>,
}

impl ReportBuilder {
    pub fn add(&mut self, tag: Tag, nested: bool, outcome: Outcome, rule: impl Into<String>) {
        *self.entries.entry((tag, nested, outcome, rule.into())).or_insert(0) += 1;
    }

    pub fn build(self, transfer_syntax: &str) -> DeidReport {
        use dicom_core::dictionary::DataDictionary;
        let dict = dicom_dictionary_std::StandardDataDictionary;
        let mut r = DeidReport {
            table_edition: super::table::TABLE_EDITION.to_string(),
            transfer_syntax: super::uid::trim_uid(transfer_syntax).to_string(),
            entries: Vec::with_capacity(self.entries.len()),
            removed: 0,
            emptied: 0,
            dummies: 0,
            uids_remapped: 0,
            dates_shifted: 0,
            kept_by_option: 0,
            written: 0,
            flags: self.flags,
            masked_regions: self.masked_regions,
            masked_frames: self.masked_frames,
            method_codes: self.method_codes,
        };
        r.flags.sort();
        r.flags.dedup();
        for ((tag, nested, outcome, rule), count) in self.entries {
            let keyword = if tag.group() % 2 == 1 {
                "(private)".to_string()
            } else {
                dict.by_tag(tag).map(|e| e.alias.to_string()).unwrap_or_default()
            };
            let slot = match outcome {
                Outcome::Removed => Some(&mut r.removed),
                Outcome::Emptied => Some(&mut r.emptied),
                Outcome::Dummy => Some(&mut r.dummies),
                Outcome::UidRemapped => Some(&mut r.uids_remapped),
                Outcome::DateShifted => Some(&mut r.dates_shifted),
                Outcome::KeptByOption => Some(&mut r.kept_by_option),
                Outcome::Written => Some(&mut r.written),
                Outcome::SequenceProcessed | Outcome::Masked => None,
            };
            if let Some(s) = slot {
                *s += count;
            }
            r.entries.push(ReportEntry { tag: tag_text(tag), keyword, nested, outcome, rule, count });
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_text_is_upper_case_hex_in_parentheses() {
        for (tag, text) in [
            (Tag(0x0010, 0x0010), "(0010,0010)"),
            (Tag(0x7FE0, 0x0010), "(7FE0,0010)"),
            (Tag(0xABCD, 0xEF01), "(ABCD,EF01)"),
            (Tag(0xFFFE, 0xE000), "(FFFE,E000)"),
            (Tag(0x0009, 0x10A0), "(0009,10A0)"),
        ] {
            assert_eq!(tag_text(tag), text);
            assert_eq!(tag_text(tag), format!("({:04X},{:04X})", tag.group(), tag.element()));
        }
    }
}
