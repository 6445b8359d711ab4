//! The one-line editor at the bottom: the text, a cursor, and the lines
//! sent before (Up and Down recall them, as in a shell).

use unicode_width::UnicodeWidthChar;

/// Lines kept for recall.
const RECALL: usize = 100;

#[derive(Debug, Default)]
pub(crate) struct Composer {
    /// The text, as typed. A pasted newline stays a newline.
    text: String,
    /// Cursor position, in chars.
    cursor: usize,
    /// Earlier lines, oldest first.
    recall: Vec<String>,
    /// Which earlier line is shown, while browsing them.
    browsing: Option<usize>,
    /// What was typed before browsing started.
    before_recall: String,
}

impl Composer {
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Whether the cursor is after the last character.
    pub(crate) fn at_end(&self) -> bool {
        self.cursor == self.len()
    }

    /// Replaces the text, with the cursor at its end.
    pub(crate) fn replace(&mut self, text: &str) {
        self.text = text.to_owned();
        self.cursor = self.len();
        self.browsing = None;
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    fn byte_at(&self, chars: usize) -> usize {
        self.text
            .char_indices()
            .nth(chars)
            .map_or(self.text.len(), |(i, _)| i)
    }

    fn len(&self) -> usize {
        self.text.chars().count()
    }

    pub(crate) fn insert(&mut self, text: &str) {
        let at = self.byte_at(self.cursor);
        // Pasted line ends become newlines; no other control character gets in.
        let clean: String = text
            .replace("\r\n", "\n")
            .replace('\r', "\n")
            .chars()
            .map(|c| match c {
                '\t' => ' ',
                '\n' => '\n',
                c if c.is_control() => '\u{fffd}',
                c => c,
            })
            .collect();
        self.text.insert_str(at, &clean);
        self.cursor += clean.chars().count();
        self.browsing = None;
    }

    pub(crate) fn backspace(&mut self) {
        if self.cursor > 0 {
            self.cursor -= 1;
            let at = self.byte_at(self.cursor);
            self.text.remove(at);
        }
    }

    pub(crate) fn delete(&mut self) {
        if self.cursor < self.len() {
            let at = self.byte_at(self.cursor);
            self.text.remove(at);
        }
    }

    pub(crate) fn left(&mut self) {
        self.cursor = self.cursor.saturating_sub(1);
    }

    pub(crate) fn right(&mut self) {
        self.cursor = (self.cursor + 1).min(self.len());
    }

    pub(crate) fn home(&mut self) {
        self.cursor = 0;
    }

    pub(crate) fn end(&mut self) {
        self.cursor = self.len();
    }

    /// Ctrl-U: everything before the cursor.
    pub(crate) fn kill_to_start(&mut self) {
        let at = self.byte_at(self.cursor);
        self.text.replace_range(..at, "");
        self.cursor = 0;
    }

    /// Ctrl-K: everything after the cursor.
    pub(crate) fn kill_to_end(&mut self) {
        let at = self.byte_at(self.cursor);
        self.text.truncate(at);
    }

    /// Ctrl-W: the word before the cursor, and the spaces after it.
    pub(crate) fn kill_word(&mut self) {
        let chars: Vec<char> = self.text.chars().collect();
        let mut start = self.cursor;
        while start > 0 && chars[start - 1].is_whitespace() {
            start -= 1;
        }
        while start > 0 && !chars[start - 1].is_whitespace() {
            start -= 1;
        }
        let (from, to) = (self.byte_at(start), self.byte_at(self.cursor));
        self.text.replace_range(from..to, "");
        self.cursor = start;
    }

    /// Takes the line out for submission and remembers it for recall.
    pub(crate) fn take(&mut self) -> String {
        let text = std::mem::take(&mut self.text);
        self.cursor = 0;
        self.browsing = None;
        self.before_recall.clear();
        if !text.trim().is_empty() && self.recall.last() != Some(&text) {
            self.recall.push(text.clone());
            if self.recall.len() > RECALL {
                self.recall.remove(0);
            }
        }
        text
    }

    /// Another channel was entered: its draft (`text`) takes the place of
    /// what was typed here, which is returned to be kept for this channel.
    /// An earlier line shown by Up and left unedited is not a draft: what
    /// was typed before it is.
    pub(crate) fn switch_to(&mut self, text: String) -> String {
        let unedited_recall = self
            .browsing
            .take()
            .and_then(|i| self.recall.get(i))
            .is_some_and(|line| *line == self.text);
        let left = if unedited_recall {
            std::mem::take(&mut self.before_recall)
        } else {
            std::mem::take(&mut self.text)
        };
        self.before_recall.clear();
        self.text = text;
        self.cursor = self.len();
        left
    }

    /// Up: the line sent before the one shown.
    pub(crate) fn older(&mut self) {
        let index = match self.browsing {
            None if self.recall.is_empty() => return,
            None => {
                self.before_recall = std::mem::take(&mut self.text);
                self.recall.len() - 1
            }
            Some(i) => i.saturating_sub(1),
        };
        self.show_recalled(Some(index));
    }

    /// Down: the line sent after the one shown, then what was being typed.
    pub(crate) fn newer(&mut self) {
        match self.browsing {
            None => {}
            Some(i) if i + 1 < self.recall.len() => self.show_recalled(Some(i + 1)),
            Some(_) => self.show_recalled(None),
        }
    }

    fn show_recalled(&mut self, index: Option<usize>) {
        self.browsing = index;
        self.text = match index.and_then(|i| self.recall.get(i)) {
            Some(line) => line.clone(),
            None => std::mem::take(&mut self.before_recall),
        };
        self.cursor = self.len();
    }

    /// The part of the line that fits in `width` columns with the cursor in
    /// view, and the cursor's column in it. Newlines show as `↵`.
    pub(crate) fn visible(&self, width: usize) -> (String, usize) {
        let shown: Vec<(char, usize)> = self
            .text
            .chars()
            .map(|c| {
                let c = if c == '\n' { '\u{21b5}' } else { c };
                (c, c.width().unwrap_or(0))
            })
            .collect();
        let width = width.max(1);
        // Scroll right just enough that the cursor (one more column) fits.
        let mut start = 0;
        let column = |start: usize| -> usize {
            shown[start..self.cursor.min(shown.len())]
                .iter()
                .map(|(_, w)| w)
                .sum()
        };
        while start < self.cursor && column(start) + 1 > width {
            start += 1;
        }
        let mut used = 0;
        let mut out = String::new();
        for (c, w) in &shown[start..] {
            if used + w > width {
                break;
            }
            used += w;
            out.push(*c);
        }
        (out, column(start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(text: &str) -> Composer {
        let mut composer = Composer::default();
        composer.insert(text);
        composer
    }

    #[test]
    fn editing_keys_work_on_characters_not_bytes() {
        let mut c = typed("héllo wörld");
        c.backspace();
        assert_eq!(c.text(), "héllo wörl");
        c.home();
        c.right();
        c.delete();
        assert_eq!(c.text(), "hllo wörl");
        c.end();
        c.kill_word();
        assert_eq!(c.text(), "hllo ");
        c.home();
        c.kill_to_end();
        assert!(c.is_empty());
        let mut c = typed("a\tb\u{1b}[2Jc\r\nd");
        assert_eq!(c.take(), "a b\u{fffd}[2Jc\nd");
    }

    #[test]
    fn up_and_down_recall_sent_lines_and_keep_the_draft() {
        let mut c = Composer::default();
        for line in ["first", "second"] {
            c.insert(line);
            c.take();
        }
        c.insert("draft");
        c.older();
        assert_eq!(c.text(), "second");
        c.older();
        c.older();
        assert_eq!(c.text(), "first");
        c.newer();
        assert_eq!(c.text(), "second");
        c.newer();
        assert_eq!(c.text(), "draft");
    }

    #[test]
    fn switching_channel_swaps_drafts_and_ends_browsing() {
        let mut c = Composer::default();
        c.insert("sent");
        c.take();
        c.insert("half a thought");
        assert_eq!(c.switch_to("kept for here".into()), "half a thought");
        assert_eq!(c.text(), "kept for here");
        assert!(c.at_end());
        // Up shows an earlier line; switching keeps what was typed, not it.
        c.older();
        assert_eq!(c.text(), "sent");
        assert_eq!(c.switch_to(String::new()), "kept for here");
        assert!(c.is_empty());
        c.newer();
        assert!(c.is_empty(), "nothing of the other channel comes back");
    }

    #[test]
    fn long_lines_scroll_to_keep_the_cursor_visible() {
        let c = typed("abcdefghij");
        assert_eq!(c.visible(5), ("ghij".to_owned(), 4));
        let mut c = typed("abcdefghij");
        c.home();
        assert_eq!(c.visible(5), ("abcde".to_owned(), 0));
        // A wide character counts two columns.
        let c = typed("ab👍");
        assert_eq!(c.visible(10), ("ab👍".to_owned(), 4));
    }
}
