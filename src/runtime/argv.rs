//! runc's command line, read the way runc (urfave/cli v1 on Go's `flag`) reads it.
//!
//! hardrun never rewrites argv: the parse only finds what the policy path needs
//! (subcommand, bundle, container id, exec flags). Flags it does not know are kept in
//! place; the original vector is what runc receives.

use std::ffi::OsString;
use std::path::PathBuf;

use thiserror::Error;

/// An argv that runc itself would reject, reported in runc's words.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ArgvError {
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    #[error("bad flag syntax: {0}")]
    BadSyntax(String),
    #[error("invalid boolean value {value:?} for -{flag}")]
    BadBool { flag: String, value: String },
}

/// runc's global options (before the subcommand).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GlobalFlags {
    pub debug: bool,
    pub log: Option<PathBuf>,
    pub log_format: Option<String>,
    pub root: Option<PathBuf>,
    pub criu: Option<String>,
    pub systemd_cgroup: bool,
    pub rootless: Option<String>,
}

impl GlobalFlags {
    /// runc writes JSON log lines only when asked to; text is its default.
    pub fn log_is_json(&self) -> bool {
        self.log_format.as_deref() == Some("json")
    }
}

/// What the policy path needs from `runc exec`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExecFlags {
    pub process: Option<PathBuf>,
    pub caps: Vec<String>,
    pub apparmor: Option<String>,
    /// `--no-new-privs[=bool]`: `None` when not given (runc then keeps the spec's value).
    pub no_new_privs: Option<bool>,
    /// `--user/-u uid[:gid]`.
    pub user: Option<String>,
    pub tty: bool,
}

/// The subcommand, classified by the work hardrun does for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `create`, `run` and `restore`: a new container from a bundle.
    Create { kind: CreateKind, bundle: Option<PathBuf>, id: Option<String> },
    /// `exec`: a new process in an existing container.
    Exec { flags: ExecFlags, id: Option<String> },
    /// Everything else goes straight to runc. `id`: the first argument that is not
    /// a flag (the container id of `start`, `delete`, `state` …), for the audit log.
    Passthrough { name: Option<String>, id: Option<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateKind {
    Create,
    Run,
    Restore,
}

impl CreateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CreateKind::Create => "create",
            CreateKind::Run => "run",
            CreateKind::Restore => "restore",
        }
    }
}

/// A parsed runc command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuncArgs {
    pub global: GlobalFlags,
    pub command: Command,
}

impl RuncArgs {
    /// The subcommand's name as runc would see it (`None`: no subcommand at all).
    pub fn subcommand(&self) -> Option<&str> {
        match &self.command {
            Command::Create { kind, .. } => Some(kind.as_str()),
            Command::Exec { .. } => Some("exec"),
            Command::Passthrough { name, .. } => name.as_deref(),
        }
    }
}

/// How a flag consumes argv.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arity {
    Bool,
    Value,
}

/// runc's subcommands (and urfave/cli's `help`/`h`). A first positional that is not
/// one of these is an error in runc, which lets an unknown global flag claim it as
/// its value without guessing.
const SUBCOMMANDS: &[&str] = &[
    "checkpoint",
    "create",
    "delete",
    "events",
    "exec",
    "init",
    "kill",
    "list",
    "pause",
    "ps",
    "restore",
    "resume",
    "run",
    "spec",
    "start",
    "state",
    "update",
    "features",
    "help",
    "h",
];

fn global_arity(name: &str) -> Option<Arity> {
    Some(match name {
        "debug" | "systemd-cgroup" | "help" | "h" | "version" | "v" => Arity::Bool,
        "log" | "log-format" | "root" | "criu" | "rootless" => Arity::Value,
        _ => return None,
    })
}

