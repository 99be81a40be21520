//! A throwaway PKI made with `openssl`, and the secrets the security tests use.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

use super::process::{run_ok, tempdir};

/// A random string of `len` ASCII letters and digits, safe inside a URL, TOML and a shell.
/// Seeded from the clock and the process id: unique enough to search logs for.
pub fn random_secret(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut state = nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let x = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
            ALPHABET[(x >> 33) as usize % ALPHABET.len()] as char
        })
        .collect()
}

/// A bcrypt hash of `password` for `basic_auth_users`, from Python's `bcrypt` module or,
/// failing that, `htpasswd` (Debian `apache2-utils`).
pub fn bcrypt_hash(password: &str) -> String {
    let python = Command::new("python3")
        .args([
            "-c",
            "import bcrypt, sys; print(bcrypt.hashpw(sys.stdin.readline().strip().encode(), bcrypt.gensalt(10)).decode())",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes())?;
            child.wait_with_output()
        });
    if let Ok(out) = python {
        let hash = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && hash.starts_with("$2") {
            return hash;
        }
    }
    if let Ok(out) = Command::new("htpasswd")
        .args(["-nbBC", "10", "", password])
        .output()
    {
        let hash = String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_start_matches(':')
            .to_owned();
        if out.status.success() && hash.starts_with("$2") {
            return hash;
        }
    }
    panic!(
        "no bcrypt hasher: install the Python module (`pip install bcrypt` or Debian \
         `python3-bcrypt`) or `htpasswd` (Debian `apache2-utils`)"
    );
}

/// A test certificate authority and the leaf certificates it signs, all in one temp dir.
pub struct Pki {
    pub dir: TempDir,
}

/// A leaf certificate and its key.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// A fresh CA named `name` (P-256 keys: quick to make).
    pub fn new(name: &str) -> Pki {
        let dir = tempdir("rpe-pki-");
        let pki = Pki { dir };
        let (key, crt) = (pki.path("ca.key"), pki.path("ca.crt"));
        run_ok(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                s(&key),
                "-out",
                s(&crt),
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        pki
    }

    /// A file in the PKI folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The CA certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.path("ca.crt")
    }

    /// A leaf for both server and client use, with `san` like `DNS:redis.test,IP:127.0.0.1`.
    pub fn leaf(&self, name: &str, san: &str) -> Leaf {
        let key = self.path(&format!("{name}.key"));
        let csr = self.path(&format!("{name}.csr"));
        let cert = self.path(&format!("{name}.crt"));
        let ext = self.path(&format!("{name}.ext"));
        fs::write(
            &ext,
            format!(
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
                 extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName={san}\n"
            ),
        )
        .unwrap();
        run_ok(
            "openssl",
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                s(&key),
                "-out",
                s(&csr),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        run_ok(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                s(&csr),
                "-CA",
                s(&self.ca()),
                "-CAkey",
                s(&self.path("ca.key")),
                "-CAcreateserial",
                "-out",
                s(&cert),
                "-days",
                "2",
                "-extfile",
                s(&ext),
            ],
        );
        Leaf { cert, key }
    }
}

/// `path` as `&str`, for argument lists.
pub fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}
