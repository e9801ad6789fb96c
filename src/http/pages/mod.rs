//! keygate's pages for people (HTML, `crate::web`): one file of handlers per page.

pub mod authorize;
