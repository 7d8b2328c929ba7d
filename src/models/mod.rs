//! Model families. Each mirrors its reference module tree so weight names map one to one.

pub mod ltx;
pub mod nn;
pub mod t5;
