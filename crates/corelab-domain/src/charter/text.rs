//! Checks on single strings: AE titles, DICOM LO/CS values, identifiers, country codes, and the
//! "did you mean" suggestion.

/// Why an AE title is not valid, as a sentence fragment; None when it is valid.
///
/// DICOM AE: 1-16 characters of the default repertoire (printable ASCII), no backslash, not only
/// spaces. Leading/trailing spaces are not significant (reported separately as a warning).
pub fn ae_title_error(ae: &str) -> Option<String> {
    if ae.is_empty() {
        return Some("AE title is empty".into());
    }
    if ae.chars().any(|c| c.is_control()) {
        return Some("AE title contains a control character".into());
    }
    if ae.contains('\\') {
        return Some("AE title contains a backslash".into());
    }
    if !ae.is_ascii() {
        return Some("AE title contains a non-ASCII character".into());
    }
    if ae.len() > 16 {
        return Some(format!("AE title has {} characters, at most 16 are allowed", ae.len()));
    }
    if ae.trim().is_empty() {
        return Some("AE title is all spaces".into());
    }
    None
}

/// The AE title as compared for uniqueness and lookup.
pub fn ae_key(ae: &str) -> String {
    ae.trim().to_ascii_uppercase()
}

/// Why a value cannot go into a DICOM LO element (max 64 characters, no backslash, no control
/// characters); None when it can.
pub fn lo_error(value: &str) -> Option<String> {
    let n = value.chars().count();
    if n > 64 {
        return Some(format!("{n} characters, DICOM allows at most 64 here"));
    }
    if value.contains('\\') {
        return Some("contains a backslash, which DICOM uses as a value separator".into());
    }
    if value.chars().any(|c| c.is_control()) {
        return Some("contains a control character".into());
    }
    None
}

/// Why a value is not a DICOM CS (code string: upper case letters, digits, space, underscore,
/// max 16); None when it is.
pub fn cs_error(value: &str) -> Option<String> {
    if value.is_empty() {
        return Some("is empty".into());
    }
    if value.len() > 16 {
        return Some(format!("has {} characters, a DICOM code string has at most 16", value.len()));
    }
    if !value.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == ' ' || c == '_') {
        return Some("may only hold upper case letters, digits, space and underscore".into());
    }
    None
}

/// IDs of charter objects (sites, visits, series, ...): letters, digits, `-`, `_`, `.`; 1 to `max`
/// characters.
pub fn id_error(id: &str, max: usize) -> Option<String> {
    if id.is_empty() {
        return Some("is empty".into());
    }
    if id.chars().count() > max {
        return Some(format!("is longer than {max} characters"));
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        return Some(format!("contains {c:?}; IDs may only hold letters, digits, '-', '_' and '.'"));
    }
    None
}

/// ISO 3166-1 alpha-2 officially assigned codes (249), sorted.
pub const ISO_3166_ALPHA2: &[&str] = &[
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ", "BA", "BB", "BD",
    "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS", "BT", "BV", "BW", "BY", "BZ", "CA",
    "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN", "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE",
    "DJ", "DK", "DM", "DO", "DZ", "EC", "EE", "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA",
    "GB", "GD", "GE", "GF", "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK",
    "HM", "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM", "JO", "JP",
    "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC", "LI", "LK", "LR", "LS", "LT",
    "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK", "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS",
    "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA", "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ",
    "OM", "PA", "PE", "PF", "PG", "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS",
    "RU", "RW", "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS", "ST",
    "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO", "TR", "TT", "TV", "TW",
    "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI", "VN", "VU", "WF", "WS", "YE", "YT", "ZA",
    "ZM", "ZW",
];

/// Why `code` is not an ISO 3166-1 alpha-2 country code, with a hint; None when it is one.
pub fn country_error(code: &str) -> Option<(String, String)> {
    if ISO_3166_ALPHA2.binary_search(&code).is_ok() {
        return None;
    }
    let upper = code.to_ascii_uppercase();
    let hint = if ISO_3166_ALPHA2.binary_search(&upper.as_str()).is_ok() {
        format!("write it in upper case: \"{upper}\"")
    } else if upper == "UK" {
        "the ISO code for the United Kingdom is \"GB\"".to_string()
    } else if upper == "EL" {
        "the ISO code for Greece is \"GR\"".to_string()
    } else {
        "use the ISO 3166-1 alpha-2 code, e.g. \"FR\", \"DE\", \"US\"".to_string()
    };
    Some((format!("\"{code}\" is not an ISO 3166-1 alpha-2 country code"), hint))
}

/// Edit distance (Levenshtein) between two short strings, case-insensitive.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The candidate closest to `word`, when it is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 4);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ae_titles_follow_the_dicom_rules() {
        assert_eq!(ae_title_error("CT_SCANNER_01"), None);
        assert_eq!(ae_title_error("A"), None);
        assert_eq!(ae_title_error("SIXTEEN_CHARS_OK"), None);
        for (bad, fragment) in [
            ("", "empty"),
            ("SEVENTEEN_CHARS_X", "at most 16"),
            ("A\\B", "backslash"),
            ("A\tB", "control"),
            ("    ", "all spaces"),
            ("CAFÉ", "non-ASCII"),
        ] {
            let err = ae_title_error(bad).unwrap_or_default();
            assert!(err.contains(fragment), "{bad:?}: {err}");
        }
        assert_eq!(ae_key("  ct1 "), "CT1");
    }

    #[test]
    fn country_codes() {
        assert_eq!(ISO_3166_ALPHA2.len(), 249);
        assert!(ISO_3166_ALPHA2.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(country_error("FR"), None);
        assert_eq!(country_error("GB"), None);
        assert!(country_error("UK").is_some_and(|(_, h)| h.contains("GB")));
        assert!(country_error("fr").is_some_and(|(_, h)| h.contains("\"FR\"")));
        assert!(country_error("XK").is_some());
        assert!(country_error("FRA").is_some());
    }

    #[test]
    fn lo_cs_and_ids() {
        assert_eq!(lo_error("Acme Oncology Ltd"), None);
        assert!(lo_error(&"x".repeat(65)).is_some());
        assert!(lo_error("a\\b").is_some());
        assert_eq!(cs_error("CHEST"), None);
        assert!(cs_error("chest").is_some());
        assert!(cs_error("").is_some());
        assert_eq!(id_error("CT_CAP-1.2", 16), None);
        assert!(id_error("CT CAP", 16).is_some());
        assert!(id_error("", 16).is_some());
        assert!(id_error("ABCDEFGHIJKLMNOPQ", 16).is_some());
    }

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "SAME"), 0);
        let keys = ["slice_thickness_mm", "slice_spacing_mm", "kvp"];
        assert_eq!(closest("slice_thicknes_mm", keys), Some("slice_thickness_mm"));
        assert_eq!(closest("kv", keys), Some("kvp"));
        assert_eq!(closest("colour", keys), None);
    }
}
