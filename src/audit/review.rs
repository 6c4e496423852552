//! Reading records back for people and dashboards: filters, the table, the summary,
//! one record in full, and Prometheus counters.
//!
//! Records are read into [`Entry`], a view that borrows from the line and skips the
//! fields reviews do not use (the patch above all). Before a line is parsed at all,
//! each exact filter's JSON-encoded value must occur in it: a cheap substring test
//! that skips most lines of a large log when the filter is selective.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::reader::{Line, Lines, ReadError, Text};
use super::record::{Decision, Record};
use crate::policy::Glob;
use crate::spec::patch::Op;
use crate::spec::PatchOp;

#[derive(Debug, Error)]
pub enum ReviewError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(
        "{0:?} is neither a duration (30s, 15m, 2h, 7d, 1w, or several: 1h30m) nor an RFC 3339 time \
         (2026-01-02T03:04:05Z, 2026-01-02T05:04:05+02:00, 2026-01-02)"
    )]
    BadTime(String),
    #[error("metrics state {path}: {message}")]
    State { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

// ---------------------------------------------------------------------------------
// The record, as reviews see it

/// The fields of a record that reviews use, borrowed from its line.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry<'a> {
    #[serde(default)]
    pub seq: u64,
    #[serde(borrow, default)]
    pub event_id: Text<'a>,
    #[serde(borrow, default)]
    pub time: Text<'a>,
    #[serde(borrow, default)]
    pub command: Text<'a>,
    #[serde(borrow, default)]
    pub container_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub context: EntryContext<'a>,
    #[serde(borrow, default)]
    pub image: EntryImage<'a>,
    #[serde(borrow, default)]
    pub policies: Vec<Named<'a>>,
    #[serde(borrow, default)]
    pub exemptions: Vec<Named<'a>>,
    pub decision: Decision,
    #[serde(borrow, default)]
    pub reason: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub findings: Vec<EntryFinding<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryContext<'a> {
    #[serde(borrow, default)]
    pub namespace: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub pod_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub container_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub image: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub containerd_namespace: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct EntryImage<'a> {
    #[serde(borrow, default)]
    pub requested: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub digest: Option<Text<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct Named<'a> {
    #[serde(borrow)]
    pub name: Text<'a>,
}

#[derive(Debug, Deserialize)]
pub struct EntryFinding<'a> {
    #[serde(borrow)]
    pub rule: Text<'a>,
    #[serde(borrow)]
    pub action: Text<'a>,
}

/// The runc subcommands whose records are decisions; the rest (start, delete)
/// record a container's lifecycle.
pub const DECISION_COMMANDS: &[&str] = &["create", "run", "restore", "exec"];

impl Entry<'_> {
    pub fn is_decision(&self) -> bool {
        DECISION_COMMANDS.contains(&self.command.as_str())
    }

    fn opt<'s>(t: &'s Option<Text<'_>>) -> Option<&'s str> {
        t.as_ref().map(Text::as_str).filter(|s| !s.is_empty())
    }

    pub fn namespace(&self) -> Option<&str> {
        Self::opt(&self.context.namespace)
    }
    pub fn pod(&self) -> Option<&str> {
        Self::opt(&self.context.pod_name)
    }
    pub fn container_name(&self) -> Option<&str> {
        Self::opt(&self.context.container_name)
    }
    pub fn container_id(&self) -> Option<&str> {
        Self::opt(&self.container_id)
    }
    /// The image as requested: the record's own field, else the CRI annotation.
    pub fn image_ref(&self) -> Option<&str> {
        Self::opt(&self.image.requested).or_else(|| Self::opt(&self.context.image))
    }
    pub fn digest(&self) -> Option<&str> {
        Self::opt(&self.image.digest)
    }
}

/// Why a line was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub line: u64,
    pub why: String,
}

/// Parses a line as a record; `Err` says why it is not one.
pub fn parse_line<'a>(line: &Line<'a>) -> Result<Entry<'a>, Skipped> {
    let skipped = |why: String| Skipped { path: line.path.to_owned(), line: line.number, why };
    if line.is_oversized() {
        return Err(skipped("longer than an audit record can be".to_owned()));
    }
    if !line.terminated {
        return Err(skipped("torn line (no newline): a write was cut short".to_owned()));
    }
    serde_json::from_slice(line.bytes).map_err(|e| skipped(format!("not an audit record: {e}")))
}

// ---------------------------------------------------------------------------------
// Time

/// Parses `--since`/`--until`: a duration before `now` or an RFC 3339 time (a bare
/// date is its midnight, UTC).
pub fn parse_time(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime, ReviewError> {
    let bad = || ReviewError::BadTime(s.to_owned());
    if let Some(d) = parse_duration(s) {
        return now.checked_sub(d).ok_or_else(bad);
    }
    parse_rfc3339(s).ok_or_else(bad)
}

/// `30s`, `15m`, `2h`, `7d`, `1w`, or a run of them (`1h30m`).
fn parse_duration(s: &str) -> Option<time::Duration> {
    let mut total: i64 = 0;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let n: i64 = rest[..digits].parse().ok()?;
        let unit = rest[digits..].chars().next()?;
        let secs = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(secs)?)?;
        rest = &rest[digits + 1..];
    }
    Some(time::Duration::seconds(total))
}

/// RFC 3339 (`T` or space between date and time, `Z` or an offset), or a date.
pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    let b = s.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let d = b.get(r)?;
        d.iter().all(u8::is_ascii_digit).then(|| d.iter().fold(0, |n, c| n * 10 + u32::from(c - b'0')))
    };
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let month = Month::try_from(u8::try_from(num(5..7)?).ok()?).ok()?;
    let date =
        Date::from_calendar_date(i32::try_from(num(0..4)?).ok()?, month, u8::try_from(num(8..10)?).ok()?).ok()?;
    if b.len() == 10 {
        return Some(PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_utc());
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    let (h, m, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let frac = &b[i + 1..i + 1 + digits.min(9)];
        nanos = frac.iter().fold(0, |n, c| n * 10 + u32::from(c - b'0')) * 10u32.pow(9 - frac.len() as u32);
        i += 1 + digits;
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => UtcOffset::UTC,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (i8::try_from(num(i + 1..i + 3)?).ok()?, i8::try_from(num(i + 4..i + 6)?).ok()?);
            let k = if *sign == b'-' { -1 } else { 1 };
            UtcOffset::from_hms(k * oh, k * om, 0).ok()?
        }
        _ => return None,
    };
    let t = Time::from_hms_nano(u8::try_from(h).ok()?, u8::try_from(m).ok()?, u8::try_from(sec).ok()?, nanos).ok()?;
    Some(PrimitiveDateTime::new(date, t).assume_offset(offset).to_offset(UtcOffset::UTC))
}

