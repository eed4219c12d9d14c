//! RFC 4180 CSV: a header row of variable names, CRLF line ends, fields quoted when they hold a
//! comma, a quote, CR or LF (quotes doubled). Numbers in their shortest exact decimal form; missing
//! values are empty fields.

use super::dataset::{Cell, Dataset};

/// One CSV field.
pub fn field(text: &str) -> String {
    if text.contains([',', '"', '\r', '\n']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

fn cell_text(cell: &Cell) -> String {
    match cell {
        Cell::Char(s) => s.clone(),
        Cell::Num(Some(x)) => format!("{x}"),
        Cell::Num(None) => String::new(),
    }
}

/// Writes rows of text fields.
pub fn write_rows(rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row.iter().map(|f| field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// The dataset as CSV.
pub fn write_csv(ds: &Dataset) -> String {
    let header: Vec<String> = ds.variables.iter().map(|v| v.name.to_string()).collect();
    let rows = ds.rows.iter().map(|r| r.iter().map(cell_text).collect::<Vec<_>>());
    write_rows(std::iter::once(header).chain(rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdtm::dataset::{VarType, Variable};

    #[test]
    fn quoting_follows_rfc_4180() {
        let vars = [
            Variable { name: "A", label: "a", kind: VarType::Char, origin: "Assigned" },
            Variable { name: "N", label: "n", kind: VarType::Num, origin: "Derived" },
        ];
        let mut ds = Dataset::new("X", "x", &vars);
        ds.rows.push(vec![Cell::Char("plain".into()), Cell::Num(Some(66.1))]);
        ds.rows.push(vec![Cell::Char("a, \"quoted\"\nline".into()), Cell::Num(None)]);
        ds.rows.push(vec![Cell::Char(String::new()), Cell::Num(Some(5.0))]);
        assert_eq!(write_csv(&ds), "A,N\r\nplain,66.1\r\n\"a, \"\"quoted\"\"\nline\",\r\n,5\r\n");
    }
}
