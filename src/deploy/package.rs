//! A local function's code directory as the zip archive Lambda takes: deterministic (entries
//! sorted, fixed timestamps, modes reduced to 0644/0755), so that unchanged code gives the same
//! `CodeSha256` and the plan sees no change. The one part of deploy, besides `remote`, that
//! does IO: it reads the code directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use sha2::Digest as _;

/// A function's code, zipped.
#[derive(Clone, PartialEq, Eq)]
pub struct Package {
    pub zip: Vec<u8>,
    /// Base64 of the archive's SHA-256: Lambda's `CodeSha256`.
    pub sha256: String,
}

impl std::fmt::Debug for Package {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Package({} bytes, {})", self.zip.len(), self.sha256)
    }
}

/// Why a code directory could not be packaged.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is over 4 GiB: too large for a zip archive, and for Lambda")]
    TooLarge { path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PackageError + '_ {
    move |source| PackageError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Every file under `dir` (symbolic links followed), by path relative to it with `/`.
fn files(dir: &Path) -> Result<Vec<(String, PathBuf)>, PackageError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(io(&d))? {
            let entry = entry.map_err(io(&d))?;
            let path = entry.path();
            let meta = std::fs::metadata(&path).map_err(io(&path))?;
            if meta.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((rel, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

/// Zips `dir`.
pub fn package(dir: &Path) -> Result<Package, PackageError> {
    let mut zip = Vec::new();
    let mut central = Vec::new();
    let mut count: u16 = 0;
    // 1980-01-01 00:00, the earliest time a zip entry can hold.
    let (time, date): (u16, u16) = (0, (1 << 5) | 1);
    for (name, path) in files(dir)? {
        let data = std::fs::read(&path).map_err(io(&path))?;
        let mut crc = flate2::Crc::new();
        crc.update(&data);
        let mut enc =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&data).map_err(io(&path))?;
        let compressed = enc.finish().map_err(io(&path))?;
        let too_large = || PackageError::TooLarge { path: path.clone() };
        let size = u32::try_from(data.len()).map_err(|_| too_large())?;
        let csize = u32::try_from(compressed.len()).map_err(|_| too_large())?;
        let offset = u32::try_from(zip.len()).map_err(|_| too_large())?;
        let name_len = u16::try_from(name.len()).map_err(|_| too_large())?;
        let mode: u32 = if executable(&path) {
            0o100755
        } else {
            0o100644
        };
        // Local file header: version 2.0, UTF-8 names, deflate.
        for part in [
            &0x0403_4b50u32.to_le_bytes()[..],
            &20u16.to_le_bytes(),
            &0x0800u16.to_le_bytes(),
            &8u16.to_le_bytes(),
            &time.to_le_bytes(),
            &date.to_le_bytes(),
            &crc.sum().to_le_bytes(),
            &csize.to_le_bytes(),
            &size.to_le_bytes(),
            &name_len.to_le_bytes(),
            &0u16.to_le_bytes(),
            name.as_bytes(),
            &compressed,
        ] {
            zip.extend_from_slice(part);
        }
        // Central directory entry: made on Unix (for the mode), at `offset`.
        for part in [
            &0x0201_4b50u32.to_le_bytes()[..],
            &0x0314u16.to_le_bytes(),
            &20u16.to_le_bytes(),
            &0x0800u16.to_le_bytes(),
            &8u16.to_le_bytes(),
            &time.to_le_bytes(),
            &date.to_le_bytes(),
            &crc.sum().to_le_bytes(),
            &csize.to_le_bytes(),
            &size.to_le_bytes(),
            &name_len.to_le_bytes(),
            &0u16.to_le_bytes(),
            &0u16.to_le_bytes(),
            &0u16.to_le_bytes(),
            &0u16.to_le_bytes(),
            &(mode << 16).to_le_bytes(),
            &offset.to_le_bytes(),
            name.as_bytes(),
        ] {
            central.extend_from_slice(part);
        }
        count = count.checked_add(1).ok_or_else(too_large)?;
    }
    let too_large = || PackageError::TooLarge {
        path: dir.to_owned(),
    };
    let cd_offset = u32::try_from(zip.len()).map_err(|_| too_large())?;
    let cd_size = u32::try_from(central.len()).map_err(|_| too_large())?;
    zip.extend_from_slice(&central);
    for part in [
        &0x0605_4b50u32.to_le_bytes()[..],
        &0u16.to_le_bytes(),
        &0u16.to_le_bytes(),
        &count.to_le_bytes(),
        &count.to_le_bytes(),
        &cd_size.to_le_bytes(),
        &cd_offset.to_le_bytes(),
        &0u16.to_le_bytes(),
    ] {
        zip.extend_from_slice(part);
    }
    let sha256 = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&zip));
    Ok(Package { zip, sha256 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_is_deterministic_and_unzips_with_its_modes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lib")).unwrap();
        std::fs::write(dir.path().join("app.py"), "def h(e, c):\n    return 1\n").unwrap();
        std::fs::write(dir.path().join("lib/util.py"), "X = 1\n".repeat(100)).unwrap();
        let boot = dir.path().join("bootstrap");
        std::fs::write(&boot, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&boot, std::fs::Permissions::from_mode(0o700)).unwrap();
        let one = package(dir.path()).unwrap();
        let two = package(dir.path()).unwrap();
        assert_eq!(one, two);
        // Python's zipfile reads it back: contents intact, entries sorted, modes kept.
        let path = dir.path().join("out.zip");
        std::fs::write(&path, &one.zip).unwrap();
        let script = "import zipfile, sys\nz = zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\nfor i in z.infolist(): print(i.filename, oct(i.external_attr >> 16), z.read(i).count(b'X'))";
        let out = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "app.py 0o100644 0\nbootstrap 0o100755 0\nlib/util.py 0o100644 100\n"
        );
        // A change of content changes the hash.
        std::fs::write(dir.path().join("app.py"), "def h(e, c):\n    return 2\n").unwrap();
        assert_ne!(package(dir.path()).unwrap().sha256, one.sha256);
    }
}
