//! Log hygiene: [`Clean`] shows a user-controlled string in a log line without letting it forge
//! lines or drive the terminal.
//!
//! Every control character (newlines, ESC, the C1 range), the Unicode line separators and the
//! bidirectional overrides are written as `\u{…}` escapes, a backslash as `\\`, and anything past
//! [`MAX_CHARS`] characters is cut with `…`. Tokens are never logged at all.

use std::fmt;

/// Characters of a user-controlled string shown in a log line.
pub(crate) const MAX_CHARS: usize = 96;

/// A user-controlled string, escaped when displayed (`user = %Clean(&user)`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clean<'a>(pub(crate) &'a str);

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

impl fmt::Display for Clean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        for (i, c) in self.0.chars().enumerate() {
            if i == MAX_CHARS {
                return f.write_char('…');
            }
            if c == '\\' {
                f.write_str("\\\\")?;
            } else if needs_escape(c) {
                write!(f, "\\u{{{:x}}}", u32::from(c))?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_forge_lines_or_colour_the_terminal() {
        let shown = Clean("u1\nINFO forged\r\u{1b}[31mred\u{202e}\\").to_string();
        assert_eq!(
            shown,
            "u1\\u{a}INFO forged\\u{d}\\u{1b}[31mred\\u{202e}\\\\"
        );
        assert!(!shown.chars().any(needs_escape));
        assert_eq!(Clean("plain-user_42").to_string(), "plain-user_42");
        let long = "x".repeat(500);
        assert_eq!(Clean(&long).to_string().chars().count(), MAX_CHARS + 1);
    }
}
