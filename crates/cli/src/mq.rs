//! `memio mq`: create, send to, receive from, inspect and remove POSIX and
//! System V message queues from a shell.

use std::io::Write;
use std::time::Instant;

use clap::{Args, Subcommand};
use memio::io::xattr::dump::Encoding;
use memio::ipc::Create;
use memio::ipc::mq::posix::{MqOptions, PosixMq};
use memio::ipc::mq::sysv::{MsgType, SysvMq, SysvMqOptions};
use serde_json::json;

use crate::error::{CliError, CliResult, EXIT_OK};
use crate::ipc::{
    SysvTarget, bytes_or_stdin, create_mode, lib_error, parse_duration, parse_mode, sysv_error,
};
use crate::output::{self, Globals, Table};
use crate::size::Size;

/// POSIX (`/name`) and System V (`--sysv KEY`) message queues.
#[derive(Debug, Args)]
#[command(
    after_help = "With --sysv, QUEUE is a key (0x41001234 or decimal), id:N for an id, \
    or `private` when creating (the id is printed).\n\
    POSIX queue limits without CAP_SYS_RESOURCE: 10 messages of 8192 bytes \
    (/proc/sys/fs/mqueue/msg_max, msgsize_max)."
)]
pub(crate) struct MqArgs {
    #[command(subcommand)]
    command: MqCommand,
}

#[derive(Debug, Subcommand)]
enum MqCommand {
    /// Create a queue (mode 0600; fails if it exists unless --open-or-create).
    Create(CreateArgs),
    /// Send one message (the argument, or stdin when it is absent).
    Send(SendArgs),
    /// Receive one message and print it.
    Recv(RecvArgs),
    /// Show a queue's attributes.
    Attr(AttrArgs),
    /// Remove a queue.
    Rm(RmArgs),
    /// Run a small key-value service on a POSIX queue (request/response).
    Serve(crate::mq_rpc::ServeArgs),
    /// Send a request to a service started by `memio mq serve` and print the reply.
    Call(crate::mq_rpc::CallArgs),
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// `/name`, or with --sysv a key, `private` or id:N.
    queue: String,
    /// System V queue.
    #[arg(long)]
    sysv: bool,
    /// Most messages queued (POSIX).
    #[arg(long, value_name = "N")]
    capacity: Option<usize>,
    /// Largest message (POSIX), e.g. 8k.
    #[arg(long, value_name = "SIZE")]
    msg_size: Option<Size>,
    /// Permission bits in octal (POSIX objects: the umask applies).
    #[arg(long, value_parser = parse_mode, default_value = "600")]
    mode: u32,
    /// Open the queue if it already exists instead of failing.
    #[arg(long)]
    open_or_create: bool,
}

#[derive(Debug, Args)]
struct Timing {
    /// Return at once (exit 1) if the queue is full or empty.
    #[arg(long, conflicts_with = "timeout")]
    nonblock: bool,
    /// Give up (exit 1) after this long, e.g. 500ms, 2s.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    timeout: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
struct SendArgs {
    /// `/name`, or with --sysv a key or id:N.
    queue: String,
    /// The message; read from stdin when absent.
    message: Option<String>,
    /// System V queue.
    #[arg(long)]
    sysv: bool,
    /// POSIX priority, 0 to 32767 (higher is received first).
    #[arg(long, short = 'p', default_value_t = 0, conflicts_with = "sysv")]
    priority: u32,
    /// System V message type (at least 1).
    #[arg(long = "type", short = 't', default_value_t = 1, value_name = "TYPE")]
    mtype: i64,
    #[command(flatten)]
    timing: Timing,
}

#[derive(Debug, Args)]
struct RecvArgs {
    /// `/name`, or with --sysv a key or id:N.
    queue: String,
    /// System V queue.
    #[arg(long)]
    sysv: bool,
    /// System V: only messages of exactly this type.
    #[arg(
        long = "type",
        short = 't',
        value_name = "TYPE",
        conflicts_with = "at_most"
    )]
    mtype: Option<i64>,
    /// System V: the lowest type that is at most N.
    #[arg(long, value_name = "N")]
    at_most: Option<i64>,
    /// Print the message bytes exactly, without the newline added.
    #[arg(long)]
    raw: bool,
    /// Print the message as JSON: its length, priority/type, `text`, and the
    /// exact bytes in `base64` (text that is not UTF-8 shows U+FFFD).
    #[arg(long, conflicts_with = "raw")]
    json: bool,
    #[command(flatten)]
    timing: Timing,
}

