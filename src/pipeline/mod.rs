//! Generation jobs (generate, extend, fill) built on the conditioned sampler.
