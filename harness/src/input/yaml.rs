//! YAML mistakes as a person makes them, named in their words: a bracket left open, a key
//! given twice. The parser finds both, but names them in its own terms (an unclosed `[` is
//! reported wherever typing first trips on it, a duplicate key with a hint about the
//! parser's options); these helpers find where the person's mistake is.

/// A flow collection (`[` or `{`) opened and never closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unclosed {
    /// The bracket: `[` or `{`.
    pub bracket: char,
    /// 1-based line where it opens.
    pub line: u64,
    /// 1-based column where it opens.
    pub column: u64,
}

impl Unclosed {
    /// What is wrong, in words.
    pub fn message(&self) -> String {
        let (kind, closer) = match self.bracket {
            '[' => ("sequence", ']'),
            _ => ("mapping", '}'),
        };
        format!(
            "unclosed `{}`: the flow {kind} opened at line {}, column {} has no `{closer}`",
            self.bracket, self.line, self.column
        )
    }
}

/// The first flow collection of `text` that is never closed, if any. Brackets count only where
/// a value or an item starts (after `:`, `-`, `,`, another bracket or at a line's start), not
/// inside quoted strings, comments or plain scalars such as `a[1]`.
pub fn unclosed_bracket(text: &str) -> Option<Unclosed> {
    let mut open: Vec<Unclosed> = Vec::new();
    // A quoted scalar may run over several lines.
    let mut quote: Option<char> = None;
    // The indentation of a line that starts a block scalar (`|`, `>`): deeper lines are text.
    let mut block: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        if let Some(b) = block {
            if line.trim().is_empty() || indent > b {
                continue;
            }
            block = None;
        }
        let chars: Vec<char> = line.chars().collect();
        // Whether a value may start at the next non-space character.
        let mut value_start = true;
        let mut j = 0;
        while j < chars.len() {
            let c = chars[j];
            if let Some(q) = quote {
                // Inside a quoted scalar; a single-quoted one escapes `'` as `''`.
                if c == q {
                    if q == '\'' && chars.get(j + 1) == Some(&'\'') {
                        j += 1;
                    } else {
                        quote = None;
                        value_start = false;
                    }
                } else if q == '"' && c == '\\' {
                    j += 1;
                }
                j += 1;
                continue;
            }
            match c {
                ' ' | '\t' => {}
                '#' if j == 0 || chars[j - 1] == ' ' || chars[j - 1] == '\t' => break,
                '\'' | '"' if value_start => quote = Some(c),
                '|' | '>' if value_start && open.is_empty() => {
                    block = Some(indent);
                    break;
                }
                '[' | '{' if value_start => {
                    open.push(Unclosed {
                        bracket: c,
                        line: i as u64 + 1,
                        column: j as u64 + 1,
                    });
                    value_start = true;
                }
                ']' | '}' if !open.is_empty() => {
                    open.pop();
                    value_start = false;
                }
                ':' | ',' => value_start = true,
                '-' if value_start && chars.get(j + 1).is_none_or(|n| *n == ' ') => {}
                _ => {
                    value_start = false;
                    // A plain scalar runs to the next indicator that can end it.
                    while j + 1 < chars.len() {
                        let n = chars[j + 1];
                        let ends = match n {
                            ',' | ']' | '}' => !open.is_empty(),
                            ':' => chars.get(j + 2).is_none_or(|a| *a == ' '),
                            '#' => chars[j] == ' ',
                            _ => false,
                        };
                        if ends {
                            break;
                        }
                        j += 1;
                    }
                }
            }
            j += 1;
        }
    }
    open.into_iter().next()
}

/// The line where `key` first appears in the mapping that holds it again at `line`,
/// `column` (1-based, where the parser found the duplicate). `None` when it cannot tell.
pub fn first_occurrence(text: &str, key: &str, line: u64, column: u64) -> Option<u64> {
    let lines: Vec<&str> = text.lines().collect();
    let dup = *lines.get(line.checked_sub(1)? as usize)?;
    let needles = [
        format!("{key}:"),
        format!("\"{key}\":"),
        format!("'{key}':"),
    ];
    let starts_with_key = |s: &str| needles.iter().any(|n| s.starts_with(n.as_str()));
    // In a flow mapping on one line (`{ a: 1, a: 2 }`), the first is earlier on the same line.
    let col = (column as usize).saturating_sub(1).min(dup.len());
    if dup[..col].contains('{') {
        let before = &dup[..col];
        let earlier = before
            .match_indices(key)
            .any(|(i, _)| starts_with_key(&before[i..]) || starts_with_key(&dup[i..]));
        return earlier.then_some(line);
    }
    // In a block mapping, the keys of one mapping share an indentation: walk back to the
    // mapping's start and keep the earliest line with the key at that indentation.
    fn key_column(l: &str) -> (usize, &str) {
        let mut rest = l.trim_start();
        while let Some(r) = rest.strip_prefix("- ") {
            rest = r.trim_start();
        }
        (l.len() - rest.len(), rest)
    }
    let (indent, _) = key_column(dup);
    let mut first = None;
    for n in (0..(line as usize - 1)).rev() {
        let l = lines[n];
        let trimmed = l.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (k, rest) = key_column(l);
        if k == indent && starts_with_key(rest) {
            first = Some(n as u64 + 1);
        }
        if l.len() - trimmed.len() < indent {
            break;
        }
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unclosed_flow_sequence_is_found_where_it_opens() {
        let text = "name: x\nseed: [1, 2\nduration: 10m\n";
        assert_eq!(
            unclosed_bracket(text),
            Some(Unclosed {
                bracket: '[',
                line: 2,
                column: 7
            })
        );
        let text = "world:\n  lakes: { count: 3,\n    tenants: 2\n";
        assert_eq!(
            unclosed_bracket(text).map(|u| (u.line, u.column)),
            Some((2, 10))
        );
    }

    #[test]
    fn closed_quoted_commented_and_plain_brackets_are_not_unclosed() {
        for text in [
            "a: [1, 2]\nb: { c: [3], d: '[' }\n",
            "sql: \"SELECT '[' FROM t\"\n",
            "a: 1 # [not a bracket\n",
            "sql: SELECT a[1] FROM t\n",
            "a: [1,\n   2]\n",
            "- [x, {y: z}]\n",
            "s: 'it''s ['\n",
            "sql: |\n  SELECT [1\n  FROM t\nb: 2\n",
            "about: \"a long\n  [sentence\"\n",
        ] {
            assert_eq!(unclosed_bracket(text), None, "{text}");
        }
    }

    #[test]
    fn a_duplicate_key_points_back_to_its_first_line() {
        let text = "name: a\nseed: 7\ntick: 1ms\nworld:\n  tick: 3\n  regions: []\ntick: 2ms\n";
        assert_eq!(first_occurrence(text, "tick", 7, 1), Some(3));
        let text = "world:\n  lakes:\n    count: 1\n    count: 2\n";
        assert_eq!(first_occurrence(text, "count", 4, 5), Some(3));
        let text = "faults:\n  - at: 1m\n    action: x\n    at: 2m\n";
        assert_eq!(first_occurrence(text, "at", 4, 5), Some(2));
        let text = "lakes: { count: 1, count: 2 }\n";
        assert_eq!(first_occurrence(text, "count", 1, 20), Some(1));
    }
}
