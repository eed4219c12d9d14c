//! Which of the combined action codes (Z/D, X/Z, X/D, X/Z/D, X/Z/U*) to use.
//!
//! PS3.15 says: use the first action unless the IOD type of the attribute requires a later one (type 3:
//! may remove; type 2: must be present, may be empty; type 1: must have a value). This file holds a
//! small table, transcribed by hand from the PS3.3 (2024b) module tables of the IODs corelab sees
//! most, of the type of the attributes that carry a combined code in Table E.1-1, at the top level of
//! the data set. Conditional types count as their base type (1C as 1, 2C as 2): the conservative
//! reading. For an IOD in the list, an attribute not in its list is type 3. For an IOD not in the list,
//! and for every attribute inside a sequence item (where the type depends on the macro), the type is
//! unknown and the last, non-removing variant is used (D, or U* for X/Z/U*), which is valid whatever
//! the type is.

use dicom_core::Tag;

use super::table::Code;

/// Attribute type of an IOD (PS3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    T1,
    T2,
    T3,
}

const CONTENT_DATE: Tag = Tag(0x0008, 0x0023);
const CONTENT_TIME: Tag = Tag(0x0008, 0x0033);
const PATIENT_ID: Tag = Tag(0x0010, 0x0020);
const CONTRAST_AGENT: Tag = Tag(0x0018, 0x0010);
const SERIES_DATE: Tag = Tag(0x0008, 0x0021);
const SERIES_TIME: Tag = Tag(0x0008, 0x0031);
const ACQ_DATE: Tag = Tag(0x0008, 0x0022);
const ACQ_TIME: Tag = Tag(0x0008, 0x0032);
const ACQ_DATETIME: Tag = Tag(0x0008, 0x002A);
const DEVICE_SERIAL: Tag = Tag(0x0018, 0x1000);

/// Single-frame and classic image IODs: General Study/Patient/General Image (+Contrast/Bolus).
const CLASSIC_IMAGE: &[(Tag, AttrType)] = &[
    (PATIENT_ID, AttrType::T2),
    (CONTENT_DATE, AttrType::T2),
    (CONTENT_TIME, AttrType::T2),
    (CONTRAST_AGENT, AttrType::T2),
];

/// PET Image: PET Series has Series Date/Time type 1; PET Image has Acquisition Date/Time type 2.
const PET_IMAGE: &[(Tag, AttrType)] = &[
    (PATIENT_ID, AttrType::T2),
    (CONTENT_DATE, AttrType::T2),
    (CONTENT_TIME, AttrType::T2),
    (CONTRAST_AGENT, AttrType::T2),
    (SERIES_DATE, AttrType::T1),
    (SERIES_TIME, AttrType::T1),
    (ACQ_DATE, AttrType::T2),
    (ACQ_TIME, AttrType::T2),
];

/// Enhanced multi-frame IODs: Multi-frame Functional Groups (Content Date/Time type 1), Enhanced
/// General Equipment (Device Serial Number type 1), Acquisition DateTime 1C.
const ENHANCED_IMAGE: &[(Tag, AttrType)] = &[
    (PATIENT_ID, AttrType::T2),
    (CONTENT_DATE, AttrType::T1),
    (CONTENT_TIME, AttrType::T1),
    (ACQ_DATETIME, AttrType::T1),
    (DEVICE_SERIAL, AttrType::T1),
    (CONTRAST_AGENT, AttrType::T2),
];

/// SOP classes whose IOD types are known here.
const IODS: &[(&str, &[(Tag, AttrType)])] = &[
    ("1.2.840.10008.5.1.4.1.1.1", CLASSIC_IMAGE),       // CR
    ("1.2.840.10008.5.1.4.1.1.1.1", CLASSIC_IMAGE),     // DX for presentation
    ("1.2.840.10008.5.1.4.1.1.1.1.1", CLASSIC_IMAGE),   // DX for processing
    ("1.2.840.10008.5.1.4.1.1.1.2", CLASSIC_IMAGE),     // MG for presentation
    ("1.2.840.10008.5.1.4.1.1.1.2.1", CLASSIC_IMAGE),   // MG for processing
    ("1.2.840.10008.5.1.4.1.1.2", CLASSIC_IMAGE),       // CT
    ("1.2.840.10008.5.1.4.1.1.2.1", ENHANCED_IMAGE),    // Enhanced CT
    ("1.2.840.10008.5.1.4.1.1.3.1", CLASSIC_IMAGE),     // US multi-frame
    ("1.2.840.10008.5.1.4.1.1.4", CLASSIC_IMAGE),       // MR
    ("1.2.840.10008.5.1.4.1.1.4.1", ENHANCED_IMAGE),    // Enhanced MR
    ("1.2.840.10008.5.1.4.1.1.6.1", CLASSIC_IMAGE),     // US
    ("1.2.840.10008.5.1.4.1.1.7", CLASSIC_IMAGE),       // Secondary Capture
    ("1.2.840.10008.5.1.4.1.1.12.1", CLASSIC_IMAGE),    // XA
    ("1.2.840.10008.5.1.4.1.1.12.1.1", ENHANCED_IMAGE), // Enhanced XA
    ("1.2.840.10008.5.1.4.1.1.12.2", CLASSIC_IMAGE),    // RF
    ("1.2.840.10008.5.1.4.1.1.20", CLASSIC_IMAGE),      // NM
    ("1.2.840.10008.5.1.4.1.1.128", PET_IMAGE),         // PET
    ("1.2.840.10008.5.1.4.1.1.130", ENHANCED_IMAGE),    // Enhanced PET
];

