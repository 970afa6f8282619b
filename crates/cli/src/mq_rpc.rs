//! `memio mq serve` and `memio mq call`: a small key-value service over
//! POSIX message queues (memio-ipc's `rpc`), and its client, so the
//! client/server exercise runs from a shell.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Args;
use memio::ipc::rpc::{Client, Served, Server};
use serde_json::json;

use crate::error::{CliError, CliResult, EXIT_NEGATIVE, EXIT_OK};
use crate::ipc::{lib_error, parse_duration};
use crate::output::{self, Globals};

/// What the service understands, for `--help` and its `help` request.
const REQUESTS: &str = "get KEY | set KEY VALUE | del KEY | keys | ping | echo TEXT | shutdown";

#[derive(Debug, Args)]
#[command(after_help = format!("Requests: {REQUESTS}.\n\
    The service stops on `memio mq call NAME shutdown`, after --count requests, \
    or after --idle without one; it removes its queue when it stops."))]
pub(crate) struct ServeArgs {
    /// The service's queue, `/name` (created, mode 0600).
    name: String,
    /// Stop after answering this many requests.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Stop after this long without a request, e.g. 30s.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    idle: Option<Duration>,
}

#[derive(Debug, Args)]
#[command(after_help = format!("Requests: {REQUESTS}.\n\
    Exit status 1 when the service answers with an error (no such key, \
    unknown request) or does not answer in time."))]
pub(crate) struct CallArgs {
    /// The service's queue, `/name`.
    name: String,
    /// The request, e.g. `set colour blue` (the words are joined by spaces).
    #[arg(required = true, num_args = 1..)]
    request: Vec<String>,
    /// Give up after this long.
    #[arg(long, value_parser = parse_duration, default_value = "5s", value_name = "DURATION")]
    timeout: Duration,
    /// JSON output: the reply and the round trip in microseconds.
    #[arg(long)]
    json: bool,
}

/// The in-memory key-value service.
#[derive(Debug, Default)]
struct Kv {
    map: BTreeMap<String, String>,
    stop: bool,
}

impl Kv {
    fn handle(&mut self, req: &[u8]) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(req).map_err(|_| "the request is not UTF-8".to_owned())?;
        let (verb, rest) = text.split_once(' ').unwrap_or((text, ""));
        let rest = rest.trim();
        let one_word = |what: &str| {
            if rest.is_empty() || rest.contains(' ') {
                Err(format!("usage: {verb} {what}"))
            } else {
                Ok(rest)
            }
        };
        let reply = match verb {
            "get" => {
                let key = one_word("KEY")?;
                self.map
                    .get(key)
                    .cloned()
                    .ok_or_else(|| format!("no key '{key}'"))?
            }
            "set" => {
                let (key, value) = rest
                    .split_once(' ')
                    .ok_or_else(|| "usage: set KEY VALUE".to_owned())?;
                self.map.insert(key.to_owned(), value.to_owned());
                "ok".to_owned()
            }
            "del" => {
                let key = one_word("KEY")?;
                self.map
                    .remove(key)
                    .map(|_| "ok".to_owned())
                    .ok_or_else(|| format!("no key '{key}'"))?
            }
            "keys" => self.map.keys().cloned().collect::<Vec<_>>().join("\n"),
            "ping" => "pong".to_owned(),
            "echo" => rest.to_owned(),
            "shutdown" => {
                self.stop = true;
                "stopping".to_owned()
            }
            "help" => REQUESTS.to_owned(),
            _ => return Err(format!("unknown request '{verb}' (try: {REQUESTS})")),
        };
        Ok(reply.into_bytes())
    }
}

/// Runs `memio mq serve`.
pub(crate) fn serve(a: &ServeArgs, globals: Globals) -> CliResult {
    let mut server = Server::create(&a.name).map_err(lib_error)?;
    if !globals.quiet {
        output::warn(format!(
            "serving {} (stop with: memio mq call {} shutdown)",
            a.name, a.name
        ));
    }
    let mut kv = Kv::default();
    let mut answered = 0u64;
    let mut last = Instant::now();
    while !kv.stop && a.count.is_none_or(|n| answered < n) {
        let slice = Instant::now() + Duration::from_millis(200);
        let turn = server
            .serve_one(Some(slice), &mut |req| kv.handle(req))
            .map_err(lib_error)?;
        match turn {
            Served::Idle => {
                if a.idle.is_some_and(|idle| last.elapsed() >= idle) {
                    break;
                }
            }
            Served::Answered => {
                answered += 1;
                last = Instant::now();
            }
            Served::Dropped(why) => {
                last = Instant::now();
                if globals.verbose > 0 {
                    output::warn(format!("{}: dropped a request: {why}", a.name));
                }
            }
        }
    }
    if globals.verbose > 0 {
        output::warn(format!("{}: answered {answered} requests", a.name));
    }
    Ok(EXIT_OK)
}

/// Runs `memio mq call`.
pub(crate) fn call(a: &CallArgs) -> CliResult {
    let mut client = Client::connect(&a.name).map_err(lib_error)?;
    let request = a.request.join(" ");
    let start = Instant::now();
    let reply = match client.call(request.as_bytes(), a.timeout) {
        Ok(reply) => reply,
        Err(memio::ipc::Error::Remote { object, message }) => {
            return Err(CliError::negative(object, message));
        }
        Err(e @ memio::ipc::Error::TimedOut { .. }) => {
            return Err(CliError::new("", e).with_code(EXIT_NEGATIVE));
        }
        Err(e) => return Err(lib_error(e)),
    };
    let took = start.elapsed();
    let text = String::from_utf8_lossy(&reply);
    if a.json {
        output::print_json(&json!({
            "service": a.name,
            "request": request,
            "reply": text,
            "micros": took.as_secs_f64() * 1e6,
        }))?;
    } else {
        output::println(text)?;
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_keeps_keys_and_refuses_what_it_does_not_know() {
        let mut kv = Kv::default();
        let mut ask = |r: &str| {
            kv.handle(r.as_bytes())
                .map(|v| String::from_utf8(v).unwrap())
        };
        assert_eq!(ask("set colour deep blue").unwrap(), "ok");
        assert_eq!(ask("get colour").unwrap(), "deep blue");
        assert_eq!(ask("keys").unwrap(), "colour");
        assert_eq!(ask("get shape").unwrap_err(), "no key 'shape'");
        assert_eq!(ask("del colour").unwrap(), "ok");
        assert!(ask("del colour").is_err());
        assert!(ask("set lonely").unwrap_err().starts_with("usage"));
        assert!(
            ask("frobnicate")
                .unwrap_err()
                .starts_with("unknown request 'frobnicate'")
        );
        assert_eq!(ask("shutdown").unwrap(), "stopping");
        assert!(kv.stop);
        assert!(Kv::default().handle(&[0xff]).is_err());
    }
}
