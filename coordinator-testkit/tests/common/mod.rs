//! Helpers shared by the testkit's tests.
#![allow(dead_code)]

pub(crate) mod svg;
