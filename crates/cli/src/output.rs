//! Output for people (aligned tables) and for programs (`--json`).

use std::io::{self, Write};

use serde::Serialize;

use crate::error::CliResult;

/// Options every command shares.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Globals {
    /// `-q`: print only results and errors, no progress or commentary.
    pub(crate) quiet: bool,
    /// `-v`: say more about what is being done (repeatable).
    pub(crate) verbose: u8,
}

/// Column alignment in a [`Table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    /// Text columns.
    Left,
    /// Number columns.
    Right,
}

/// A table for people: uppercase headers, columns padded to their widest
/// cell, numbers aligned right, the last column never padded.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    headers: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers, all left-aligned.
    pub(crate) fn new<S: AsRef<str>>(headers: &[S]) -> Self {
        Self {
            headers: headers.iter().map(|h| h.as_ref().to_uppercase()).collect(),
            align: vec![Align::Left; headers.len()],
            rows: Vec::new(),
        }
    }

    /// Aligns the given columns (by index) to the right.
    #[must_use]
    pub(crate) fn right(mut self, columns: &[usize]) -> Self {
        for &c in columns {
            if let Some(a) = self.align.get_mut(c) {
                *a = Align::Right;
            }
        }
        self
    }

    /// Adds a row; missing cells print empty, extra cells are dropped.
    pub(crate) fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// Writes the table, with or without its header line.
    pub(crate) fn write(&self, out: &mut dyn Write, headers: bool) -> io::Result<()> {
        let n = self.headers.len();
        let mut widths: Vec<usize> = if headers {
            self.headers.iter().map(|h| h.chars().count()).collect()
        } else {
            vec![0; n]
        };
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| -> io::Result<()> {
            let mut text = String::new();
            for (i, cell) in cells.take(n).enumerate() {
                let last = i + 1 == n;
                let pad = widths[i].saturating_sub(cell.chars().count());
                if i > 0 {
                    text.push_str("  ");
                }
                match self.align[i] {
                    Align::Right => {
                        text.extend(std::iter::repeat_n(' ', pad));
                        text.push_str(cell);
                    }
                    Align::Left => {
                        text.push_str(cell);
                        if !last {
                            text.extend(std::iter::repeat_n(' ', pad));
                        }
                    }
                }
            }
            writeln!(out, "{}", text.trim_end())
        };
        if headers {
            line(out, &mut self.headers.iter().map(String::as_str))?;
        }
        for row in &self.rows {
            let mut cells = row.iter().map(String::as_str).chain(std::iter::repeat(""));
            line(out, &mut cells)?;
        }
        Ok(())
    }

    /// The table with only the named columns, in the order given (`-o` of
    /// lsipc and lslocks); names match headers in any case.
    ///
    /// # Errors
    /// An unknown name, with the columns there are.
    pub(crate) fn select<S: AsRef<str>>(&self, names: &[S]) -> Result<Self, String> {
        let mut picks = Vec::with_capacity(names.len());
        for name in names {
            let name = name.as_ref();
            let at = self
                .headers
                .iter()
                .position(|h| h.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    format!(
                        "unknown column '{name}' (columns: {})",
                        self.headers.join(", ").to_lowercase()
                    )
                })?;
            picks.push(at);
        }
        Ok(Self {
            headers: picks.iter().map(|&i| self.headers[i].clone()).collect(),
            align: picks.iter().map(|&i| self.align[i]).collect(),
            rows: self
                .rows
                .iter()
                .map(|r| {
                    picks
                        .iter()
                        .map(|&i| r.get(i).cloned().unwrap_or_default())
                        .collect()
                })
                .collect(),
        })
    }

    /// Writes the table unaligned, one space between cells, as lsipc and
    /// lslocks `-r` do: spaces and backslashes inside a cell are written
    /// `\x20` and `\x5c`, an empty cell as nothing.
    pub(crate) fn write_raw(&self, out: &mut dyn Write, headers: bool) -> io::Result<()> {
        let escape = |cell: &str| cell.replace('\\', "\\x5c").replace(' ', "\\x20");
        let n = self.headers.len();
        if headers {
            writeln!(out, "{}", self.headers.join(" "))?;
        }
        for row in &self.rows {
            let cells: Vec<String> = (0..n)
                .map(|i| escape(row.get(i).map_or("", String::as_str)))
                .collect();
            writeln!(out, "{}", cells.join(" "))?;
        }
        Ok(())
    }

    /// Prints the table to stdout.
    pub(crate) fn print(&self, headers: bool) -> CliResult<()> {
        let mut out = stdout();
        self.write(&mut out, headers)?;
        out.flush()?;
        Ok(())
    }
}

