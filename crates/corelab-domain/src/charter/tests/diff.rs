use super::super::*;
use super::{EXAMPLES, ONCOLOGY, parse_ok, replace_once};

fn lines(changes: &[Change]) -> Vec<String> {
    changes.iter().map(ToString::to_string).collect()
}

#[test]
fn a_charter_has_no_changes_against_itself() {
    for (name, text) in EXAMPLES {
        let c = parse_ok(text);
        assert_eq!(diff(&c, &c), [], "{name}");
    }
}

#[test]
fn an_amendment_lists_what_changed() {
    let old = parse_ok(ONCOLOGY);
    let text = replace_once(ONCOLOGY, "version = \"1.0\"", "version = \"2.0\"");
    let text = replace_once(
        &text,
        "[[sites]]\nid = \"102\"\nname = \"Charite Berlin\"\ncountry = \"DE\"\nae_titles = [\"CHARITE_CT\"]\n\n",
        "",
    );
    let text = replace_once(
        &text,
        "ae_titles = [\"MGH_ONCO_PACS\"]",
        "ae_titles = [\"MGH_ONCO_PACS\"]\n\n[[sites]]\nid = \"301\"\nname = \"National Cancer Center\"\ncountry = \"JP\"\nae_titles = [\"NCC_CT\"]",
    );
    let text = replace_once(&text, "until_week = 96", "until_week = 104");
    let text = replace_once(&text, "slice_thickness_mm = { max = 5.0 }", "slice_thickness_mm = { max = 3.0 }");
    let text = replace_once(&text, "sd_min_days = 42", "sd_min_days = 56");
    let text = replace_once(&text, "max_shift_days = 365", "max_shift_days = 180");
    let text = replace_once(
        &text,
        "triggers = [\"progression_date\"]",
        "triggers = [\"progression_date\", \"best_overall_response\"]",
    );
    let new = parse_ok(&text);

    assert_eq!(
        lines(&diff(&old, &new)),
        [
            "charter: version \"1.0\" -> \"2.0\"",
            "site 102 removed",
            "site 301 added",
            "visit W104 added",
            "series CT_CAP_PV: constraints.slice_thickness_mm.max 5 -> 3",
            "deidentification: max_shift_days 365 -> 180",
            "reads: adjudication.triggers [\"progression_date\"] -> [\"progression_date\", \"best_overall_response\"]",
            "reads: sd_min_days 42 -> 56",
        ]
    );
}

#[test]
fn changes_inside_entities_name_the_field() {
    let old = parse_ok(ONCOLOGY);
    let text = replace_once(ONCOLOGY, "name = \"Hopital Saint-Louis\"", "name = \"Hopital Saint-Louis AP-HP\"");
    let text = replace_once(
        &text,
        "window = { minus_days = 28, plus_days = 0 }",
        "window = { minus_days = 21, plus_days = 0 }",
    );
    let text = replace_once(
        &text,
        "body_part_examined = [\"CHEST\", \"ABDOMEN\", \"PELVIS\", \"CHEST_TO_PELVIS\"]",
        "body_part_examined = [\"CHEST\", \"ABDOMEN\", \"PELVIS\"]",
    );
    let text = replace_once(
        &text,
        "[[imaging.series]]\nid = \"CT_CHEST_LUNG\"\ndescription = \"Axial CT chest, lung kernel\"\nrequired = false\nidentify = { series_description = [\"*LUNG*\"], image_type = [\"ORIGINAL\", \"AXIAL\"] }\n\n[imaging.series.constraints]\nslice_thickness_mm = { max = 2.5 }\nmatrix_min = 512\n\n",
        "",
    );
    let text = replace_once(
        &text,
        "contrast = { agent = \"required\", phase = \"portal_venous\" }",
        "contrast = { agent = \"required\", phase = \"portal_venous\", min_delay_minutes = 60 }",
    );
    let text = replace_once(&text, "stages = \"automated+qc1+qc2\"", "stages = \"automated+qc1\"");
    let text = replace_once(&text, "timepoint_labels = \"pseudo\"", "timepoint_labels = \"days_from_baseline\"");
    let new = parse_ok(&text);
    assert_eq!(
        lines(&diff(&old, &new)),
        [
            "trial: blinding.timepoint_labels \"pseudo\" -> \"days_from_baseline\"",
            "site 101: name \"Hopital Saint-Louis\" -> \"Hopital Saint-Louis AP-HP\"",
            "visit BL: window.minus_days 28 -> 21",
            "imaging CT_CAP: body_part_examined [\"CHEST\", \"ABDOMEN\", \"PELVIS\", \"CHEST_TO_PELVIS\"] -> [\"CHEST\", \"ABDOMEN\", \"PELVIS\"]",
            "series CT_CHEST_LUNG removed",
            "series CT_CAP_PV: constraints.contrast.min_delay_minutes (none) -> 60",
            "qc: stages \"automated+qc1+qc2\" -> \"automated+qc1\"",
        ]
    );
    let changes = diff(&old, &new);
    assert_eq!(changes[4], Change { entity: Entity::Series("CT_CHEST_LUNG".into()), kind: ChangeKind::Removed });
    assert_eq!(
        changes[5].kind,
        ChangeKind::Modified {
            field: "constraints.contrast.min_delay_minutes".into(),
            old: "(none)".into(),
            new: "60".into()
        }
    );
}