/// A record's time in the writer's fixed-width UTC form, which orders as text.
fn canonical_time(s: &str) -> Option<Cow<'_, str>> {
    let b = s.as_bytes();
    if b.len() == 30 && b[10] == b'T' && b[19] == b'.' && b[29] == b'Z' {
        return Some(Cow::Borrowed(s));
    }
    parse_rfc3339(s).map(|t| Cow::Owned(crate::timefmt::rfc3339_nanos(t)))
}

// ---------------------------------------------------------------------------------
// Filters

/// What `--since`, `--decision` … select. Empty: everything. Turn it into a
/// [`Matcher`] to use it.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Inclusive bounds.
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub decisions: BTreeSet<Decision>,
    pub commands: Vec<String>,
    pub namespaces: Vec<Glob>,
    pub pods: Vec<Glob>,
    /// Container name or container id.
    pub containers: Vec<Glob>,
    /// The image as requested, its digest, or `ref@digest`.
    pub images: Vec<Glob>,
    pub policies: Vec<Glob>,
    pub rules: Vec<Glob>,
}

impl Filter {
    /// Prepares the filter: time bounds in the writer's form, and the substrings
    /// the cheap pre-check looks for.
    pub fn matcher(self) -> Matcher {
        let json = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let mut needles: Vec<Vec<String>> = Vec::new();
        if !self.decisions.is_empty() {
            needles.push(self.decisions.iter().map(|d| serde_json::to_string(d).unwrap_or_default()).collect());
        }
        if !self.commands.is_empty() {
            needles.push(self.commands.iter().map(|c| json(c)).collect());
        }
        for globs in [&self.namespaces, &self.pods, &self.policies, &self.rules] {
            if !globs.is_empty() && globs.iter().all(Glob::is_literal) {
                needles.push(globs.iter().map(|g| json(&unescape(g))).collect());
            }
        }
        Matcher {
            since: self.since.map(crate::timefmt::rfc3339_nanos),
            until: self.until.map(crate::timefmt::rfc3339_nanos),
            filter: self,
            needles,
            images_seen: RefCell::default(),
        }
    }
}

/// A prepared [`Filter`].
#[derive(Debug, Clone)]
pub struct Matcher {
    filter: Filter,
    /// The bounds in the writer's fixed-width time form, which orders as text.
    since: Option<String>,
    until: Option<String>,
    /// Each group: one of these JSON strings must occur in the line.
    needles: Vec<Vec<String>>,
    /// `--image` verdicts by `ref\0digest`: a node runs few distinct images, and
    /// matching globs is the costliest test per record.
    images_seen: RefCell<HashMap<String, bool>>,
}

/// Distinct images remembered by a [`Matcher`] before it starts over.
const IMAGES_REMEMBERED: usize = 4096;

impl Default for Matcher {
    fn default() -> Self {
        Filter::default().matcher()
    }
}

impl Matcher {
    /// The cheap test on the raw line: `false` means the record cannot match.
    pub fn may_match(&self, line: &[u8]) -> bool {
        if self.needles.is_empty() {
            return true;
        }
        let Ok(text) = std::str::from_utf8(line) else { return true };
        self.needles.iter().all(|any| any.iter().any(|n| text.contains(n.as_str())))
    }

    pub fn matches(&self, e: &Entry<'_>) -> bool {
        let f = &self.filter;
        let any = |globs: &[Glob], value: Option<&str>| {
            globs.is_empty() || globs.iter().any(|g| g.matches(value.unwrap_or("")))
        };
        let time_ok = || {
            if self.since.is_none() && self.until.is_none() {
                return true;
            }
            let Some(t) = canonical_time(e.time.as_str()) else { return false };
            self.since.as_deref().is_none_or(|s| *t >= *s) && self.until.as_deref().is_none_or(|u| *t <= *u)
        };
        (f.decisions.is_empty() || f.decisions.contains(&e.decision))
            && (f.commands.is_empty() || f.commands.iter().any(|c| c == e.command.as_str()))
            && any(&f.namespaces, e.namespace())
            && any(&f.pods, e.pod())
            && (f.containers.is_empty()
                || f.containers.iter().any(|g| {
                    e.container_name().is_some_and(|n| g.matches(n)) || e.container_id().is_some_and(|n| g.matches(n))
                }))
            && (f.images.is_empty() || self.image_matches(e))
            && (f.policies.is_empty()
                || e.policies.iter().any(|p| f.policies.iter().any(|g| g.matches(p.name.as_str()))))
            && (f.rules.is_empty() || e.findings.iter().any(|x| f.rules.iter().any(|g| g.matches(x.rule.as_str()))))
            && time_ok()
    }
}

impl Matcher {
    fn image_matches(&self, e: &Entry<'_>) -> bool {
        let key = format!("{}\0{}", e.image_ref().unwrap_or(""), e.digest().unwrap_or(""));
        if let Some(&seen) = self.images_seen.borrow().get(&key) {
            return seen;
        }
        let verdict = self.filter.images.iter().any(|g| image_matches(g, e));
        let mut seen = self.images_seen.borrow_mut();
        if seen.len() >= IMAGES_REMEMBERED {
            seen.clear();
        }
        seen.insert(key, verdict);
        verdict
    }
}

/// A literal glob's text (its escapes removed).
fn unescape(g: &Glob) -> String {
    let mut out = String::new();
    let mut chars = g.as_str().chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' { chars.next().unwrap_or(c) } else { c });
    }
    out
}

/// An image glob matches the reference as requested, the digest, or `ref@digest`.
fn image_matches(g: &Glob, e: &Entry<'_>) -> bool {
    let (r, d) = (e.image_ref(), e.digest());
    r.is_some_and(|r| g.matches(r))
        || d.is_some_and(|d| g.matches(d))
        || matches!((r, d), (Some(r), Some(d)) if g.matches(&format!("{}@{d}", r.split('@').next().unwrap_or(r))))
}

