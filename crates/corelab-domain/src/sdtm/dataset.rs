//! A tabulation dataset as the writers take it: variables (name, label, type, origin) and rows of
//! cells in variable order.

/// SAS type of a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarType {
    Char,
    Num,
}

impl VarType {
    pub fn as_str(self) -> &'static str {
        match self {
            VarType::Char => "Char",
            VarType::Num => "Num",
        }
    }
}

/// One variable of a dataset. Names are at most 8 characters and labels at most 40 (SAS XPORT v5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variable {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: VarType,
    /// Define-style origin: "Assigned", "Collected" (read by the reader) or "Derived" (computed by
    /// the response engine or by the export).
    pub origin: &'static str,
}

/// A cell: text (empty = missing) or a number (`None` = missing).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Char(String),
    Num(Option<f64>),
}

impl Cell {
    pub fn text(&self) -> Option<&str> {
        match self {
            Cell::Char(s) => Some(s),
            Cell::Num(_) => None,
        }
    }

    pub fn number(&self) -> Option<f64> {
        match self {
            Cell::Num(n) => *n,
            Cell::Char(_) => None,
        }
    }
}

/// Longest character value XPORT v5 can hold.
pub const MAX_CHAR_LENGTH: usize = 200;

#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Member name (at most 8 characters), e.g. "TR".
    pub name: &'static str,
    /// Dataset label (at most 40 characters).
    pub label: &'static str,
    pub variables: Vec<Variable>,
    pub rows: Vec<Vec<Cell>>,
}

impl Dataset {
    pub fn new(name: &'static str, label: &'static str, variables: &[Variable]) -> Dataset {
        Dataset { name, label, variables: variables.to_vec(), rows: Vec::new() }
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.variables.iter().position(|v| v.name == name)
    }

    /// The cell of `row` in variable `name`.
    pub fn get(&self, row: usize, name: &str) -> Option<&Cell> {
        self.rows.get(row)?.get(self.column(name)?)
    }

    /// The text of `row` in `name` ("" when missing or numeric).
    pub fn text(&self, row: usize, name: &str) -> &str {
        self.get(row, name).and_then(Cell::text).unwrap_or("")
    }

    /// Storage length of a variable: 8 for numbers; for text the longest value in characters (at least
    /// 1, at most [`MAX_CHAR_LENGTH`]). XPORT writes each character as one byte (non-ASCII as '?').
    pub fn length(&self, col: usize) -> usize {
        match self.variables.get(col).map(|v| v.kind) {
            Some(VarType::Num) | None => 8,
            Some(VarType::Char) => self
                .rows
                .iter()
                .filter_map(|r| r.get(col).and_then(Cell::text).map(|t| t.chars().count()))
                .max()
                .unwrap_or(1)
                .clamp(1, MAX_CHAR_LENGTH),
        }
    }

    /// An empty row (every cell missing) in this dataset's variable order.
    pub fn blank_row(&self) -> Vec<Cell> {
        self.variables
            .iter()
            .map(|v| match v.kind {
                VarType::Char => Cell::Char(String::new()),
                VarType::Num => Cell::Num(None),
            })
            .collect()
    }
}
