//! `hardrun audit`: read the audit log back. `verify` checks the hash chain,
//! the bare command lists records, `summary` counts them, `show` prints one,
//! `metrics` writes Prometheus counters. With no FILE, the node's log (from the node
//! config) and its rotated files, oldest first.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use time::OffsetDateTime;

use crate::audit::reader::{chain_order, Followed, LogSet};
use crate::audit::review::{self, Counters, Filter, Matcher, MetricsPass, Skipped, Summary, TableStyle};
use crate::audit::verify::{self, Options};
use crate::audit::Decision;
use crate::config::NodeConfig;
use crate::policy::Glob;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    // Boxed: the filters make these large, and `Tool` holds them by value.
    #[command(subcommand)]
    command: Option<Box<AuditCommand>>,
    #[command(flatten)]
    list: Box<ListArgs>,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the hash chain across rotated files; exit 0 intact, 1 broken, 2 error
    Verify(VerifyArgs),
    /// Counts by decision, policy, rule, namespace and image; top denied images and rules
    Summary(SummaryArgs),
    /// One record in full, its patch as a diff
    Show(ShowArgs),
    /// Prometheus counters (text exposition format), for node_exporter's textfile collector
    Metrics(MetricsArgs),
}

/// Which log to read.
#[derive(Debug, Args)]
struct Source {
    /// Log files, in any order (rotated files are put oldest first). Default: the
    /// node's auditLog and its rotated files
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Node config to take auditLog from, instead of $HARDRUN_CONFIG or /etc/hardrun/config.yaml
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct FilterArgs {
    /// Records at or after: a duration ago (30m, 2h, 7d, 1h30m) or an RFC 3339 time
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Records at or before: a duration ago or an RFC 3339 time
    #[arg(long, value_name = "WHEN")]
    until: Option<String>,
    /// allowed, mutated, denied, audit-only, failed-open (repeat or comma-separate)
    #[arg(long, value_name = "DECISION", value_delimiter = ',', value_parser = parse_decision)]
    decision: Vec<Decision>,
    /// Kubernetes namespace (glob)
    #[arg(long, short = 'n', value_name = "GLOB", value_delimiter = ',')]
    namespace: Vec<Glob>,
    /// Pod name (glob)
    #[arg(long, value_name = "GLOB", value_delimiter = ',')]
    pod: Vec<Glob>,
    /// Container name or container id (glob)
    #[arg(long, value_name = "GLOB", value_delimiter = ',')]
    container: Vec<Glob>,
    /// Image as requested, its digest, or ref@digest (glob: `*` stops at `/`, `**` does not)
    #[arg(long, value_name = "GLOB", value_delimiter = ',')]
    image: Vec<Glob>,
    /// A matched policy's name (glob)
    #[arg(long, value_name = "GLOB", value_delimiter = ',')]
    policy: Vec<Glob>,
    /// A finding's rule ID (glob, e.g. 'caps.*')
    #[arg(long, value_name = "GLOB", value_delimiter = ',')]
    rule: Vec<Glob>,
    /// runc subcommand: create, run, restore, exec, start, delete
    #[arg(long, value_name = "COMMAND", value_delimiter = ',')]
    command: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ListFormat {
    /// Columns sized to the terminal; tab-separated when not a terminal
    Table,
    /// One JSON array of records
    Json,
    /// The matching lines, byte for byte
    Jsonl,
}

#[derive(Debug, Args)]
struct ListArgs {
    #[command(flatten)]
    source: Source,
    #[command(flatten)]
    filter: FilterArgs,
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    format: ListFormat,
    /// Keep printing records as they are written, across rotations (the node's log only)
    #[arg(long, short = 'f')]
    follow: bool,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    #[command(flatten)]
    source: Source,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReportFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
struct SummaryArgs {
    #[command(flatten)]
    source: Source,
    #[command(flatten)]
    filter: FilterArgs,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
}

#[derive(Debug, Args)]
struct ShowArgs {
    /// The record's eventId (or a unique prefix of at least 6 characters)
    event_id: String,
    #[command(flatten)]
    source: Source,
    /// text: readable, the patch as a diff; json: the record as written, indented
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
}

#[derive(Debug, Args)]
struct MetricsArgs {
    #[command(flatten)]
    source: Source,
    /// Write here atomically (temp file + rename) instead of stdout, e.g.
    /// /var/lib/node_exporter/textfile/hardrun.prom
    #[arg(long, value_name = "PATH")]
    textfile: Option<PathBuf>,
    /// Where the counters persist between runs, so that they only grow. Default for
    /// the node's log: <stateDir>/audit-metrics.json; for FILEs: none
    #[arg(long, value_name = "PATH", conflicts_with = "no_state")]
    state: Option<PathBuf>,
    /// Count the log as it is now, keeping no state
    #[arg(long)]
    no_state: bool,
}

fn parse_decision(s: &str) -> Result<Decision, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("{s:?}: expected allowed, mutated, denied, audit-only or failed-open"))
}

/// Runs `hardrun audit …`.
pub fn run(a: &AuditArgs) -> anyhow::Result<ExitCode> {
    let result = match a.command.as_deref() {
        None => list(&a.list),
        Some(AuditCommand::Verify(v)) => verify_cmd(v),
        Some(AuditCommand::Summary(s)) => summary(s),
        Some(AuditCommand::Show(s)) => show(s),
        Some(AuditCommand::Metrics(m)) => metrics(m),
    };
    match result {
        // `hardrun audit | head`: the reader went away; that is not an error.
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => {
            Ok(ExitCode::SUCCESS)
        }
        other => other,
    }
}

/// The files to read, opened; and the node config when they are the node's log.
struct Opened {
    set: LogSet,
    node: Option<NodeConfig>,
}

impl Source {
    fn open(&self) -> anyhow::Result<Opened> {
        if !self.files.is_empty() {
            let files = chain_order(self.files.clone());
            return Ok(Opened { set: LogSet::open(&files)?, node: None });
        }
        let config = self.node_config()?;
        Ok(Opened { set: LogSet::open_node(&config.audit_log.path)?, node: Some(config) })
    }

