//! The zstd decoder: the stream's independent frames ([`super::zstd_frames`]) decoded on a
//! pool of threads and handed out in order, so decoding uses every core while the caller
//! reads one sequential stream.
//!
//! The compressed input is read on the caller's thread (so a hashing reader around it sees
//! every byte in order, and it need not be `Send`); only whole frames cross to the workers.
//! Frames in flight are bounded by count (`threads + 1`) and by bytes (compressed plus
//! decoded), so a 1 GB Pi 4 never holds more than [`super::decode::memory_limits`] allows.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::zstd_frames::{Frame, FrameSplitter};

struct Job {
    frame: Frame,
    reply: SyncSender<io::Result<Vec<u8>>>,
}

enum Pending {
    /// A frame being decoded, and the bytes it holds in memory.
    Frame(Receiver<io::Result<Vec<u8>>>, u64),
    /// The input failed here: reported once the frames before it are read.
    Failed(io::Error),
}

/// A `Read` of the decompressed bytes of a zstd stream made of independent frames.
pub struct ZstdReader<R: Read> {
    splitter: FrameSplitter<R>,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    pending: VecDeque<Pending>,
    /// Bytes of the frames in `pending`.
    in_flight: u64,
    max_frames: usize,
    max_bytes: u64,
    current: Vec<u8>,
    pos: usize,
    /// The input has ended (or failed): no more frames.
    done: bool,
}

impl<R: Read> std::fmt::Debug for ZstdReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZstdReader")
            .field("workers", &self.workers.len())
            .field("pending", &self.pending.len())
            .field("offset", &self.splitter.offset())
            .finish_non_exhaustive()
    }
}

impl<R: Read> ZstdReader<R> {
    /// Decodes `input` on `threads` threads, keeping at most `max_bytes` of frames in flight
    /// (always at least one frame).
    pub fn new(input: R, threads: u32, max_bytes: u64) -> io::Result<Self> {
        let threads = threads.max(1) as usize;
        let (tx, rx) = mpsc::sync_channel::<Job>(threads);
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let handle = std::thread::Builder::new()
                .name(format!("zstd-{i}"))
                .spawn(move || work(&rx))?;
            workers.push(handle);
        }
        Ok(ZstdReader {
            splitter: FrameSplitter::new(input),
            jobs: Some(tx),
            workers,
            pending: VecDeque::new(),
            in_flight: 0,
            max_frames: threads + 1,
            max_bytes,
            current: Vec::new(),
            pos: 0,
            done: false,
        })
    }

    /// Reads and submits frames until the limits are reached or the input ends.
    fn submit(&mut self) {
        while !self.done
            && (self.pending.is_empty()
                || (self.pending.len() < self.max_frames && self.in_flight < self.max_bytes))
        {
            match self.splitter.next_frame() {
                Ok(None) => self.done = true,
                Ok(Some(frame)) => {
                    let bytes = frame.bytes.len() as u64 + frame.content_size;
                    let (reply, result) = mpsc::sync_channel(1);
                    let sent = self
                        .jobs
                        .as_ref()
                        .map(|jobs| jobs.send(Job { frame, reply }).is_ok());
                    if sent != Some(true) {
                        self.fail(io::Error::other("the zstd decoder threads have stopped"));
                        return;
                    }
                    self.in_flight += bytes;
                    self.pending.push_back(Pending::Frame(result, bytes));
                }
                Err(e) => self.fail(e),
            }
        }
    }

    fn fail(&mut self, e: io::Error) {
        self.pending.push_back(Pending::Failed(e));
        self.done = true;
    }
}

fn work(jobs: &Mutex<Receiver<Job>>) {
    let mut decompressor = zstd::bulk::Decompressor::new();
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(Job { frame, reply }) = job else {
            return;
        };
        let result = match &mut decompressor {
            Ok(d) => decode(d, &frame),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        };
        // The reader may have been dropped: nobody wants the result then.
        let _ = reply.send(result);
    }
}

fn decode(d: &mut zstd::bulk::Decompressor<'_>, frame: &Frame) -> io::Result<Vec<u8>> {
    let size = usize::try_from(frame.content_size).map_err(io::Error::other)?;
    let out = d
        .decompress(&frame.bytes, size)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}")))?;
    if out.len() != size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "zstd: a frame decoded to {} bytes, its header says {size}",
                out.len()
            ),
        ));
    }
    Ok(out)
}

impl<R: Read> Read for ZstdReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.current.len() {
                let n = buf.len().min(self.current.len() - self.pos);
                buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if buf.is_empty() {
                return Ok(0);
            }
            self.submit();
            match self.pending.pop_front() {
                None => return Ok(0),
                Some(Pending::Failed(e)) => return Err(e),
                Some(Pending::Frame(result, bytes)) => {
                    self.in_flight -= bytes;
                    let decoded = result
                        .recv()
                        .map_err(|_| io::Error::other("a zstd decoder thread died"))??;
                    self.current = decoded;
                    self.pos = 0;
                    // Refill while the caller consumes this frame.
                    self.submit();
                }
            }
        }
    }
}