/// How a table is printed: which columns (`-o`), aligned or raw (`-r`),
/// with or without headers (`-n`).
#[derive(Debug, Clone, Default)]
pub(crate) struct TableStyle {
    /// Only these columns, in this order; all when empty.
    pub(crate) columns: Vec<String>,
    /// Unaligned, one space apart.
    pub(crate) raw: bool,
    /// Leave out the header line.
    pub(crate) noheadings: bool,
}

impl TableStyle {
    /// Prints `table` in this style to stdout; `what` names the table in
    /// an error about an unknown column.
    pub(crate) fn print(&self, table: &Table, what: &str) -> CliResult<()> {
        let picked;
        let table = if self.columns.is_empty() {
            table
        } else {
            picked = table
                .select(&self.columns)
                .map_err(|why| crate::error::CliError::new(format!("-o ({what})"), why))?;
            &picked
        };
        let mut out = stdout();
        if self.raw {
            table.write_raw(&mut out, !self.noheadings)?;
        } else {
            table.write(&mut out, !self.noheadings)?;
        }
        out.flush()?;
        Ok(())
    }
}

/// Prints `value` to stdout as pretty JSON followed by a newline.
pub(crate) fn print_json<T: Serialize + ?Sized>(value: &T) -> CliResult<()> {
    let mut out = stdout();
    serde_json::to_writer_pretty(&mut out, value).map_err(io::Error::from)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// Prints `memio: <text>` as one line on stderr: warnings and per-object
/// errors that do not stop a command. A closed stderr is ignored rather
/// than a panic, as `eprintln!` would.
pub(crate) fn warn(text: impl std::fmt::Display) {
    let _ = writeln!(io::stderr(), "memio: {text}");
}

/// A writer whose errors name what it writes to: `stdout: no space left
/// on device`, so an error that reaches `main` through `?` says where it
/// happened.
#[derive(Debug)]
pub(crate) struct Named<W> {
    inner: W,
    name: &'static str,
}

impl<W: Write> Named<W> {
    /// `inner`, its errors named `name`.
    pub(crate) fn new(inner: W, name: &'static str) -> Self {
        Self { inner, name }
    }

    fn name(&self, err: io::Error) -> io::Error {
        memio::map::error::OsError::new(self.name, err).into()
    }
}

impl<W: Write> Write for Named<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).map_err(|e| self.name(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(|e| self.name(e))
    }
}

/// Standard output, locked, its write errors naming it.
pub(crate) fn stdout() -> Named<io::StdoutLock<'static>> {
    Named::new(io::stdout().lock(), "stdout")
}

/// Prints one line to stdout.
pub(crate) fn println(text: impl std::fmt::Display) -> CliResult<()> {
    let mut out = stdout();
    writeln!(out, "{text}")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CliError;

    /// A writer that always fails with ENOSPC.
    struct Full;

    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(28))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn write_errors_name_the_stream_and_keep_the_errno() {
        let err = writeln!(Named::new(Full, "stdout"), "x").unwrap_err();
        assert_eq!(memio::map::error::raw_errno(&err), Some(28));
        assert_eq!(
            CliError::from(err).to_string(),
            "stdout: no space left on device"
        );
    }

    #[test]
    fn columns_line_up_and_numbers_align_right() {
        let mut t = Table::new(&["name", "size", "path"]).right(&[1]);
        t.push(vec!["a".into(), "1".into(), "/x".into()]);
        t.push(vec!["long-name".into(), "12345".into(), "/y".into()]);
        let mut out = Vec::new();
        t.write(&mut out, true).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "NAME        SIZE  PATH\na              1  /x\nlong-name  12345  /y\n"
        );
        let mut out = Vec::new();
        t.write(&mut out, false).unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .starts_with("a              1")
        );
    }
}
