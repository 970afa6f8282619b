//! The thread-pool backend: reader threads each open and read whole files
//! into their own two buffers, and the calling thread runs the callback.
//!
//! A worker sends a filled buffer to the caller and reads on into its
//! other one; the caller hands each buffer back after the callback. So at
//! most `2 × workers` buffers exist and `workers` reads are in flight.
//! Everything is ordinary owned memory moved through channels: a panic in
//! the callback drops the caller's channel ends, every worker's next send
//! or receive fails, and the scope joins them before the panic goes on.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};

use super::{Batch, Event, Open};
use crate::Result;
use crate::copy::os;

/// Buffers per worker: one being read into while the other is with the
/// callback.
const PER_WORKER: usize = 2;

fn workers(batch: &Batch, files: usize) -> usize {
    batch.depth.clamp(1, 256).min(files.max(1))
}

/// The buffers the backend allocates for `files` files.
pub(crate) fn buffers(batch: &Batch, files: usize) -> usize {
    workers(batch, files) * PER_WORKER
}

/// What a worker tells the caller.
enum Msg {
    Data {
        worker: usize,
        file: usize,
        offset: u64,
        buf: Box<[u8]>,
        len: usize,
    },
    Event(Event<'static>),
}

/// Reads `paths` with a pool of threads; returns the most reads that were
/// in flight at once.
pub(crate) fn read<P: AsRef<Path> + Sync>(
    batch: &Batch,
    paths: &[P],
    on: &mut dyn FnMut(Event<'_>),
) -> Result<usize> {
    let workers = workers(batch, paths.len());
    let next = AtomicUsize::new(0);
    let in_flight = AtomicUsize::new(0);
    let peak = AtomicUsize::new(0);
    std::thread::scope(|s| -> Result<()> {
        let (to_caller, from_workers) = sync_channel::<Msg>(workers * PER_WORKER);
        let mut returns = Vec::with_capacity(workers);
        for worker in 0..workers {
            let (give_back, take_back) = channel::<Box<[u8]>>();
            returns.push(give_back);
            let tx = to_caller.clone();
            let (next, in_flight, peak) = (&next, &in_flight, &peak);
            let spawned = std::thread::Builder::new()
                .name(format!("memio-batch-{worker}"))
                .spawn_scoped(s, move || {
                    let mut reader = Reader {
                        worker,
                        tx,
                        take_back,
                        spare: (0..PER_WORKER)
                            .map(|_| vec![0u8; batch.buffer_size].into_boxed_slice())
                            .collect(),
                        in_flight,
                        peak,
                    };
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = paths.get(i) else { break };
                        if reader.file(i, path.as_ref(), batch).is_err() {
                            break;
                        }
                    }
                });
            spawned.map_err(|e| os("start a reader thread for", "the batch", e))?;
        }
        drop(to_caller);
        for msg in from_workers {
            match msg {
                Msg::Data {
                    worker,
                    file,
                    offset,
                    buf,
                    len,
                } => {
                    on(Event::Data {
                        file,
                        offset,
                        bytes: &buf[..len],
                    });
                    // A worker that already left needs no buffer back.
                    let _ = returns[worker].send(buf);
                }
                Msg::Event(event) => on(event),
            }
        }
        Ok(())
    })?;
    Ok(peak.load(Ordering::Relaxed))
}

/// One worker's side.
struct Reader<'a> {
    worker: usize,
    tx: SyncSender<Msg>,
    take_back: Receiver<Box<[u8]>>,
    spare: Vec<Box<[u8]>>,
    in_flight: &'a AtomicUsize,
    peak: &'a AtomicUsize,
}

/// The caller has gone (its callback panicked): stop.
struct Gone;

impl Reader<'_> {
    /// Reads file `index` to its end, sending its chunks and its end.
    fn file(&mut self, index: usize, path: &Path, batch: &Batch) -> Result<(), Gone> {
        let (file, size) = match super::open(path, batch.max_file) {
            Ok(opened) => opened,
            Err(error) => return self.send(Msg::Event(Event::Failed { file: index, error })),
        };
        let mut open = Open::new(index, file, path, size, batch);
        loop {
            let mut buf = match self.spare.pop() {
                Some(buf) => buf,
                None => self.take_back.recv().map_err(|_| Gone)?,
            };
            let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            self.peak.fetch_max(now, Ordering::Relaxed);
            let want = open.want(buf.len());
            let read =
                std::os::unix::fs::FileExt::read_at(&open.file, &mut buf[..want], open.offset);
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            match read {
                Ok(n) => {
                    let offset = open.offset;
                    let end = open.advance(n, buf.len());
                    if n > 0 {
                        self.send(Msg::Data {
                            worker: self.worker,
                            file: index,
                            offset,
                            buf,
                            len: n,
                        })?;
                    } else {
                        self.spare.push(buf);
                    }
                    if end {
                        return self.send(Msg::Event(open.done()));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.spare.push(buf),
                Err(e) => {
                    self.spare.push(buf);
                    return self.send(Msg::Event(open.failed(e)));
                }
            }
        }
    }

    fn send(&self, msg: Msg) -> Result<(), Gone> {
        self.tx.send(msg).map_err(|_| Gone)
    }
}
