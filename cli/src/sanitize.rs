//! What another user wrote, made safe for a terminal.
//!
//! Message text, names, topics, file names and reactions come from other
//! people. Printed raw, an escape sequence (`ESC [ …`) could recolour,
//! clear or retitle the reader's terminal, a newline could forge a line
//! that seems to come from someone else, and a bidirectional override
//! (U+202E and friends) could make `evil\u{202e}txt.exe` read as
//! `evilexe.txt`. The TUI and every line the CLI prints go through
//! [`sanitize`].

/// Replaces every control character (newlines included) and every
/// bidirectional formatting character with U+FFFD, visibly: a line of text
/// stays one line that reads as it is stored. Tabs become spaces.
pub(crate) fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' => ' ',
            '\u{200e}'
            | '\u{200f}'
            | '\u{061c}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}' => '\u{fffd}',
            c if c.is_control() => '\u{fffd}',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_direction_marks_are_shown_not_obeyed() {
        assert_eq!(sanitize("a\u{1b}[2Jb\u{7}"), "a\u{fffd}[2Jb\u{fffd}");
        assert_eq!(sanitize("evil\u{202e}txt.exe"), "evil\u{fffd}txt.exe");
        assert_eq!(sanitize("two\nlines\r"), "two\u{fffd}lines\u{fffd}");
        assert_eq!(sanitize("\u{9b}31m csi"), "\u{fffd}31m csi");
        assert_eq!(
            sanitize("tab\there, caf\u{e9} \u{1f600}"),
            "tab here, caf\u{e9} \u{1f600}"
        );
    }
}