/// Reads `lines` to the end, handing each matching record and its line to `each`
/// (which returns `false` to stop) and each line that is not a record to `skipped`.
pub fn scan<F, S>(lines: &mut Lines, filter: &Matcher, mut skipped: S, mut each: F) -> Result<(), ReviewError>
where
    F: FnMut(&Entry<'_>, &Line<'_>) -> bool,
    S: FnMut(Skipped),
{
    while let Some(line) = lines.next_line()? {
        match select(&line, filter) {
            Ok(Some(entry)) => {
                if !each(&entry, &line) {
                    break;
                }
            }
            Ok(None) => {}
            Err(s) => skipped(s),
        }
    }
    Ok(())
}

/// One line under a filter: the record when it matches, `None` when it does not,
/// `Err` when the line is not a record.
pub fn select<'a>(line: &Line<'a>, filter: &Matcher) -> Result<Option<Entry<'a>>, Skipped> {
    // A line that cannot be a whole record is reported even when the filter would
    // pass over it: a skipped line is worth knowing about.
    let plausible = line.terminated && line.bytes.first() == Some(&b'{') && line.bytes.last() == Some(&b'}');
    if plausible && !filter.may_match(line.bytes) {
        return Ok(None);
    }
    let entry = parse_line(line)?;
    Ok(filter.matches(&entry).then_some(entry))
}

// ---------------------------------------------------------------------------------
// The table

/// How rows are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableStyle {
    /// Fixed columns that fit this many terminal columns; long cells are cut with `…`.
    Sized { width: usize, color: bool },
    /// Tab-separated, nothing cut: for pipes, `cut` and `awk`.
    Plain,
}

const HEADERS: [&str; 7] =
    ["TIME (UTC)", "COMMAND", "DECISION", "NAMESPACE/POD/CONTAINER", "IMAGE", "POLICIES", "REASON / RULES"];
/// TIME, COMMAND, DECISION: fixed widths. The other four share the rest.
const FIXED: [usize; 3] = [19, 7, 11];
const SHARES: [usize; 4] = [28, 28, 14, 30];
const GAP: &str = "  ";

impl TableStyle {
    fn widths(width: usize) -> [usize; 7] {
        let fixed: usize = FIXED.iter().sum::<usize>() + GAP.len() * 6;
        let flex = width.saturating_sub(fixed).max(4 * 6);
        let mut w = [FIXED[0], FIXED[1], FIXED[2], 0, 0, 0, 0];
        for (i, share) in SHARES.iter().enumerate() {
            w[3 + i] = (flex * share / 100).max(6);
        }
        w
    }

    pub fn header(&self) -> String {
        self.render(HEADERS.map(String::from), None)
    }

    pub fn row(&self, e: &Entry<'_>) -> String {
        self.render(cells(e), Some(e.decision))
    }

    fn render(&self, cells: [String; 7], decision: Option<Decision>) -> String {
        match *self {
            TableStyle::Plain => cells.map(|c| c.replace(['\t', '\n'], " ")).join("\t"),
            TableStyle::Sized { width, color } => {
                let widths = Self::widths(width);
                let mut out = String::with_capacity(width + 16);
                for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                    // Names and image references end with what tells them apart
                    // (container name, tag): cut those in the middle.
                    let text = match i {
                        3 => fit_middle(cell, w),
                        4 => fit_image(cell, w),
                        _ => fit(cell, w),
                    };
                    let last = i == cells.len() - 1;
                    let padded = if last { text.trim_end().to_owned() } else { text };
                    match (i, decision) {
                        (2, Some(d)) if color => {
                            let _ = write!(out, "\x1b[{}m{padded}\x1b[0m", ansi_color(d));
                        }
                        _ => out.push_str(&padded),
                    }
                    if !last {
                        out.push_str(GAP);
                    }
                }
                out
            }
        }
    }
}

fn ansi_color(d: Decision) -> &'static str {
    match d {
        Decision::Allowed => "32",
        Decision::Mutated => "33",
        Decision::Denied => "1;31",
        Decision::AuditOnly => "36",
        Decision::FailedOpen => "35",
    }
}

/// `ref@digest`, dropping the digest first when it does not fit.
fn fit_image(text: &str, width: usize) -> String {
    match text.rsplit_once('@') {
        Some((r, _)) if text.chars().count() > width && !r.is_empty() => fit_middle(r, width),
        _ => fit_middle(text, width),
    }
}

