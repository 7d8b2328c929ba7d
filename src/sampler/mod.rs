//! Flow-matching samplers and their schedules, and the noise they start from.

pub mod flow_match;
pub mod noise;
pub mod schedule;
