//! `memio kv`: get, set, delete, list, dump, load, compact and inspect a
//! memio-kv store from the shell.

use std::io::{BufRead, Write};

use crate::output::stdout;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use memio::io::xattr::dump::{Encoding, decode, encode};
use memio::kv::{Batch, Durability, Options, Snapshot, Store};
use serde_json::{Value, json};

use crate::error::{CliError, CliResult};
use crate::output::{Globals, Table, print_json};

/// Work with a memio-kv store: one file that many processes can read and
/// write at once.
#[derive(Debug, Args)]
#[command(
    after_help = "Keys and values are taken as UTF-8 text. dump writes one JSON object per \
line ({\"key\":..,\"value\":..}; bytes that are not UTF-8 go in key_base64/value_base64), and load \
reads the same lines back in one commit.

Exit status: 0 ok, 1 a key was not found, 2 any other error."
)]
pub(crate) struct KvArgs {
    /// The store file (created by set and load if missing).
    #[arg(long, value_name = "FILE")]
    db: PathBuf,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Return from writes before they are on disk (a power cut can lose
    /// them; a crash of this process cannot).
    #[arg(long, global = true)]
    relaxed: bool,
    #[command(subcommand)]
    command: KvCommand,
}

#[derive(Debug, Subcommand)]
enum KvCommand {
    /// Print the value of KEY (exit 1 if missing).
    Get {
        /// The key.
        key: String,
    },
    /// Set KEY to VALUE.
    Set {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Delete KEY (exit 1 if it was missing).
    #[command(visible_alias = "rm")]
    Del {
        /// The key.
        key: String,
    },
    /// List pairs in key order.
    #[command(visible_alias = "ls")]
    List {
        /// Only keys starting with P.
        #[arg(long, value_name = "P", conflicts_with = "range")]
        prefix: Option<String>,
        /// Only keys from A (included) to B (excluded); either may be empty.
        #[arg(long, value_name = "A..B")]
        range: Option<String>,
    },
    /// Write every pair as JSON lines.
    Dump,
    /// Read JSON lines (as dump writes them) from FILE or stdin and commit
    /// them all at once.
    Load {
        /// Input file; stdin if absent or `-`.
        file: Option<PathBuf>,
    },
    /// Rewrite the store without dead records.
    Compact,
    /// Print counts: keys, bytes, dead space, commits.
    Stats,
}

fn kv_err(e: &memio::kv::Error) -> CliError {
    match e {
        memio::kv::Error::Io {
            path,
            action,
            source,
        } => CliError::new(
            path.display(),
            format!("cannot {action}: {}", crate::error::describe(source)),
        ),
        memio::kv::Error::Corrupt { path, .. }
        | memio::kv::Error::NotAStore { path, .. }
        | memio::kv::Error::FutureVersion { path, .. }
        | memio::kv::Error::Full { path, .. }
        | memio::kv::Error::ReadOnly { path } => {
            let text = e.to_string();
            let prefix = format!("{}: ", path.display());
            CliError::new(path.display(), text.strip_prefix(&prefix).unwrap_or(&text))
        }
        other => CliError::new("kv", other),
    }
}

/// Opens the store: read-only for commands that only read (so a file
/// this user may not write still reads), read-write otherwise.
fn open_for(args: &KvArgs, create: bool, write: bool) -> CliResult<Store> {
    if !create && !args.db.exists() {
        return Err(CliError::new(args.db.display(), "no such store"));
    }
    let durability = if args.relaxed {
        Durability::Relaxed
    } else {
        Durability::Durable
    };
    let options = Options::new()
        .create(create)
        .read_only(!write)
        .durability(durability);
    Store::open(&args.db, options).map_err(|e| kv_err(&e))
}

fn open(args: &KvArgs, create: bool) -> CliResult<Store> {
    open_for(args, create, true)
}

fn open_to_read(args: &KvArgs) -> CliResult<Store> {
    open_for(args, false, false)
}

/// A key or value as JSON: text when it is UTF-8, else base64.
fn field(obj: &mut serde_json::Map<String, Value>, name: &str, bytes: &[u8]) {
    if let Ok(s) = std::str::from_utf8(bytes) {
        obj.insert(name.into(), Value::String(s.into()));
    } else {
        let b = encode(bytes, Some(Encoding::Base64));
        let text = String::from_utf8_lossy(b.strip_prefix(b"0s").unwrap_or(&b)).into_owned();
        obj.insert(format!("{name}_base64"), Value::String(text));
    }
}

fn pair_json(key: &[u8], value: &[u8]) -> Value {
    let mut obj = serde_json::Map::new();
    field(&mut obj, "key", key);
    field(&mut obj, "value", value);
    Value::Object(obj)
}

/// Reads field `name` (or `name_base64`) of a dump line.
fn read_field(obj: &Value, name: &str, line: usize, src: &str) -> CliResult<Vec<u8>> {
    if let Some(s) = obj.get(name).and_then(Value::as_str) {
        return Ok(s.as_bytes().to_vec());
    }
    if let Some(s) = obj.get(format!("{name}_base64")).and_then(Value::as_str) {
        return decode(format!("0s{s}").as_bytes())
            .map_err(|e| CliError::new(format!("{src}:{line}"), format!("{name}_base64: {e}")));
    }
    Err(CliError::new(
        format!("{src}:{line}"),
        format!("no \"{name}\" or \"{name}_base64\" string"),
    ))
}

/// A key as an error names it: the empty key as `''`.
fn shown_key(key: &str) -> &str {
    if key.is_empty() { "''" } else { key }
}

pub(crate) fn run(args: &KvArgs, _globals: Globals) -> CliResult {
    exec(args)?;
    Ok(crate::error::EXIT_OK)
}

fn exec(args: &KvArgs) -> CliResult<()> {
    match &args.command {
        KvCommand::Get { key } => {
            let s = open_to_read(args)?;
            match s.get(key.as_bytes()).map_err(|e| kv_err(&e))? {
                Some(v) if args.json => print_json(&pair_json(key.as_bytes(), &v)),
                Some(v) => {
                    let mut out = stdout();
                    out.write_all(&v)?;
                    out.write_all(b"\n")?;
                    Ok(())
                }
                None => Err(CliError::negative(shown_key(key), "no such key")),
            }
        }
        KvCommand::Set { key, value } => {
            open(args, true)?
                .put(key.as_bytes(), value.as_bytes())
                .map_err(|e| kv_err(&e))?;
            if args.json {
                print_json(&json!({"set": key}))?;
            }
            Ok(())
        }
        KvCommand::Del { key } => {
            let had = open(args, false)?
                .delete(key.as_bytes())
                .map_err(|e| kv_err(&e))?;
            if args.json {
                print_json(&json!({"deleted": had, "key": key}))?;
            }
            if had {
                Ok(())
            } else {
                Err(CliError::negative(shown_key(key), "no such key"))
            }
        }
        KvCommand::List { prefix, range } => list(args, prefix.as_deref(), range.as_deref()),
        KvCommand::Dump => {
            let snap = open_to_read(args)?.snapshot().map_err(|e| kv_err(&e))?;
            let mut out = std::io::BufWriter::new(stdout());
            for pair in &snap {
                let (k, v) = pair.map_err(|e| kv_err(&e))?;
                serde_json::to_writer(&mut out, &pair_json(&k, &v))
                    .map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            Ok(())
        }
        KvCommand::Load { file } => load(args, file.as_deref()),
        KvCommand::Compact => {
            let c = open(args, false)?.compact().map_err(|e| kv_err(&e))?;
            if args.json {
                return print_json(&json!({"before": c.before, "after": c.after, "keys": c.keys}));
            }
            crate::output::println(format_args!(
                "{}: {} -> {} bytes, {} keys",
                args.db.display(),
                c.before,
                c.after,
                c.keys
            ))
        }
        KvCommand::Stats => stats(args),
    }
}

fn list(args: &KvArgs, prefix: Option<&str>, range: Option<&str>) -> CliResult<()> {
    let snap: Snapshot = open_to_read(args)?.snapshot().map_err(|e| kv_err(&e))?;
    let iter = match (prefix, range) {
        (Some(p), _) => snap.prefix(p.as_bytes()),
        (None, Some(r)) => {
            let (a, b) = r
                .split_once("..")
                .ok_or_else(|| CliError::new("--range", format!("'{r}' is not A..B")))?;
            let start = if a.is_empty() {
                std::ops::Bound::Unbounded
            } else {
                std::ops::Bound::Included(a.as_bytes())
            };
            let end = if b.is_empty() {
                std::ops::Bound::Unbounded
            } else {
                std::ops::Bound::Excluded(b.as_bytes())
            };
            snap.range((start, end))
        }
        (None, None) => snap.iter(),
    };
    let pairs = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| kv_err(&e))?;
    if args.json {
        let v: Vec<Value> = pairs.iter().map(|(k, v)| pair_json(k, v)).collect();
        return print_json(&v);
    }
    let mut t = Table::new(&["KEY", "VALUE"]);
    for (k, v) in &pairs {
        t.push(vec![
            String::from_utf8_lossy(k).into_owned(),
            String::from_utf8_lossy(v).into_owned(),
        ]);
    }
    t.print(true)
}

fn load(args: &KvArgs, file: Option<&Path>) -> CliResult<()> {
    let (src, reader): (String, Box<dyn BufRead>) = match file {
        Some(p) if p != Path::new("-") => {
            let f = std::fs::File::open(p).map_err(|e| CliError::io(p.display(), &e))?;
            (
                p.display().to_string(),
                Box::new(std::io::BufReader::new(f)),
            )
        }
        _ => ("stdin".into(), Box::new(std::io::stdin().lock())),
    };
    let mut batch = Batch::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| CliError::io(&src, &e))?;
        if line.trim().is_empty() {
            continue;
        }
        let obj: Value = serde_json::from_str(&line)
            .map_err(|e| CliError::new(format!("{src}:{}", i + 1), format!("not JSON: {e}")))?;
        let k = read_field(&obj, "key", i + 1, &src)?;
        let v = read_field(&obj, "value", i + 1, &src)?;
        batch.put(k, v);
    }
    let n = batch.len();
    open(args, true)?.write(&batch).map_err(|e| kv_err(&e))?;
    if args.json {
        return print_json(&json!({"loaded": n}));
    }
    Ok(())
}

fn stats(args: &KvArgs) -> CliResult<()> {
    let st = open_to_read(args)?.stats().map_err(|e| kv_err(&e))?;
    if args.json {
        return print_json(&json!({
            "path": st.path, "file_size": st.file_size, "committed": st.committed,
            "synced": st.synced, "commits": st.commits, "live_keys": st.live_keys,
            "live_bytes": st.live_bytes, "dead_bytes": st.dead_bytes,
        }));
    }
    let mut t = Table::new(&["FIELD", "VALUE"]);
    for (k, v) in [
        ("file size", st.file_size),
        ("committed", st.committed),
        ("synced", st.synced),
        ("commits", st.commits),
        ("live keys", st.live_keys),
        ("live bytes", st.live_bytes),
        ("dead bytes", st.dead_bytes),
    ] {
        t.push(vec![k.to_owned(), v.to_string()]);
    }
    t.print(true)
}