/// The type tables that apply to one instance (by its SOP Class UID).
#[derive(Debug, Clone, Copy)]
pub struct IodTypes {
    known: Option<&'static [(Tag, AttrType)]>,
}

impl IodTypes {
    pub fn for_sop_class(sop_class: Option<&str>) -> IodTypes {
        let known = sop_class.and_then(|uid| {
            let uid = super::uid::trim_uid(uid);
            IODS.iter().find(|(u, _)| *u == uid).map(|(_, t)| *t)
        });
        IodTypes { known }
    }

    /// Type of a top-level attribute; None when unknown.
    pub fn top_level(&self, tag: Tag) -> Option<AttrType> {
        let list = self.known?;
        Some(list.iter().find(|(t, _)| *t == tag).map(|(_, ty)| *ty).unwrap_or(AttrType::T3))
    }
}

/// Picks one code of a combined action for the given type (None: unknown type, take the last).
pub fn resolve(codes: &[Code], ty: Option<AttrType>) -> Code {
    let first = codes.first().copied().unwrap_or(Code::X);
    let last = codes.last().copied().unwrap_or(Code::X);
    if codes.len() == 1 {
        return first;
    }
    let Some(ty) = ty else { return last };
    let allowed = |c: Code| match ty {
        AttrType::T3 => true,
        AttrType::T2 => c != Code::X,
        AttrType::T1 => !matches!(c, Code::X | Code::Z),
    };
    // The first code the type allows; if none does (X/Z on a type 1), the last one.
    codes.iter().copied().find(|c| allowed(*c)).unwrap_or(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Code::*;

    #[test]
    fn combined_codes_follow_the_type() {
        assert_eq!(resolve(&[X, Z, D], Some(AttrType::T3)), X);
        assert_eq!(resolve(&[X, Z, D], Some(AttrType::T2)), Z);
        assert_eq!(resolve(&[X, Z, D], Some(AttrType::T1)), D);
        assert_eq!(resolve(&[X, Z, D], None), D);
        assert_eq!(resolve(&[Z, D], Some(AttrType::T2)), Z);
        assert_eq!(resolve(&[Z, D], Some(AttrType::T3)), Z);
        assert_eq!(resolve(&[Z, D], Some(AttrType::T1)), D);
        assert_eq!(resolve(&[X, D], Some(AttrType::T2)), D);
        assert_eq!(resolve(&[X, Z], Some(AttrType::T1)), Z);
        assert_eq!(resolve(&[X, Z], None), Z);
        assert_eq!(resolve(&[X, Z, UStar], Some(AttrType::T3)), X);
        assert_eq!(resolve(&[X, Z, UStar], Some(AttrType::T2)), Z);
        assert_eq!(resolve(&[X, Z, UStar], None), UStar);
        assert_eq!(resolve(&[X], None), X);
    }

    #[test]
    fn ct_types() {
        let ct = IodTypes::for_sop_class(Some("1.2.840.10008.5.1.4.1.1.2\0"));
        assert_eq!(ct.top_level(Tag(0x0008, 0x0023)), Some(AttrType::T2));
        assert_eq!(ct.top_level(Tag(0x0008, 0x0080)), Some(AttrType::T3));
        let pet = IodTypes::for_sop_class(Some("1.2.840.10008.5.1.4.1.1.128"));
        assert_eq!(pet.top_level(SERIES_DATE), Some(AttrType::T1));
        let unknown = IodTypes::for_sop_class(Some("1.2.840.10008.5.1.4.1.1.88.22"));
        assert_eq!(unknown.top_level(Tag(0x0008, 0x0023)), None);
        assert_eq!(IodTypes::for_sop_class(None).top_level(PATIENT_ID), None);
    }
}
