//! SAS XPORT transport format version 5 (the format FDA takes for study data): 80-byte header
//! records, 140-byte NAMESTR records, numbers as 8-byte IBM System/370 floating point, text
//! padded with blanks. Written from the description in SAS technical note TS-140.

use super::dataset::{Cell, Dataset, VarType};

/// Why a dataset cannot be written as XPORT v5.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum XptError {
    #[error("dataset name {0:?} must be 1 to 8 letters, digits or underscores")]
    DatasetName(String),
    #[error("variable name {0:?} must be 1 to 8 letters, digits or underscores, not starting with a digit")]
    VariableName(String),
    #[error("label of {0} is longer than 40 characters")]
    Label(String),
    #[error("the creation time must be 16 characters like 27NOV26:10:15:00, got {0:?}")]
    Timestamp(String),
    #[error("{0} is too large for IBM floating point")]
    Overflow(f64),
    #[error("dataset {0} has more than 9999 variables")]
    TooManyVariables(String),
}

/// The 8 bytes of a SAS missing numeric value (`.`).
pub const MISSING: [u8; 8] = [0x2E, 0, 0, 0, 0, 0, 0, 0];

/// IEEE 754 double to IBM System/370 double (sign bit, 7-bit excess-64 base-16 exponent, 56-bit
/// fraction), rounded to nearest. NaN is written as missing; values below the smallest IBM
/// magnitude (about 5.4e-79) become 0.
pub fn ibm_from_f64(x: f64) -> Result<[u8; 8], XptError> {
    if x.is_nan() {
        return Ok(MISSING);
    }
    if x.is_infinite() {
        return Err(XptError::Overflow(x));
    }
    let bits = x.to_bits();
    let sign = (bits >> 63) as u8;
    let exp_bits = ((bits >> 52) & 0x7ff) as i64;
    let frac = bits & ((1u64 << 52) - 1);
    if exp_bits == 0 {
        // Zero, or an IEEE subnormal (far below IBM's range).
        return Ok([0; 8]);
    }
    // x = m * 2^p with m in [2^52, 2^53).
    let m = frac | (1u64 << 52);
    let p = exp_bits - 1075;
    // x = (f0 / 2^56) * 2^(p + 53) with f0 = m << 3 in [2^55, 2^56).
    let f0 = m << 3;
    let e2 = p + 53;
    let mut k = e2.div_euclid(4) + i64::from(e2.rem_euclid(4) != 0);
    let s = 4 * k - e2;
    let mut f = if s == 0 { f0 } else { (f0 + (1u64 << (s - 1))) >> s };
    if f >= 1u64 << 56 {
        f >>= 4;
        k += 1;
    }
    let e = k + 64;
    if e > 127 {
        return Err(XptError::Overflow(x));
    }
    if e < 0 {
        return Ok([0; 8]);
    }
    let mut out = [0u8; 8];
    out[0] = (sign << 7) | (e as u8);
    out[1..].copy_from_slice(&f.to_be_bytes()[1..]);
    Ok(out)
}