    fn node_config(&self) -> anyhow::Result<NodeConfig> {
        Ok(match &self.config {
            Some(p) => NodeConfig::load(p)?,
            None => NodeConfig::load_from_env()?,
        })
    }
}

impl FilterArgs {
    fn build(&self) -> anyhow::Result<Matcher> {
        let now = OffsetDateTime::now_utc();
        let time = |s: &Option<String>, flag: &str| -> anyhow::Result<Option<OffsetDateTime>> {
            s.as_deref().map(|s| review::parse_time(s, now).context(flag.to_owned())).transpose()
        };
        let f = Filter {
            since: time(&self.since, "--since")?,
            until: time(&self.until, "--until")?,
            decisions: self.decision.iter().copied().collect(),
            commands: self.command.clone(),
            namespaces: self.namespace.clone(),
            pods: self.pod.clone(),
            containers: self.container.clone(),
            images: self.image.clone(),
            policies: self.policy.clone(),
            rules: self.rule.clone(),
        };
        Ok(f.matcher())
    }
}

/// Skipped lines go to stderr; past a few, only their number.
struct Warnings {
    shown: usize,
    more: usize,
}

const WARNINGS_SHOWN: usize = 20;

impl Warnings {
    fn new() -> Self {
        Warnings { shown: 0, more: 0 }
    }

    fn skipped(&mut self, s: Skipped) {
        if self.shown < WARNINGS_SHOWN {
            self.shown += 1;
            eprintln!("hardrun: warning: {}:{}: skipped: {}", s.path.display(), s.line, s.why);
        } else {
            self.more += 1;
        }
    }

    fn finish(&self) {
        if self.more > 0 {
            eprintln!("hardrun: warning: {} more lines skipped", self.more);
        }
    }
}

fn stdout() -> BufWriter<std::io::StdoutLock<'static>> {
    BufWriter::with_capacity(64 * 1024, std::io::stdout().lock())
}

