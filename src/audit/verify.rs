//! Checking the hash chain: every record's `prev` must be the SHA-256 of the line
//! before it (across rotated files) and its `seq` one more than the last record's.
//! The first broken link is reported with its file and line, and what most likely
//! broke it: an edited line, deleted lines, reordered lines, or a line cut short.
//!
//! A crash can leave one torn line; the writer closes it and marks the next record
//! (`afterTorn`, `prev` = the torn bytes' hash). That is a warning, not a break.
//!
//! What a chain cannot show: lines removed from the end of the newest file, or an
//! edit of the very last line (nothing after it carries its hash). Shipping the log
//! off the node as it is written (docs/audit.md) closes that gap.

use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use super::reader::{Line, LogSet, ReadError, Text};
use super::record::GENESIS;

#[derive(Debug, Error)]
pub enum VerifyError {
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Where a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    /// 1-based within `path`.
    pub line: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

/// What broke the chain, or what is worth a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The line was changed after it was written.
    Edited,
    /// Records `from..=to` (by seq) are missing before this line.
    Deleted { from: u64, to: u64 },
    /// This line is out of place (swapped with, or moved past, other lines).
    Reordered,
    /// This line repeats the line before it.
    Duplicated,
    /// The line is not a whole record, and the next record's `prev` does not match
    /// it: bytes were cut from the middle of the log.
    Truncated,
    /// The chain does not start at `genesis` where it must: records before this
    /// one (seq given) are missing.
    MissingStart { seq: u64 },
    /// A record without chain fields after chained ones.
    Unchained,
    // Warnings:
    /// A torn line (a crash mid-write) that the next record marks and hashes.
    TornLine,
    /// The last line has no newline: a write was cut short (the next append marks it).
    TornTail,
    /// The last line is not a whole record and nothing follows it.
    GarbledTail,
    /// The chain starts at this seq: earlier files were rotated away.
    StartsAt { seq: u64 },
    /// A line written before the chain existed (no `seq`/`prev`).
    PreChain,
}

/// One problem at one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub at: Location,
    pub problem: Problem,
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.detail)
    }
}

/// How strict the start of the chain is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// The first record must be `seq: 1, prev: genesis`. Off when older files may
    /// have been rotated away.
    pub require_genesis: bool,
}

/// The outcome of a check.
#[derive(Debug, Default)]
pub struct Report {
    pub files: Vec<PathBuf>,
    pub lines: u64,
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub warnings: Vec<Finding>,
    /// The first broken link; `None`: the chain is intact.
    pub broken: Option<Finding>,
}

impl Report {
    pub fn intact(&self) -> bool {
        self.broken.is_none()
    }
}

/// Lines examined after the one being judged, to tell an edit from a swap from a
/// deletion.
const LOOKAHEAD: usize = 32;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChainFields<'a> {
    seq: Option<u64>,
    #[serde(borrow)]
    prev: Option<Text<'a>>,
    #[serde(default)]
    after_torn: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Record {
        seq: u64,
        prev: String,
        after_torn: bool,
    },
    /// JSON, but without chain fields.
    Unchained,
    /// Not a JSON object: torn, cut or otherwise damaged.
    Garbled,
}

#[derive(Debug, Clone)]
struct Item {
    at: Location,
    hash: String,
    kind: Kind,
    terminated: bool,
}

impl Item {
    fn from_line(line: &Line<'_>) -> Item {
        let kind = if line.is_oversized() {
            Kind::Garbled
        } else {
            match serde_json::from_slice::<ChainFields<'_>>(line.bytes) {
                Ok(ChainFields { seq: Some(seq), prev: Some(prev), after_torn }) => {
                    Kind::Record { seq, prev: prev.0.into_owned(), after_torn }
                }
                Ok(_) => Kind::Unchained,
                Err(_) => Kind::Garbled,
            }
        };
        Item {
            at: Location { path: line.path.to_owned(), line: line.number },
            hash: line.hash(),
            kind,
            terminated: line.terminated,
        }
    }

    fn seq(&self) -> Option<u64> {
        match self.kind {
            Kind::Record { seq, .. } => Some(seq),
            _ => None,
        }
    }

    fn prev(&self) -> Option<&str> {
        match &self.kind {
            Kind::Record { prev, .. } => Some(prev),
            _ => None,
        }
    }
}