/// Value-taking flags of the subcommands hardrun parses; every other known flag of
/// theirs is boolean. Unknown flags are assumed boolean (see `parse_sub`).
fn sub_arity(sub: &str, name: &str) -> Option<Arity> {
    let value = match sub {
        "create" | "run" => &["bundle", "b", "console-socket", "pid-file", "preserve-fds"][..],
        "restore" => &[
            "bundle",
            "b",
            "console-socket",
            "pid-file",
            "image-path",
            "work-path",
            "manage-cgroups-mode",
            "empty-ns",
            "lsm-profile",
            "lsm-mount-context",
            "parent-path",
        ][..],
        "exec" => &[
            "console-socket",
            "pidfd-socket",
            "cwd",
            "env",
            "e",
            "user",
            "u",
            "additional-gids",
            "g",
            "process",
            "p",
            "pid-file",
            "process-label",
            "apparmor",
            "cap",
            "c",
            "preserve-fds",
            "cgroup",
        ][..],
        _ => &[][..],
    };
    let boolean = match sub {
        "create" => &["no-pivot", "no-new-keyring", "help", "h"][..],
        "run" => &["no-pivot", "no-new-keyring", "detach", "d", "keep", "no-subreaper", "help", "h"][..],
        "restore" => &[
            "detach",
            "d",
            "no-subreaper",
            "no-pivot",
            "tcp-established",
            "tcp-close",
            "ext-unix-sk",
            "shell-job",
            "file-locks",
            "auto-dedup",
            "lazy-pages",
            "help",
            "h",
        ][..],
        "exec" => &["tty", "t", "detach", "d", "no-new-privs", "ignore-paused", "help", "h"][..],
        _ => &[][..],
    };
    if value.contains(&name) {
        Some(Arity::Value)
    } else if boolean.contains(&name) {
        Some(Arity::Bool)
    } else {
        None
    }
}

/// One token classified by Go's flag syntax.
enum Token<'a> {
    /// `--`: everything after it is positional.
    EndOfFlags,
    Flag {
        name: &'a str,
        inline: Option<&'a str>,
    },
    Positional(&'a str),
}

fn classify(arg: &str) -> Result<Token<'_>, ArgvError> {
    if arg == "--" {
        return Ok(Token::EndOfFlags);
    }
    // Go's flag: "-" alone is an argument, "-x"/"--x" a flag, "---x" and "-=x" errors.
    let body = match arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) {
        Some(body) if !arg.is_empty() && arg != "-" => body,
        _ => return Ok(Token::Positional(arg)),
    };
    if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
        return Err(ArgvError::BadSyntax(arg.to_owned()));
    }
    Ok(match body.split_once('=') {
        Some((name, value)) => Token::Flag { name, inline: Some(value) },
        None => Token::Flag { name: body, inline: None },
    })
}

fn parse_bool(flag: &str, value: &str) -> Result<bool, ArgvError> {
    // strconv.ParseBool's accepted spellings.
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(ArgvError::BadBool { flag: flag.to_owned(), value: value.to_owned() }),
    }
}

/// Takes the value of a value-flag: inline (`--flag=v`) or the next argument.
fn take_value<'a>(
    name: &str,
    inline: Option<&'a str>,
    rest: &mut std::slice::Iter<'a, String>,
) -> Result<&'a str, ArgvError> {
    match inline {
        Some(v) => Ok(v),
        None => rest.next().map(String::as_str).ok_or_else(|| ArgvError::MissingValue(name.to_owned())),
    }
}

/// Parses argv (without argv[0]).
pub fn parse(args: &[OsString]) -> Result<RuncArgs, ArgvError> {
    // Lossy: a non-UTF-8 byte can only be in a value hardrun then fails to find (a
    // bundle path: fail closed) or does not use (a command after `--`); runc gets the
    // original bytes either way.
    let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let (global, sub_at) = parse_global(&args)?;
    let Some(sub_at) = sub_at else {
        return Ok(RuncArgs { global, command: Command::Passthrough { name: None, id: None } });
    };
    let name = args[sub_at].as_str();
    let rest = &args[sub_at + 1..];
    let command = match name {
        "create" => parse_create(CreateKind::Create, rest)?,
        "run" => parse_create(CreateKind::Run, rest)?,
        "restore" => parse_create(CreateKind::Restore, rest)?,
        "exec" => parse_exec(rest)?,
        other => Command::Passthrough {
            name: Some(other.to_owned()),
            id: rest.iter().find(|a| !a.starts_with('-')).cloned(),
        },
    };
    Ok(RuncArgs { global, command })
}

