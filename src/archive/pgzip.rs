//! Parallel gzip: one standard gzip member whose deflate stream is made of 1 MiB blocks
//! compressed on every core.
//!
//! Compression is nearly the whole cost of a snapshot (gzip -6 runs at about 21 MiB/s on one core,
//! a consistent SQLite copy at about 480 MiB/s), so it is spread over all cores. Each block is
//! primed with the last 32 KiB of the block before it and ends on a byte boundary with a sync
//! flush, so the output is one ordinary gzip stream that any gunzip reads, about as small as a
//! single-threaded one. Memory stays flat: at most two blocks per worker are in flight.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, FlushCompress, Status};

const BLOCK_SIZE: usize = 1 << 20;
/// More workers than this gain little and would cost memory (each holds about 2 MiB).
const MAX_THREADS: usize = 8;
const WINDOW: usize = 32 * 1024;
/// gzip header: magic, deflate, no flags, no mtime, no extra flags, OS = Unix.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

struct Job {
    index: u64,
    data: Vec<u8>,
    dictionary: Vec<u8>,
    last: bool,
}

struct Block {
    compressed: Vec<u8>,
    crc: crc32fast::Hasher,
}

type BlockResult = (u64, io::Result<Block>);

/// A `Write` that gzips everything written to it onto `inner`, using `threads` workers.
pub struct ParallelGzEncoder<W: Write> {
    inner: Option<W>,
    input: Vec<u8>,
    dictionary: Vec<u8>,
    dispatched: u64,
    written: u64,
    ready: BTreeMap<u64, Block>,
    jobs: Option<SyncSender<Job>>,
    results: Receiver<BlockResult>,
    workers: Vec<JoinHandle<()>>,
    max_in_flight: u64,
    crc: crc32fast::Hasher,
    total_in: u64,
}

impl<W: Write> ParallelGzEncoder<W> {
    /// Starts an encoder; `threads` of 0 means one per available core (at most 8).
    pub fn new(mut inner: W, level: Compression, threads: usize) -> io::Result<Self> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        }
        .min(MAX_THREADS);
        inner.write_all(&HEADER)?;
        let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (result_tx, results) = mpsc::channel::<BlockResult>();
        let workers = (0..threads)
            .map(|_| {
                let jobs = Arc::clone(&job_rx);
                let results = result_tx.clone();
                std::thread::spawn(move || worker(&jobs, &results, level))
            })
            .collect();
        Ok(ParallelGzEncoder {
            inner: Some(inner),
            input: Vec::with_capacity(BLOCK_SIZE),
            dictionary: Vec::new(),
            dispatched: 0,
            written: 0,
            ready: BTreeMap::new(),
            jobs: Some(job_tx),
            results,
            workers,
            // Enough to keep every worker busy while finished blocks wait for their turn.
            max_in_flight: threads as u64 + 2,
            crc: crc32fast::Hasher::new(),
            total_in: 0,
        })
    }

    /// Compresses what is left, writes the gzip trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        while self.written < self.dispatched {
            self.receive_one()?;
        }
        self.stop_workers();
        let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
        let mut inner = self.inner.take().expect("finish runs once");
        inner.write_all(&crc.to_le_bytes())?;
        // ISIZE is the input length modulo 2^32, by the gzip format's definition.
        inner.write_all(&(self.total_in as u32).to_le_bytes())?;
        inner.flush()?;
        Ok(inner)
    }

    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.input, Vec::with_capacity(BLOCK_SIZE));
        let next_dictionary = data[data.len().saturating_sub(WINDOW)..].to_vec();
        let dictionary = std::mem::replace(&mut self.dictionary, next_dictionary);
        let job = Job {
            index: self.dispatched,
            data,
            dictionary,
            last,
        };
        self.jobs
            .as_ref()
            .expect("encoder not finished")
            .send(job)
            .map_err(|_| io::Error::other("compression worker stopped"))?;
        self.dispatched += 1;
        while self.dispatched - self.written >= self.max_in_flight {
            self.receive_one()?;
        }
        Ok(())
    }

    fn receive_one(&mut self) -> io::Result<()> {
        let (index, block) = self
            .results
            .recv()
            .map_err(|_| io::Error::other("compression worker stopped"))?;
        self.ready.insert(index, block?);
        while let Some(block) = self.ready.remove(&self.written) {
            self.inner
                .as_mut()
                .expect("not finished")
                .write_all(&block.compressed)?;
            self.crc.combine(&block.crc);
            self.written += 1;
        }
        Ok(())
    }

    fn stop_workers(&mut self) {
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl<W: Write> Write for ParallelGzEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BLOCK_SIZE - self.input.len());
        self.input.extend_from_slice(&buf[..n]);
        self.total_in += n as u64;
        if self.input.len() == BLOCK_SIZE {
            self.dispatch(false)?;
        }
        Ok(n)
    }

    /// Flushes what was already compressed; a partial block waits for more input or `finish`.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.as_mut().map_or(Ok(()), Write::flush)
    }
}