/// Verifies the chain through `set`'s files in order. Stops at the first break.
pub fn verify(set: LogSet, options: Options) -> Result<Report, VerifyError> {
    let mut report = Report { files: set.paths().map(Path::to_owned).collect(), ..Report::default() };
    let mut lines = set.lines();
    let mut window: VecDeque<Item> = VecDeque::with_capacity(LOOKAHEAD + 1);
    let mut chain = Chain { options, before: None, last_seq: None, seq_before_last: None };
    let mut exhausted = false;
    loop {
        while !exhausted && window.len() <= LOOKAHEAD {
            match lines.next_line()? {
                Some(line) => window.push_back(Item::from_line(&line)),
                None => exhausted = true,
            }
        }
        let Some(cur) = window.pop_front() else { break };
        report.lines += 1;
        if let Some(seq) = cur.seq() {
            report.records += 1;
            report.first_seq.get_or_insert(seq);
        }
        if let Err(broken) = chain.step(cur, window.make_contiguous(), &mut report.warnings) {
            report.broken = Some(broken);
            break;
        }
        report.last_seq = chain.last_seq;
    }
    Ok(report)
}

struct Chain {
    options: Options,
    /// The line just before the one being judged: its hash is what `prev` must be.
    before: Option<Item>,
    /// seq of the last record accepted.
    last_seq: Option<u64>,
    /// ... and of the one before it, in case the last turns out to have been torn.
    seq_before_last: Option<u64>,
}

impl Chain {
    /// Judges `cur` (with the lines after it in `ahead`); `Err`: the chain breaks here.
    fn step(&mut self, cur: Item, ahead: &[Item], warnings: &mut Vec<Finding>) -> Result<(), Finding> {
        let result = match &cur.kind {
            Kind::Record { .. } => self.record(&cur, ahead, warnings),
            Kind::Unchained if self.last_seq.is_none() => {
                let detail = "a line without seq/prev, written before the chain began".to_owned();
                warnings.push(Finding { at: cur.at.clone(), problem: Problem::PreChain, detail });
                Ok(())
            }
            Kind::Unchained => Err(Finding {
                at: cur.at.clone(),
                problem: Problem::Unchained,
                detail: "edited line: a record without seq/prev inside the chain".to_owned(),
            }),
            // A damaged line is judged by the record after it (see `record`), or here
            // when it is the last line.
            Kind::Garbled if ahead.is_empty() => {
                let (problem, detail) = if cur.terminated {
                    (Problem::GarbledTail, "the last line is not a whole record (a write cut short?)")
                } else {
                    (Problem::TornTail, "torn last line (no newline): a write was cut short; the next append marks it")
                };
                warnings.push(Finding { at: cur.at.clone(), problem, detail: detail.to_owned() });
                Ok(())
            }
            Kind::Garbled => Ok(()),
        };
        if result.is_ok() {
            if let Some(seq) = cur.seq() {
                self.seq_before_last = self.last_seq;
                self.last_seq = Some(seq);
            }
            self.before = Some(cur);
        }
        result
    }

    fn record(&mut self, cur: &Item, ahead: &[Item], warnings: &mut Vec<Finding>) -> Result<(), Finding> {
        let Kind::Record { seq, prev, after_torn } = &cur.kind else { unreachable!("called for records") };
        let (seq, after_torn) = (*seq, *after_torn);
        let Some(before) = &self.before else { return self.first(cur, seq, prev, warnings) };
        let linked = *prev == before.hash;
        let before_torn = before.kind == Kind::Garbled || (after_torn && before.seq().is_some());
        if before_torn {
            if !linked {
                return Err(self.cut(cur, before));
            }
            let mut detail = format!("torn line (a crash mid-write), marked by line {}", cur.at.line);
            if !after_torn {
                detail.push_str(" (which does not say afterTorn)");
            }
            warnings.push(Finding { at: before.at.clone(), problem: Problem::TornLine, detail });
            if before.seq().is_some() {
                // The torn bytes parsed as a record; the writer numbered past it.
                self.last_seq = self.seq_before_last;
            }
        } else if !linked {
            return Err(self.mismatch(cur, seq, before, ahead));
        }
        match self.last_seq {
            Some(last) if seq != last + 1 => {
                let why =
                    if before_torn { "the line before is torn and linked" } else { "its prev matches the line before" };
                Err(Finding {
                    at: cur.at.clone(),
                    problem: Problem::Edited,
                    detail: format!("edited line: seq is {seq}, expected {} ({why})", last + 1),
                })
            }
            _ => Ok(()),
        }
    }