/// The global flags as far as they parse: where to log an argv error.
pub fn lenient_globals(args: &[OsString]) -> GlobalFlags {
    let mut g = GlobalFlags::default();
    let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    for (i, a) in args.iter().enumerate() {
        if SUBCOMMANDS.contains(&a.as_str()) {
            break;
        }
        let (name, inline) =
            a.trim_start_matches('-').split_once('=').map_or((a.trim_start_matches('-'), None), |(n, v)| (n, Some(v)));
        let value = || inline.map(str::to_owned).or_else(|| args.get(i + 1).cloned());
        match name {
            "log" => g.log = value().map(PathBuf::from),
            "log-format" => g.log_format = value(),
            _ => {}
        }
    }
    g
}

/// Reads global flags up to the subcommand; returns the subcommand's index.
fn parse_global(args: &[String]) -> Result<(GlobalFlags, Option<usize>), ArgvError> {
    let mut g = GlobalFlags::default();
    let mut i = 0;
    while i < args.len() {
        let (name, inline) = match classify(&args[i])? {
            Token::EndOfFlags => return Ok((g, (i + 1 < args.len()).then_some(i + 1))),
            Token::Positional(_) => return Ok((g, Some(i))),
            Token::Flag { name, inline } => (name, inline),
        };
        match global_arity(name) {
            Some(Arity::Bool) => {
                let on = inline.map(|v| parse_bool(name, v)).transpose()?.unwrap_or(true);
                match name {
                    "debug" => g.debug = on,
                    "systemd-cgroup" => g.systemd_cgroup = on,
                    _ => {}
                }
            }
            Some(Arity::Value) => {
                let value = match inline {
                    Some(v) => v.to_owned(),
                    None => {
                        i += 1;
                        args.get(i).cloned().ok_or_else(|| ArgvError::MissingValue(name.to_owned()))?
                    }
                };
                match name {
                    "log" => g.log = Some(PathBuf::from(value)),
                    "log-format" => g.log_format = Some(value),
                    "root" => g.root = Some(PathBuf::from(value)),
                    "criu" => g.criu = Some(value),
                    "rootless" => g.rootless = Some(value),
                    _ => unreachable!("global_arity lists the value flags"),
                }
            }
            None => {
                // A flag of a newer runc. Without `=`, it owns the next argument unless
                // that argument is a subcommand name (runc rejects any other first positional).
                let next_is_value = inline.is_none()
                    && args.get(i + 1).is_some_and(|n| !n.starts_with('-') && !SUBCOMMANDS.contains(&n.as_str()));
                if next_is_value {
                    i += 1;
                }
            }
        }
        i += 1;
    }
    Ok((g, None))
}

/// Flags and positionals of a subcommand. urfave/cli v1 moves flags that follow the
/// container id in front of it, so flags are read anywhere before `--`; except for
/// `exec` (runc sets SkipArgReorder), where everything after the id is the command.
struct SubArgs<'a> {
    flags: Vec<(&'a str, Option<&'a str>)>,
    positionals: Vec<&'a str>,
}