/// Like [`fit`], keeping both ends: `docker.io/…/nginx:1.25`.
fn fit_middle(text: &str, width: usize) -> String {
    let chars: Vec<char> = text.replace(['\t', '\n'], " ").chars().collect();
    if chars.len() <= width || width < 8 {
        return fit(text, width);
    }
    let tail = (width - 1) / 2;
    let head = width - 1 - tail;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// `text` cut or padded to exactly `width` characters.
fn fit(text: &str, width: usize) -> String {
    let text = text.replace(['\t', '\n'], " ");
    let len = text.chars().count();
    if len <= width {
        return format!("{text:<width$}");
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn decision_str(d: Decision) -> &'static str {
    match d {
        Decision::Allowed => "allowed",
        Decision::Mutated => "mutated",
        Decision::Denied => "denied",
        Decision::AuditOnly => "audit-only",
        Decision::FailedOpen => "failed-open",
    }
}

fn cells(e: &Entry<'_>) -> [String; 7] {
    let time = e.time.as_str().get(..19).unwrap_or(e.time.as_str()).replacen('T', " ", 1);
    let who = match (e.namespace(), e.pod()) {
        (None, None) => e.container_id().map_or("-".to_owned(), |id| id.chars().take(24).collect()),
        (ns, pod) => {
            let name = e.container_name().or(e.container_id()).unwrap_or("-");
            format!("{}/{}/{name}", ns.unwrap_or("-"), pod.unwrap_or("-"))
        }
    };
    let policies: Vec<&str> = e.policies.iter().map(|p| p.name.as_str()).collect();
    [
        time,
        e.command.as_str().to_owned(),
        decision_str(e.decision).to_owned(),
        who,
        image_cell(e),
        if policies.is_empty() { "-".to_owned() } else { policies.join(",") },
        reason_cell(e),
    ]
}

/// `ref@sha256:<12 hex>`: enough of the digest to tell images apart.
fn image_cell(e: &Entry<'_>) -> String {
    let short = e.digest().map(|d| match d.split_once(':') {
        Some((alg, hex)) => format!("{alg}:{}", hex.get(..12).unwrap_or(hex)),
        None => d.to_owned(),
    });
    match (e.image_ref(), short) {
        (Some(r), Some(d)) => format!("{}@{d}", r.split('@').next().unwrap_or(r)),
        (Some(r), None) => r.to_owned(),
        (None, Some(d)) => format!("@{d}"),
        (None, None) => "-".to_owned(),
    }
}

/// The denial reason, else the rules that changed or would have denied something.
fn reason_cell(e: &Entry<'_>) -> String {
    if let Some(r) = Entry::opt(&e.reason) {
        return r.to_owned();
    }
    let mut rules: Vec<&str> = Vec::new();
    for f in e.findings.iter().filter(|f| f.action.as_str() != "info") {
        if !rules.contains(&f.rule.as_str()) {
            rules.push(f.rule.as_str());
        }
    }
    if rules.is_empty() {
        "-".to_owned()
    } else {
        rules.join(",")
    }
}

// ---------------------------------------------------------------------------------
// Summary

/// Decisions of one namespace or image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub total: u64,
    pub denied: u64,
}

/// Counts over the selected records: the morning report.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub records: u64,
    pub first: Option<String>,
    pub last: Option<String>,
    /// Every record, by runc subcommand.
    pub commands: BTreeMap<String, u64>,
    /// Decision records (create, run, restore, exec) only, from here on.
    pub decisions: BTreeMap<String, u64>,
    pub policies: BTreeMap<String, u64>,
    /// `rule` → `action` → findings.
    pub rules: BTreeMap<String, BTreeMap<String, u64>>,
    pub namespaces: BTreeMap<String, Tally>,
    pub images: BTreeMap<String, Tally>,
    /// Rules with a `deny` finding in a denied record.
    pub denied_rules: BTreeMap<String, u64>,
}

/// Images, namespaces and rules listed in the text summary (the JSON has them all).
const TOP: usize = 10;

impl Summary {
    pub fn add(&mut self, e: &Entry<'_>) {
        self.records += 1;
        let t = e.time.as_str();
        if self.first.as_deref().is_none_or(|f| t < f) {
            self.first = Some(t.to_owned());
        }
        if self.last.as_deref().is_none_or(|l| t > l) {
            self.last = Some(t.to_owned());
        }
        bump(&mut self.commands, e.command.as_str());
        if !e.is_decision() {
            return;
        }
        bump(&mut self.decisions, decision_str(e.decision));
        for p in &e.policies {
            bump(&mut self.policies, p.name.as_str());
        }
        for f in &e.findings {
            let by_action = get_or_default(&mut self.rules, f.rule.as_str());
            bump(by_action, f.action.as_str());
        }
        let denied = e.decision == Decision::Denied;
        for (map, key) in
            [(&mut self.namespaces, e.namespace().unwrap_or("-")), (&mut self.images, e.image_ref().unwrap_or("-"))]
        {
            let tally = get_or_default(map, key);
            tally.total += 1;
            tally.denied += u64::from(denied);
        }
        if denied {
            let mut seen = BTreeSet::new();
            for f in e.findings.iter().filter(|f| f.action.as_str() == "deny") {
                if seen.insert(f.rule.as_str()) {
                    bump(&mut self.denied_rules, f.rule.as_str());
                }
            }
        }
    }

    pub fn decision_count(&self) -> u64 {
        self.decisions.values().sum()
    }

    /// The report as text.
    pub fn text(&self) -> String {
        let mut o = String::new();
        let span = match (&self.first, &self.last) {
            (Some(f), Some(l)) => format!(", {f} … {l}"),
            _ => String::new(),
        };
        let _ = writeln!(o, "{} records{span}", self.records);
        let others: Vec<String> = self
            .commands
            .iter()
            .filter(|(c, _)| !DECISION_COMMANDS.contains(&c.as_str()))
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        if !others.is_empty() {
            let _ = writeln!(o, "lifecycle records: {}", others.join(", "));
        }
        let total = self.decision_count();
        let _ = writeln!(o, "\nDecisions ({total})");
        let mut decisions: Vec<(&String, &u64)> = self.decisions.iter().collect();
        decisions.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (d, n) in decisions {
            let pct = if total == 0 { 0.0 } else { *n as f64 * 100.0 / total as f64 };
            let _ = writeln!(o, "  {d:<12} {n:>9}  {pct:5.1}%");
        }
        section(
            &mut o,
            "Policies (containers matched)",
            self.policies.iter().map(|(k, v)| (k.clone(), *v)),
            usize::MAX,
        );
        let rules = self.rules.iter().flat_map(|(r, by)| by.iter().map(move |(a, n)| (format!("{r} ({a})"), *n)));
        section(&mut o, "Rules (findings)", rules, usize::MAX);
        tallies(&mut o, "Namespaces", &self.namespaces);
        tallies(&mut o, "Images", &self.images);
        let denied_images = self.images.iter().filter(|(_, t)| t.denied > 0).map(|(k, t)| (k.clone(), t.denied));
        section(&mut o, "Top denied images", denied_images, TOP);
        section(&mut o, "Top denied rules", self.denied_rules.iter().map(|(k, v)| (k.clone(), *v)), TOP);
        o
    }
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    *get_or_default(map, key) += 1;
}

/// `map[key]`, inserted when absent, without allocating the key when present.
fn get_or_default<'m, V: Default>(map: &'m mut BTreeMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

/// A titled list, largest first, at most `limit` lines.
fn section(o: &mut String, title: &str, items: impl Iterator<Item = (String, u64)>, limit: usize) {
    let mut items: Vec<(String, u64)> = items.collect();
    if items.is_empty() {
        return;
    }
    items.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let _ = writeln!(o, "\n{title}");
    let width = items.iter().take(limit).map(|(k, _)| k.chars().count()).max().unwrap_or(0).min(60);
    for (k, n) in items.iter().take(limit) {
        let _ = writeln!(o, "  {k:<width$}  {n:>9}");
    }
    if items.len() > limit {
        let _ = writeln!(o, "  … and {} more", items.len() - limit);
    }
}

