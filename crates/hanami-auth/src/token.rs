//! JWTs: HS256-signed tokens carrying the caller's context.
//!
//! The claims are the original's: `exp` (expiry, seconds since the epoch) and `user`, a
//! JSON-encoded *string* holding the [`Caller`]; `account`, which tells apart two users
//! created under the same id one after the other (see [`account_tag`]); and `assignment`,
//! which tells apart two assignments of the user to the token's project, one after the other
//! (see [`assignment_tag`]). Clients treat the token as opaque.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::context::Caller;

/// The shortest token key accepted, in bytes (the server makes 64: 256 random bits in hex).
pub const MIN_KEY_BYTES: usize = 16;

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Signature, format or algorithm is wrong.
    #[error("token is malformed or its signature is invalid")]
    Invalid,
    /// The token's lifetime is over.
    #[error("token has expired")]
    Expired,
    /// Reading or creating the key file failed.
    #[error("token key file {path}: {source}")]
    KeyFile {
        /// The key file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The key file exists but holds too few bytes to sign tokens safely.
    #[error(
        "token key file {path} holds {len} bytes, fewer than {MIN_KEY_BYTES}: remove it to have a \
         new key made (tokens signed with the old one stop working)"
    )]
    ShortKey {
        /// The key file.
        path: String,
        /// Its length in bytes.
        len: usize,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    exp: u64,
    user: String,
    /// The [`account_tag`] of the user the token was issued to; empty in tokens of older
    /// versions.
    #[serde(default)]
    account: String,
    /// The [`assignment_tag`] of the user's assignment to the token's project; empty in
    /// tokens of older versions.
    #[serde(default)]
    assignment: String,
}

/// What a token binds its caller to, besides the caller's context: tags that change when
/// the account or the assignment to the project is made anew, so that a token outlives
/// neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tags {
    /// The [`account_tag`] of the user.
    pub account: String,
    /// The [`assignment_tag`] of the user's assignment to the token's project.
    pub assignment: String,
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The caller's context at issue.
    pub caller: Caller,
    /// The tags of the account and assignment at issue.
    pub tags: Tags,
}

/// A tag of one user account, from its password hash (salted afresh for every user and
/// password): a user deleted and created again under the same id gets another tag. A
/// digest, so the token shows nothing of the hash.
pub fn account_tag(password_hash: &str) -> String {
    hex_tag(&Sha256::digest(password_hash.as_bytes()))
}

/// A tag of one assignment of a user account to a project: `number` is the assignment's
/// number in the database, which is never used again (`None` for a global admin's own
/// `admin` project, which is no assignment). A user taken out of a project and put back
/// gets another tag, so a token issued before the removal stays revoked. Keyed with the
/// account's password hash, so the token shows nothing of the number.
pub fn assignment_tag(password_hash: &str, number: Option<i64>) -> String {
    let mut digest = Sha256::new();
    digest.update(password_hash.as_bytes());
    digest.update(b"\0assignment\0");
    match number {
        Some(number) => digest.update(number.to_le_bytes()),
        None => digest.update(b"admin"),
    }
    hex_tag(&digest.finalize())
}