fn parse_sub<'a>(sub: &str, args: &'a [String]) -> Result<SubArgs<'a>, ArgvError> {
    let mut out = SubArgs { flags: Vec::new(), positionals: Vec::new() };
    let stop_at_positional = sub == "exec";
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if stop_at_positional && !out.positionals.is_empty() {
            out.positionals.push(arg);
            continue;
        }
        match classify(arg)? {
            Token::EndOfFlags => {
                out.positionals.extend(it.by_ref().map(String::as_str));
            }
            Token::Positional(p) => out.positionals.push(p),
            Token::Flag { name, inline } => match sub_arity(sub, name) {
                Some(Arity::Value) => out.flags.push((name, Some(take_value(name, inline, &mut it)?))),
                Some(Arity::Bool) => {
                    if let Some(v) = inline {
                        parse_bool(name, v)?;
                    }
                    out.flags.push((name, inline));
                }
                // Unknown flags are taken as boolean: a newer runc's value flag would make
                // its value look like the container id, which only mislabels the audit
                // record (create) or fails the container lookup (exec: fail closed).
                None => out.flags.push((name, inline)),
            },
        }
    }
    Ok(out)
}

fn parse_create(kind: CreateKind, args: &[String]) -> Result<Command, ArgvError> {
    let sub = parse_sub(kind.as_str(), args)?;
    let mut bundle = None;
    for (name, value) in &sub.flags {
        if matches!(*name, "bundle" | "b") {
            bundle = value.map(PathBuf::from);
        }
    }
    Ok(Command::Create { kind, bundle, id: sub.positionals.first().map(|s| (*s).to_owned()) })
}

