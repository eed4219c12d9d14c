//! A define-style variable listing of the exported datasets: dataset, variable, label, type,
//! length and origin, as CSV and as define.xml-like XML (CDISC ODM ItemGroupDef / ItemDef).

use super::csv::write_rows;
use super::dataset::Dataset;

/// One line of the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefineRow {
    pub dataset: String,
    pub variable: String,
    pub label: String,
    pub kind: String,
    pub length: usize,
    pub origin: String,
}

pub fn define_rows(datasets: &[&Dataset]) -> Vec<DefineRow> {
    let mut out = Vec::new();
    for ds in datasets {
        for (i, v) in ds.variables.iter().enumerate() {
            out.push(DefineRow {
                dataset: ds.name.to_string(),
                variable: v.name.to_string(),
                label: v.label.to_string(),
                kind: v.kind.as_str().to_string(),
                length: ds.length(i),
                origin: v.origin.to_string(),
            });
        }
    }
    out
}

pub fn define_csv(datasets: &[&Dataset]) -> String {
    let header = ["Dataset", "Variable", "Label", "Type", "Length", "Origin"].map(String::from).to_vec();
    let rows = define_rows(datasets)
        .into_iter()
        .map(|r| vec![r.dataset, r.variable, r.label, r.kind, r.length.to_string(), r.origin]);
    write_rows(std::iter::once(header).chain(rows))
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// define.xml-like metadata: one ItemGroupDef per dataset (with its label and file), one ItemDef
/// per variable (type, length, label, origin). `study` names the study; `created` is an ISO 8601
/// time given by the caller.
pub fn define_xml(study: &str, created: &str, datasets: &[&Dataset]) -> String {
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<ODM xmlns=\"http://www.cdisc.org/ns/odm/v1.3\" xmlns:def=\"http://www.cdisc.org/ns/def/v2.0\" \
         ODMVersion=\"1.3.2\" FileType=\"Snapshot\" FileOID=\"corelab.define.{0}\" CreationDateTime=\"{1}\">\n",
        xml_escape(study),
        xml_escape(created)
    ));
    x.push_str(&format!("  <Study OID=\"{0}\">\n", xml_escape(study)));
    x.push_str(&format!(
        "    <GlobalVariables><StudyName>{0}</StudyName><StudyDescription>Imaging core lab SDTM TU/TR/RS</StudyDescription><ProtocolName>{0}</ProtocolName></GlobalVariables>\n",
        xml_escape(study)
    ));
    x.push_str(
        "    <MetaDataVersion OID=\"MDV.corelab.sdtm\" Name=\"corelab SDTM export\" def:DefineVersion=\"2.0.0\">\n",
    );
    for ds in datasets {
        x.push_str(&format!(
            "      <ItemGroupDef OID=\"IG.{0}\" Name=\"{0}\" Domain=\"{0}\" SASDatasetName=\"{0}\" Repeating=\"Yes\" Purpose=\"Tabulation\" def:Structure=\"One record per finding per evaluator per visit\" def:ArchiveLocationID=\"LF.{0}\">\n",
            ds.name
        ));
        x.push_str(&format!(
            "        <Description><TranslatedText xml:lang=\"en\">{}</TranslatedText></Description>\n",
            xml_escape(ds.label)
        ));
        for (i, v) in ds.variables.iter().enumerate() {
            x.push_str(&format!(
                "        <ItemRef ItemOID=\"IT.{}.{}\" OrderNumber=\"{}\" Mandatory=\"No\"/>\n",
                ds.name,
                v.name,
                i + 1
            ));
        }
        x.push_str(&format!(
            "        <def:leaf ID=\"LF.{0}\" xlink:href=\"{1}.xpt\" xmlns:xlink=\"http://www.w3.org/1999/xlink\"><def:title>{1}.xpt</def:title></def:leaf>\n",
            ds.name,
            ds.name.to_lowercase()
        ));
        x.push_str("      </ItemGroupDef>\n");
    }
    for ds in datasets {
        for (i, v) in ds.variables.iter().enumerate() {
            let data_type = match v.kind {
                super::dataset::VarType::Char => "text",
                super::dataset::VarType::Num => "float",
            };
            x.push_str(&format!(
                "      <ItemDef OID=\"IT.{0}.{1}\" Name=\"{1}\" DataType=\"{2}\" Length=\"{3}\" SASFieldName=\"{1}\">\n        <Description><TranslatedText xml:lang=\"en\">{4}</TranslatedText></Description>\n        <def:Origin Type=\"{5}\"/>\n      </ItemDef>\n",
                ds.name,
                v.name,
                data_type,
                ds.length(i),
                xml_escape(v.label),
                v.origin
            ));
        }
    }
    x.push_str("    </MetaDataVersion>\n  </Study>\n</ODM>\n");
    x
}