/// The terminal's width: the window size of stdout, else $COLUMNS.
fn terminal_width() -> Option<usize> {
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we pass.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 0 {
        return Some(usize::from(ws.ws_col));
    }
    std::env::var("COLUMNS").ok()?.trim().parse().ok().filter(|w| *w > 0)
}

fn table_style() -> TableStyle {
    if !std::io::stdout().is_terminal() {
        return TableStyle::Plain;
    }
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    TableStyle::Sized { width: terminal_width().unwrap_or(120), color }
}

/// Prints one matching record in the chosen format.
struct Printer {
    format: ListFormat,
    style: TableStyle,
    count: u64,
}

impl Printer {
    fn start(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        match self.format {
            ListFormat::Table => writeln!(out, "{}", self.style.header()),
            ListFormat::Json => write!(out, "["),
            ListFormat::Jsonl => Ok(()),
        }
    }

    fn record(&mut self, out: &mut impl Write, e: &review::Entry<'_>, line: &[u8]) -> std::io::Result<()> {
        self.count += 1;
        match self.format {
            ListFormat::Table => writeln!(out, "{}", self.style.row(e)),
            ListFormat::Json => {
                out.write_all(if self.count == 1 { b"\n" } else { b",\n" })?;
                out.write_all(line)
            }
            ListFormat::Jsonl => {
                out.write_all(line)?;
                out.write_all(b"\n")
            }
        }
    }

    fn end(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        match self.format {
            ListFormat::Json => writeln!(out, "{}]", if self.count > 0 { "\n" } else { "" }),
            _ => Ok(()),
        }
    }
}

fn list(a: &ListArgs) -> anyhow::Result<ExitCode> {
    let filter = a.filter.build()?;
    if a.follow && !a.source.files.is_empty() {
        bail!("--follow reads the node's log; it takes no FILE");
    }
    if a.follow && matches!(a.format, ListFormat::Json) {
        bail!("--follow never ends, so it cannot close a JSON array: use --format jsonl or table");
    }
    let opened = if a.follow {
        let config = a.source.node_config()?;
        Opened { set: LogSet::open_node_or_empty(&config.audit_log.path)?, node: Some(config) }
    } else {
        a.source.open()?
    };
    let mut printer = Printer { format: a.format, style: table_style(), count: 0 };
    let mut warnings = Warnings::new();
    let mut out = stdout();
    printer.start(&mut out)?;
    let mut lines = opened.set.lines();
    let mut failed: Option<std::io::Error> = None;
    review::scan(
        &mut lines,
        &filter,
        |s| warnings.skipped(s),
        |e, line| match printer.record(&mut out, e, line.bytes) {
            Ok(()) => true,
            Err(err) => {
                failed = Some(err);
                false
            }
        },
    )?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    if a.follow {
        out.flush()?;
        follow(lines, &filter, &mut printer, &mut out, &mut warnings)?;
    }
    printer.end(&mut out)?;
    out.flush()?;
    warnings.finish();
    Ok(ExitCode::SUCCESS)
}

fn follow(
    lines: crate::audit::reader::Lines,
    filter: &Matcher,
    printer: &mut Printer,
    out: &mut impl Write,
    warnings: &mut Warnings,
) -> anyhow::Result<()> {
    let mut follower = lines.follow(Duration::from_millis(250))?;
    loop {
        let next = follower.next(&mut || true)?;
        match next {
            None => return Ok(()),
            Some(Followed::Reopened { path, truncated: true }) => {
                eprintln!("hardrun: warning: {} was truncated; reading it from the start", path.display());
            }
            Some(Followed::Reopened { .. }) => {}
            Some(Followed::Line(line)) => match review::select(&line, filter) {
                Ok(Some(e)) => {
                    printer.record(out, &e, line.bytes)?;
                    out.flush()?;
                }
                Ok(None) => {}
                Err(s) => warnings.skipped(s),
            },
        }
    }
}