fn parse_exec(args: &[String]) -> Result<Command, ArgvError> {
    let sub = parse_sub("exec", args)?;
    let mut flags = ExecFlags::default();
    for (name, value) in &sub.flags {
        match *name {
            "process" | "p" => flags.process = value.map(PathBuf::from),
            "cap" | "c" => flags.caps.extend(value.map(str::to_owned)),
            "apparmor" => flags.apparmor = value.map(str::to_owned),
            "no-new-privs" => flags.no_new_privs = Some(value.map_or(Ok(true), |v| parse_bool(name, v))?),
            "user" | "u" => flags.user = value.map(str::to_owned),
            "tty" | "t" => flags.tty = value.map_or(Ok(true), |v| parse_bool(name, v))?,
            _ => {}
        }
    }
    Ok(Command::Exec { flags, id: sub.positionals.first().map(|s| (*s).to_owned()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<RuncArgs, ArgvError> {
        parse(&args.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn containerd_create_line() {
        let a = p(&[
            "--root",
            "/run/containerd/runc/k8s.io",
            "--log",
            "/run/x/log.json",
            "--log-format",
            "json",
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/b/init.pid",
            "abc",
        ])
        .unwrap();
        assert_eq!(a.global.root, Some(PathBuf::from("/run/containerd/runc/k8s.io")));
        assert!(a.global.log_is_json());
        assert_eq!(
            a.command,
            Command::Create { kind: CreateKind::Create, bundle: Some("/b".into()), id: Some("abc".into()) }
        );
    }

    #[test]
    fn spellings_equal_and_single_dash() {
        for args in [
            &["-root=/r", "run", "-b=/b", "id"][..],
            &["--root=/r", "run", "--bundle", "/b", "id"][..],
            &["-root", "/r", "run", "id", "-b", "/b"][..],
        ] {
            let a = p(args).unwrap();
            assert_eq!(a.global.root, Some(PathBuf::from("/r")), "{args:?}");
            assert_eq!(
                a.command,
                Command::Create { kind: CreateKind::Run, bundle: Some("/b".into()), id: Some("id".into()) },
                "{args:?}"
            );
        }
    }

    #[test]
    fn bool_globals_do_not_eat_the_subcommand() {
        let a = p(&["--debug", "--systemd-cgroup", "state", "x"]).unwrap();
        assert!(a.global.debug && a.global.systemd_cgroup);
        assert_eq!(a.subcommand(), Some("state"));
    }

    #[test]
    fn missing_values_are_runc_errors() {
        assert_eq!(p(&["create", "--bundle"]), Err(ArgvError::MissingValue("bundle".into())));
        assert_eq!(p(&["--log"]), Err(ArgvError::MissingValue("log".into())));
        assert_eq!(p(&["--log"]).unwrap_err().to_string(), "flag needs an argument: -log");
        assert_eq!(p(&["exec", "-p"]), Err(ArgvError::MissingValue("p".into())));
    }

    #[test]
    fn bad_syntax() {
        assert!(matches!(p(&["---root", "x"]), Err(ArgvError::BadSyntax(_))));
        assert!(matches!(p(&["create", "-=x"]), Err(ArgvError::BadSyntax(_))));
        assert!(matches!(p(&["--debug=maybe", "state"]), Err(ArgvError::BadBool { .. })));
    }

    #[test]
    fn unknown_global_flag_with_value_does_not_hide_create() {
        let a = p(&["--future-flag", "x", "create", "-b", "/b", "id"]).unwrap();
        assert_eq!(a.subcommand(), Some("create"));
        let a = p(&["--future-bool", "create", "id"]).unwrap();
        assert_eq!(a.subcommand(), Some("create"));
        let a = p(&["--future=1", "exec", "id"]).unwrap();
        assert_eq!(a.subcommand(), Some("exec"));
    }

    #[test]
    fn exec_flags() {
        let a = p(&[
            "exec",
            "--process",
            "/tmp/p.json",
            "--cap",
            "CAP_SYS_ADMIN",
            "-c",
            "CAP_NET_RAW",
            "--apparmor=foo",
            "--no-new-privs",
            "-t",
            "ctr",
        ])
        .unwrap();
        let Command::Exec { flags, id } = a.command else { panic!() };
        assert_eq!(id.as_deref(), Some("ctr"));
        assert_eq!(flags.process, Some(PathBuf::from("/tmp/p.json")));
        assert_eq!(flags.caps, vec!["CAP_SYS_ADMIN", "CAP_NET_RAW"]);
        assert_eq!(flags.apparmor.as_deref(), Some("foo"));
        assert!(flags.no_new_privs == Some(true) && flags.tty);
    }

    #[test]
    fn exec_command_after_the_id_is_not_flags() {
        let a = p(&["exec", "-t", "ctr", "sh", "-c", "x", "--cap", "CAP_SYS_ADMIN", "-p"]).unwrap();
        let Command::Exec { flags, id } = a.command else { panic!() };
        assert_eq!(id.as_deref(), Some("ctr"));
        assert!(flags.caps.is_empty() && flags.process.is_none() && flags.tty);
    }

    #[test]
    fn exec_args_after_double_dash_are_not_flags() {
        let a = p(&["exec", "ctr", "--", "sh", "-c", "--cap"]).unwrap();
        let Command::Exec { flags, id } = a.command else { panic!() };
        assert_eq!(id.as_deref(), Some("ctr"));
        assert!(flags.caps.is_empty());
    }

    #[test]
    fn passthrough_and_empty() {
        assert_eq!(p(&["state", "x"]).unwrap().subcommand(), Some("state"));
        assert_eq!(p(&[]).unwrap().command, Command::Passthrough { name: None, id: None });
        assert_eq!(p(&["--version"]).unwrap().command, Command::Passthrough { name: None, id: None });
        assert_eq!(
            p(&["delete", "--force", "c1"]).unwrap().command,
            Command::Passthrough { name: Some("delete".into()), id: Some("c1".into()) }
        );
        // `--` ends global flags; the subcommand follows.
        assert_eq!(p(&["--", "create", "x"]).unwrap().subcommand(), Some("create"));
    }

    #[test]
    fn create_without_bundle_defaults_later() {
        let a = p(&["create", "id"]).unwrap();
        assert_eq!(a.command, Command::Create { kind: CreateKind::Create, bundle: None, id: Some("id".into()) });
    }

    #[test]
    fn non_utf8_exec_command_is_accepted() {
        use std::os::unix::ffi::OsStringExt;
        let args =
            vec![OsString::from("exec"), OsString::from("c"), OsString::from("--"), OsString::from_vec(vec![0xff])];
        assert_eq!(parse(&args).unwrap().subcommand(), Some("exec"));
    }
}