fn tallies(o: &mut String, title: &str, map: &BTreeMap<String, Tally>) {
    if map.is_empty() {
        return;
    }
    let mut items: Vec<(&String, &Tally)> = map.iter().collect();
    items.sort_by(|a, b| b.1.total.cmp(&a.1.total).then(a.0.cmp(b.0)));
    let width = items.iter().take(TOP).map(|(k, _)| k.chars().count()).max().unwrap_or(0).clamp(6, 60);
    let _ = writeln!(o, "\n{title:<w$}  {:>9}  {:>9}", "decisions", "denied", w = width + 2);
    for (k, t) in items.iter().take(TOP) {
        let _ = writeln!(o, "  {k:<width$}  {:>9}  {:>9}", t.total, t.denied);
    }
    if items.len() > TOP {
        let _ = writeln!(o, "  … and {} more", items.len() - TOP);
    }
}

// ---------------------------------------------------------------------------------
// Metrics

/// Counters for Prometheus, kept across runs in a state file so they only grow
/// (a rotated-away file must not look like a counter reset).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    /// The last record counted: the next run counts what comes after it.
    pub last_seq: u64,
    pub last_event_id: String,
    pub last_time: Option<String>,
    /// `name{labels}` → value.
    pub series: BTreeMap<String, u64>,
}

const METRICS: [(&str, &str, &str); 5] = [
    (
        "hardrun_decisions_total",
        "counter",
        "Container decisions (create, run, restore, exec) by decision and Kubernetes namespace.",
    ),
    ("hardrun_policy_matches_total", "counter", "Decisions each policy took part in."),
    ("hardrun_rule_findings_total", "counter", "Findings by rule and action (mutate, deny, exempt, info)."),
    ("hardrun_audit_last_seq", "gauge", "Sequence number of the newest record counted."),
    ("hardrun_audit_last_record_timestamp_seconds", "gauge", "Time of the newest record counted (Unix seconds)."),
];

/// A Prometheus label value, escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// New counts from one pass over the log, split at the state's last record.
#[derive(Debug, Default)]
pub struct MetricsPass {
    base: Counters,
    /// Records after the last counted one.
    after: BTreeMap<String, u64>,
    /// Records at or before it by seq (counted already, unless the log restarted).
    before: BTreeMap<String, u64>,
    anchor_seen: bool,
    last: Option<(u64, String, String)>,
}

impl MetricsPass {
    pub fn new(base: Counters) -> Self {
        MetricsPass { base, ..Self::default() }
    }

    pub fn add(&mut self, e: &Entry<'_>) {
        if e.seq == self.base.last_seq && e.event_id.as_str() == self.base.last_event_id {
            self.anchor_seen = true;
        }
        self.last = Some((e.seq, e.event_id.as_str().to_owned(), e.time.as_str().to_owned()));
        if !e.is_decision() {
            return;
        }
        let map = if e.seq > self.base.last_seq { &mut self.after } else { &mut self.before };
        let ns = label(e.namespace().unwrap_or(""));
        *map.entry(format!(
            "hardrun_decisions_total{{decision=\"{}\",namespace=\"{ns}\"}}",
            decision_str(e.decision)
        ))
        .or_default() += 1;
        for p in &e.policies {
            *map.entry(format!("hardrun_policy_matches_total{{policy=\"{}\"}}", label(p.name.as_str())))
                .or_default() += 1;
        }
        for f in &e.findings {
            let key = format!(
                "hardrun_rule_findings_total{{rule=\"{}\",action=\"{}\"}}",
                label(f.rule.as_str()),
                label(f.action.as_str())
            );
            *map.entry(key).or_default() += 1;
        }
    }

    /// The counters after this pass. Records numbered at or below the last counted
    /// one are new only when the log restarted (its last counted record is gone and
    /// older numbers reappear).
    pub fn finish(self) -> Counters {
        let mut c = self.base;
        let restarted = !self.anchor_seen && !self.before.is_empty();
        let mut add = |m: BTreeMap<String, u64>| m.into_iter().for_each(|(k, v)| *c.series.entry(k).or_default() += v);
        add(self.after);
        if restarted {
            add(self.before);
        }
        if let Some((seq, id, time)) = self.last {
            c.last_seq = seq;
            c.last_event_id = id;
            c.last_time = Some(time);
        }
        c
    }
}

impl Counters {
    /// Loads the state file; a missing one is a fresh start.
    pub fn load(path: &Path) -> Result<Counters, ReviewError> {
        let err = |message: String| ReviewError::State { path: path.to_owned(), message };
        match crate::fsutil::read_capped(path, 64 * 1024 * 1024) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| err(e.to_string())),
            Err(crate::fsutil::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(Counters::default()),
            Err(crate::fsutil::ReadError::Io(e)) => Err(err(e.to_string())),
            Err(crate::fsutil::ReadError::TooLarge) => Err(err("too large".to_owned())),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), ReviewError> {
        let bytes = serde_json::to_vec(self)
            .map_err(|e| ReviewError::State { path: path.to_owned(), message: e.to_string() })?;
        write_atomic(path, &bytes)
    }

    /// The Prometheus text exposition format.
    pub fn exposition(&self) -> String {
        let mut o = String::new();
        for (name, kind, help) in METRICS {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
            match name {
                "hardrun_audit_last_seq" => {
                    let _ = writeln!(o, "{name} {}", self.last_seq);
                }
                "hardrun_audit_last_record_timestamp_seconds" => {
                    let ts = self.last_time.as_deref().and_then(parse_rfc3339);
                    let secs = ts.map_or(0.0, |t| t.unix_timestamp_nanos() as f64 / 1e9);
                    let _ = writeln!(o, "{name} {secs:.3}");
                }
                _ => {
                    let prefix = format!("{name}{{");
                    for (series, v) in self.series.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)) {
                        let _ = writeln!(o, "{series} {v}");
                    }
                }
            }
        }
        o
    }
}

/// Writes `path` whole or not at all ([`crate::fsutil::write_atomic`]): node_exporter
/// never reads half a file, and never the temp file (it reads only `*.prom`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReviewError> {
    crate::fsutil::write_atomic(path, bytes, 0o644)
        .map_err(|source| ReviewError::Write { path: path.to_owned(), source })
}

