//! Authentication and authorization of the Hanami server: password hashing, JWT tokens,
//! the policy file and the user context that every request carries.
