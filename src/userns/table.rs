//! The allocation table's format, and the checks that make a hostile or damaged
//! table an error rather than a wrong allocation.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub const TABLE_VERSION: u32 = 1;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TableError {
    #[error("not a valid allocation table: {0}")]
    Parse(String),
    #[error("allocation table version {0} is not {TABLE_VERSION}")]
    Version(u32),
    #[error("allocation table entry {index}: {message}")]
    Entry { index: usize, message: String },
}

/// One block of host IDs and who holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Allocation {
    /// The container that owns the block: a pod's sandbox, or a standalone container.
    pub owner: String,
    /// runc's `--root` the owner was created under (where its state is looked up).
    pub root: PathBuf,
    pub host_start: u32,
    pub size: u32,
    /// The hardrun (then runc create) process that allocated it, and its start
    /// time in clock ticks: alive means the create is still under way.
    pub pid: u32,
    pub pid_start: u64,
    pub created: String,
    /// `runc delete` of the owner was seen.
    #[serde(default)]
    pub released: bool,
}

impl Allocation {
    pub fn end(&self) -> u64 {
        self.host_start as u64 + self.size as u64
    }
    pub fn contains(&self, id: u64) -> bool {
        id >= self.host_start as u64 && id < self.end()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Table {
    pub version: u32,
    pub allocations: Vec<Allocation>,
}

impl Default for Table {
    fn default() -> Self {
        Table { version: TABLE_VERSION, allocations: Vec::new() }
    }
}

/// runc's rule for container IDs (`^[\w+-\.]+$`), and never `.` or `..`: an owner
/// becomes a path component under runc's root.
pub fn valid_container_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'))
}

impl Table {
    /// Parses and checks a table: every entry well-formed, no owner twice, no two
    /// blocks overlapping.
    pub fn parse(bytes: &[u8]) -> Result<Table, TableError> {
        let table: Table = serde_json::from_slice(bytes).map_err(|e| TableError::Parse(e.to_string()))?;
        if table.version != TABLE_VERSION {
            return Err(TableError::Version(table.version));
        }
        table.check()?;
        Ok(table)
    }

    fn check(&self) -> Result<(), TableError> {
        let mut owners = BTreeSet::new();
        let mut spans: Vec<(u64, u64, usize)> = Vec::with_capacity(self.allocations.len());
        for (index, a) in self.allocations.iter().enumerate() {
            let bad = |message: String| TableError::Entry { index, message };
            if !valid_container_id(&a.owner) {
                return Err(bad(format!("owner {:?} is not a container id", a.owner)));
            }
            if !a.root.is_absolute() {
                return Err(bad(format!("root {:?} is not absolute", a.root)));
            }
            if a.size == 0 || (a.host_start as u64) < super::range::RESERVED_BELOW || a.end() >= u32::MAX as u64 {
                return Err(bad(format!("block {}+{} is not a valid ID range", a.host_start, a.size)));
            }
            if !owners.insert(a.owner.as_str()) {
                return Err(bad(format!("owner {} appears twice", a.owner)));
            }
            spans.push((a.host_start as u64, a.end(), index));
        }
        spans.sort_unstable();
        for pair in spans.windows(2) {
            if pair[1].0 < pair[0].1 {
                return Err(TableError::Entry {
                    index: pair[1].2,
                    message: format!("block overlaps entry {}", pair[0].2),
                });
            }
        }
        Ok(())
    }

    pub fn find(&self, owner: &str) -> Option<&Allocation> {
        self.allocations.iter().find(|a| a.owner == owner)
    }

    /// The first block of `blocks` (each `size` IDs) no allocation overlaps.
    pub fn first_free(&self, blocks: impl Iterator<Item = u32>, size: u32) -> Option<u32> {
        let mut taken: Vec<(u64, u64)> = self.allocations.iter().map(|a| (a.host_start as u64, a.end())).collect();
        taken.sort_unstable();
        blocks.into_iter().find(|&start| {
            let (s, e) = (start as u64, start as u64 + size as u64);
            // The allocations that could overlap start before `e`; only the last such one can.
            let i = taken.partition_point(|t| t.0 < e);
            i == 0 || taken[..i].iter().rev().take(1).all(|t| t.1 <= s)
        })
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    pub(crate) fn alloc(owner: &str, host_start: u32) -> Allocation {
        Allocation {
            owner: owner.into(),
            root: "/run/runc".into(),
            host_start,
            size: 65536,
            pid: 1,
            pid_start: 0,
            created: "t".into(),
            released: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::alloc;
    use super::*;

    #[test]
    fn round_trip_and_first_free() {
        let t = Table { version: 1, allocations: vec![alloc("a", 100 * 65536), alloc("b", 102 * 65536)] };
        let back = Table::parse(&serde_json::to_vec(&t).unwrap()).unwrap();
        assert_eq!(back, t);
        let blocks = (100..104).map(|i| i * 65536);
        assert_eq!(t.first_free(blocks.clone(), 65536), Some(101 * 65536));
        let full = Table { version: 1, allocations: (100..104).map(|i| alloc(&format!("c{i}"), i * 65536)).collect() };
        assert_eq!(full.first_free(blocks, 65536), None);
        // A block from an older, shifted range still blocks what it overlaps.
        let odd = Table { version: 1, allocations: vec![alloc("x", 100 * 65536 + 10)] };
        assert_eq!(odd.first_free((100..103).map(|i| i * 65536), 65536), Some(102 * 65536));
    }

    #[test]
    fn hostile_tables_are_errors() {
        let cases: &[&[u8]] = &[
            b"",
            b"garbage",
            b"{\"version\":1,\"allocations\":[",
            b"{\"version\":2,\"allocations\":[]}",
            b"{\"version\":1,\"allocations\":[],\"extra\":1}",
            b"[]",
        ];
        for c in cases {
            assert!(Table::parse(c).is_err(), "{:?}", String::from_utf8_lossy(c));
        }
        let entry = |f: &dyn Fn(&mut Allocation)| {
            let mut a = alloc("a", 100 * 65536);
            f(&mut a);
            let t = Table { version: 1, allocations: vec![a, alloc("b", 200 * 65536)] };
            Table::parse(&serde_json::to_vec(&t).unwrap())
        };
        assert!(entry(&|_| ()).is_ok());
        assert!(entry(&|a| a.owner = "../etc".into()).is_err());
        assert!(entry(&|a| a.owner = "b".into()).is_err(), "duplicate owner");
        assert!(entry(&|a| a.root = "run/runc".into()).is_err());
        assert!(entry(&|a| a.host_start = 0).is_err());
        assert!(entry(&|a| a.size = 0).is_err());
        assert!(entry(&|a| a.host_start = u32::MAX - 10).is_err());
        assert!(entry(&|a| a.host_start = 200 * 65536 - 1).is_err(), "overlap");
    }

    #[test]
    fn container_ids() {
        assert!(valid_container_id("abc-1_2.3+x"));
        for bad in ["", ".", "..", "a/b", "a b", "é"] {
            assert!(!valid_container_id(bad), "{bad}");
        }
    }
}