// ---------------------------------------------------------------------------------
// One record in full

/// A record for people: every field, the patch as `+ path: value` (add),
/// `~ path: value` (replace) and `- path` (remove). A line that is JSON but not a
/// whole record is shown as indented JSON.
pub fn show(line: &[u8]) -> String {
    match serde_json::from_slice::<Record>(line) {
        Ok(r) => show_record(&r),
        Err(_) => match serde_json::from_slice::<Value>(line) {
            Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default() + "\n",
            Err(_) => String::from_utf8_lossy(line).into_owned() + "\n",
        },
    }
}

fn show_record(r: &Record) -> String {
    let mut o = String::new();
    let mut field = |k: &str, v: String| {
        if !v.is_empty() {
            let _ = writeln!(o, "{k:<12}{v}");
        }
    };
    field("Event", format!("{}  (seq {})", r.event_id, r.seq));
    field("Time", r.time.clone());
    field("Node", format!("{}  (hardrun {})", r.node, r.hardrun_version));
    let mut cmd = r.command.clone();
    if let Some(id) = &r.container_id {
        let _ = write!(cmd, "  container {id}");
    }
    field("Command", cmd);
    field("Bundle", r.bundle.clone().unwrap_or_default());
    let c = &r.context;
    let ctx: Vec<String> = [
        ("namespace", c.namespace.clone()),
        ("pod", c.pod_name.clone()),
        ("pod uid", c.pod_uid.clone()),
        ("container", c.container_name.clone()),
        ("type", c.container_type.map(|t| format!("{t:?}").to_lowercase())),
        ("sandbox", c.sandbox_id.clone()),
        ("runtime class", c.runtime_class.clone()),
        ("containerd namespace", c.containerd_namespace.clone()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| format!("{k} {v}")))
    .collect();
    field("Context", ctx.join(", "));
    let image = r.image.requested.clone().or_else(|| c.image.clone()).unwrap_or_else(|| "-".to_owned());
    field(
        "Image",
        match &r.image.digest {
            Some(d) => format!("{image}  resolved {d}"),
            None => image,
        },
    );
    if let Some(s) = &r.signature {
        let mut v = if s.verified { "verified".to_owned() } else { "NOT verified".to_owned() };
        if let Some(signer) = &s.signer {
            let _ = write!(v, " by {signer}");
        }
        if s.cached {
            v.push_str(" (cached verdict)");
        }
        if let Some(m) = &s.message {
            let _ = write!(v, ": {m}");
        }
        field("Signature", v);
    }
    field("Mode", serde_json::to_value(r.mode).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default());
    field("Decision", decision_str(r.decision).to_owned());
    field("Reason", r.reason.clone().unwrap_or_default());
    for (title, list) in [("Policies", &r.policies), ("Exemptions", &r.exemptions)] {
        for (i, p) in list.iter().enumerate() {
            field(if i == 0 { title } else { "" }, format!("{}  {}  ({})", p.name, p.hash, p.source));
        }
    }
    if let Some(x) = &r.exec {
        field("Exec", format!("{:?}", x.args));
        if let Some(caps) = &x.effective_caps {
            field("Exec caps", caps.join(" "));
        }
    }
    field("Duration", format!("{} µs", r.duration_us));
    if !r.findings.is_empty() {
        let _ = writeln!(o, "\nFindings");
        let width = r.findings.iter().map(|f| f.rule.len()).max().unwrap_or(0);
        for f in &r.findings {
            let action =
                serde_json::to_value(f.action).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            let _ = write!(o, "  {action:<7} {:<width$}  {}", f.rule, f.message);
            if let Some(e) = &f.exemption {
                let _ = write!(o, "  (exemption {e})");
            }
            o.push('\n');
        }
    }
    if !r.patch.is_empty() {
        let n = r.patch.0.len();
        let _ = writeln!(o, "\nPatch ({n} operation{})", if n == 1 { "" } else { "s" });
        for op in &r.patch.0 {
            o.push_str(&diff_line(op));
        }
    }
    o
}

/// Width of a rendered patch value; longer values wrap or nest below their path.
const VALUE_WIDTH: usize = 96;

fn diff_line(op: &PatchOp) -> String {
    let sign = match op.op {
        Op::Add => '+',
        Op::Replace => '~',
        Op::Remove => '-',
    };
    let Some(value) = &op.value else { return format!("  {sign} {}\n", op.path) };
    let compact = inline(value);
    if op.path.len() + compact.len() + 2 <= VALUE_WIDTH {
        return format!("  {sign} {}: {compact}\n", op.path);
    }
    let mut out = format!("  {sign} {}:\n", op.path);
    for l in value_lines(value, VALUE_WIDTH - 4) {
        let _ = writeln!(out, "  {sign}     {l}");
    }
    out
}

/// A JSON value as short lines: objects as `key: value`, lists of objects as `- …`,
/// lists of scalars wrapped (a seccomp profile's syscall names stay readable).
fn value_lines(v: &Value, width: usize) -> Vec<String> {
    let width = width.max(24);
    match v {
        Value::Array(items) if !items.is_empty() && items.iter().all(is_scalar) => wrapped(items, width),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .flat_map(|item| {
                value_lines(item, width - 2).into_iter().enumerate().map(|(i, l)| {
                    if i == 0 {
                        format!("- {l}")
                    } else {
                        format!("  {l}")
                    }
                })
            })
            .collect(),
        Value::Object(map) if !map.is_empty() => {
            let mut out = Vec::new();
            for (k, val) in map {
                let compact = inline(val);
                if k.len() + 2 + compact.len() <= width || is_scalar(val) {
                    out.push(format!("{k}: {compact}"));
                } else if let Some(items) = val.as_array().filter(|a| a.iter().all(is_scalar)) {
                    let pad = " ".repeat(k.len() + 2);
                    let lines = wrapped(items, width.saturating_sub(k.len() + 2));
                    out.extend(lines.into_iter().enumerate().map(|(i, l)| {
                        if i == 0 {
                            format!("{k}: {l}")
                        } else {
                            format!("{pad}{l}")
                        }
                    }));
                } else {
                    out.push(format!("{k}:"));
                    out.extend(value_lines(val, width - 2).into_iter().map(|l| format!("  {l}")));
                }
            }
            out
        }
        scalar_or_empty => vec![serde_json::to_string(scalar_or_empty).unwrap_or_default()],
    }
}