fn verify_cmd(a: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let opened = a.source.open()?;
    let first_rotated = opened.set.paths().next().is_some_and(is_rotated_name);
    // Older records may be gone only when the oldest file is a rotated one (or the
    // node keeps no rotated files at all).
    let late_start_ok = first_rotated || opened.node.as_ref().is_some_and(|c| c.audit_log.max_files == 0);
    let report = verify::verify(opened.set, Options { require_genesis: !late_start_ok })?;
    let mut out = stdout();
    for w in &report.warnings {
        writeln!(out, "warning: {w}")?;
    }
    let files = report.files.len();
    let seqs = match (report.first_seq, report.last_seq) {
        (Some(a), Some(b)) => format!(", seq {a}…{b}"),
        _ => String::new(),
    };
    let code = match &report.broken {
        None => {
            writeln!(
                out,
                "audit chain intact: {} records{seqs} in {files} file{}",
                report.records,
                if files == 1 { "" } else { "s" }
            )?;
            ExitCode::SUCCESS
        }
        Some(b) => {
            writeln!(out, "audit chain BROKEN at {b}")?;
            writeln!(out, "  {} records read up to the break{seqs}", report.records)?;
            ExitCode::from(1)
        }
    };
    out.flush()?;
    Ok(code)
}

/// `<log>.<n>`: a file rotation produced.
fn is_rotated_name(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.rsplit_once('.'))
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn summary(a: &SummaryArgs) -> anyhow::Result<ExitCode> {
    let filter = a.filter.build()?;
    let opened = a.source.open()?;
    let mut summary = Summary::default();
    let mut warnings = Warnings::new();
    review::scan(
        &mut opened.set.lines(),
        &filter,
        |s| warnings.skipped(s),
        |e, _| {
            summary.add(e);
            true
        },
    )?;
    warnings.finish();
    let mut out = stdout();
    match a.format {
        ReportFormat::Text => write!(out, "{}", summary.text())?,
        ReportFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&summary)?)?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Shortest event-id prefix accepted.
const MIN_PREFIX: usize = 6;

fn show(a: &ShowArgs) -> anyhow::Result<ExitCode> {
    let wanted = a.event_id.trim();
    if wanted.len() < MIN_PREFIX {
        bail!("event id {wanted:?} is too short: give at least {MIN_PREFIX} characters");
    }
    let opened = a.source.open()?;
    let mut found: Vec<Vec<u8>> = Vec::new();
    let mut warnings = Warnings::new();
    let exact_or_prefix = |id: &str| id == wanted || id.starts_with(wanted);
    review::scan(
        &mut opened.set.lines(),
        &Matcher::default(),
        |s| warnings.skipped(s),
        |e, line| {
            if exact_or_prefix(e.event_id.as_str()) {
                found.push(line.bytes.to_vec());
            }
            true
        },
    )?;
    warnings.finish();
    let line = match found.len() {
        0 => {
            eprintln!("hardrun: no record with event id {wanted}");
            return Ok(ExitCode::from(1));
        }
        1 => found.remove(0),
        n => bail!("{n} records have an event id starting with {wanted:?}: give more of it"),
    };
    let mut out = stdout();
    match a.format {
        ReportFormat::Text => write!(out, "{}", review::show(&line))?,
        ReportFormat::Json => {
            let v: serde_json::Value = serde_json::from_slice(&line)?;
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn metrics(a: &MetricsArgs) -> anyhow::Result<ExitCode> {
    let opened = a.source.open()?;
    let state = match (&a.state, &opened.node) {
        _ if a.no_state => None,
        (Some(p), _) => Some(p.clone()),
        (None, Some(config)) => Some(config.state_dir.join("audit-metrics.json")),
        (None, None) => None,
    };
    let base = match &state {
        Some(p) => Counters::load(p)?,
        None => Counters::default(),
    };
    let mut pass = MetricsPass::new(base);
    let mut warnings = Warnings::new();
    review::scan(
        &mut opened.set.lines(),
        &Matcher::default(),
        |s| warnings.skipped(s),
        |e, _| {
            pass.add(e);
            true
        },
    )?;
    warnings.finish();
    let counters = pass.finish();
    // State first: if the textfile write fails, the next run still has every count.
    if let Some(p) = &state {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        counters.save(p)?;
    }
    let text = counters.exposition();
    match &a.textfile {
        Some(p) => review::write_atomic(p, text.as_bytes())?,
        None => {
            let mut out = stdout();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
