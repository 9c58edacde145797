//! Downloading data sets (MNIST, FashionMNIST, CIFAR-10) from their
//! public mirrors, with MD5 verification, and unpacking `.tar.gz` archives.
//!
//! HTTP goes through the `curl` command-line tool rather than a Rust HTTP
//! client: it is installed almost everywhere, brings TLS, proxies and
//! retries for free, and keeps kiln from compiling a TLS stack (ring or
//! aws-lc) for a function most runs never call. When `curl` is missing the
//! error says so, along with where to put the files by hand.

use super::DataError;
use super::mnist::MNIST_FILES;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Mirrors tried in order, as torchvision does.
pub const MNIST_MIRRORS: [&str; 2] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
];

/// `(file, MD5)` of the gzipped MNIST files the mirrors serve.
pub const MNIST_MD5: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "d53e105ee54ea40749a09fcbcd1e9432",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "9fb629c4189551a2d022fa330f9573f3",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "ec29112dd5afa0611ce80d1b7f02629c",
    ),
];

/// Downloads the four MNIST files into `root` (created if needed) unless
/// they are already there (raw or `.gz`), verifying each download's MD5.
///
/// Offline, the error lists every URL tried and why it failed, the
/// directory to put the files in, and their names.
pub fn download_mnist(root: impl AsRef<Path>) -> Result<(), DataError> {
    download_idx_files(root.as_ref(), &MNIST_MD5, &MNIST_MIRRORS)
}

/// Downloads the gzipped `(file, md5)`s of an MNIST-layout data set whose
/// raw file ([`MNIST_FILES`], in the same order) `root` lacks.
pub(crate) fn download_idx_files(
    root: &Path,
    gz_md5: &[(&str, &str); 4],
    mirrors: &[&str],
) -> Result<(), DataError> {
    let missing: Vec<(&str, &str)> = gz_md5
        .iter()
        .zip(MNIST_FILES)
        .filter(|(_, raw)| !root.join(raw).is_file())
        .map(|(&(gz, md5), _)| (gz, md5))
        .collect();
    download_files(root, &missing, mirrors)
}

/// Downloads each `(file, md5)` of `files` that `root` lacks from the first
/// of `mirrors` (base URLs ending in `/`) that serves it with the right
/// checksum. Files are written to a temporary name and renamed once
/// verified, so a failed download never leaves a partial file.
pub fn download_files(
    root: &Path,
    files: &[(&str, &str)],
    mirrors: &[&str],
) -> Result<(), DataError> {
    std::fs::create_dir_all(root).map_err(|e| DataError::io(root, e))?;
    let mut attempts = Vec::new();
    let mut failed = Vec::new();
    // Mirrors whose host could not be reached are not asked again for the
    // next files: offline, the error then comes after one try per mirror.
    let mut unreachable: Vec<&str> = Vec::new();
    for &(name, md5) in files {
        let target = root.join(name);
        if target.is_file() {
            continue;
        }
        let tmp = root.join(format!(".{name}.part-{}", std::process::id()));
        let mut done = false;
        for mirror in mirrors {
            let url = format!("{mirror}{name}");
            if unreachable.contains(mirror) {
                attempts.push((url, "not tried: the host was unreachable".to_string()));
                continue;
            }
            let fetched = fetch(&url, &tmp).map_err(|e| {
                if e.unreachable {
                    unreachable.push(mirror);
                }
                e.message
            });
            match fetched.and_then(|()| verify(&tmp, md5)) {
                Ok(()) => {
                    std::fs::rename(&tmp, &target).map_err(|e| DataError::io(&target, e))?;
                    done = true;
                    break;
                }
                Err(why) => {
                    let _ = std::fs::remove_file(&tmp);
                    attempts.push((url, why));
                }
            }
        }
        if !done {
            failed.push(name.to_string());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(DataError::Download {
            dir: root.to_path_buf(),
            files: failed,
            attempts,
        })
    }
}

/// Downloads the archive `(name, md5)` into `root` from the first of
/// `mirrors` that serves it with that checksum (unless it is already
/// there) and unpacks it under `root`, like torchvision's
/// `download_and_extract_archive`.
pub fn download_and_extract_archive(
    root: &Path,
    archive: (&str, &str),
    mirrors: &[&str],
) -> Result<(), DataError> {
    download_files(root, &[archive], mirrors)?;
    extract_tar_gz(&root.join(archive.0), root)
}

/// Extracts the regular files of the gzipped tar archive `archive` under
/// `dest`, keeping their relative paths (as torchvision's
/// `extract_archive`). Entries with absolute paths or `..` components are
/// refused, so an archive cannot write outside `dest`.
pub fn extract_tar_gz(archive: &Path, dest: &Path) -> Result<(), DataError> {
    use std::io::Read;
    let bad = |reason: String| DataError::InvalidArchive {
        path: archive.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(archive).map_err(|e| DataError::io(archive, e))?;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::io::BufReader::new(file))
        .read_to_end(&mut bytes)
        .map_err(|e| bad(format!("not a valid gzip stream: {e}")))?;
    let mut pos = 0;
    while pos + 512 <= bytes.len() {
        let header = &bytes[pos..pos + 512];
        if header.iter().all(|&b| b == 0) {
            return Ok(());
        }
        let field = |a: usize, b: usize| {
            let f = &header[a..b];
            let end = f.iter().position(|&c| c == 0).unwrap_or(f.len());
            String::from_utf8_lossy(&f[..end]).into_owned()
        };
        let size_text = field(124, 136);
        let size = usize::from_str_radix(size_text.trim(), 8)
            .map_err(|_| bad(format!("bad size field {size_text:?} at offset {pos}")))?;
        let (prefix, name) = (field(345, 500), field(0, 100));
        let name = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let kind = header[156];
        let data_start = pos + 512;
        let data_end = data_start + size;
        if data_end > bytes.len() {
            return Err(bad(format!("entry {name:?} is truncated")));
        }
        let rel = Path::new(&name);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(bad(format!(
                "entry {name:?} points outside the target folder"
            )));
        }
        let target = dest.join(rel);
        match kind {
            b'0' | 0 => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
                }
                std::fs::write(&target, &bytes[data_start..data_end])
                    .map_err(|e| DataError::io(&target, e))?;
            }
            b'5' => std::fs::create_dir_all(&target).map_err(|e| DataError::io(&target, e))?,
            // Links, PAX and GNU headers carry nothing a data set needs.
            _ => {}
        }
        pos = data_start + size.div_ceil(512) * 512;
    }
    Ok(())
}

