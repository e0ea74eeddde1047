//! sdu
