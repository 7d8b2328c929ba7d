//! Flow-matching samplers and their schedules, and the noise they start from.

pub mod noise;