/// Why a fetch failed.
struct FetchError {
    /// A one-line reason.
    message: String,
    /// The host could not be resolved or connected to (offline).
    unreachable: bool,
}

impl From<String> for FetchError {
    fn from(message: String) -> FetchError {
        FetchError {
            message,
            unreachable: false,
        }
    }
}

/// Fetches `url` into `dest` with curl.
fn fetch(url: &str, dest: &PathBuf) -> Result<(), FetchError> {
    let out = Command::new("curl")
        .args([
            "--fail",
            "--silent",
            "--show-error",
            "--location",
            "--retry",
            "2",
            "--connect-timeout",
            "15",
            "--max-time",
            "600",
            "--output",
        ])
        .arg(dest)
        .arg(url)
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                "the `curl` program is not installed (kiln downloads through it)".to_string()
            } else {
                format!("cannot run curl: {e}")
            }
        })?;
    if out.status.success() {
        Ok(())
    } else {
        // With retries curl repeats its message; the last line says it.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let msg = stderr.lines().rev().find(|l| !l.trim().is_empty());
        Err(FetchError {
            message: msg.map_or_else(
                || format!("curl failed ({})", out.status),
                |m| m.trim().to_string(),
            ),
            // curl's exit codes 5, 6: proxy/host not resolved; 7: no
            // connection; 28: timed out.
            unreachable: matches!(out.status.code(), Some(5 | 6 | 7 | 28)),
        })
    }
}

fn verify(path: &Path, expected: &str) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read the download: {e}"))?;
    let actual = md5_hex(&bytes);
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(DataError::Checksum {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            actual,
        }
        .to_string())
    }
}

/// The MD5 digest of `data` (RFC 1321) as 32 lowercase hex digits. MD5 is
/// broken for security; it is used only because the MNIST mirrors publish
/// MD5 sums, to catch corrupted downloads.
///
/// ```
/// assert_eq!(kiln_runtime::data::md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
/// ```
pub fn md5_hex(data: &[u8]) -> String {
    md5(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The 16-byte MD5 digest of `data`.
pub fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    // K[i] = floor(|sin(i + 1)| * 2^32).
    let k: [u32; 64] =
        std::array::from_fn(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32);
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_le_bytes());

    for block in msg.chunks_exact(64) {
        let m: [u32; 16] = std::array::from_fn(|i| {
            u32::from_le_bytes(block[4 * i..4 * i + 4].try_into().expect("4 bytes"))
        });
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d]) {
            *s = s.wrapping_add(v);
        }
    }
    let mut out = [0u8; 16];
    for (i, s) in state.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&s.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_rfc1321_vectors() {
        let cases = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                "d174ab98d277d9f5a5611c2c9f419d9f",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(md5_hex(input.as_bytes()), want, "{input:?}");
        }
        // Lengths around the 56-byte padding boundary.
        assert_eq!(md5_hex(&[0u8; 55]), "c9ea3314b91c9fd4e38f9432064fd1f2");
        assert_eq!(md5_hex(&[0u8; 56]), "e3c4dd21a9171fd39d208efa09bf7883");
        assert_eq!(md5_hex(&[0u8; 64]), "3b5d3c7d207e37dceeedd301e35e2e58");
    }
}