/// One line: lists of scalars spaced like [`wrapped`], everything else compact JSON.
fn inline(v: &Value) -> String {
    match v {
        Value::Array(items) if items.iter().all(is_scalar) => {
            let items: Vec<String> = items.iter().map(|i| serde_json::to_string(i).unwrap_or_default()).collect();
            format!("[{}]", items.join(", "))
        }
        _ => serde_json::to_string(v).unwrap_or_default(),
    }
}

fn is_scalar(v: &Value) -> bool {
    !(v.is_array() || v.is_object())
}

/// `[a, b, …]` over as many lines as `width` needs.
fn wrapped(items: &[Value], width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::from("[");
    for (i, item) in items.iter().enumerate() {
        let mut text = serde_json::to_string(item).unwrap_or_default();
        text.push_str(if i + 1 == items.len() { "]" } else { "," });
        if line.len() > 1 && line.len() + 1 + text.len() > width {
            lines.push(std::mem::replace(&mut line, String::from(" ")));
        }
        if line.len() > 1 {
            line.push(' ');
        }
        line.push_str(&text);
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::reader::LogSet;

    fn entry_json(decision: &str, ns: &str, image: &str, rules: &[(&str, &str)]) -> String {
        let findings: Vec<Value> =
            rules.iter().map(|(r, a)| serde_json::json!({"rule": r, "action": a, "message": "m"})).collect();
        serde_json::json!({
            "apiVersion": "hardrun.dev/audit/v1", "seq": 1, "prev": "genesis", "eventId": "e1",
            "time": "2026-01-02T03:04:05.000000000Z", "node": "n", "hardrunVersion": "0",
            "command": "create", "containerId": "c1",
            "context": {"containerType": "container", "namespace": ns, "podName": "web", "containerName": "app"},
            "image": {"requested": image, "digest": "sha256:0123456789abcdef0123"},
            "policies": [{"name": "baseline", "hash": "sha256:00", "source": "s"}],
            "mode": "enforce", "decision": decision, "findings": findings,
            "patch": [{"op": "replace", "path": "/process/noNewPrivileges", "value": true}], "durationUs": 5
        })
        .to_string()
    }

    fn with_entry<T>(json: &str, f: impl FnOnce(&Entry<'_>) -> T) -> T {
        f(&serde_json::from_str::<Entry<'_>>(json).unwrap())
    }

    #[test]
    fn times() {
        let now = parse_rfc3339("2026-01-10T00:00:00Z").unwrap();
        assert_eq!(parse_time("2h", now).unwrap(), parse_rfc3339("2026-01-09T22:00:00Z").unwrap());
        assert_eq!(parse_time("7d", now).unwrap(), parse_rfc3339("2026-01-03T00:00:00Z").unwrap());
        assert_eq!(parse_time("1h30m", now).unwrap(), parse_rfc3339("2026-01-09T22:30:00Z").unwrap());
        assert_eq!(parse_time("2026-01-10", now).unwrap(), now);
        assert_eq!(
            parse_time("2026-01-10T02:00:00.5+02:00", now).unwrap(),
            parse_rfc3339("2026-01-10T00:00:00.500Z").unwrap()
        );
        for bad in ["", "2", "2x", "h", "2026-13-01", "2026-01-02T03:04:05", "yesterday"] {
            assert!(parse_time(bad, now).is_err(), "{bad}");
        }
        assert_eq!(canonical_time("2026-01-02T03:04:05Z").unwrap(), "2026-01-02T03:04:05.000000000Z");
    }

    #[test]
    fn filters() {
        let j = entry_json("denied", "team-a", "docker.io/library/nginx:1.25", &[("host.privileged", "deny")]);
        let g = |s: &str| vec![Glob::new(s).unwrap()];
        let check = |f: Filter| {
            let f = f.matcher();
            f.may_match(j.as_bytes()) && with_entry(&j, |e| f.matches(e))
        };
        assert!(check(Filter::default()));
        assert!(check(Filter { decisions: [Decision::Denied].into(), namespaces: g("team-a"), ..Filter::default() }));
        assert!(!check(Filter { decisions: [Decision::Mutated].into(), ..Filter::default() }));
        assert!(!check(Filter { namespaces: g("team-b"), ..Filter::default() }));
        assert!(check(Filter { namespaces: g("team-*"), ..Filter::default() }));
        assert!(check(Filter { images: g("docker.io/**"), ..Filter::default() }));
        assert!(!check(Filter { images: g("*nginx*"), ..Filter::default() }), "* stops at /");
        assert!(check(Filter { images: g("**@sha256:0123*"), ..Filter::default() }));
        assert!(check(Filter { rules: g("host.*"), ..Filter::default() }));
        assert!(!check(Filter { rules: g("caps.*"), ..Filter::default() }));
        assert!(check(Filter { policies: g("baseline"), containers: g("app"), pods: g("web"), ..Filter::default() }));
        assert!(check(Filter { containers: g("c1"), ..Filter::default() }), "the container id too");
        let t = |s: &str| parse_rfc3339(s).unwrap();
        let at = t("2026-01-02T03:04:05Z");
        assert!(check(Filter { since: Some(at), until: Some(at), ..Filter::default() }));
        assert!(!check(Filter { since: Some(t("2026-01-02T03:04:06Z")), ..Filter::default() }));
        assert!(!check(Filter { until: Some(t("2026-01-02T03:04:04.999Z")), ..Filter::default() }));
    }

    #[test]
    fn table_rows() {
        let j = entry_json("denied", "team-a", "docker.io/library/nginx:1.25", &[("host.privileged", "deny")]);
        with_entry(&j, |e| {
            let plain = TableStyle::Plain.row(e);
            assert_eq!(
                plain,
                "2026-01-02 03:04:05\tcreate\tdenied\tteam-a/web/app\tdocker.io/library/nginx:1.25@sha256:0123456789ab\
                 \tbaseline\thost.privileged"
            );
            for width in [60, 80, 120, 200] {
                let row = TableStyle::Sized { width, color: false }.row(e);
                let header = TableStyle::Sized { width, color: false }.header();
                assert!(row.chars().count() <= width.max(97), "{width}: {row}");
                assert!(header.chars().count() <= width.max(97), "{width}: {header}");
            }
            let narrow = TableStyle::Sized { width: 100, color: false }.row(e);
            assert!(narrow.contains("team-a/web/app  docker.…x:1.25  "), "{narrow}");
            let wider = TableStyle::Sized { width: 160, color: false }.row(e);
            assert!(wider.contains("  docker.io/library/nginx:1.25  "), "{wider}");
        });
    }

    #[test]
    fn summary_counts() {
        let mut s = Summary::default();
        for (d, ns, img, rules) in [
            ("denied", "a", "i1", vec![("host.privileged", "deny"), ("caps.clamped", "mutate")]),
            ("denied", "a", "i1", vec![("host.privileged", "deny")]),
            ("mutated", "b", "i2", vec![("caps.clamped", "mutate")]),
            ("allowed", "b", "i1", vec![]),
        ] {
            with_entry(&entry_json(d, ns, img, &rules), |e| s.add(e));
        }
        assert_eq!(s.records, 4);
        assert_eq!(s.decisions["denied"], 2);
        assert_eq!(s.namespaces["a"], Tally { total: 2, denied: 2 });
        assert_eq!(s.images["i1"], Tally { total: 3, denied: 2 });
        assert_eq!(s.rules["caps.clamped"]["mutate"], 2);
        assert_eq!(s.denied_rules["host.privileged"], 2);
        assert!(!s.denied_rules.contains_key("caps.clamped"), "a mutation is not why it was denied");
        let text = s.text();
        assert!(text.contains("Top denied images\n  i1"), "{text}");
    }

    #[test]
    fn counters_only_grow() {
        let mk = |seq: u64, id: &str, d: &str| {
            entry_json(d, "a", "i", &[])
                .replace("\"seq\":1", &format!("\"seq\":{seq}"))
                .replace("\"e1\"", &format!("\"{id}\""))
        };
        let run = |base: Counters, lines: &[String]| {
            let mut p = MetricsPass::new(base);
            for l in lines {
                with_entry(l, |e| p.add(e));
            }
            p.finish()
        };
        let key = "hardrun_decisions_total{decision=\"denied\",namespace=\"a\"}";
        let first = run(Counters::default(), &[mk(1, "a", "denied"), mk(2, "b", "denied")]);
        assert_eq!((first.series[key], first.last_seq), (2, 2));
        // Rotated: record 1 is gone, 3 is new.
        let second = run(first.clone(), &[mk(2, "b", "denied"), mk(3, "c", "denied")]);
        assert_eq!(second.series[key], 3);
        // Nothing new.
        assert_eq!(run(second.clone(), &[mk(3, "c", "denied")]).series[key], 3);
        // The log was recreated: seq 1 again, the anchor gone.
        assert_eq!(run(second, &[mk(1, "x", "denied")]).series[key], 4);
    }

    #[test]
    fn exposition_lines_parse() {
        let mut c = Counters::default();
        c.series.insert("hardrun_decisions_total{decision=\"denied\",namespace=\"a\\\"b\"}".into(), 3);
        c.series.insert("hardrun_rule_findings_total{rule=\"caps.clamped\",action=\"mutate\"}".into(), 1);
        let text = c.exposition();
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = l.rsplit_once(' ').unwrap();
            value.parse::<f64>().unwrap();
        }
        assert!(text.contains("# TYPE hardrun_decisions_total counter\nhardrun_decisions_total{"), "{text}");
        assert!(text.contains("hardrun_policy_matches_total counter\n# HELP"), "no series, no lines: {text}");
    }

    #[test]
    fn show_renders_the_patch() {
        let j = entry_json("mutated", "a", "i", &[("caps.clamped", "mutate")]);
        let mut v: Value = serde_json::from_str(&j).unwrap();
        v["patch"] = serde_json::json!([
            {"op": "add", "path": "/process/capabilities/ambient", "value": []},
            {"op": "replace", "path": "/process/noNewPrivileges", "value": true},
            {"op": "remove", "path": "/linux/seccomp"},
            {"op": "replace", "path": "/process/capabilities/bounding", "value": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETUID", "CAP_SETGID"]},
        ]);
        let out = show(v.to_string().as_bytes());
        assert!(out.contains("  + /process/capabilities/ambient: []\n"), "{out}");
        assert!(out.contains("  ~ /process/noNewPrivileges: true\n"), "{out}");
        assert!(out.contains("  - /linux/seccomp\n"), "{out}");
        assert!(
            out.contains("  ~ /process/capabilities/bounding:\n  ~     [\"CAP_CHOWN\", \"CAP_DAC_OVERRIDE\","),
            "{out}"
        );
        let long = PatchOp::add(
            "/linux/seccomp",
            serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": (0..40).map(|i| format!("call{i}")).collect::<Vec<_>>(), "action": "SCMP_ACT_ALLOW"}
            ]}),
        );
        let text = diff_line(&long);
        assert!(
            text.starts_with("  + /linux/seccomp:\n  +     defaultAction: \"SCMP_ACT_ERRNO\"\n  +     syscalls:\n"),
            "{text}"
        );
        assert!(text.contains("\n  +       - names: [\"call0\", \"call1\","), "{text}");
        assert!(text.contains("\n  +         action: \"SCMP_ACT_ALLOW\"\n"), "{text}");
        assert!(text.lines().all(|l| l.chars().count() <= VALUE_WIDTH + 8), "{text}");
        assert!(out.contains("Findings\n  mutate  caps.clamped  m"), "{out}");
    }

    #[test]
    fn scan_skips_damaged_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        let good = entry_json("denied", "a", "i", &[]);
        std::fs::write(&p, format!("{good}\n{{\"apiVer\n{good}\n{}", &good[..20])).unwrap();
        let mut lines = LogSet::open(std::slice::from_ref(&p)).unwrap().lines();
        let mut skipped = Vec::new();
        let mut seen = 0;
        scan(
            &mut lines,
            &Matcher::default(),
            |s| skipped.push(s.line),
            |_, _| {
                seen += 1;
                true
            },
        )
        .unwrap();
        assert_eq!((seen, skipped), (2, vec![2, 4]));
    }
}