impl<W: Write> Drop for ParallelGzEncoder<W> {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

fn worker(jobs: &Mutex<Receiver<Job>>, results: &mpsc::Sender<BlockResult>, level: Compression) {
    // One deflate state per worker, reset for each block: building a fresh one allocates and
    // faults in its tables (hundreds of KiB) a thousand times per GiB.
    let mut deflate = Compress::new(level, false);
    loop {
        let job = match jobs.lock() {
            Ok(rx) => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
            Err(_) => return,
        };
        // A panic must reach the writer as an error: it would otherwise wait for this block forever.
        let block = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            compress_block(&mut deflate, &job)
        }))
        .unwrap_or_else(|_| Err(io::Error::other("compression worker panicked")));
        if results.send((job.index, block)).is_err() {
            return;
        }
    }
}

fn compress_block(deflate: &mut Compress, job: &Job) -> io::Result<Block> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&job.data);
    deflate.reset();
    if !job.dictionary.is_empty() {
        deflate
            .set_dictionary(&job.dictionary)
            .map_err(io::Error::other)?;
    }
    let flush = if job.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(job.data.len() / 2 + 4096);
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = deflate.total_in() as usize;
        let status = deflate
            .compress_vec(&job.data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = deflate.total_in() as usize == job.data.len();
        // A sync flush is complete once all input is taken and deflate left output room unused.
        let done = match status {
            Status::StreamEnd => true,
            _ => !job.last && all_in && out.len() < out.capacity(),
        };
        if done {
            return Ok(Block {
                compressed: out,
                crc,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn roundtrip(data: &[u8], threads: usize) -> Vec<u8> {
        let mut enc = ParallelGzEncoder::new(Vec::new(), Compression::new(6), threads).unwrap();
        // Uneven writes cross block boundaries at odd places.
        for chunk in data.chunks(777_777) {
            enc.write_all(chunk).unwrap();
        }
        let gz = enc.finish().unwrap();
        let mut out = Vec::new();
        // A single-member decoder: the output must be one standard gzip member.
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn output_is_one_standard_gzip_member() {
        let mut data = Vec::new();
        let mut x: u64 = 1;
        while data.len() < 3 * BLOCK_SIZE + 12_345 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let word = ["alpha ", "beta ", "gamma ", "delta "][(x >> 62) as usize];
            data.extend_from_slice(word.as_bytes());
            data.push((x >> 33) as u8);
        }
        assert_eq!(roundtrip(&data, 2), data);
        assert_eq!(roundtrip(&data, 1), data);
    }

    #[test]
    fn empty_and_exact_block_inputs() {
        assert!(roundtrip(&[], 2).is_empty());
        let exact = vec![7u8; BLOCK_SIZE * 2];
        assert_eq!(roundtrip(&exact, 3), exact);
    }
}