impl<R: Read> Drop for ZstdReader<R> {
    fn drop(&mut self) {
        self.pending.clear();
        self.jobs = None;
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::compress_zstd_frames;

    fn sample(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_u32;
        (0..len)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                if i % 4096 < 1500 {
                    0
                } else {
                    state.to_le_bytes()[0] & 0x3f
                }
            })
            .collect()
    }

    fn decode_all(stream: &[u8], threads: u32, max_bytes: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        ZstdReader::new(stream, threads, max_bytes)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn every_thread_count_and_budget_gives_the_bytes_back_in_order() {
        let data = sample(5 * 1024 * 1024 + 4321);
        let stream = compress_zstd_frames(&data, 256 * 1024);
        for threads in [1, 2, 3, 8] {
            for budget in [0, 300_000, 1 << 30] {
                let out = decode_all(&stream, threads, budget).expect("decode");
                assert!(
                    out == data,
                    "threads {threads}, budget {budget}: bytes differ"
                );
            }
        }
    }

    #[test]
    fn odd_read_sizes_see_the_same_stream() {
        let data = sample(1024 * 1024);
        let stream = compress_zstd_frames(&data, 100_000);
        let mut r = ZstdReader::new(&stream[..], 2, 1 << 30).expect("reader");
        let mut out = Vec::new();
        let mut buf = [0u8; 4099];
        let mut step = 1;
        loop {
            let n = r.read(&mut buf[..step]).expect("read");
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            step = (step * 31 + 17) % 4099 + 1;
        }
        assert!(out == data);
    }

    #[test]
    fn a_truncated_stream_fails_after_the_whole_frames_before_it() {
        let data = sample(2 * 1024 * 1024);
        let stream = compress_zstd_frames(&data, 512 * 1024);
        let cut = stream.len() - 10;
        let mut out = Vec::new();
        let err = ZstdReader::new(&stream[..cut], 2, 1 << 30)
            .expect("reader")
            .read_to_end(&mut out)
            .expect_err("truncated");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        assert_eq!(
            out.len(),
            3 * 512 * 1024,
            "the three whole frames came first"
        );
        assert!(out[..] == data[..out.len()]);
    }

    #[test]
    fn a_flipped_byte_is_invalid_data() {
        let data = sample(1024 * 1024);
        let mut stream = compress_zstd_frames(&data, 256 * 1024);
        let mid = stream.len() / 2;
        stream[mid] ^= 0x10;
        let err = decode_all(&stream, 2, 1 << 30).expect_err("corrupt");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }

    #[test]
    fn an_xz_file_is_not_taken_for_zstd() {
        let xz = crate::testkit::compress_blocks(&sample(100_000));
        let err = decode_all(&xz, 2, 1 << 30).expect_err("xz");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert!(err.to_string().contains("not a zstd frame"), "{err}");
    }

    /// Counts the compressed bytes the reader has taken.
    struct Counting<'a>(&'a [u8], std::rc::Rc<std::cell::Cell<usize>>);

    impl Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1.set(self.1.get() + n);
            Ok(n)
        }
    }

    #[test]
    fn frames_in_flight_stay_within_the_count_and_the_byte_budget() {
        // Incompressible frames of 64 KiB: each is about 64 KiB on the wire too.
        let mut state = 0x1234_5679_u32;
        let data: Vec<u8> = (0..64 * 65536)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state.to_le_bytes()[2]
            })
            .collect();
        let stream = compress_zstd_frames(&data, 65536);
        let frame = stream.len() / 64;
        for (threads, budget, most_frames) in [(2, 1 << 30, 3 + 1), (4, 1 << 30, 5 + 1), (4, 0, 2)]
        {
            let taken = std::rc::Rc::new(std::cell::Cell::new(0));
            let input = Counting(&stream, std::rc::Rc::clone(&taken));
            let mut r = ZstdReader::new(input, threads, budget).expect("reader");
            let mut first = [0u8; 1];
            r.read_exact(&mut first).expect("read");
            assert!(
                taken.get() <= most_frames * frame + 64,
                "threads {threads}, budget {budget}: {} bytes taken, frames of {frame}",
                taken.get()
            );
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).expect("rest");
            assert_eq!(rest.len() + 1, data.len());
        }
    }

    #[test]
    fn dropping_a_reader_midway_stops_its_threads() {
        let data = sample(4 * 1024 * 1024);
        let stream = compress_zstd_frames(&data, 256 * 1024);
        let mut r = ZstdReader::new(&stream[..], 4, 1 << 30).expect("reader");
        let mut buf = vec![0u8; 1000];
        r.read_exact(&mut buf).expect("read");
        assert!(buf[..] == data[..1000]);
        drop(r); // joins the workers: a hang here fails the test by timeout
    }
}
