//! Bank transfers between processes on one store: tellers move money
//! between accounts in transactions while an auditor checks, in snapshot
//! after snapshot, that the total never changes.
//!
//! ```text
//! cargo run -p memio-kv --example bank [STORE]
//! ```
//!
//! The example starts itself again as 3 teller processes and 1 auditor.

use std::ops::ControlFlow;
use std::process::Command;

use memio_kv::{Batch, Error, Options, Store};

const ACCOUNTS: u64 = 10;
const START: u64 = 100;
const TRANSFERS: u64 = 200;

fn balance(v: &[u8]) -> u64 {
    u64::from_le_bytes(v.try_into().unwrap_or_default())
}

fn teller(path: &str, seed: u64) -> Result<(), Error> {
    let store = Store::open(path, Options::new())?;
    let mut x = seed;
    for _ in 0..TRANSFERS {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let (from, to, amount) = ((x >> 11) % ACCOUNTS, (x >> 29) % ACCOUNTS, (x >> 47) % 20);
        store.transaction(|tx| {
            let (a, b) = (format!("acct{from}"), format!("acct{to}"));
            let have = tx.get(a.as_bytes())?.map_or(0, |v| balance(&v));
            if from != to && have >= amount {
                let other = tx.get(b.as_bytes())?.map_or(0, |v| balance(&v));
                tx.put(a.as_bytes(), &(have - amount).to_le_bytes());
                tx.put(b.as_bytes(), &(other + amount).to_le_bytes());
            }
            Ok::<_, Error>(())
        })?;
    }
    Ok(())
}

fn audit(store: &Store) -> Result<u64, Error> {
    let mut total = 0;
    store
        .snapshot()?
        .scan(&b"acct"[..]..&b"acct~"[..], |_, v| {
            total += balance(v);
            ControlFlow::Continue(())
        })?;
    Ok(total)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, role, path, seed] = &args[..] {
        if role == "teller" {
            return Ok(teller(path, seed.parse()?)?);
        }
    }
    let path = args.get(1).cloned().unwrap_or_else(|| {
        std::env::temp_dir()
            .join(format!("memio-bank-{}.kv", std::process::id()))
            .display()
            .to_string()
    });
    let store = Store::open(&path, Options::new())?;
    let mut open = Batch::new();
    for i in 0..ACCOUNTS {
        open.put(format!("acct{i}"), START.to_le_bytes());
    }
    store.write(&open)?;
    let exe = std::env::current_exe()?;
    let mut tellers = (0..3u64)
        .map(|i| {
            Command::new(&exe)
                .args(["teller", &path, &(i * 7 + 1).to_string()])
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut audits = 0;
    while tellers
        .iter_mut()
        .any(|t| t.try_wait().ok().flatten().is_none())
    {
        let total = audit(&store)?;
        assert_eq!(
            total,
            ACCOUNTS * START,
            "a snapshot saw money appear or vanish"
        );
        audits += 1;
    }
    for mut t in tellers {
        assert!(t.wait()?.success(), "a teller failed");
    }
    println!(
        "{} transfers by 3 processes, {audits} audits: total {} in every snapshot",
        3 * TRANSFERS,
        audit(&store)?
    );
    if args.get(1).is_none() {
        std::fs::remove_file(&path)?;
    }
    Ok(())
}
