//! Installs what the tests need on a fresh machine, into `.tools/` (ignored).
