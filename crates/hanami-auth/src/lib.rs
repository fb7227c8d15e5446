//! Authentication and authorization of the Hanami server.
//!
//! - [`password`]: argon2id hashing of user passwords.
//! - [`token`]: the HS256 JWTs clients send in `X-Auth-Token`, and the key that signs them.
//! - [`policy`]: the policy file that says which role may call which endpoint.
//! - [`context`]: who is calling, and which resources that caller may see.
//!
//! Nothing here touches the database; the server looks users up and hands the facts in.

pub mod context;
pub mod password;
pub mod policy;
pub mod token;

pub use context::{ADMIN_PROJECT, Caller, Scope};
pub use policy::{Method, Policy, PolicyError};
pub use token::{MIN_KEY_BYTES, Tags, TokenError, TokenKey, Verified, account_tag, assignment_tag};