/// The first 12 bytes of a digest, in hex.
fn hex_tag(digest: &[u8]) -> String {
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// The secret that signs and verifies tokens, with the lifetime of new tokens.
#[derive(Clone)]
pub struct TokenKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    lifetime: Duration,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl TokenKey {
    /// A key from raw secret bytes (all of them, NULs included).
    pub fn from_secret(secret: &[u8], lifetime: Duration) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            lifetime,
        }
    }

    /// Reads the key file, creating it with 256 random bits (hex, mode 0600) if it is missing:
    /// written under a temporary name and renamed into place, so that a crash never leaves an
    /// empty key. A key of fewer than [`MIN_KEY_BYTES`] bytes is refused.
    pub fn load_or_create(path: &Path, lifetime: Duration) -> Result<Self, TokenError> {
        let io_err = |source| TokenError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        if !path.exists() {
            let mut secret = [0u8; 32];
            rand::rng().fill_bytes(&mut secret);
            let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
            let temp = path.with_extension("partial");
            let _ = fs::remove_file(&temp);
            let mut options = fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&temp).map_err(io_err)?;
            file.write_all(hex.as_bytes()).map_err(io_err)?;
            file.sync_all().map_err(io_err)?;
            fs::rename(&temp, path).map_err(io_err)?;
            if let Some(dir) = path.parent() {
                fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io_err)?;
            }
        }
        let secret = fs::read(path).map_err(io_err)?;
        if secret.len() < MIN_KEY_BYTES {
            return Err(TokenError::ShortKey {
                path: path.display().to_string(),
                len: secret.len(),
            });
        }
        Ok(Self::from_secret(&secret, lifetime))
    }

    /// How long new tokens stay valid.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Issues a token for a caller bound to `tags`, valid for the key's lifetime from now.
    pub fn issue(&self, caller: &Caller, tags: &Tags) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let claims = Claims {
            exp: (now + self.lifetime).as_secs(),
            user: serde_json::to_string(caller).expect("caller serializes"),
            account: tags.account.clone(),
            assignment: tags.assignment.clone(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with a secret key cannot fail")
    }

    /// Verifies signature, algorithm and expiry (no leeway) and returns what the token says.
    pub fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            },
        )?;
        let caller = serde_json::from_str(&data.claims.user).map_err(|_| TokenError::Invalid)?;
        Ok(Verified {
            caller,
            tags: Tags {
                account: data.claims.account,
                assignment: data.claims.assignment,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        Caller {
            created_at: "2026-01-01 00:00:00".into(),
            creator_id: "HANAMI_INIT".into(),
            id: "asdf".into(),
            is_admin: true,
            is_project_admin: true,
            name: "asdf".into(),
            project_id: "admin".into(),
            role: "admin".into(),
        }
    }

    fn tags() -> Tags {
        Tags {
            account: "account".into(),
            assignment: "assignment".into(),
        }
    }

    #[test]
    fn issue_and_verify() {
        let key = TokenKey::from_secret(b"secret", Duration::from_secs(60));
        let token = key.issue(&caller(), &tags());
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        );
        assert_eq!(
            key.verify(&token).unwrap(),
            Verified {
                caller: caller(),
                tags: tags()
            }
        );
    }

    #[test]
    fn user_claim_is_a_json_string() {
        use base64::Engine;
        let key = TokenKey::from_secret(b"secret", Duration::from_secs(60));
        let token = key.issue(&caller(), &tags());
        let payload = token.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert!(claims["exp"].is_u64());
        let user: Caller = serde_json::from_str(claims["user"].as_str().unwrap()).unwrap();
        assert_eq!(user, caller());
    }

    #[test]
    fn account_tags_differ_per_hash_and_hide_it() {
        let a = account_tag("$argon2id$v=19$m=19456,t=2,p=1$c2FsdDE$aGFzaDE");
        let b = account_tag("$argon2id$v=19$m=19456,t=2,p=1$c2FsdDI$aGFzaDE");
        assert_ne!(a, b);
        assert_eq!(
            a,
            account_tag("$argon2id$v=19$m=19456,t=2,p=1$c2FsdDE$aGFzaDE")
        );
        assert_eq!(a.len(), 24);
        assert!(!a.contains("c2FsdDE"));
    }

    #[test]
    fn assignment_tags_differ_per_number_and_account() {
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdDE$aGFzaDE";
        let first = assignment_tag(hash, Some(7));
        assert_eq!(first, assignment_tag(hash, Some(7)));
        assert_ne!(first, assignment_tag(hash, Some(8)));
        assert_ne!(first, assignment_tag(hash, None));
        assert_ne!(first, assignment_tag("$argon2id$other", Some(7)));
        assert_ne!(first, account_tag(hash));
        assert_eq!(first.len(), 24);
    }

    #[test]
    fn wrong_key_and_garbage_are_invalid() {
        let key = TokenKey::from_secret(b"secret", Duration::from_secs(60));
        let other = TokenKey::from_secret(b"other", Duration::from_secs(60));
        let token = key.issue(&caller(), &tags());
        assert!(matches!(other.verify(&token), Err(TokenError::Invalid)));
        assert!(matches!(
            key.verify("abc.def.ghi"),
            Err(TokenError::Invalid)
        ));
        assert!(matches!(key.verify(""), Err(TokenError::Invalid)));
    }

    #[test]
    fn secret_bytes_after_nul_count() {
        let a = TokenKey::from_secret(b"ab\0cd", Duration::from_secs(60));
        let b = TokenKey::from_secret(b"ab\0xy", Duration::from_secs(60));
        assert!(b.verify(&a.issue(&caller(), &tags())).is_err());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let key = TokenKey::from_secret(b"secret", Duration::from_secs(0));
        let token = key.issue(&caller(), &tags());
        std::thread::sleep(Duration::from_millis(1100));
        assert!(matches!(key.verify(&token), Err(TokenError::Expired)));
    }

    #[test]
    fn key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.key");
        let first = TokenKey::load_or_create(&path, Duration::from_secs(60)).unwrap();
        let content = std::fs::read(&path).unwrap();
        assert_eq!(content.len(), 64);
        let second = TokenKey::load_or_create(&path, Duration::from_secs(60)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), content);
        assert!(second.verify(&first.issue(&caller(), &tags())).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn short_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.key");
        for short in [&b""[..], b"abc", &[7u8; MIN_KEY_BYTES - 1]] {
            std::fs::write(&path, short).unwrap();
            let refused = TokenKey::load_or_create(&path, Duration::from_secs(60));
            assert!(
                matches!(&refused, Err(TokenError::ShortKey { len, .. }) if *len == short.len()),
                "{short:?}"
            );
            assert!(refused.err().unwrap().to_string().contains("remove it"));
        }
        std::fs::write(&path, [7u8; MIN_KEY_BYTES]).unwrap();
        TokenKey::load_or_create(&path, Duration::from_secs(60)).unwrap();
        // A temporary file left by a crash during the first start is no obstacle.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(path.with_extension("partial"), b"").unwrap();
        TokenKey::load_or_create(&path, Duration::from_secs(60)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap().len(), 64);
    }
}