    /// The first line of the whole set.
    fn first(&self, cur: &Item, seq: u64, prev: &str, warnings: &mut Vec<Finding>) -> Result<(), Finding> {
        if prev == GENESIS {
            return match seq {
                1 => Ok(()),
                _ => Err(Finding {
                    at: cur.at.clone(),
                    problem: Problem::Edited,
                    detail: format!("edited line: the genesis record has seq {seq}, expected 1"),
                }),
            };
        }
        if self.options.require_genesis {
            return Err(Finding {
                at: cur.at.clone(),
                problem: Problem::MissingStart { seq },
                detail: format!(
                    "deleted lines: the chain starts at seq {seq}, not at genesis; records 1..{} are missing",
                    seq.saturating_sub(1)
                ),
            });
        }
        warnings.push(Finding {
            at: cur.at.clone(),
            problem: Problem::StartsAt { seq },
            detail: format!("the chain starts at seq {seq} (earlier records are in files rotated away)"),
        });
        Ok(())
    }

    /// A damaged line whose hash the next record does not carry.
    fn cut(&self, cur: &Item, before: &Item) -> Finding {
        Finding {
            at: before.at.clone(),
            problem: Problem::Truncated,
            detail: format!(
                "truncated line: not a whole record, and line {}'s prev does not match it (bytes cut from the log)",
                cur.at.line
            ),
        }
    }

