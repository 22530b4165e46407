//! Aligned text tables that fit in 100 columns.

/// The width human output fits in.
pub const WIDTH: usize = 100;

/// How a column's too-long cells are shortened.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Never (the column keeps its width).
    Never,
    /// Keep the start and the end (ids).
    Middle,
    /// Keep the start (messages).
    End,
}

/// A column: its header, whether it is right-aligned, how it is shortened.
pub struct Column {
    header: &'static str,
    right: bool,
    cut: Cut,
}

impl Column {
    /// A left-aligned column that is never shortened.
    pub fn new(header: &'static str) -> Column {
        Column {
            header,
            right: false,
            cut: Cut::Never,
        }
    }

    /// Right-aligned (numbers).
    pub fn right(mut self) -> Column {
        self.right = true;
        self
    }

    /// Shortened when the table is too wide.
    pub fn cut(mut self, cut: Cut) -> Column {
        self.cut = cut;
        self
    }
}

/// A table: columns and rows of cells.
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
}

/// The narrowest a shortened column gets.
const MIN_CUT_WIDTH: usize = 12;

fn width(text: &str) -> usize {
    text.chars().count()
}

/// `text` shortened to `max` characters with `…`.
pub fn shorten(text: &str, max: usize, cut: Cut) -> String {
    let len = width(text);
    if len <= max || cut == Cut::Never || max == 0 {
        return text.to_owned();
    }
    let chars: Vec<char> = text.chars().collect();
    match cut {
        Cut::Middle => {
            let head = (max - 1) / 2;
            let tail = max - 1 - head;
            let mut out: String = chars[..head].iter().collect();
            out.push('…');
            out.extend(&chars[len - tail..]);
            out
        }
        _ => {
            let mut out: String = chars[..max - 1].iter().collect();
            out.push('…');
            out
        }
    }
}

impl Table {
    /// An empty table with `columns`.
    pub fn new(columns: Vec<Column>) -> Table {
        Table {
            columns,
            rows: Vec::new(),
        }
    }

    /// Add a row (one cell per column).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as lines, with two spaces between columns, at most [`WIDTH`] wide
    /// when the shortenable columns allow it.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                self.rows
                    .iter()
                    .map(|r| r.get(i).map_or(0, |cell| width(cell)))
                    .chain(std::iter::once(width(c.header)))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let total = |w: &[usize]| w.iter().sum::<usize>() + 2 * w.len().saturating_sub(1);
        while total(&widths) > WIDTH {
            let widest = (0..widths.len())
                .filter(|&i| self.columns[i].cut != Cut::Never && widths[i] > MIN_CUT_WIDTH)
                .max_by_key(|&i| (widths[i], usize::MAX - i));
            match widest {
                Some(i) => widths[i] -= 1,
                None => break,
            }
        }
        let mut out = String::new();
        let headers: Vec<String> = self.columns.iter().map(|c| c.header.to_owned()).collect();
        for cells in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, column) in self.columns.iter().enumerate() {
                let cell = shorten(
                    cells.get(i).map_or("", String::as_str),
                    widths[i],
                    column.cut,
                );
                let pad = widths[i].saturating_sub(width(&cell));
                if i > 0 {
                    line.push_str("  ");
                }
                if column.right {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(&cell);
                } else {
                    line.push_str(&cell);
                    line.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_shortened_to_fit_the_width() {
        assert_eq!(shorten("abcdefghij", 5, Cut::Middle), "ab…ij");
        assert_eq!(shorten("abcdefghij", 5, Cut::End), "abcd…");
        assert_eq!(shorten("abc", 5, Cut::End), "abc");
        let mut table = Table::new(vec![
            Column::new("ID").cut(Cut::Middle),
            Column::new("N").right(),
            Column::new("NOTE").cut(Cut::End),
        ]);
        table.row(vec!["x".repeat(70), "7".to_owned(), "y".repeat(70)]);
        let text = table.render();
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
        assert!(text.starts_with("ID "));
    }
}
