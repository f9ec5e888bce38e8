//! Plain-text tables for the terminal.

/// Lays out rows under headers in columns two spaces apart.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (index, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(index) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (index, cell) in cells.into_iter().enumerate() {
            text.push_str(cell);
            if index < last {
                let pad = widths[index] - cell.chars().count() + 2;
                text.push_str(&" ".repeat(pad));
            }
        }
        text.trim_end().to_owned()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// Shortens text to `max` characters, marking the cut with "...".
pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max.saturating_sub(3)).collect();
        format!("{cut}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let text = table(
            &["JOB", "STATUS"],
            &[
                vec!["llm-1".to_owned(), "FAILED".to_owned()],
                vec!["a".to_owned(), "IN_PROGRESS".to_owned()],
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "JOB    STATUS");
        assert_eq!(lines[1], "llm-1  FAILED");
        assert_eq!(lines[2], "a      IN_PROGRESS");
    }

    #[test]
    fn clip_marks_the_cut() {
        assert_eq!(clip("abcdef", 5), "ab...");
        assert_eq!(clip("abc", 5), "abc");
    }
}