    /// `cur.prev` is not the hash of the whole record before it: which change
    /// explains that best.
    fn mismatch(&self, cur: &Item, seq: u64, before: &Item, ahead: &[Item]) -> Finding {
        let want = self.last_seq.map_or(seq, |s| s + 1);
        let finding = |at: &Location, problem, detail: String| Finding { at: at.clone(), problem, detail };
        if seq == want {
            // Nothing is missing and the order is right: a line's bytes changed. If
            // the next line still links to `cur`, `cur` is intact and `before` changed.
            return match ahead.first() {
                Some(next) if next.prev() == Some(&cur.hash) || next.prev().is_none() => finding(
                    &before.at,
                    Problem::Edited,
                    format!("edited line: its hash does not match line {}'s prev", cur.at.line),
                ),
                Some(_) => finding(
                    &cur.at,
                    Problem::Edited,
                    "edited line: its prev does not match the line before, nor its own hash the line after's prev"
                        .to_owned(),
                ),
                None => finding(
                    &before.at,
                    Problem::Edited,
                    format!("edited line (or the prev of the last line {}, which nothing after checks)", cur.at.line),
                ),
            };
        }
        if seq > want {
            if let Some(other) = ahead.iter().find(|i| i.seq() == Some(want)) {
                let what =
                    if ahead.first().is_some_and(|i| i.at == other.at) { "swapped with" } else { "moved before" };
                return finding(
                    &cur.at,
                    Problem::Reordered,
                    format!("reordered lines: seq {seq} is {what} seq {want} (at {})", other.at),
                );
            }
            let (from, to) = (want, seq - 1);
            let count = to - from + 1;
            let detail = match count {
                1 => format!("deleted line: record seq {from} is missing before this line"),
                _ => format!("deleted lines: records seq {from}..{to} ({count}) are missing before this line"),
            };
            return finding(&cur.at, Problem::Deleted { from, to }, detail);
        }
        if cur.hash == before.hash {
            return finding(&cur.at, Problem::Duplicated, format!("duplicated line: repeats line {}", before.at.line));
        }
        finding(&cur.at, Problem::Reordered, format!("reordered lines: seq {seq} comes after seq {}", want - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{line_hash, Record};

    /// A chained log of `n` records (seq 1..=n) as lines.
    fn chain(n: usize) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        for i in 1..=n {
            let mut r = Record::lifecycle("start", Some(&format!("c{i}")));
            r.seq = i as u64;
            r.prev = lines.last().map_or(GENESIS.to_owned(), |l| line_hash(l.as_bytes()));
            lines.push(serde_json::to_string(&r).unwrap());
        }
        lines
    }

    fn check(lines: &[String], tail: &str) -> Report {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.jsonl");
        std::fs::write(&p, lines.join("\n") + tail).unwrap();
        verify(LogSet::open(&[p]).unwrap(), Options { require_genesis: true }).unwrap()
    }

    fn broken(lines: &[String]) -> (u64, Problem) {
        let r = check(lines, "\n");
        let b = r.broken.expect("broken");
        (b.at.line, b.problem)
    }

    #[test]
    fn intact_chain() {
        let r = check(&chain(5), "\n");
        assert!(r.intact(), "{:?}", r.broken);
        assert_eq!((r.records, r.first_seq, r.last_seq), (5, Some(1), Some(5)));
        assert!(r.warnings.is_empty());
    }

    #[test]
    fn edits() {
        let mut l = chain(6);
        l[2] = l[2].replace("\"c3\"", "\"c9\"");
        assert_eq!(broken(&l), (3, Problem::Edited));
        let mut l = chain(6);
        l[3] = l[3].replace("\"seq\":4", "\"seq\":7");
        assert_eq!(broken(&l), (4, Problem::Edited));
        // An edited prev: the line after no longer links to it either.
        let mut l = chain(6);
        let p = l[3].find("sha256:").unwrap() + 7;
        let flipped = if &l[3][p..p + 1] == "0" { "1" } else { "0" };
        l[3].replace_range(p..p + 1, flipped);
        assert_eq!(broken(&l), (4, Problem::Edited));
    }

    #[test]
    fn deletions() {
        let mut l = chain(6);
        l.remove(2);
        assert_eq!(broken(&l), (3, Problem::Deleted { from: 3, to: 3 }));
        let mut l = chain(6);
        l.drain(1..4);
        assert_eq!(broken(&l), (2, Problem::Deleted { from: 2, to: 4 }));
        let mut l = chain(6);
        l.remove(0);
        assert_eq!(broken(&l), (1, Problem::MissingStart { seq: 2 }));
    }

    #[test]
    fn reorders_and_duplicates() {
        let mut l = chain(6);
        l.swap(2, 3);
        assert_eq!(broken(&l), (3, Problem::Reordered));
        let mut l = chain(6);
        let moved = l.remove(1);
        l.insert(4, moved);
        assert_eq!(broken(&l), (2, Problem::Reordered));
        let mut l = chain(6);
        l.insert(3, l[2].clone());
        assert_eq!(broken(&l), (4, Problem::Duplicated));
    }

    #[test]
    fn cut_mid_line() {
        let mut l = chain(6);
        let half = l[2].len() / 2;
        l[2].truncate(half);
        assert_eq!(broken(&l), (3, Problem::Truncated));
        // Without its newline too: line 3 runs into line 4.
        let mut l = chain(6);
        let joined = format!("{}{}", &l[2][..half], l[3]);
        l.splice(2..4, [joined]);
        assert_eq!(broken(&l), (3, Problem::Truncated));
    }

    #[test]
    fn torn_lines_are_warnings() {
        let mut l = chain(3);
        l.push("{\"apiVersion\":\"hard".to_owned());
        let r = check(&l, "");
        assert!(r.intact());
        assert_eq!(r.warnings[0].problem, Problem::TornTail);
        // Closed and marked by the next record.
        let mut r4 = Record::lifecycle("start", None);
        r4.seq = 4;
        r4.prev = line_hash(l[3].as_bytes());
        r4.after_torn = true;
        l.push(serde_json::to_string(&r4).unwrap());
        let r = check(&l, "\n");
        assert!(r.intact(), "{:?}", r.broken);
        assert_eq!((r.warnings[0].problem.clone(), r.warnings[0].at.line), (Problem::TornLine, 4));
        assert_eq!(r.last_seq, Some(4));
    }

    #[test]
    fn torn_whole_record_without_newline() {
        // Line 3 lost only its newline: it parses, yet the writer numbered past it
        // (from line 2) and marked the next record.
        let mut l = chain(3);
        let mut r = Record::lifecycle("start", None);
        r.seq = 3;
        r.prev = line_hash(l[2].as_bytes());
        r.after_torn = true;
        l.push(serde_json::to_string(&r).unwrap());
        let r = check(&l, "\n");
        assert!(r.intact(), "{:?}", r.broken);
        assert_eq!((r.warnings[0].problem.clone(), r.warnings[0].at.line), (Problem::TornLine, 3));
        assert_eq!(r.last_seq, Some(3));
    }

    #[test]
    fn late_start_is_a_warning_when_allowed() {
        let l = chain(5);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.jsonl.3");
        std::fs::write(&p, l[2..].join("\n") + "\n").unwrap();
        let r = verify(LogSet::open(&[p]).unwrap(), Options { require_genesis: false }).unwrap();
        assert!(r.intact());
        assert_eq!(r.warnings[0].problem, Problem::StartsAt { seq: 3 });
    }

    #[test]
    fn across_files() {
        let l = chain(6);
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("audit.jsonl.1"), d.path().join("audit.jsonl"));
        std::fs::write(&a, l[..3].join("\n") + "\n").unwrap();
        std::fs::write(&b, l[3..].join("\n") + "\n").unwrap();
        let ok = verify(LogSet::open(&[a.clone(), b.clone()]).unwrap(), Options { require_genesis: true }).unwrap();
        assert!(ok.intact() && ok.records == 6);
        let bad = verify(LogSet::open(&[b.clone(), a]).unwrap(), Options { require_genesis: true }).unwrap();
        assert_eq!(bad.broken.unwrap().at, Location { path: b, line: 1 });
    }
}