#[derive(Debug, Args)]
struct AttrArgs {
    /// `/name`, or with --sysv a key or id:N.
    queue: String,
    /// System V queue.
    #[arg(long)]
    sysv: bool,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct RmArgs {
    /// `/name`, or with --sysv a key or id:N.
    queue: String,
    /// System V queue.
    #[arg(long)]
    sysv: bool,
}

/// Runs `memio mq`.
pub(crate) fn run(args: &MqArgs, globals: Globals) -> CliResult {
    match &args.command {
        MqCommand::Create(a) => create(a, globals),
        MqCommand::Send(a) => send(a),
        MqCommand::Recv(a) => recv(a),
        MqCommand::Attr(a) => attr(a),
        MqCommand::Rm(a) => rm(a),
        MqCommand::Serve(a) => crate::mq_rpc::serve(a, globals),
        MqCommand::Call(a) => crate::mq_rpc::call(a),
    }
}

fn create(a: &CreateArgs, globals: Globals) -> CliResult {
    let how = create_mode(a.open_or_create);
    if a.sysv {
        if a.capacity.is_some() || a.msg_size.is_some() {
            return Err(CliError::new(
                "--capacity/--msg-size",
                "apply to POSIX queues only (System V queues are sized by /proc/sys/kernel/msgmnb)",
            ));
        }
        let key = match SysvTarget::parse(&a.queue)? {
            SysvTarget::Key(k) => k,
            SysvTarget::Id(_) => {
                return Err(CliError::new(
                    &a.queue,
                    "create takes a key or `private`, not an id",
                ));
            }
        };
        let q = SysvMqOptions::new()
            .mode(a.mode)
            .open(key, how)
            .map_err(|e| CliError::os(&e))?;
        output::println(q.id())?;
        return Ok(EXIT_OK);
    }
    if a.capacity == Some(0) {
        return Err(CliError::new(
            "--capacity 0",
            "a queue holds at least 1 message",
        ));
    }
    if a.msg_size.is_some_and(|s| s.bytes() == 0) {
        return Err(CliError::new(
            "--msg-size 0",
            "a queue's messages take at least 1 byte",
        ));
    }
    let mut opts = MqOptions::new().mode(a.mode);
    if let Some(n) = a.capacity {
        opts = opts.capacity(n);
    }
    if let Some(s) = a.msg_size {
        opts = opts.msg_size(usize::try_from(s.bytes()).unwrap_or(usize::MAX));
    }
    let q = opts.open(&a.queue, how).map_err(lib_error)?;
    if globals.verbose > 0 {
        let at = q.attr().map_err(|e| CliError::os(&e))?;
        output::println(format!(
            "{}: {} messages of at most {} bytes",
            q.name(),
            at.capacity,
            at.msg_size
        ))?;
    }
    Ok(EXIT_OK)
}

fn send(a: &SendArgs) -> CliResult {
    if a.sysv {
        let target = SysvTarget::parse(&a.queue)?;
        let q = target
            .queue()
            .map_err(|e| sysv_error("message queue", target, &e))?;
        let msgmax = std::fs::read_to_string(memio::ipc::mq::sysv::MSGMAX_PATH)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(8192);
        let msg = bytes_or_stdin(
            a.message.as_ref(),
            msgmax,
            "a System V message takes (kernel.msgmax)",
        )?;
        if a.timing.timeout.is_some() {
            return Err(CliError::new(
                "--timeout",
                "System V queues have no timed send; use --nonblock",
            ));
        }
        if a.timing.nonblock {
            if !q.try_send(a.mtype, &msg).map_err(lib_error)? {
                return Err(CliError::negative(
                    format!("message queue {target}"),
                    "full",
                ));
            }
        } else {
            q.send(a.mtype, &msg).map_err(lib_error)?;
        }
        return Ok(EXIT_OK);
    }
    let q = MqOptions::new()
        .write_only()
        .open(&a.queue, Create::Open)
        .map_err(lib_error)?;
    let msg = bytes_or_stdin(
        a.message.as_ref(),
        q.msg_size(),
        &format!("a message on {} takes", a.queue),
    )?;
    let sent = if a.timing.nonblock {
        q.try_send(&msg, a.priority)
    } else if let Some(t) = a.timing.timeout {
        q.send_deadline(&msg, a.priority, Instant::now() + t)
    } else {
        q.send(&msg, a.priority).map(|()| true)
    }
    .map_err(lib_error)?;
    if !sent {
        let why = if a.timing.nonblock {
            "full"
        } else {
            "still full when the timeout expired"
        };
        return Err(CliError::negative(
            format!("message queue '{}'", a.queue),
            why,
        ));
    }
    Ok(EXIT_OK)
}

fn recv(a: &RecvArgs) -> CliResult {
    let got: Option<(Vec<u8>, serde_json::Value)> = if a.sysv {
        let target = SysvTarget::parse(&a.queue)?;
        let q = target
            .queue()
            .map_err(|e| sysv_error("message queue", target, &e))?;
        if a.timing.timeout.is_some() {
            return Err(CliError::new(
                "--timeout",
                "System V queues have no timed receive; use --nonblock",
            ));
        }
        let which = match (a.mtype, a.at_most) {
            (Some(t), _) => MsgType::Exact(t),
            (None, Some(n)) => MsgType::AtMost(n),
            (None, None) => MsgType::Any,
        };
        let r = if a.timing.nonblock {
            q.try_recv_vec(which)
        } else {
            q.recv_vec(which).map(Some)
        }
        .map_err(lib_error)?;
        r.map(|(m, t)| (m, json!({ "type": t })))
    } else {
        if a.mtype.is_some() || a.at_most.is_some() {
            return Err(CliError::new(
                "--type/--at-most",
                "apply to System V queues only (add --sysv)",
            ));
        }
        let q = MqOptions::new()
            .read_only()
            .open(&a.queue, Create::Open)
            .map_err(lib_error)?;
        let mut buf = vec![0; q.msg_size()];
        let r = if a.timing.nonblock {
            q.try_recv(&mut buf)
        } else if let Some(t) = a.timing.timeout {
            q.recv_deadline(&mut buf, Instant::now() + t)
        } else {
            q.recv(&mut buf).map(Some)
        }
        .map_err(lib_error)?;
        r.map(|(n, p)| {
            buf.truncate(n);
            (buf, json!({ "priority": p }))
        })
    };
    let Some((msg, meta)) = got else {
        let why = if a.timing.nonblock {
            "empty"
        } else {
            "no message before the timeout expired"
        };
        let object = if a.sysv {
            format!("message queue {}", a.queue)
        } else {
            format!("message queue '{}'", a.queue)
        };
        return Err(CliError::negative(object, why));
    };
    let mut out = crate::output::stdout();
    if a.json {
        // `text` is exact when `utf8` is true; `base64` always is (bytes
        // that are not UTF-8 would otherwise turn into U+FFFD).
        let base64 = memio::io::xattr::dump::encode(&msg, Some(Encoding::Base64));
        let mut v = json!({
            "bytes": msg.len(),
            "text": String::from_utf8_lossy(&msg),
            "utf8": std::str::from_utf8(&msg).is_ok(),
            "base64": String::from_utf8_lossy(base64.strip_prefix(b"0s").unwrap_or(&base64)),
        });
        if let (Some(obj), Some(extra)) = (v.as_object_mut(), meta.as_object()) {
            obj.extend(extra.clone());
        }
        drop(out);
        output::print_json(&v)?;
        return Ok(EXIT_OK);
    }
    out.write_all(&msg)?;
    if !a.raw {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(EXIT_OK)
}

fn attr(a: &AttrArgs) -> CliResult {
    if a.sysv {
        let target = SysvTarget::parse(&a.queue)?;
        let q = target
            .queue()
            .map_err(|e| sysv_error("message queue", target, &e))?;
        let st = q
            .stat()
            .map_err(|e| sysv_error("message queue", target, &e))?;
        if a.json {
            output::print_json(&json!({
                "key": st.key.to_string(), "id": q.id(), "perms": format!("{:o}", st.mode),
                "uid": st.uid, "gid": st.gid, "messages": st.messages, "bytes": st.bytes,
                "max_bytes": st.max_bytes, "lspid": st.last_send_pid, "lrpid": st.last_recv_pid,
                "stime": st.send_time, "rtime": st.recv_time, "ctime": st.change_time,
            }))?;
        } else {
            let mut t = Table::new(&[
                "key",
                "id",
                "perms",
                "messages",
                "bytes",
                "max-bytes",
                "lspid",
                "lrpid",
            ])
            .right(&[1, 3, 4, 5, 6, 7]);
            t.push(vec![
                st.key.to_string(),
                q.id().to_string(),
                format!("{:o}", st.mode),
                st.messages.to_string(),
                st.bytes.to_string(),
                st.max_bytes.to_string(),
                st.last_send_pid.to_string(),
                st.last_recv_pid.to_string(),
            ]);
            t.print(true)?;
        }
        return Ok(EXIT_OK);
    }
    let q = MqOptions::new()
        .read_only()
        .open(&a.queue, Create::Open)
        .map_err(lib_error)?;
    let at = q.attr().map_err(|e| CliError::os(&e))?;
    if a.json {
        output::print_json(&json!({
            "name": q.name(), "capacity": at.capacity, "msg_size": at.msg_size, "messages": at.current,
        }))?;
    } else {
        let mut t = Table::new(&["name", "capacity", "msg-size", "messages"]).right(&[1, 2, 3]);
        t.push(vec![
            q.name().to_owned(),
            at.capacity.to_string(),
            at.msg_size.to_string(),
            at.current.to_string(),
        ]);
        t.print(true)?;
    }
    Ok(EXIT_OK)
}

fn rm(a: &RmArgs) -> CliResult {
    if a.sysv {
        let target = SysvTarget::parse(&a.queue)?;
        target
            .queue()
            .and_then(SysvMq::remove)
            .map_err(|e| sysv_error("message queue", target, &e))?;
        return Ok(EXIT_OK);
    }
    PosixMq::unlink(&a.queue).map_err(lib_error)?;
    Ok(EXIT_OK)
}
