//! Trains the seed template on MNIST and prints one JSON line per epoch.
//!
//! ```text
//! cargo run --release -p hanami-engine --example mnist -- <MNIST_DIR> --epochs 3 [--seed N] [--threads N] [--frozen-requests]
//! ```
//!
//! `<MNIST_DIR>` holds the four IDX files (`scripts/fetch_mnist.py` fetches them). Pixels go
//! in as raw values 0–255 and labels as one-hot vectors, as the server feeds an MNIST dataset.
//! Each epoch trains on the 60,000 training images, then requests the 10,000 test images and
//! scores the argmax of the output against the label. `--threads` defaults to 2 where the
//! machine has two cores or more (the calling thread plus one worker), else 1; results do not
//! depend on it. `--frozen-requests` adds `request_growth: false` to the template, so that the
//! test images do not grow the network.

use std::error::Error;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use hanami_engine::{Cluster, ClusterOptions, RowError, Rows, Template, argmax};

/// Images and labels of one MNIST split.
struct Split {
    pixels: HugeBytes,
    labels: Vec<u8>,
    image_size: usize,
}

impl Split {
    fn load(dir: &Path, images: &str, labels: &str) -> Result<Split, Box<dyn Error>> {
        let mut images = HugeBytes::read(&dir.join(images))?;
        let mut labels = std::fs::read(dir.join(labels))?;
        let be = |b: &[u8], at: usize| {
            u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
        };
        if images.len() < 16
            || be(&images, 0) != 0x0803
            || labels.len() < 8
            || be(&labels, 0) != 0x0801
        {
            return Err("not an MNIST IDX file".into());
        }
        let (count, rows, cols) = (be(&images, 4), be(&images, 8), be(&images, 12));
        if be(&labels, 4) != count
            || images.len() != 16 + count * rows * cols
            || labels.len() != 8 + count
        {
            return Err("IDX sizes do not match".into());
        }
        images.skip(16);
        labels.drain(..8);
        Ok(Split {
            pixels: images,
            labels,
            image_size: rows * cols,
        })
    }

    fn len(&self) -> usize {
        self.labels.len()
    }
}

impl Rows for Split {
    fn row_count(&self) -> usize {
        self.len()
    }

    fn read(&mut self, row: usize, name: &str, values: &mut [f32]) -> Result<(), RowError> {
        match name {
            "picture" => {
                let image = &self.pixels[row * self.image_size..(row + 1) * self.image_size];
                for (v, &p) in values.iter_mut().zip(image) {
                    *v = f32::from(p);
                }
            }
            "label" => {
                let label = usize::from(self.labels[row]);
                for (i, v) in values.iter_mut().enumerate() {
                    *v = if i == label { 1.0 } else { 0.0 };
                }
            }
            other => return Err(format!("unknown interface {other}").into()),
        }
        Ok(())
    }
}

/// The bytes of a file in memory that the kernel may back with 2 MiB pages (Linux
/// transparent huge pages, asked for with `madvise`). With 4 KiB pages, reading an image of
/// the 47 MB of training images missed the TLB almost every time (the training step between
/// two images evicts the entry), and in a virtual machine such a miss costs a two-level page
/// walk through tables that are no longer cached: 0.55-0.85 µs per image, measured on one
/// thread, about 3 % of a training step and 6 % of a request.
struct HugeBytes {
    /// Room for the file and the alignment.
    buffer: Vec<u8>,
    /// Where the bytes start in `buffer` (the first 2 MiB boundary in it, unless the allocator
    /// gave no way to align; then what `skip` skipped).
    start: usize,
}

impl HugeBytes {
    /// The size of a huge page.
    const PAGE: usize = 2 << 20;

    /// Reads the file at `path`.
    fn read(path: &Path) -> std::io::Result<HugeBytes> {
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let len = usize::try_from(file.metadata()?.len()).map_err(std::io::Error::other)?;
        // For a buffer this large glibc maps fresh zero pages, none touched yet, so the advice
        // comes before the first page is mapped (reused heap memory would be zeroed, and so
        // mapped in 4 KiB pages, first: only slower).
        let mut buffer = vec![0u8; len + Self::PAGE];
        let start = buffer.as_ptr().align_offset(Self::PAGE).min(Self::PAGE);
        Self::advise_huge(&mut buffer[start..]);
        file.read_exact(&mut buffer[start..start + len])?;
        buffer.truncate(start + len);
        Ok(HugeBytes { buffer, start })
    }

    /// Asks for huge pages where this system has them; nothing happens elsewhere.
    fn advise_huge(bytes: &mut [u8]) {
        #[cfg(target_os = "linux")]
        // SAFETY: the range is memory of `bytes` (the kernel rounds its end up to a page), and
        // the advice changes how memory is backed, never what it holds.
        unsafe {
            libc::madvise(bytes.as_mut_ptr().cast(), bytes.len(), libc::MADV_HUGEPAGE);
        }
        #[cfg(not(target_os = "linux"))]
        let _ = bytes;
    }

    /// Drops the first `count` bytes.
    fn skip(&mut self, count: usize) {
        self.start += count.min(self.len());
    }
}

impl std::ops::Deref for HugeBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buffer[self.start..]
    }
}

/// Peak resident memory of this process in MiB (Linux `VmHWM`).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (mut epochs, mut seed, mut threads) = (1usize, 1u64, cores.min(2));
    let mut vector_walks = true;
    let mut frozen_requests = false;
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--epochs" => epochs = value()?.parse()?,
            "--seed" => seed = value()?.parse()?,
            "--threads" => threads = value()?.parse()?,
            "--portable" => vector_walks = false,
            "--frozen-requests" => frozen_requests = true,
            _ if dir.is_none() => dir = Some(arg),
            _ => return Err(format!("unexpected argument {arg}").into()),
        }
    }
    let dir = dir.ok_or(
        "usage: mnist <MNIST_DIR> [--epochs N] [--seed N] [--threads N] [--portable] \
         [--frozen-requests]",
    )?;
    let dir = Path::new(&dir);
    let mut train = Split::load(dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte")?;
    let mut test = Split::load(dir, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?;

    let mut text = hanami_engine::template::DOCUMENTATION_TEMPLATE.to_owned();
    if frozen_requests {
        text = text.replace("hexagons:", "    request_growth: false\nhexagons:");
    }
    let template = Template::parse(&text)?;
    assert_eq!(template.settings().request_growth, !frozen_requests);
    let options = ClusterOptions {
        seed,
        threads,
        vector_walks,
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::new(&template, options)?;
    let cancel = AtomicBool::new(false);
    for epoch in 1..=epochs {
        let start = Instant::now();
        cluster.train_batch(&mut train, &cancel, &mut |_| {})?;
        let train_s = start.elapsed().as_secs_f64();

        let labels = test.labels.clone();
        let mut correct = 0usize;
        let start = Instant::now();
        cluster.request_batch(&mut test, &cancel, &mut |_| {}, &mut |row, _, values| {
            if argmax(values) == usize::from(labels[row]) {
                correct += 1;
            }
        })?;
        let request_s = start.elapsed().as_secs_f64();
        let accuracy = correct as f64 * 100.0 / test.len() as f64;
        println!(
            "{{\"epoch\":{epoch},\"train_s\":{train_s:.4},\"request_s\":{request_s:.4},\"accuracy\":{accuracy:.2},\"synapses\":{},\"peak_rss_mb\":{:.1}}}",
            cluster.size().synapses,
            peak_rss_mb()
        );
    }
    Ok(())
}
