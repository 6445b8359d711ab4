//! C2SP tlog-tiles: the log as static, cacheable resources.
//!
//! - `checkpoint`: the latest signed checkpoint;
//! - `tile/<L>/<N>[.p/<W>]`: hash tile `N` of tile level `L`, the hashes of
//!   tree level `8L` from index `256N`, 256 of them (a full tile) or the
//!   first `W` (a partial tile at the right edge of the tree);
//! - `tile/entries/<N>[.p/<W>]`: the entries of level-0 tile `N`, each
//!   prefixed with its length as a big-endian `u16`.
//!
//! `N` is written in groups of three digits, all but the last prefixed with
//! `x`: 1234067 is `x001/x234/067`. This module only names and checks tiles;
//! the log half reads them from the stored tree.

/// Hashes in a full tile (tile height 8).
pub const TILE_WIDTH: u64 = 256;
/// Tree levels per tile level.
pub const TILE_HEIGHT: u8 = 8;

/// One tile: hashes of one tile level, or entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    /// Tile level (tree level `8 * level`); `None` for an entry bundle.
    pub level: Option<u8>,
    /// Its index within its level.
    pub index: u64,
    /// How many hashes or entries it holds: 1 to 256.
    pub width: u64,
}

impl Tile {
    /// Parses a path below `tile/` (`0/x001/234`, `entries/005.p/12`);
    /// `None` if it is not one.
    pub fn parse(path: &str) -> Option<Self> {
        let (path, width) = match path.split_once(".p/") {
            Some((path, width)) => {
                let width: u64 = digits(width)?;
                if !(1..TILE_WIDTH).contains(&width) {
                    return None;
                }
                (path, width)
            }
            None => (path, TILE_WIDTH),
        };
        let (level, index) = path.split_once('/')?;
        let level = match level {
            "entries" => None,
            level => {
                let level: u8 = digits(level)?.try_into().ok()?;
                if level >= 64 / TILE_HEIGHT {
                    return None;
                }
                Some(level)
            }
        };
        let mut groups = index.split('/').peekable();
        let mut index: u64 = 0;
        while let Some(group) = groups.next() {
            let group = match groups.peek() {
                Some(_) => group.strip_prefix('x')?,
                None => group,
            };
            if group.len() != 3 {
                return None;
            }
            index = index.checked_mul(1000)?.checked_add(digits(group)?)?;
        }
        // A tile whose first node index does not fit is no tile of any tree
        // (and `first` would overflow).
        index.checked_mul(TILE_WIDTH)?;
        Some(Self {
            level,
            index,
            width,
        })
    }

    /// The tile's path below `tile/`.
    pub fn path(&self) -> String {
        let mut n = self.index;
        let mut groups = format!("{:03}", n % 1000);
        while n >= 1000 {
            n /= 1000;
            groups = format!("x{:03}/{groups}", n % 1000);
        }
        let level = self
            .level
            .map_or_else(|| "entries".to_owned(), |l| l.to_string());
        let partial = if self.width == TILE_WIDTH {
            String::new()
        } else {
            format!(".p/{}", self.width)
        };
        format!("{level}/{groups}{partial}")
    }

    /// The tree level whose nodes this tile holds (0 for entries).
    pub fn tree_level(&self) -> u8 {
        self.level.unwrap_or(0) * TILE_HEIGHT
    }

    /// The first node (or entry) index it covers.
    pub fn first(&self) -> u64 {
        self.index.saturating_mul(TILE_WIDTH)
    }

    /// Whether a tree of `size` leaves holds the whole tile: all of its
    /// nodes are complete subtrees of that tree.
    pub fn within(&self, size: u64) -> bool {
        let complete = size >> self.tree_level();
        self.first()
            .checked_add(self.width)
            .is_some_and(|end| end <= complete)
    }
}

/// Appends `entry` to an entry bundle: its length as a big-endian `u16`,
/// then the bytes. `None` if it is longer than a bundle can hold.
pub fn push_entry(bundle: &mut Vec<u8>, entry: &[u8]) -> Option<()> {
    let length = u16::try_from(entry.len()).ok()?;
    bundle.extend_from_slice(&length.to_be_bytes());
    bundle.extend_from_slice(entry);
    Some(())
}

/// A decimal number of ASCII digits only (no sign, no spaces).
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_spec_examples() {
        let tile = Tile::parse("4/x001/x234/067.p/1").unwrap();
        assert_eq!(
            tile,
            Tile {
                level: Some(4),
                index: 1_234_067,
                width: 1
            }
        );
        assert_eq!(tile.path(), "4/x001/x234/067.p/1");
        let entries = Tile::parse("entries/000").unwrap();
        assert_eq!(
            (entries.level, entries.index, entries.width),
            (None, 0, 256)
        );
        assert_eq!(entries.path(), "entries/000");
        for bad in [
            "0/1",
            "0/0001",
            "0/001/002",
            "0/x001",
            "8/000",
            "0/000.p/0",
            "0/000.p/256",
            "0/+01",
            "data/000",
            "0/x999/x999/x999/x999/x999/x999/x999/999",
            // Fits a u64, but its first node index does not.
            "0/x018/x446/x744/x073/x709/x551/615",
        ] {
            assert_eq!(Tile::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_tile_is_served_only_once_the_tree_holds_it() {
        let partial = Tile::parse("0/000.p/5").unwrap();
        assert!(partial.within(5) && !partial.within(4));
        let level_one = Tile::parse("1/000.p/2").unwrap();
        assert!(level_one.within(512) && !level_one.within(511));
    }
}
