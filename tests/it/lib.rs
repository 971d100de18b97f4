//! Shared helpers live in `it/util`; this library is empty.
