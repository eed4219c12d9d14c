//! Built-in list of private attributes kept under Retain Safe Private (DCM 113111).
//!
//! Each entry is (private creator, group, element offset in the creator's block). The list is
//! corelab's own, kept short on purpose: only well-known vendor attributes that hold acquisition
//! parameters needed for quantitative reads (diffusion b-values and directions, MR scale factors,
//! mosaic layout), no free text and no dates. A trial adds its own with `safe_private` in the charter.
pub const BUILT_IN: &[(&str, u16, u8)] = &[
    // Siemens MR: number of images in mosaic, slice measurement duration, b-value,
    // diffusion directionality, diffusion gradient direction, b-matrix.
    ("SIEMENS MR HEADER", 0x0019, 0x0A),
    ("SIEMENS MR HEADER", 0x0019, 0x0B),
    ("SIEMENS MR HEADER", 0x0019, 0x0C),
    ("SIEMENS MR HEADER", 0x0019, 0x0D),
    ("SIEMENS MR HEADER", 0x0019, 0x0E),
    ("SIEMENS MR HEADER", 0x0019, 0x27),
    // GE: b-value and related slop integers, user data (diffusion directions).
    ("GEMS_PARM_01", 0x0043, 0x39),
    ("GEMS_ACQU_01", 0x0019, 0xBB),
    ("GEMS_ACQU_01", 0x0019, 0xBC),
    ("GEMS_ACQU_01", 0x0019, 0xBD),
    // Philips: diffusion b-factor and direction; MR scale slope/intercept.
    ("Philips Imaging DD 001", 0x2001, 0x03),
    ("Philips Imaging DD 001", 0x2001, 0x04),
    ("Philips MR Imaging DD 001", 0x2005, 0x0D),
    ("Philips MR Imaging DD 001", 0x2005, 0x0E),
];
