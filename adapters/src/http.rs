//! HTTP clients: to be written.
