//! Flow-matching samplers and their schedules.
