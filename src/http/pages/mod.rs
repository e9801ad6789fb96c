//! keygate's pages for people, one file per page (HTML, not part of the JSON API).

pub mod device;