/// IBM System/370 double back to IEEE (for tests and checks); `None` for a SAS missing value.
pub fn f64_from_ibm(b: [u8; 8]) -> Option<f64> {
    // Missing values: '.', '_' or 'A'..'Z' followed by a zero fraction.
    if b[1..].iter().all(|x| *x == 0) && (b[0] == b'.' || b[0] == b'_' || b[0].is_ascii_uppercase()) {
        return None;
    }
    let sign = if b[0] & 0x80 != 0 { -1.0 } else { 1.0 };
    let e = i32::from(b[0] & 0x7f) - 64;
    let mut f: u64 = 0;
    for byte in &b[1..] {
        f = (f << 8) | u64::from(*byte);
    }
    Some(sign * (f as f64) / 2f64.powi(56) * 16f64.powi(e))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 8
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

/// Text as XPORT stores it: ASCII (other characters become '?'), cut to `len` bytes, blank padded.
fn padded(text: &str, len: usize) -> Vec<u8> {
    let mut out: Vec<u8> =
        text.chars().map(|c| if c.is_ascii() && !c.is_ascii_control() { c as u8 } else { b'?' }).collect();
    out.truncate(len);
    out.resize(len, b' ');
    out
}

fn record(text: &str) -> Vec<u8> {
    padded(text, 80)
}

/// Pads `buf` with blanks to a multiple of 80 bytes.
fn pad80(buf: &mut Vec<u8>) {
    let rem = buf.len() % 80;
    if rem != 0 {
        buf.resize(buf.len() + 80 - rem, b' ');
    }
}

/// Writes one dataset as an XPORT v5 file with one member. `created` is the SAS datetime text of
/// the creation time, e.g. `27NOV26:10:15:00` (the caller owns the clock).
pub fn write_xpt(ds: &Dataset, created: &str) -> Result<Vec<u8>, XptError> {
    if !valid_name(ds.name) {
        return Err(XptError::DatasetName(ds.name.to_string()));
    }
    if ds.label.len() > 40 {
        return Err(XptError::Label(ds.name.to_string()));
    }
    if created.len() != 16 || !created.is_ascii() {
        return Err(XptError::Timestamp(created.to_string()));
    }
    if ds.variables.len() > 9999 {
        return Err(XptError::TooManyVariables(ds.name.to_string()));
    }
    for v in &ds.variables {
        if !valid_name(v.name) {
            return Err(XptError::VariableName(v.name.to_string()));
        }
        if v.label.len() > 40 {
            return Err(XptError::Label(v.name.to_string()));
        }
    }
    let mut out = Vec::new();
    out.extend(record("HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!000000000000000000000000000000"));
    let mut real = padded("SAS", 8);
    real.extend(padded("SAS", 8));
    real.extend(padded("SASLIB", 8));
    real.extend(padded("9.4", 8));
    real.extend(padded("corelab", 8));
    real.extend(padded("", 24));
    real.extend(created.as_bytes());
    out.extend(real);
    out.extend(record(created));
    out.extend(record("HEADER RECORD*******MEMBER  HEADER RECORD!!!!!!!000000000000000001600000000140"));
    out.extend(record("HEADER RECORD*******DSCRPTR HEADER RECORD!!!!!!!000000000000000000000000000000"));
    let mut member = padded("SAS", 8);
    member.extend(padded(ds.name, 8));
    member.extend(padded("SASDATA", 8));
    member.extend(padded("9.4", 8));
    member.extend(padded("corelab", 8));
    member.extend(padded("", 24));
    member.extend(created.as_bytes());
    out.extend(member);
    let mut member2 = created.as_bytes().to_vec();
    member2.extend(padded("", 16));
    member2.extend(padded(ds.label, 40));
    member2.extend(padded("", 8));
    out.extend(member2);
    out.extend(record(&format!(
        "HEADER RECORD*******NAMESTR HEADER RECORD!!!!!!!000000{:04}00000000000000000000",
        ds.variables.len()
    )));

    let lengths: Vec<usize> = (0..ds.variables.len()).map(|i| ds.length(i)).collect();
    let mut names = Vec::new();
    let mut position: usize = 0;
    for (i, v) in ds.variables.iter().enumerate() {
        let len = lengths.get(i).copied().unwrap_or(8);
        let ntype: i16 = match v.kind {
            VarType::Num => 1,
            VarType::Char => 2,
        };
        names.extend(ntype.to_be_bytes());
        names.extend(0i16.to_be_bytes()); // nhfun
        names.extend((len as i16).to_be_bytes());
        names.extend(((i + 1) as i16).to_be_bytes());
        names.extend(padded(v.name, 8));
        names.extend(padded(v.label, 40));
        names.extend(padded("", 8)); // format name
        names.extend(0i16.to_be_bytes()); // format length
        names.extend(0i16.to_be_bytes()); // format decimals
        names.extend(0i16.to_be_bytes()); // justification
        names.extend([0u8; 2]);
        names.extend(padded("", 8)); // informat name
        names.extend(0i16.to_be_bytes());
        names.extend(0i16.to_be_bytes());
        names.extend((position as i32).to_be_bytes());
        names.extend([0u8; 52]);
        position += len;
    }
    out.extend(names);
    pad80(&mut out);
    out.extend(record("HEADER RECORD*******OBS     HEADER RECORD!!!!!!!000000000000000000000000000000"));
    for row in &ds.rows {
        for (i, v) in ds.variables.iter().enumerate() {
            let len = lengths.get(i).copied().unwrap_or(8);
            match (v.kind, row.get(i)) {
                (VarType::Num, Some(Cell::Num(Some(x)))) => out.extend(ibm_from_f64(*x)?),
                (VarType::Num, _) => out.extend(MISSING),
                (VarType::Char, Some(Cell::Char(s))) => out.extend(padded(s, len)),
                (VarType::Char, _) => out.extend(padded("", len)),
            }
        }
    }
    pad80(&mut out);
    Ok(out)
}

/// SAS datetime text (`DDMMMYY:HH:MM:SS`) from calendar fields.
pub fn sas_datetime(year: i32, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> String {
    const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
    let mon = month.checked_sub(1).and_then(|m| MONTHS.get(m as usize)).copied().unwrap_or("JAN");
    format!("{day:02}{mon}{:02}:{hour:02}:{minute:02}:{second:02}", year.rem_euclid(100))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdtm::dataset::Variable;

    fn hex(b: [u8; 8]) -> String {
        b.iter().map(|x| format!("{x:02X}")).collect()
    }

    #[test]
    fn ibm_floats_of_known_values() {
        let table: &[(f64, &str)] = &[
            (0.0, "0000000000000000"),
            (1.0, "4110000000000000"),
            (-1.0, "C110000000000000"),
            (0.5, "4080000000000000"),
            (100.0, "4264000000000000"),
            (1e-5, "3CA7C5AC471B4788"),
            (66.1, "4242199999999998"),
            (5.0, "4150000000000000"),
            (-2.5, "C128000000000000"),
            (0.1, "401999999999999A"),
        ];
        for (x, want) in table {
            assert_eq!(hex(ibm_from_f64(*x).unwrap()), *want, "{x}");
        }
        assert_eq!(ibm_from_f64(f64::NAN).unwrap(), MISSING);
        assert_eq!(hex(MISSING), "2E00000000000000");
        assert!(ibm_from_f64(1e80).is_err());
        assert_eq!(ibm_from_f64(1e-80).unwrap(), [0; 8]);
    }

    #[test]
    fn ibm_round_trips_within_its_precision() {
        for x in [1.0, 30.4, 51.0, 66.1, 0.3, 12345.6, -7.25, 1e-5, 1e20, 3.0e-70] {
            let back = f64_from_ibm(ibm_from_f64(x).unwrap()).unwrap();
            assert!(((back - x) / x).abs() < 1e-15, "{x} -> {back}");
        }
        assert_eq!(f64_from_ibm(MISSING), None);
        assert_eq!(f64_from_ibm([0; 8]), Some(0.0));
    }

    fn sample() -> Dataset {
        let vars = [
            Variable { name: "USUBJID", label: "Unique Subject Identifier", kind: VarType::Char, origin: "Assigned" },
            Variable { name: "TRSTRESN", label: "Numeric Result", kind: VarType::Num, origin: "Derived" },
        ];
        let mut ds = Dataset::new("TR", "Tumor/Lesion Results", &vars);
        ds.rows.push(vec![Cell::Char("TRIAL-101-001".into()), Cell::Num(Some(30.4))]);
        ds.rows.push(vec![Cell::Char("TRIAL-101-002é".into()), Cell::Num(None)]);
        ds
    }

    #[test]
    fn file_layout_follows_ts140() {
        let bytes = write_xpt(&sample(), "27NOV26:10:15:00").unwrap();
        assert_eq!(bytes.len() % 80, 0);
        let text = |range: std::ops::Range<usize>| String::from_utf8_lossy(&bytes[range]).to_string();
        assert!(text(0..80).starts_with("HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!"));
        assert_eq!(text(80..88), "SAS     ");
        assert_eq!(text(144..160), "27NOV26:10:15:00");
        assert!(text(240..320).ends_with("000000000000000001600000000140  "));
        assert_eq!(text(408..416), "TR      ");
        assert_eq!(text(512..552), format!("{:40}", "Tumor/Lesion Results"));
        assert!(text(560..640).contains("NAMESTR HEADER RECORD!!!!!!!000000000200000000000000000000"));
        // Two NAMESTRs (280 bytes) padded to 320, then the OBS header.
        let obs = 640 + 320;
        assert!(text(obs..obs + 80).contains("OBS     HEADER RECORD"));
        let n0 = 640;
        assert_eq!(&bytes[n0..n0 + 2], &[0, 2]); // char
        assert_eq!(&bytes[n0 + 4..n0 + 6], &[0, 14]); // longest value: 14 bytes (é written as ?)
        assert_eq!(text(n0 + 8..n0 + 16), "USUBJID ");
        let n1 = n0 + 140;
        assert_eq!(&bytes[n1..n1 + 2], &[0, 1]); // numeric
        assert_eq!(&bytes[n1 + 84..n1 + 88], &[0, 0, 0, 14]); // position after USUBJID
        let data = obs + 80;
        assert_eq!(text(data..data + 14), "TRIAL-101-001 ");
        assert_eq!(hex(bytes[data + 14..data + 22].try_into().unwrap()), hex(ibm_from_f64(30.4).unwrap()));
        assert_eq!(text(data + 22..data + 36), "TRIAL-101-002?");
        assert_eq!(&bytes[data + 36..data + 44], &MISSING);
        assert!(bytes[data + 44..].iter().all(|b| *b == b' '));
    }

    #[test]
    fn bad_names_labels_and_times_are_refused() {
        let mut ds = sample();
        assert!(matches!(write_xpt(&ds, "2026-11-27"), Err(XptError::Timestamp(_))));
        ds.variables[0].name = "USUBJID99";
        assert!(matches!(write_xpt(&ds, "27NOV26:10:15:00"), Err(XptError::VariableName(_))));
        ds.variables[0].name = "USUBJID";
        ds.variables[1].label = "A label that is much longer than forty characters";
        assert!(matches!(write_xpt(&ds, "27NOV26:10:15:00"), Err(XptError::Label(_))));
        assert_eq!(sas_datetime(2026, 11, 27, 9, 5, 0), "27NOV26:09:05:00");
    }
}
